#!/usr/bin/env bash
# buf breaking: the contract in the work tree against the last release, or else the previous
# state of the contract:
#   1. the newest release tag (v*) behind HEAD, not HEAD itself;
#   2. else, on a branch, where it left main (the merge base with origin's main, or the local
#      one); on main itself (a fresh clone, as in CI), the previous commit HEAD~1.
# With none of these (a single-commit or too shallow clone) it fails: comparing the contract
# with itself would prove nothing. Fetch the history (`git fetch --unshallow --tags`).
set -euo pipefail
cd "$(dirname "$0")/.."
buf=${BUF:-tools/node_modules/.bin/buf}

commit() { git rev-parse -q --verify "$1^{commit}" 2>/dev/null; }

head=$(commit HEAD) || { echo "buf breaking: no commit to compare with" >&2; exit 1; }
against="" what=""
if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD 2>/dev/null) \
  && [ "$(commit "$tag")" = "$head" ]; then
  tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD^ 2>/dev/null) || tag=""
fi
if [ -n "${tag:-}" ]; then
  against=$(commit "$tag"); what="the last release $tag"
else
  for main in refs/remotes/origin/main refs/heads/main; do
    tip=$(commit "$main") || continue
    base=$(git merge-base HEAD "$tip" 2>/dev/null) || continue
    if [ "$base" != "$head" ]; then
      against=$base; what="the merge base with ${main#refs/*/}"
      break
    fi
  done
  if [ -z "$against" ]; then
    against=$(commit HEAD~1) || {
      echo "buf breaking: nothing to compare the contract with: no release tag (v*), no" \
        "merge base with main, no previous commit (a shallow clone? git fetch --unshallow --tags)" >&2
      exit 1
    }
    what="the previous commit"
  fi
fi
echo "buf breaking --against $what (${against:0:12})"
"$buf" breaking --against ".git#ref=$against,depth=$(( $(git rev-list --count "$against..HEAD") + 50 ))"
