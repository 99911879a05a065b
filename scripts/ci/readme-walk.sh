#!/usr/bin/env bash
# Walks each client README's first example exactly as written, in a fresh clone of this
# repository (its committed HEAD), against a real `cugar-metrics serve` process.
#
# In clients/<lang>/README.md the example sits between the lines `<!-- walk:begin -->` and
# `<!-- walk:end -->`. Its fenced code blocks are taken in order:
#   - a block whose info string is a shell (sh, bash, shell, console) is run with bash from
#     the clone's root (`set -euo pipefail`; a `$ ` prompt at the start of a line is removed);
#   - a block whose info string names a file after its language (```python first_execution.py)
#     is written to that path, relative to the clone's root, before the next shell block runs;
#   - any other block is shown only, and fails the walk (every step must be runnable).
# Each language gets its own server on a free port, named by CUGAR_METRICS_TARGET (host:port;
# the examples default to 127.0.0.1:50051); after its example the server must have accepted
# at least one execution. A README without the markers fails the walk, naming the file.
#
# Usage: scripts/ci/readme-walk.sh [python|go|typescript|java ...]   (default: all four)
# `make test` runs it after the language builds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root=$PWD
cli="$root/.venv/bin/cugar-metrics"
if [[ ! -x "$cli" ]]; then
  echo "readme-walk.sh: $cli missing: run scripts/install-tools.sh first" >&2
  exit 1
fi
languages=("$@")
[[ ${#languages[@]} -gt 0 ]] || languages=(python go typescript java)

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# The example's steps as one bash script (files written by here-documents, in order).
extract() { # README (relative to the clone) OUT
  (cd "$work/repo" && python3 - "$1" "$2") <<'PY'
import re, shlex, sys
readme, out = sys.argv[1], sys.argv[2]
text = open(readme, encoding="utf-8").read()
begin, end = "<!-- walk:begin -->", "<!-- walk:end -->"
if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
    sys.exit(f"{readme}: no single '{begin}' ... '{end}' pair around its first example")
section = text[text.index(begin) + len(begin) : text.index(end)]
blocks = re.findall(r"^(`{3,})([^\n`]*)\n(.*?)^\1[ \t]*$", section, re.M | re.S)
if not blocks:
    sys.exit(f"{readme}: no fenced code block between the walk markers")
steps = ["set -euo pipefail"]
for n, (_, info, body) in enumerate(blocks, 1):
    words = info.split()
    lang = words[0].lower() if words else ""
    if lang in ("sh", "bash", "shell", "console") and len(words) == 1:
        lines = [re.sub(r"^\$ ", "", line) for line in body.splitlines()]
        steps.append(f"echo '--- block {n} ({lang})'")
        steps.append("\n".join(lines))
    elif len(words) == 2:
        path = words[1]
        marker = "WALK_EOF_" + str(n)
        steps.append(f"echo '--- block {n}: writing {path}'")
        steps.append(f"mkdir -p \"$(dirname {shlex.quote(path)})\"")
        steps.append(f"cat > {shlex.quote(path)} <<'{marker}'\n{body}{marker}")
    else:
        sys.exit(
            f"{readme}: block {n} ('{info}') is neither a shell block nor a file "
            "('```LANG PATH'): the walk cannot run it"
        )
open(out, "w", encoding="utf-8").write("\n".join(steps) + "\n")
PY
}

accepted() { # METRICS_PORT
  python3 - "$1" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
m = re.search(r'^cugar_ingest_executions_total\{result="accepted"\} (\S+)$', text, re.M)
print(int(float(m.group(1))) if m else 0)
PY
}

echo "readme-walk: cloning $(git rev-parse --short HEAD) into a temporary directory"
git clone --quiet --no-hardlinks "$root" "$work/repo"
failed=()
for lang in "${languages[@]}"; do
  readme="clients/$lang/README.md"
  echo "==> readme-walk: $readme"
  if [[ ! -f "$work/repo/$readme" ]]; then
    echo "readme-walk: $readme does not exist" >&2
    failed+=("$lang"); continue
  fi
  if ! extract "$readme" "$work/$lang.sh"; then
    failed+=("$lang"); continue
  fi
  ready="$work/$lang.ready.json"
  "$cli" serve --no-auth --host 127.0.0.1 --grpc-port 0 --metrics-port 0 \
    --replica "walk-$lang" --ready-file "$ready" >"$work/$lang.server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 300); do [[ -s "$ready" ]] && break; sleep 0.1; done
  if [[ ! -s "$ready" ]]; then
    echo "readme-walk: the server did not start:" >&2; cat "$work/$lang.server.log" >&2
    failed+=("$lang"); continue
  fi
  grpc_port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["grpc_port"])' "$ready")
  metrics_port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metrics_port"])' "$ready")
  if (cd "$work/repo" && CUGAR_METRICS_TARGET="127.0.0.1:$grpc_port" bash "$work/$lang.sh"); then
    count=$(accepted "$metrics_port")
    if [[ "$count" -ge 1 ]]; then
      echo "readme-walk: $readme: the example ran; the server accepted $count execution(s)"
    else
      echo "readme-walk: $readme: the example ran but recorded nothing on the server" >&2
      failed+=("$lang")
    fi
  else
    echo "readme-walk: $readme: a step of the example failed (above)" >&2
    failed+=("$lang")
  fi
  kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "readme-walk: FAILED for: ${failed[*]}" >&2
  exit 1
fi
echo "readme-walk: every example ran (${languages[*]})"
