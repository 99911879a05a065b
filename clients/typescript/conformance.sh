#!/usr/bin/env bash
# Runs a conformance scenario (clients/CONFORMANCE.md) through the TypeScript client:
#   clients/typescript/conformance.sh --target HOST:PORT --profile P [--scenario NAME]
#     [--attempt-deadline S] [--retry-info-cap S] [--buffer-size N] [--close-timeout S]
#     [--api-key KEY]
# The last line on stdout is the run's JSON account.
# Uses the build of scripts/ci/typescript.sh (dist/); builds it first if it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [[ ! -f dist/examples/conformance.js ]]; then
  echo "conformance.sh: dist/ missing, building the client first" >&2
  npm ci --no-audit --no-fund >&2
  npm run --silent build >&2
fi
exec node dist/examples/conformance.js "$@"
