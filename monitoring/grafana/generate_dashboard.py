"""Generate the cugar-metrics "golden signals" Grafana dashboard.

The dashboard is code: this file builds it with the Grafana Foundation SDK and writes the
bare dashboard model (what file provisioning loads, not the HTTP-import envelope) to
monitoring/grafana/dashboards/cugar-metrics-golden-signals.json. Edit this file, never
the JSON, then run:

    .venv/bin/python monitoring/grafana/generate_dashboard.py          # write the JSON
    .venv/bin/python monitoring/grafana/generate_dashboard.py --check  # fail on drift

Every query reads the service's counters and histogram buckets and derives ratios and
quantiles in PromQL, summed across replicas; `$instance`, `$profile` and `$domain` narrow
them. tests/monitoring/test_dashboard_queries.py runs every query against a real
Prometheus scraping real replicas.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import (
    barchart,
    common,
    gauge,
    heatmap,
    stat,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

UID = "cugar-metrics-golden-signals"
OUTPUT = Path(__file__).parent / "dashboards" / "cugar-metrics-golden-signals.json"

DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job="cugar-metrics"'
INST = f'{JOB}, instance=~"$instance"'
EXEC = f'{INST}, profile=~"$profile"'
TOOL = f'{INST}, domain=~"$domain"'


def q(expr: str, legend: str = "__auto", ref: str = "A") -> prom.Dataquery:
    return prom.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)


def instant(expr: str, legend: str = "__auto", ref: str = "A") -> prom.Dataquery:
    return q(expr, legend, ref).instant().format(PromQueryFormat.TABLE)


def ratio(metric: str, num_sel: str, den_sel: str, window: str, by: str = "") -> str:
    """num/den of two rates; a missing numerator (no failure yet) counts as 0, not absent."""
    group = f" by ({by})" if by else ""
    den = f"sum{group} (rate({metric}{{{den_sel}}}[{window}]))"
    num = f"sum{group} (rate({metric}{{{num_sel}}}[{window}]))"
    return f"({num} or 0 * {den}) / {den}"


def quantile(phi: float, metric: str, sel: str, window: str, by: str = "") -> str:
    keep = f"{by}, le" if by else "le"
    return f"histogram_quantile({phi}, sum by ({keep}) (rate({metric}_bucket{{{sel}}}[{window}])))"


def mean(metric: str, sel: str, window: str, by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return (
        f"sum{group} (rate({metric}_sum{{{sel}}}[{window}]))"
        f" / sum{group} (rate({metric}_count{{{sel}}}[{window}]))"
    )


def thresholds(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return (
        dash.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=v, color=c) for v, c in steps])
    )


def last_value() -> common.ReduceDataOptions:
    return common.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(
    title: str,
    description: str,
    unit: str,
    *targets: prom.Dataquery,
    steps: tuple[tuple[float | None, str], ...] = ((None, "blue"),),
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DS)
        .reduce_options(last_value())
        .thresholds(thresholds(*steps))
        .height(4)
        .span(4)
        .no_value("no data in range")
    )
    for t in targets:
        panel = panel.with_target(t.instant())
    return panel


def ts_panel(
    title: str, description: str, unit: str, *targets: prom.Dataquery, span: int = 12
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DS)
        .height(8)
        .span(span)
        .fill_opacity(10)
        .no_value("no data in range")
    )
    for t in targets:
        panel = panel.with_target(t)
    return panel


def variables() -> list[dash.QueryVariable | dash.DatasourceVariable]:
    def query_var(name: str, label: str, query: str) -> dash.QueryVariable:
        return (
            dash.QueryVariable(name)
            .label(label)
            .datasource(DS)
            .query(query)
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(model.VariableOption(selected=True, text="All", value="$__all"))
        )

    return [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        query_var("instance", "Replica", f"label_values(cugar_build_info{{{JOB}}}, instance)"),
        query_var(
            "profile",
            "Profile",
            f'label_values(cugar_executions_total{{{JOB}, instance=~"$instance"}}, profile)',
        ),
        query_var(
            "domain",
            "Domain",
            f'label_values(cugar_tool_calls_total{{{JOB}, instance=~"$instance"}}, domain)',
        ),
    ]


def build() -> dash.Dashboard:
    b = (
        dash.Dashboard("cugar-metrics / golden signals")
        .uid(UID)
        .description(
            "Agent executions recorded by every cugar-metrics replica: outcome, "
            "latency, steps, budget, approvals, tool calls, ingest and gRPC health."
        )
        .tags(["cugar-metrics", "golden-signals"])
        .editable()
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for v in variables():
        b = b.with_variable(v)

    pct = "percentunit"
    # -- Row 1: the predecessor's stats, over the selected range --------------------------
    b = b.with_row(dash.Row("Golden signals (selected range)"))
    b = b.with_panel(
        stat_panel(
            "Success rate",
            "Succeeded executions / all executions in the selected range.",
            pct,
            q(ratio("cugar_executions_total", f'{EXEC}, outcome="success"', EXEC, "$__range")),
            steps=((None, "red"), (0.8, "orange"), (0.9, "green")),
        )
    )
    b = b.with_panel(
        stat_panel(
            "Error rate",
            "Failed executions / all executions in the selected range.",
            pct,
            q(ratio("cugar_executions_total", f'{EXEC}, outcome="failure"', EXEC, "$__range")),
            steps=((None, "green"), (0.1, "orange"), (0.2, "red")),
        )
    )
    b = b.with_panel(
        stat_panel(
            "Latency p95",
            "95th percentile of execution duration, from the histogram buckets of every replica.",
            "s",
            q(quantile(0.95, "cugar_execution_duration_seconds", EXEC, "$__range")),
            steps=((None, "green"), (5, "orange"), (10, "red")),
        )
    )
    b = b.with_panel(
        stat_panel(
            "Executions",
            "Executions recorded in the selected range (accepted, duplicates excluded).",
            "short",
            q(f"sum(increase(cugar_executions_total{{{EXEC}}}[$__range]))"),
        )
    )
    b = b.with_panel(
        stat_panel(
            "Throughput",
            "Executions per second over the selected range.",
            "ops",
            q(f"sum(rate(cugar_executions_total{{{EXEC}}}[$__range]))"),
        )
    )
    b = b.with_panel(
        stat_panel(
            "Mean steps",
            "Mean number of steps per execution.",
            "short",
            q(mean("cugar_execution_steps", EXEC, "$__range")),
        )
    )

    # -- Row 2: over time ------------------------------------------------------------------
    b = b.with_row(dash.Row("Outcome and latency over time"))
    b = b.with_panel(
        ts_panel(
            "Success and error rate",
            "Share of executions that succeeded and that failed.",
            pct,
            q(
                ratio(
                    "cugar_executions_total", f'{EXEC}, outcome="success"', EXEC, "$__rate_interval"
                ),
                "success",
                "A",
            ),
            q(
                ratio(
                    "cugar_executions_total", f'{EXEC}, outcome="failure"', EXEC, "$__rate_interval"
                ),
                "error",
                "B",
            ),
        )
        .min(0)
        .max(1)
    )
    b = b.with_panel(
        ts_panel(
            "Latency percentiles",
            "p50, p95 and p99 of execution duration.",
            "s",
            q(
                quantile(0.5, "cugar_execution_duration_seconds", EXEC, "$__rate_interval"),
                "p50",
                "A",
            ),
            q(
                quantile(0.95, "cugar_execution_duration_seconds", EXEC, "$__rate_interval"),
                "p95",
                "B",
            ),
            q(
                quantile(0.99, "cugar_execution_duration_seconds", EXEC, "$__rate_interval"),
                "p99",
                "C",
            ),
        )
    )
    b = b.with_panel(
        ts_panel(
            "Throughput by outcome",
            "Executions per second, by profile and outcome.",
            "ops",
            q(
                "sum by (profile, outcome) "
                f"(rate(cugar_executions_total{{{EXEC}}}[$__rate_interval]))",
                "{{profile}} {{outcome}}",
            ),
        )
    )
    b = b.with_panel(
        heatmap.Panel()
        .title("Latency heatmap")
        .description("Executions per duration bucket, summed across replicas.")
        .datasource(DS)
        .height(8)
        .span(12)
        .with_target(
            q(
                f"sum by (le) (increase(cugar_execution_duration_seconds_bucket{{{EXEC}}}"
                "[$__rate_interval]))",
                "{{le}}",
            ).format(PromQueryFormat.HEATMAP)
        )
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s"))
    )

    # -- Row 3: budget, approvals, steps ---------------------------------------------------
    b = b.with_row(dash.Row("Budget and approvals"))
    b = b.with_panel(
        gauge.Panel()
        .title("Budget utilisation")
        .description(
            "Mean of spent / limit over the executions that reported a budget, in "
            "the selected range (0 to 100 % of the limit)."
        )
        .datasource(DS)
        .unit(pct)
        .min(0)
        .max(1)
        .height(8)
        .span(6)
        .reduce_options(last_value())
        .thresholds(thresholds((None, "green"), (0.8, "orange"), (0.95, "red")))
        .with_target(q(mean("cugar_budget_utilization_ratio", EXEC, "$__range")))
    )
    b = b.with_panel(
        ts_panel(
            "Budget utilisation and exceeded",
            "Mean utilisation by profile, and executions that hit their limit per second.",
            pct,
            q(
                mean("cugar_budget_utilization_ratio", EXEC, "$__rate_interval", "profile"),
                "{{profile}} utilisation",
                "A",
            ),
            q(
                f"sum by (profile) (rate(cugar_budget_exceeded_total{{{EXEC}}}[$__rate_interval]))",
                "{{profile}} exceeded/s",
                "B",
            ),
            span=6,
        )
    )
    b = b.with_panel(
        stat_panel(
            "Approval wait",
            "Median and 95th percentile of the wait for a human decision.",
            "s",
            q(quantile(0.5, "cugar_approval_wait_seconds", INST, "$__range"), "p50", "A"),
            q(quantile(0.95, "cugar_approval_wait_seconds", INST, "$__range"), "p95", "B"),
        )
        .height(8)
        .span(4)
    )
    b = b.with_panel(
        ts_panel(
            "Approvals by decision",
            "Human approvals per second, by decision.",
            "ops",
            q(
                f"sum by (decision) (rate(cugar_approvals_total{{{INST}}}[$__rate_interval]))",
                "{{decision}}",
            ),
            span=8,
        )
    )

    # -- Row 4: tools ------------------------------------------------------------------------
    b = b.with_row(dash.Row("Tool calls"))
    b = b.with_panel(
        gauge.Panel()
        .title("Tool call success rate")
        .description(
            "Tool calls that succeeded / tool calls that ran (skipped calls did not "
            "run), in the selected range."
        )
        .datasource(DS)
        .unit(pct)
        .min(0)
        .max(1)
        .height(8)
        .span(6)
        .reduce_options(last_value())
        .thresholds(thresholds((None, "red"), (0.9, "orange"), (0.95, "green")))
        .with_target(
            q(
                ratio(
                    "cugar_tool_calls_total",
                    f'{TOOL}, status="success"',
                    f'{TOOL}, status=~"success|error"',
                    "$__range",
                )
            )
        )
    )
    b = b.with_panel(
        ts_panel(
            "Tool error rate by domain",
            "Failed / ran, per domain.",
            pct,
            q(
                ratio(
                    "cugar_tool_calls_total",
                    f'{TOOL}, status="error"',
                    f'{TOOL}, status=~"success|error"',
                    "$__rate_interval",
                    "domain",
                ),
                "{{domain}}",
            ),
            span=10,
        )
        .min(0)
        .max(1)
    )
    b = b.with_panel(
        barchart.Panel()
        .title("Usage per domain")
        .description("Tool calls in the selected range, per domain and status.")
        .datasource(DS)
        .height(8)
        .span(8)
        .x_field("domain")
        .stacking(common_model.StackingMode.NORMAL)
        .with_target(
            instant(
                f"sum by (domain, status) (increase(cugar_tool_calls_total{{{TOOL}}}[$__range]))"
            )
        )
        .with_transformation(
            model.DataTransformerConfig(
                id_val="groupingToMatrix",
                options={"columnField": "status", "rowField": "domain", "valueField": "Value"},
            )
        )
    )

    # -- Row 5: models -----------------------------------------------------------------------
    by_model = "provider, model"
    b = b.with_row(dash.Row("Models"))
    b = b.with_panel(
        ts_panel(
            "Tokens per second by model",
            "Model tokens per second, by provider, model and type (input, output, and the "
            "cached-input and reasoning parts of them).",
            "short",
            q(
                "sum by (provider, model, type) "
                f"(rate(cugar_model_tokens_total{{{INST}}}[$__rate_interval]))",
                "{{provider}}/{{model}} {{type}}",
            ),
            span=8,
        )
    )
    b = b.with_panel(
        ts_panel(
            "Model cost per hour",
            "What the model calls cost per hour at the current rate, in the deployment's "
            "currency, in total and by model. The hourly budget of the CostBurnRateHigh "
            "alert is in monitoring/prometheus/rules/cugar-metrics.cost-budget.yml.",
            "short",
            q(
                f"3600 * sum (rate(cugar_model_cost_total{{{INST}}}[$__rate_interval]))",
                "total",
            ),
            q(
                f"3600 * sum by ({by_model}) "
                f"(rate(cugar_model_cost_total{{{INST}}}[$__rate_interval]))",
                "{{provider}}/{{model}}",
                "B",
            ),
            span=8,
        )
    )
    b = b.with_panel(
        ts_panel(
            "Model latency p95",
            "95th percentile of the model call duration, by model.",
            "s",
            q(
                quantile(
                    0.95, "cugar_model_call_duration_seconds", INST, "$__rate_interval", by_model
                ),
                "{{provider}}/{{model}}",
            ),
            span=8,
        )
    )
    b = b.with_panel(
        ts_panel(
            "Time to first token p95",
            "95th percentile of the time to the first token of streamed answers, by model.",
            "s",
            q(
                quantile(
                    0.95,
                    "cugar_model_time_to_first_token_seconds",
                    INST,
                    "$__rate_interval",
                    by_model,
                ),
                "{{provider}}/{{model}}",
            ),
            span=8,
        )
    )
    b = b.with_panel(
        ts_panel(
            "Model error and rate-limit ratio",
            "Calls that failed / all calls, and calls refused for a rate or quota limit / "
            "all calls, by model.",
            pct,
            q(
                ratio(
                    "cugar_model_calls_total",
                    f'{INST}, status="error"',
                    INST,
                    "$__rate_interval",
                    by_model,
                ),
                "{{provider}}/{{model}} error",
            ),
            q(
                ratio(
                    "cugar_model_calls_total",
                    f'{INST}, status="rate_limited"',
                    INST,
                    "$__rate_interval",
                    by_model,
                ),
                "{{provider}}/{{model}} rate-limited",
                "B",
            ),
            span=16,
        )
        .min(0)
        .max(1)
    )

    # -- Row 6: ingest -----------------------------------------------------------------------
    b = b.with_row(dash.Row("Ingest"))
    b = b.with_panel(
        ts_panel(
            "Ingest results",
            "Executions received per second: accepted, duplicate (a retry "
            "acknowledged and not counted again) and rejected.",
            "ops",
            q(
                "sum by (result) "
                f"(rate(cugar_ingest_executions_total{{{INST}}}[$__rate_interval]))",
                "{{result}}",
            ),
            span=8,
        )
    )
    b = b.with_panel(
        ts_panel(
            "Rejections by reason",
            "Field violations per second, by reason.",
            "ops",
            q(
                "sum by (reason) "
                f"(rate(cugar_ingest_rejections_total{{{INST}}}[$__rate_interval]))",
                "{{reason}}",
            ),
            span=8,
        )
    )
    b = b.with_panel(
        ts_panel(
            "Label overflow",
            "Label values past the server's caps, folded into _overflow, per second.",
            "ops",
            q(
                f"sum by (label) (rate(cugar_label_overflow_total{{{INST}}}[$__rate_interval]))",
                "{{label}}",
            ),
            span=8,
        )
    )

    # -- Row 7: gRPC -------------------------------------------------------------------------
    rpc = f'{INST}, grpc_service="cugar.metrics.v1.MetricsService"'
    b = b.with_row(dash.Row("gRPC server"))
    b = b.with_panel(
        ts_panel(
            "RPC rate",
            "RPCs handled per second, by method and status code.",
            "reqps",
            q(
                f"sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{{{rpc}}}"
                "[$__rate_interval]))",
                "{{grpc_method}} {{grpc_code}}",
            ),
            span=8,
        )
    )
    b = b.with_panel(
        ts_panel(
            "RPC error ratio",
            "RPCs that did not end OK / all RPCs, by method. INVALID_ARGUMENT "
            "is the client's error; the others are the server's.",
            pct,
            q(
                ratio(
                    "grpc_server_handled_total",
                    f'{rpc}, grpc_code!="OK"',
                    rpc,
                    "$__rate_interval",
                    "grpc_method",
                ),
                "{{grpc_method}}",
            ),
            span=8,
        )
    )
    b = b.with_panel(
        ts_panel(
            "RPC duration p95",
            "95th percentile of the time to handle an RPC, by method.",
            "s",
            q(
                quantile(
                    0.95, "grpc_server_handling_seconds", rpc, "$__rate_interval", "grpc_method"
                ),
                "{{grpc_method}}",
            ),
            span=8,
        )
    )
    return b


def render() -> str:
    model_ = build().build()
    # Stable panel ids, in layout order (Grafana links and the panel editor use them).
    for number, panel in enumerate(model_.panels or [], start=1):
        panel.id_val = number
    return JSONEncoder(sort_keys=True, indent=2).encode(model_) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the committed JSON differs from a fresh generation",
    )
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(
                f"{OUTPUT} is stale: run {Path(__file__).name} and commit the result",
                file=sys.stderr,
            )
            return 1
        print(f"{OUTPUT.name} is up to date")
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
