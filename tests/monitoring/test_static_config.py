"""Consistency of the shipped monitoring and deployment files with each other and with the
predecessor's defects: alerts carry their labels and runbooks, the dashboard is a bare
model generated from code, compose publishes nothing unauthenticated, the Kubernetes
manifests agree with the server's ports, probes and drain, the scrape configs find pods.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.promstack import ROOT, RULES_DIR
from tests.support.serverproc import tool

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
    assert set(services) == {
        "cugar-metrics",
        "cugar-metrics-2",
        "prometheus",
        "alertmanager",
        "grafana",
    }
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


def test_compose_runs_two_replicas_that_are_peers_behind_one_published_address() -> None:
    compose = load(ROOT / "docker-compose.yml")
    services = compose["services"]
    replicas = {n: svc for n, svc in services.items() if n.startswith("cugar-metrics")}
    assert sorted(replicas) == ["cugar-metrics", "cugar-metrics-2"]
    # The name both replicas answer to on the compose network: the first one's service
    # name, the second one's alias. Peers and Prometheus (dns_sd) both look it up.
    for name, svc in replicas.items():
        names = {name, *svc.get("networks", {}).get("default", {}).get("aliases", [])}
        assert "cugar-metrics" in names, name
        assert "deploy" not in svc and "scale" not in svc, name
    env = {n: svc["environment"] for n, svc in replicas.items()}
    assert {e["CUGAR_METRICS_PEERS"] for e in env.values()} == {"dns:///cugar-metrics:50051"}
    assert {n: e["CUGAR_METRICS_REPLICA"] for n, e in env.items()} == {
        "cugar-metrics": "cugar-metrics-1",
        "cugar-metrics-2": "cugar-metrics-2",
    }
    # The same image, health check and settings, apart from the name, state and ports.
    a, b = replicas["cugar-metrics"], replicas["cugar-metrics-2"]
    for key in ("image", "build", "healthcheck", "read_only", "cap_drop", "stop_grace_period"):
        assert a[key] == b[key], key
    assert {k: v for k, v in env["cugar-metrics"].items() if k != "CUGAR_METRICS_REPLICA"} == {
        k: v for k, v in env["cugar-metrics-2"].items() if k != "CUGAR_METRICS_REPLICA"
    }
    # One published gRPC address; the metrics port stays on the compose network.
    assert [p for svc in replicas.values() for p in svc.get("ports", [])] == [
        "127.0.0.1:50051:50051"
    ]
    assert a["expose"] == b["expose"] == ["9464"]
    # A state volume each (the image's CUGAR_METRICS_STATE_FILE lives in /var/lib/cugar-metrics).
    assert a["volumes"] == ["cugar-metrics-1-state:/var/lib/cugar-metrics"]
    assert b["volumes"] == ["cugar-metrics-2-state:/var/lib/cugar-metrics"]
    assert {"cugar-metrics-1-state", "cugar-metrics-2-state"} <= set(compose["volumes"])
    assert services["prometheus"]["depends_on"]["cugar-metrics"] == {"condition": "service_healthy"}
    assert services["prometheus"]["depends_on"]["cugar-metrics-2"] == {
        "condition": "service_healthy"
    }


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


def kubectl_kustomize(directory: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """`kubectl kustomize DIRECTORY` (no cluster needed): the text and its documents."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    return out, {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(out)}


def expand(value: str, defined: dict[str, str]) -> str:
    """Kubernetes' expansion of an env value: `$(NAME)` becomes the value of a variable
    defined earlier in the list and stays as written otherwise; `$$` is a literal `$`."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        end = value.find(")", i + 2)
        if value.startswith("$(", i) and end != -1:
            name = value[i + 2 : end]
            out.append(defined.get(name, value[i : end + 1]))
            i = end + 1
            continue
        out.append(value[i])
        i += 1
    return "".join(out)


def pod_env(container: dict[str, Any], pod: dict[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet builds it, in order, with the downward
    API fields of `pod` (metadata.name, metadata.namespace)."""
    defined: dict[str, str] = {}
    for e in container["env"]:
        if "valueFrom" in e:
            defined[e["name"]] = pod[e["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            defined[e["name"]] = expand(e["value"], defined)
    return defined


def test_deployment_finds_its_peers_through_the_headless_service_of_its_namespace(
    tmp_path: Path,
) -> None:
    text, docs = kubectl_kustomize(ROOT / "deploy/kubernetes/overlays/example")
    dep = docs["Deployment/cugar-metrics"]
    assert dep["metadata"]["namespace"] == "cugar-metrics"
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["fieldRef"] for e in c["env"] if "valueFrom" in e}
    assert refs == {
        "CUGAR_METRICS_REPLICA": {"fieldPath": "metadata.name"},
        "POD_NAMESPACE": {"fieldPath": "metadata.namespace"},
    }
    names = [e["name"] for e in c["env"]]
    # Expansion sees only the variables defined before: POD_NAMESPACE comes first.
    assert names.index("POD_NAMESPACE") < names.index("CUGAR_METRICS_PEERS")
    raw = next(e["value"] for e in c["env"] if e["name"] == "CUGAR_METRICS_PEERS")
    assert raw == "dns:///cugar-metrics-headless.$(POD_NAMESPACE).svc:50051"
    assert "cugar-metrics-headless.cugar-metrics" not in text  # never hard-coded
    assert "CUGAR_METRICS_PEER_KEY_FILE" not in {e["name"] for e in c["env"]}  # optional
    pod = {"metadata.name": "cugar-metrics-6d8f9c7b5d-x2k4q", "metadata.namespace": "cugar-metrics"}
    env = pod_env(c, pod)
    assert env["CUGAR_METRICS_PEERS"] == "dns:///cugar-metrics-headless.cugar-metrics.svc:50051"
    assert env["CUGAR_METRICS_REPLICA"] == "cugar-metrics-6d8f9c7b5d-x2k4q"
    assert "--peers" not in c["args"] and "--replica" not in c["args"]

    # The name resolves to the pods: the headless Service, in the same namespace, selecting
    # them, with the gRPC port the peers dial, listing ready pods only.
    headless = docs["Service/cugar-metrics-headless"]
    assert headless["metadata"]["namespace"] == "cugar-metrics"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in headless["spec"]["selector"].items())
    (port,) = headless["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("grpc", 50051, "grpc")
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["grpc"] == 50051

    # Another namespace: the same base, the peers follow it.
    overlay = tmp_path / "other"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "namespace: agents-prod\n"
        # kustomize takes a base by a relative path only.
        f"resources:\n  - {os.path.relpath(ROOT / 'deploy/kubernetes/base', overlay)}\n"
    )
    _, other = kubectl_kustomize(overlay)
    (c,) = other["Deployment/cugar-metrics"]["spec"]["template"]["spec"]["containers"]
    namespace = other["Deployment/cugar-metrics"]["metadata"]["namespace"]
    assert namespace == other["Service/cugar-metrics-headless"]["metadata"]["namespace"]
    env = pod_env(c, {"metadata.name": "p", "metadata.namespace": namespace})
    assert env["CUGAR_METRICS_PEERS"] == "dns:///cugar-metrics-headless.agents-prod.svc:50051"


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
