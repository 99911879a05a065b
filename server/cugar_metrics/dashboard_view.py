"""Show the golden signals of a running server in the terminal.

Calls GetDashboard and renders the golden signals, the executions, the per-profile,
per-domain and per-tool tables, failures by error type and approvals by decision. A value
with no data is shown as "—", never as 0. The numbers are those of the whole cluster when the
server has peers (or with --scope cluster), else those of the replica that answered; a
cluster answer that lacks a replica says so.

--json prints the response as JSON (protobuf field names; absent values are left out) for
scripts; --watch follows the WatchDashboard stream, which the server pushes every few
seconds, until Ctrl-C, and says on stderr when it reconnects. Against a server with
authentication, give a reader (or admin) key with --api-key or CUGAR_METRICS_API_KEY; against
TLS, --tls-ca (and --tls-cert/--tls-key for mutual TLS).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics import client_options
from cugar_metrics.config import ConfigError, parse_duration
from cugar_metrics_client import (
    Client,
    CugarMetricsError,
    InvalidRequestError,
    UnauthenticatedError,
)

DEFAULT_TARGET = "127.0.0.1:50051"
ABSENT = "—"
_DECISIONS = {
    pb.APPROVAL_DECISION_APPROVED: "approved",
    pb.APPROVAL_DECISION_DENIED: "denied",
    pb.APPROVAL_DECISION_TIMEOUT: "timeout",
    pb.APPROVAL_DECISION_CANCELLED: "cancelled",
}


def _window_arg(text: str) -> float:
    try:
        return parse_duration(text, "--window")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _watch_arg(text: str) -> float:
    try:
        seconds = parse_duration(text, "--watch")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if not 1.0 <= seconds <= 3600.0:
        raise argparse.ArgumentTypeError("--watch: an interval from 1s to 1h")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cugar-metrics dashboard`."""
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"HOST:PORT of the server (default: {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--window",
        type=_window_arg,
        default=None,
        help="only the most recent window, 1m to 1h, e.g. 5m or 1h "
        "(default: everything since the replica started)",
    )
    parser.add_argument(
        "--scope",
        choices=("replica", "cluster"),
        default=None,
        help="this replica only, or every replica (default: cluster when the server has peers)",
    )
    parser.add_argument("--profile", default=None, help="only this profile's executions")
    parser.add_argument("--domain", default=None, help="only this domain's tool calls")
    parser.add_argument("--model", default=None, help="only this model's calls (Models table)")
    parser.add_argument(
        "--watch",
        type=_watch_arg,
        nargs="?",
        const=5.0,
        default=None,
        metavar="SECONDS",
        help="refresh every SECONDS (default 5) until Ctrl-C",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the GetDashboard response as JSON (one line per refresh with --watch)",
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="deadline of each call in seconds (default: 5)"
    )
    client_options.add_arguments(parser, "reader")


# Formatting. Every formatter returns ABSENT for a value the server left unset.


def fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else f"{seconds * 1e6:.0f} µs"
    if seconds < 59.95:
        return f"{seconds:.2f} s" if seconds < 9.995 else f"{seconds:.1f} s"
    if seconds < 3570:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes}m{rest:02d}s"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours}h{rest:02d}m"


def fmt_duration(message: Message, field: str) -> str:
    if not message.HasField(field):
        return ABSENT
    value: duration_pb2.Duration = getattr(message, field)
    return fmt_seconds(value.seconds + value.nanos / 1e9)


def fmt_percent(message: Message, field: str) -> str:
    if not message.HasField(field):
        return ABSENT
    return f"{getattr(message, field) * 100:.1f} %"


def fmt_number(message: Message, field: str, digits: int = 2) -> str:
    if not message.HasField(field):
        return ABSENT
    return f"{getattr(message, field):.{digits}f}"


def fmt_time(message: Message, field: str) -> str:
    if not message.HasField(field):
        return ABSENT
    value: timestamp_pb2.Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Left-aligned first column, right-aligned numbers; an empty table says so."""
    if not rows:
        return [f"{indent}(none in this window)"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return indent + "  ".join(out).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def render(
    d: pb.GetDashboardResponse,
    *,
    profile: str | None,
    domain: str | None,
    model: str | None = None,
) -> str:
    """The terminal view of one dashboard."""
    g = d.golden_signals
    window = (
        f"last {fmt_seconds(d.window.seconds + d.window.nanos / 1e9)}"
        if d.HasField("window")
        else ABSENT
    )
    filters = f"profile={profile or 'all'} domain={domain or 'all'}"
    if model:
        filters += f" model={model}"
    if d.scope == pb.DASHBOARD_SCOPE_CLUSTER:
        scope = [
            f"cugar-metrics dashboard — cluster of {len(d.replicas)} replicas "
            f"({', '.join(d.replicas)}), answered by {d.replica or ABSENT}",
        ]
        if d.partial:
            scope.append("  PARTIAL: no answer in time from " + ", ".join(d.missing_replicas))
    else:
        scope = [
            f"cugar-metrics dashboard — replica {d.replica or ABSENT}",
            "  these numbers are this replica's only (--scope cluster, with --peers on the "
            "server, covers every replica)",
        ]
    lines = [
        *scope,
        f"  window: {window} ({fmt_time(d, 'window_start_time')} → "
        f"{fmt_time(d, 'window_end_time')})   {filters}",
        "",
        "Golden signals",
        *table(
            ["signal", "value", "signal", "value"],
            [
                [
                    "success rate",
                    fmt_percent(g, "success_rate"),
                    "throughput",
                    (
                        f"{g.throughput_per_second:.2f}/s"
                        if g.HasField("throughput_per_second")
                        else ABSENT
                    ),
                ],
                [
                    "error rate",
                    fmt_percent(g, "error_rate"),
                    "tool error rate",
                    fmt_percent(g, "tool_error_rate"),
                ],
                [
                    "latency p50",
                    fmt_duration(g, "latency_p50"),
                    "mean steps",
                    fmt_number(g, "mean_steps"),
                ],
                [
                    "latency p95",
                    fmt_duration(g, "latency_p95"),
                    "budget utilisation",
                    fmt_percent(g, "budget_utilization"),
                ],
                [
                    "latency p99",
                    fmt_duration(g, "latency_p99"),
                    "approval wait p50",
                    fmt_duration(g, "approval_wait_p50"),
                ],
                [
                    "latency mean",
                    fmt_duration(g, "latency_mean"),
                    "approval wait p95",
                    fmt_duration(g, "approval_wait_p95"),
                ],
            ],
        ),
        "",
        f"Executions: total {d.executions.total}, succeeded {d.executions.succeeded}, "
        f"failed {d.executions.failed}, steps {d.executions.total_steps}   "
        f"(first {fmt_time(d, 'first_execution_time')}, last "
        f"{fmt_time(d, 'last_execution_time')})",
        f"Ingest (all profiles): accepted {d.ingest.accepted}, duplicate {d.ingest.duplicate}, "
        f"rejected {d.ingest.rejected}",
        "",
        "Profiles",
        *table(
            [
                "profile",
                "total",
                "succeeded",
                "failed",
                "success",
                "p95",
                "budget spent",
                "exceeded",
            ],
            [
                [
                    p.profile,
                    str(p.total),
                    str(p.succeeded),
                    str(p.failed),
                    fmt_percent(p, "success_rate"),
                    fmt_duration(p, "latency_p95"),
                    f"{p.budget_spent:.2f}",
                    str(p.budget_exceeded_count),
                ]
                for p in d.profiles
            ],
        ),
        "",
        "Domains",
        *table(
            ["domain", "calls", "errors", "skipped", "error rate", "p95"],
            [
                [
                    x.domain,
                    str(x.calls),
                    str(x.errors),
                    str(x.skipped),
                    fmt_percent(x, "error_rate"),
                    fmt_duration(x, "latency_p95"),
                ]
                for x in d.domains
            ],
        ),
        "",
        "Tools",
        *table(
            ["domain / tool", "calls", "errors", "skipped", "error rate", "p95"],
            [
                [
                    f"{t.domain} / {t.tool}",
                    str(t.calls),
                    str(t.errors),
                    str(t.skipped),
                    fmt_percent(t, "error_rate"),
                    fmt_duration(t, "latency_p95"),
                ]
                for t in d.tools
            ],
        ),
        "",
        "Failures by error type",
        *table(["error type", "executions"], [[e.error_type, str(e.count)] for e in d.error_types]),
        "",
        f"Approvals: {d.approvals.total}",
        *table(
            ["decision", "count", "wait p95"],
            [
                [
                    _DECISIONS.get(a.decision, str(a.decision)),
                    str(a.count),
                    fmt_duration(a, "wait_p95"),
                ]
                for a in d.approvals.by_decision
            ],
        ),
        "",
        f"Budget: spent {d.budget.spent:.2f}, mean per execution "
        f"{fmt_number(d.budget, 'mean_spent_per_execution')}, exceeded "
        f"{d.budget.exceeded_count} of {d.budget.executions_with_budget} with a budget",
        "",
        f"Models (all profiles): tokens per execution {fmt_number(g, 'tokens_per_execution', 0)}, "
        f"tokens/s {fmt_number(g, 'tokens_per_second', 1)}, cost per execution "
        f"{fmt_number(g, 'cost_per_execution', 4)}, model error rate "
        f"{fmt_percent(g, 'model_error_rate')}",
        *table(
            [
                "provider / model",
                "calls",
                "errors",
                "rate-limited",
                "tokens in",
                "tokens out",
                "cost",
                "p50",
                "p95",
                "TTFT p95",
            ],
            [
                [
                    f"{m.provider} / {m.model}",
                    str(m.calls),
                    str(m.errors),
                    str(m.rate_limited),
                    str(m.input_tokens),
                    str(m.output_tokens),
                    f"{m.cost:.4f}",
                    fmt_duration(m, "latency_p50"),
                    fmt_duration(m, "latency_p95"),
                    fmt_duration(m, "time_to_first_token_p95"),
                ]
                for m in d.models
            ],
        ),
    ]
    return "\n".join(lines)


def as_json(d: pb.GetDashboardResponse, *, indent: int | None) -> str:
    """The response as JSON: field names as in the .proto, absent optional values left out."""
    data = json_format.MessageToDict(
        d,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )
    return json.dumps(data, indent=indent, ensure_ascii=False)


def run(args: argparse.Namespace) -> int:
    """Fetch and print the dashboard (repeatedly with --watch); the exit code."""
    tty = sys.stdout.isatty()
    try:
        connection = client_options.client_kwargs(args)
    except (ValueError, OSError) as error:
        print(f"cugar-metrics dashboard: error: {error}", file=sys.stderr)
        return 2
    try:
        with Client(args.target, timeout=args.timeout, **connection) as client:
            if args.watch:
                dashboards: Iterator[pb.GetDashboardResponse] = client.watch_dashboard(
                    args.window,
                    args.profile,
                    args.domain,
                    scope=args.scope,
                    model=args.model,
                    interval=args.watch,
                    on_reconnect=lambda error: print(
                        f"cugar-metrics dashboard: stream ended ({error}); reconnecting to "
                        f"{args.target}",
                        file=sys.stderr,
                        flush=True,
                    ),
                )
            else:
                dashboards = iter(
                    [
                        client.get_dashboard(
                            args.window,
                            args.profile,
                            args.domain,
                            scope=args.scope,
                            model=args.model,
                        )
                    ]
                )
            for dashboard in dashboards:
                if args.json:
                    print(as_json(dashboard, indent=None if args.watch else 2), flush=True)
                else:
                    if args.watch and tty:
                        print("\x1b[H\x1b[2J", end="")
                    print(
                        render(
                            dashboard, profile=args.profile, domain=args.domain, model=args.model
                        )
                    )
                    if args.watch:
                        print(
                            f"\nrefreshed {datetime.now(UTC):%H:%M:%S} UTC, every "
                            f"{args.watch:g} s; Ctrl-C to stop",
                            flush=True,
                        )
            return 0
    except InvalidRequestError as error:
        details = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
        print(f"cugar-metrics dashboard: error: {details or error.message}", file=sys.stderr)
        return 2
    except UnauthenticatedError as error:
        print(
            f"cugar-metrics dashboard: error: {args.target}: {error} "
            f"({client_options.API_KEY_HINT} with a reader key)",
            file=sys.stderr,
        )
        return 1
    except CugarMetricsError as error:
        print(f"cugar-metrics dashboard: error: {args.target}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
