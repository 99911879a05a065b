#!/usr/bin/env bash
# Cross-language conformance: every client (python, go, typescript, java) runs the shared
# scenario against its own fresh server process, and the harness checks the server's numbers.
# `make test` runs it after the clients' own suites (scripts/ci/go.sh, typescript.sh, java.sh),
# which build them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [[ ! -x .venv/bin/cugar-metrics ]]; then
  echo "conformance.sh: .venv/bin/cugar-metrics missing: run scripts/install-tools.sh first" >&2
  exit 1
fi
.venv/bin/pytest -p no:cacheprovider -m conformance tests/conformance
