#!/usr/bin/env bash
# The Go client (clients/go): download its pinned modules (go.sum), vet it, and test it
# against the real server process from .venv (installed by scripts/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -x .venv/bin/cugar-metrics ]; then
  echo "go.sh: .venv/bin/cugar-metrics is missing: run scripts/install-tools.sh first" >&2
  exit 1
fi
cd clients/go
echo "==> clients/go: go mod download ($(go version))"
go mod download
go mod verify
echo "==> clients/go: go vet ./..."
go vet ./...
echo "==> clients/go: go test -count=1 ./..."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
go test -count=1 -v ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo "go: $(grep -c -- '--- PASS' "$log") passed, $(grep -c -- '--- FAIL' "$log") failed"
exit "$status"
