"""Consistency of the shipped monitoring and deployment files with each other and with the
predecessor's defects: alerts carry their labels and runbooks, the dashboard is a bare
model generated from code, compose publishes nothing unauthenticated, the Kubernetes
manifests agree with the server's ports, probes and drain, the scrape configs find pods.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.promstack import ROOT, RULES_DIR

MON = ROOT / "monitoring"
PREDECESSOR_ALERTS = {
    "LowSuccessRate": ("5m", "warning"),
    "CriticalSuccessRate": ("2m", "critical"),
    "HighErrorRate": ("5m", "warning"),
    "HighLatencyP95": ("10m", "warning"),
    "HighLatencyP99": ("10m", "warning"),
    "FrequentBudgetExceeded": ("5m", "warning"),
    "HighToolErrorRate": ("5m", "warning"),
    "ApprovalTimeouts": ("1m", "critical"),
    "NoRecentExecutions": ("30m", "info"),
    "DomainErrors": ("2m", "warning"),
}
NEW_ALERTS = {
    "CugarMetricsDown",
    "CugarMetricsReplicaDown",
    "HighIngestRejectionRate",
    "LabelOverflow",
    "ProfileSilent",
    "AgentSilent",
}
#: Alerts on model calls: errors, rate limits and cost against the hourly budget.
MODEL_ALERTS = {"ModelErrorRateHigh", "ModelRateLimited", "CostBurnRateHigh"}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerts() -> list[dict[str, Any]]:
    return [r for g in load(RULES_DIR / "cugar-metrics.alerts.yml")["groups"] for r in g["rules"]]


# -- rules -----------------------------------------------------------------------------------


def test_alerts_keep_the_predecessors_and_add_the_missing_ones() -> None:
    """The ten predecessor alerts with their `for` and severity, plus the six new ones and the
    three on model calls: each defined once, and no other."""
    names = [a["alert"] for a in alerts()]
    assert sorted(names) == sorted([*PREDECESSOR_ALERTS, *NEW_ALERTS, *MODEL_ALERTS])
    got = {a["alert"]: (a["for"], a["labels"]["severity"]) for a in alerts()}
    assert {k: got[k] for k in PREDECESSOR_ALERTS} == PREDECESSOR_ALERTS


def test_every_alert_has_labels_annotations_and_an_existing_runbook() -> None:
    for a in alerts():
        assert a["labels"]["severity"] in {"critical", "warning", "info"}, a["alert"]
        assert a["labels"]["signal"], a["alert"]
        assert set(a["annotations"]) == {"summary", "description", "runbook_url"}, a["alert"]
        assert a["annotations"]["runbook_url"] == f"monitoring/runbooks/{a['alert']}.md"
        runbook = ROOT / a["annotations"]["runbook_url"]
        assert runbook.is_file(), runbook
        assert runbook.read_text().startswith(f"# {a['alert']}\n"), runbook


def test_every_alert_has_a_unit_test_case() -> None:
    """Each alert appears in monitoring/prometheus/tests/alerts.test.yml with exp_alerts
    both empty (silent) and non-empty (fires)."""
    tests = load(MON / "prometheus" / "tests" / "alerts.test.yml")["tests"]
    fires, silent = set(), set()
    for t in tests:
        for case in t.get("alert_rule_test", []):
            (fires if case["exp_alerts"] else silent).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert fires == names
    assert silent == names


def test_recording_rule_names_follow_level_metric_operations() -> None:
    rules = [r for g in load(RULES_DIR / "cugar-metrics.rules.yml")["groups"] for r in g["rules"]]
    for r in rules:
        level, metric, ops = r["record"].split(":")
        assert level.startswith("job"), r["record"]
        assert metric.startswith(("cugar_",)), r["record"]
        assert ops, r["record"]
        assert "instance" not in level and "by (instance" not in r["expr"], r["record"]


def test_prometheusrule_is_generated_from_the_rule_files() -> None:
    rule = load(ROOT / "deploy/kubernetes/components/prometheus-operator/prometheusrule.yaml")
    groups = [g for p in sorted(RULES_DIR.glob("*.yml")) for g in load(p)["groups"]]
    assert rule["spec"]["groups"] == groups


# -- Alertmanager ------------------------------------------------------------------------------


def test_alertmanager_routes_by_severity_and_inhibits_warnings() -> None:
    am = load(MON / "alertmanager" / "alertmanager.yml")
    assert am["route"]["group_by"] == ["alertname", "job", "domain"]
    routes = {r["matchers"][0]: r["receiver"] for r in am["route"]["routes"]}
    assert routes == {
        'severity="critical"': "page",
        'severity="warning"': "ticket",
        'severity="info"': "null",
    }
    first = am["inhibit_rules"][0]
    assert first["source_matchers"] == ['severity="critical"']
    assert "signal" in first["equal"]


# -- Grafana -----------------------------------------------------------------------------------


def test_dashboard_is_a_bare_model_with_stable_uid_and_variables() -> None:
    """Not the HTTP-import envelope (predecessor defect 13), data source as a variable."""
    d = json.loads((MON / "grafana/dashboards/cugar-metrics-golden-signals.json").read_text())
    assert "dashboard" not in d and "overwrite" not in d
    assert d["uid"] == "cugar-metrics-golden-signals"
    names = [v["name"] for v in d["templating"]["list"]]
    assert names == ["datasource", "instance", "profile", "domain"]
    for panel in d["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        for t in panel["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert 'job="cugar-metrics"' in t["expr"], panel["title"]
    budget = next(p for p in d["panels"] if p["title"] == "Budget utilisation")
    assert budget["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert (budget["fieldConfig"]["defaults"]["min"], budget["fieldConfig"]["defaults"]["max"]) == (
        0,
        1,
    )


def test_dashboard_json_is_what_the_generator_writes() -> None:
    result = subprocess.run(
        [str(ROOT / ".venv/bin/python"), str(MON / "grafana/generate_dashboard.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    provider = load(MON / "grafana/provisioning/dashboards/cugar-metrics.yml")["providers"][0]
    compose = load(ROOT / "docker-compose.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./monitoring/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    ds = load(MON / "grafana/provisioning/datasources/prometheus.yml")["datasources"][0]
    assert ds["url"] == "http://prometheus:9090"


# -- compose -----------------------------------------------------------------------------------


def test_compose_pins_images_checks_health_and_publishes_only_on_loopback() -> None:
    services = load(ROOT / "docker-compose.yml")["services"]
    assert set(services) == {"cugar-metrics", "prometheus", "alertmanager", "grafana"}
    for name, svc in services.items():
        assert re.search(r":v?\d+\.\d+\.\d+$", svc["image"]), name
        assert svc["healthcheck"]["test"][0] == "CMD", name
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)
            assert ":9464" not in port, "the metrics port is scraped in-network only"


def test_compose_has_no_default_credentials_and_no_lifecycle_endpoint() -> None:
    services = load(ROOT / "docker-compose.yml")["services"]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    prom = services["prometheus"]["command"]
    assert "--storage.tsdb.retention.time=30d" in prom
    assert not any("enable-lifecycle" in c or "enable-admin-api" in c for c in prom)
    assert "prometheus-data:/prometheus" in services["prometheus"]["volumes"]
    assert "grafana-data:/var/lib/grafana" in services["grafana"]["volumes"]
    assert "alertmanager-data:/alertmanager" in services["alertmanager"]["volumes"]


def test_compose_prometheus_config_scrapes_every_replica_by_dns() -> None:
    prom = load(MON / "prometheus/prometheus.yml")
    job = next(j for j in prom["scrape_configs"] if j["job_name"] == "cugar-metrics")
    assert job["dns_sd_configs"] == [
        {"names": ["cugar-metrics"], "type": "A", "port": 9464, "refresh_interval": "15s"}
    ]
    assert prom["global"]["scrape_interval"] == "15s"


# -- Kubernetes --------------------------------------------------------------------------------


def kustomize(overlay: str) -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        [str(ROOT / ".tools/bin/kustomize"), "build", str(ROOT / "deploy/kubernetes" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(out)}


def seconds(value: str) -> int:
    m = re.fullmatch(r"(\d+)s", value)
    assert m, value
    return int(m[1])


def test_deployment_probes_drain_resources_and_security() -> None:
    docs = kustomize("overlays/example")
    dep = docs["Deployment/cugar-metrics"]
    assert dep["metadata"]["namespace"] == "cugar-metrics"
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"grpc": 50051, "metrics": 9464}
    assert c["readinessProbe"]["grpc"] == {
        "port": 50051,
        "service": "cugar.metrics.v1.MetricsService",
    }
    assert c["livenessProbe"]["grpc"] == {"port": 50051}
    env = {e["name"]: e.get("value") for e in c["env"]}
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    grace = seconds(env["CUGAR_METRICS_SHUTDOWN_GRACE"])
    delay = seconds(env.get("CUGAR_METRICS_SHUTDOWN_DELAY") or "0s")
    # SIGKILL comes only after the preStop sleep, the server's delay and grace, and slack.
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + delay + grace + 5
    assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["args"] == ["serve", "--host", "0.0.0.0"]


def test_services_pdb_and_podmonitor_select_the_pods() -> None:
    docs = kustomize("overlays/example")
    labels = docs["Deployment/cugar-metrics"]["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    svc, headless = docs["Service/cugar-metrics"], docs["Service/cugar-metrics-headless"]
    assert selects(svc["spec"]["selector"]) and selects(headless["spec"]["selector"])
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in svc["spec"]["ports"]] == [50051]
    pdb = docs["PodDisruptionBudget/cugar-metrics"]
    assert selects(pdb["spec"]["selector"]["matchLabels"])
    assert pdb["spec"]["minAvailable"] == 1
    pm = docs["PodMonitor/cugar-metrics"]
    assert selects(pm["spec"]["selector"]["matchLabels"])
    assert [e["port"] for e in pm["spec"]["podMetricsEndpoints"]] == ["metrics"]
    # The job label comes from this pod label; the rules select job="cugar-metrics".
    assert labels[pm["spec"]["jobLabel"]] == "cugar-metrics"
    assert "PrometheusRule/cugar-metrics" in docs


def test_plain_prometheus_kubernetes_config_keeps_the_pods_metrics_port() -> None:
    """Debian's promtool lacks Kubernetes discovery, so check the relabelling against the
    manifests: the keep rules match the pods' name label and the `metrics` port."""
    cfg = load(MON / "prometheus/prometheus-kubernetes.yml")
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "cugar-metrics")
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    keeps = {
        tuple(r["source_labels"]): r["regex"]
        for r in job["relabel_configs"]
        if r.get("action") == "keep"
    }
    docs = kustomize("base")
    labels = docs["Deployment/cugar-metrics"]["spec"]["template"]["metadata"]["labels"]
    assert (
        keeps[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)]
        == labels["app.kubernetes.io/name"]
    )
    assert keeps[("__meta_kubernetes_pod_container_port_name",)] == "metrics"
