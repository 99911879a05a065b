#!/usr/bin/env bash
# Runs the Go client's conformance program: conformance.sh --target HOST:PORT --profile P
# Builds it first (cached by the go command, so later runs only link-check).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$here/.build"
(cd "$here" && go build -o .build/conformance ./cmd/conformance)
exec "$here/.build/conformance" "$@"
