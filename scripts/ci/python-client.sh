#!/usr/bin/env bash
# CI for the Python client (clients/python): lint and type-check it, check the conformance
# program, then run tests/client against the real server (in-process, on free ports).
# Everything it needs is pinned in requirements.lock and installed by scripts/install-tools.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [[ ! -x .venv/bin/python ]]; then
  echo "python-client.sh: .venv missing: run scripts/install-tools.sh first" >&2
  exit 1
fi
# Idempotent: make sure the client is installed (editable) from this checkout.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
  --no-build-isolation -e clients/python
echo "python-client.sh: $(.venv/bin/python --version), grpcio $(.venv/bin/python -c 'import grpc; print(grpc.__version__)')"

.venv/bin/ruff check clients/python/src clients/python/examples tests/client tests/conformance
.venv/bin/ruff format --check clients/python/src clients/python/examples tests/client tests/conformance
.venv/bin/pytest -p no:cacheprovider tests/client
