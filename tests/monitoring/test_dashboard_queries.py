"""Every query of the golden-signals dashboard runs against a real Prometheus fed by real
replicas and traffic, and returns data. A query that errors or returns nothing fails.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.monitoring.promstack import ROOT, Stack
from tests.monitoring.traffic import Driver

pytestmark = pytest.mark.e2e

DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "cugar-metrics-golden-signals.json"
# What Grafana substitutes: every variable at "All" (its allValue), the intervals at values
# that suit the test Prometheus' 1-second scrape.
SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$__interval": "15s",
    "$instance": ".*",
    "$profile": ".*",
    "$domain": ".*",
}


def dashboard() -> dict[str, Any]:
    return json.loads(Path(DASHBOARD).read_text())  # type: ignore[no-any-return]


def panel_queries() -> list[tuple[str, str]]:
    out = []
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            out.append((f"{panel['title']} [{target['refId']}]", target["expr"]))
    return out


def variable_queries() -> list[tuple[str, str]]:
    out = []
    for var in dashboard()["templating"]["list"]:
        if var["type"] == "query":
            # label_values(selector, label) lists the label's values among the series.
            m = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"])
            assert m, var["query"]
            out.append((f"${var['name']}", f"group by ({m[2]}) ({m[1]})"))
    return out


def substitute(expr: str) -> str:
    for name, value in sorted(SUBSTITUTIONS.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def test_dashboard_has_the_expected_panels() -> None:
    """The predecessor's ten panels, plus the new ones, each with at least one query."""
    titles = [p["title"] for p in dashboard()["panels"] if p["type"] != "row"]
    assert titles == [
        "Success rate",
        "Error rate",
        "Latency p95",
        "Executions",
        "Throughput",
        "Mean steps",
        "Success and error rate",
        "Latency percentiles",
        "Throughput by outcome",
        "Latency heatmap",
        "Budget utilisation",
        "Budget utilisation and exceeded",
        "Approval wait",
        "Approvals by decision",
        "Tool call success rate",
        "Tool error rate by domain",
        "Usage per domain",
        "Tokens per second by model",
        "Model cost per hour",
        "Model latency p95",
        "Time to first token p95",
        "Model error and rate-limit ratio",
        "Ingest results",
        "Rejections by reason",
        "Label overflow",
        "RPC rate",
        "RPC error ratio",
        "RPC duration p95",
    ]
    assert len(panel_queries()) == 35


@pytest.mark.parametrize(
    ("name", "expr"),
    panel_queries() + variable_queries(),
    ids=[n for n, _ in panel_queries() + variable_queries()],
)
def test_query_returns_data(stack: Stack, traffic: Driver, name: str, expr: str) -> None:
    """The query parses, runs, and returns at least one sample."""
    result = stack.prom.query(substitute(expr))
    assert result, f"{name}: no data for {substitute(expr)}"


def test_variables_list_the_replicas_profiles_and_domains(stack: Stack, traffic: Driver) -> None:
    """The instance, profile and domain variables offer exactly what the traffic produced."""
    values = {}
    for name, expr in variable_queries():
        label = re.search(r"group by \((\w+)\)", expr)[1]  # type: ignore[index]
        values[name] = sorted(r["metric"][label] for r in stack.prom.query(substitute(expr)))
    assert values == {
        "$instance": sorted(r.metrics_target for r in stack.replicas),
        "$profile": ["demo", "sales_rep"],
        "$domain": ["engagement", "knowledge", "qualification", "territory"],
    }
