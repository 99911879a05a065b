#!/usr/bin/env bash
# Runs the conformance scenario through the TypeScript client:
#   clients/typescript/conformance.sh --target HOST:PORT --profile P
# Uses the build of scripts/ci/typescript.sh (dist/); builds it first if it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [[ ! -f dist/examples/conformance.js ]]; then
  echo "conformance.sh: dist/ missing, building the client first" >&2
  npm ci --no-audit --no-fund >&2
  npm run --silent build >&2
fi
exec node dist/examples/conformance.js "$@"
