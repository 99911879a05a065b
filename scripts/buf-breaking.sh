#!/usr/bin/env bash
# buf breaking against the contract as last released: the main branch of origin when the work
# tree is a clone with one (CI, pull requests), else the previous commit. A repository with a
# single commit has nothing to break.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=tools/node_modules/.bin/buf
if git rev-parse -q --verify refs/remotes/origin/main >/dev/null && \
   [ "$(git rev-parse refs/remotes/origin/main)" != "$(git rev-parse HEAD)" ]; then
  against=".git#ref=refs/remotes/origin/main"
elif git rev-parse -q --verify HEAD~1 >/dev/null; then
  against=".git#ref=HEAD~1"
else
  echo "buf breaking: no earlier commit to compare with"; exit 0
fi
echo "buf breaking --against $against"
"$buf" breaking --against "$against"
