#!/usr/bin/env bash
# The conformance scenario through the Python client.
# Usage: clients/python/conformance.sh --target HOST:PORT --profile P [--scenario NAME] [options]
# (clients/CONFORMANCE.md)
# Uses the repository's .venv (scripts/install-tools.sh), or $PYTHON if set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-$here/../../.venv/bin/python}"
exec "$python" "$here/examples/conformance.py" "$@"
