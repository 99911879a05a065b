#!/usr/bin/env bash
# buf breaking: the contract in the work tree against the main branch (origin's when this is a
# clone, as in CI and pull requests; else the local one). On main itself this catches a
# breaking edit before it is committed; on a branch, before it is merged.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=tools/node_modules/.bin/buf
if git rev-parse -q --verify refs/remotes/origin/main >/dev/null; then
  against=".git#ref=refs/remotes/origin/main"
elif git rev-parse -q --verify refs/heads/main >/dev/null; then
  against=".git#branch=main"
else
  echo "buf breaking: no main branch to compare with"; exit 0
fi
echo "buf breaking --against $against"
"$buf" breaking --against "$against"
