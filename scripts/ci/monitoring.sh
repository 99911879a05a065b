#!/usr/bin/env bash
# Monitoring and deployment checks (`make monitoring-check` runs this):
#   promtool check config / check rules / test rules, amtool check-config and routing,
#   hadolint on the Dockerfile, the compose file against the compose-spec schema,
#   kustomize build + kubernetes-validate, drift of the generated dashboard and
#   PrometheusRule, and pytest tests/monitoring (real replicas, a real Prometheus).
# Run from the repository root after scripts/install-tools.sh. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
VENV=.venv/bin
KUSTOMIZE_VERSION=v5.8.1
step() { printf '\n==> monitoring: %s\n' "$*"; }

step "extra Python packages (monitoring/requirements.txt)"
if ! cmp -s monitoring/requirements.txt .venv/.installed-monitoring 2>/dev/null; then
  $VENV/python -m pip install --quiet --disable-pip-version-check -r monitoring/requirements.txt
  cp monitoring/requirements.txt .venv/.installed-monitoring
fi

step "kustomize $KUSTOMIZE_VERSION into .tools/bin"
stamp=".tools/bin/.kustomize-$KUSTOMIZE_VERSION"
if [ ! -x .tools/bin/kustomize ] || [ ! -f "$stamp" ]; then
  mkdir -p .tools/bin
  GOBIN="$root/.tools/bin" GOFLAGS=-mod=mod go install \
    "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  touch "$stamp"
fi
export PATH="$root/.tools/bin:$root/$VENV:$PATH"

step "promtool check config / rules / test rules"
promtool check config monitoring/prometheus/prometheus.yml
promtool check rules monitoring/prometheus/rules/*.yml
promtool test rules monitoring/prometheus/tests/*.test.yml

step "amtool check-config and routing"
amtool check-config monitoring/alertmanager/alertmanager.yml
route() {  # expected receiver, then labels
  local want=$1; shift
  amtool config routes test --config.file=monitoring/alertmanager/alertmanager.yml \
    --verify.receivers="$want" "$@" 2>/dev/null >/dev/null \
    || { echo "routing of $* is not $want" >&2; exit 1; }
  echo "  $* -> $want"
}
route page severity=critical alertname=CriticalSuccessRate job=cugar-metrics
route ticket severity=warning alertname=DomainErrors job=cugar-metrics domain=territory
route null severity=info alertname=NoRecentExecutions job=cugar-metrics

step "hadolint Dockerfile"
hadolint --config .hadolint.yaml Dockerfile && echo "  Dockerfile: no findings"

step "docker-compose.yml against the compose-spec schema"
check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

step "kustomize build + kubernetes-validate (Kubernetes 1.27 and 1.37, strict)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for overlay in base overlays/example; do
  out="$tmp/$(echo "$overlay" | tr / -).yaml"
  kustomize build "deploy/kubernetes/$overlay" > "$out"
  for k8s in 1.27.0 1.37.0; do
    # PodMonitor and PrometheusRule (custom resources) have no schema here: they are
    # checked by tests/monitoring/test_static_config.py and promtool instead.
    kubernetes-validate --strict --quiet -k "$k8s" "$out" | grep -v "Couldn't find schema for kind \(PodMonitor\|PrometheusRule\)" || true
    kubernetes-validate --strict --quiet --no-warn -k "$k8s" "$out" >/dev/null
  done
  echo "  $overlay: valid"
done

step "generated files are up to date"
$VENV/python monitoring/grafana/generate_dashboard.py --check
$VENV/python monitoring/prometheus/generate_prometheusrule.py --check

step "pytest tests/monitoring"
CUGAR_MONITORING_TESTS=1 $VENV/pytest tests/monitoring -p no:cacheprovider
