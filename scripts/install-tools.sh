#!/usr/bin/env bash
# Installs every tool the build and the tests use, at pinned versions, into the work tree:
#   .venv/            Python (stubs, server, Python client, test and lint tools) from requirements.lock
#   tools/node_modules buf and protoc-gen-es (tools/package-lock.json)
#   .tools/bin/       Go tools: grpcurl, grpc_health_probe, ghz, protoc-gen-go, protoc-gen-go-grpc,
#                     protoc-gen-doc
#   Debian packages   prometheus, prometheus-alertmanager (promtool, amtool), when running as root
#   /etc/hosts        cugar-replicas.test -> 127.0.0.2 and 127.0.0.3 (the two-replicas
#                     conformance scenario), when running as root
# Safe to run again: each step is skipped when its pinned result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
step() { printf '\n==> %s\n' "$*"; }

# Pinned Go tool versions (module@version). Bump here, nowhere else.
GO_TOOLS=(
  "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4"
  "github.com/grpc-ecosystem/grpc-health-probe@v0.4.62"
  "github.com/bojand/ghz/cmd/ghz@v0.121.0"
  "google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12"
  "google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2"
  "github.com/pseudomuto/protoc-gen-doc/cmd/protoc-gen-doc@v1.5.1"
)

step "Python virtualenv (.venv) from requirements.lock"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! cmp -s requirements.lock .venv/.installed-lock 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
  cp requirements.lock .venv/.installed-lock
fi
# Editable, from this checkout: the generated stubs (cugar-metrics-proto), the Python client,
# and the server, which depends on the stubs only (the client for its demo/dashboard commands).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -e proto-python -e clients/python -e .

step "Code generation tools (tools/package-lock.json)"
if [ ! -x tools/node_modules/.bin/buf ] || ! cmp -s tools/package-lock.json tools/node_modules/.package-lock.json 2>/dev/null; then
  (cd tools && npm ci --no-fund --no-audit --loglevel=error)
fi

step "Go tools into .tools/bin"
mkdir -p .tools/bin
for spec in "${GO_TOOLS[@]}"; do
  stamp=".tools/bin/.$(echo "$spec" | tr '/@' '__')"
  if [ ! -f "$stamp" ]; then
    echo "    go install $spec"
    GOBIN="$root/.tools/bin" GOFLAGS=-mod=mod go install "$spec"
    touch "$stamp"
  fi
done
[ -e .tools/bin/grpc_health_probe ] || ln -sf grpc-health-probe .tools/bin/grpc_health_probe

step "Prometheus and Alertmanager (Debian packages)"
if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus prometheus-alertmanager >/dev/null
    # The packages start their services; the tests run their own instances.
    systemctl stop prometheus prometheus-alertmanager prometheus-node-exporter 2>/dev/null || true
  else
    echo "promtool/amtool missing: run 'sudo apt-get install prometheus prometheus-alertmanager'" >&2
    exit 1
  fi
fi
step "Test host name cugar-replicas.test (/etc/hosts)"
# Two replicas behind one name, for tests/conformance/test_faults.py::test_two_replicas.
# CUGAR_HOSTS_FILE points elsewhere to check this step on a copy.
hosts_file="${CUGAR_HOSTS_FILE:-/etc/hosts}"
for address in 127.0.0.2 127.0.0.3; do
  if ! grep -Eq "^${address//./\\.}[[:space:]]+([^#]*[[:space:]])?cugar-replicas\.test([[:space:]]|$)" "$hosts_file"; then
    if [ -w "$hosts_file" ]; then
      [ -z "$(tail -c1 "$hosts_file")" ] || echo >>"$hosts_file"
      echo "$address cugar-replicas.test" >>"$hosts_file"
      echo "    added $address cugar-replicas.test"
    else
      echo "$hosts_file lacks '$address cugar-replicas.test': add it as root" >&2
    fi
  fi
done

echo
echo "tools ready: $(.venv/bin/python --version), buf $(tools/node_modules/.bin/buf --version), $(promtool --version 2>&1 | head -1)"
