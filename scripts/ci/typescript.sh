#!/usr/bin/env bash
# CI for the TypeScript client (clients/typescript): pinned install from package-lock.json,
# strict type check, build to dist/, then the tests with Node's built-in runner against the
# real server process (.venv/bin/cugar-metrics, installed by scripts/install-tools.sh); the
# TLS tests make their certificates with the openssl CLI.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

if [[ ! -x .venv/bin/cugar-metrics ]]; then
  echo "typescript.sh: .venv/bin/cugar-metrics missing: run scripts/install-tools.sh first" >&2
  exit 1
fi
if ! command -v "${OPENSSL:-openssl}" >/dev/null; then
  echo "typescript.sh: the openssl CLI is missing (the TLS tests make their certificates with it)" >&2
  exit 1
fi
echo "typescript.sh: node $(node --version), npm $(npm --version), $("${OPENSSL:-openssl}" version)"

cd clients/typescript
npm ci --no-audit --no-fund
npm run typecheck
npm run build
npm test
