#!/usr/bin/env bash
# CI for the Python client (clients/python): install it from this checkout and lint it, its
# tests and its conformance program. Its tests (clients/python/tests, against real servers)
# run in `make test-python-client`, which `make test` runs before this script; run both:
#   bash scripts/ci/python-client.sh && make test-python-client
# Everything it needs is pinned in requirements.lock and installed by scripts/install-tools.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [[ ! -x .venv/bin/python ]]; then
  echo "python-client.sh: .venv missing: run scripts/install-tools.sh first" >&2
  exit 1
fi
# Idempotent: make sure the stubs and the client are installed (editable) from this checkout.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
  --no-build-isolation -e proto-python -e clients/python
echo "python-client.sh: $(.venv/bin/python --version), grpcio $(.venv/bin/python -c 'import grpc; print(grpc.__version__)')"

.venv/bin/ruff check clients/python/src clients/python/examples clients/python/tests tests/conformance
.venv/bin/ruff format --check clients/python/src clients/python/examples clients/python/tests tests/conformance
