"""OTLP ingest: spans per second through TraceService/Export beside a do-nothing receiver in the
same run, and the assembly buffer's memory at its bound.

  throughput  Export calls of 300 spans (100 agent runs of an invoke_agent, a chat and an
              execute_tool span, the children exported in the call before their agent's),
              4 in flight, alternating a do-nothing TraceService (bench/server/variants.py)
              and `cugar-metrics serve`; the median of the per-round ratios
  memory      a server with --otlp-max-pending-spans 20000 receives 200,000 child spans whose
              agent never comes: RSS before, and with the buffer full (its bound holds: the
              oldest traces are let go, counted as evicted)

    .venv/bin/python bench/otlp_speed.py [--rounds 3] [--quick]

Writes bench/results/otlp.md and .json (with --quick: a temporary directory).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import run_server_bench as rsb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from server import procinfo

BENCH = Path(__file__).resolve().parent
METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RUNS_PER_CALL = 100
T0 = 1_800_000_000_000_000_000


def _span(trace: bytes, span: bytes, parent: bytes, name: str, **attrs: Any) -> trace_pb2.Span:
    s = trace_pb2.Span(
        trace_id=trace,
        span_id=span,
        parent_span_id=parent,
        name=name,
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 1_500_000_000,
    )
    for key, value in attrs.items():
        v = s.attributes.add(key=key.replace("__", ".")).value
        if isinstance(value, int):
            v.int_value = value
        else:
            v.string_value = value
    return s


def requests(first_run: int, calls: int, *, agents: bool = True) -> list[bytes]:
    """Serialized Export requests: each carries the children of RUNS_PER_CALL runs and the
    agent spans of the runs of the call before (so children always wait for their agent)."""
    out = []
    previous: list[trace_pb2.Span] = []
    for c in range(calls + 1):
        spans: list[trace_pb2.Span] = list(previous) if agents else []
        previous = []
        if c < calls:
            for r in range(RUNS_PER_CALL):
                n = first_run + c * RUNS_PER_CALL + r
                trace = n.to_bytes(16, "big")
                agent = (1).to_bytes(8, "big")
                spans.append(
                    _span(
                        trace,
                        (2).to_bytes(8, "big"),
                        agent,
                        "chat gpt-4o",
                        gen_ai__operation__name="chat",
                        gen_ai__provider__name="openai",
                        gen_ai__request__model="gpt-4o",
                        gen_ai__usage__input_tokens=500,
                        gen_ai__usage__output_tokens=80,
                    )
                )
                spans.append(
                    _span(
                        trace,
                        (3).to_bytes(8, "big"),
                        agent,
                        "execute_tool search",
                        gen_ai__operation__name="execute_tool",
                        gen_ai__tool__name="search",
                        cugar__domain="territory",
                    )
                )
                previous.append(
                    _span(
                        trace,
                        agent,
                        b"",
                        "invoke_agent sales_rep",
                        gen_ai__operation__name="invoke_agent",
                        gen_ai__agent__name="sales_rep",
                    )
                )
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.resource_spans.add().scope_spans.add().spans.extend(spans)
        out.append(request.SerializeToString())
    return out


def send(target: str, bodies: list[bytes], inflight: int = 4) -> tuple[float, float, int]:
    """Sends every body; (wall seconds, this process's CPU seconds, spans sent)."""
    with grpc.insecure_channel(
        target, options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
    ) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        t0, c0 = time.perf_counter(), time.process_time()
        pending: collections.deque[Any] = collections.deque()
        for body in bodies:
            if len(pending) >= inflight:
                pending.popleft().result()
            pending.append(call.future(body, timeout=60))
        while pending:
            pending.popleft().result()
        spans = sum(
            len(
                trace_service_pb2.ExportTraceServiceRequest.FromString(b)
                .resource_spans[0]
                .scope_spans[0]
                .spans
            )
            for b in bodies
        )
        return time.perf_counter() - t0, time.process_time() - c0, spans


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    calls = 30 if args.quick else 200
    out_dir = Path(tempfile.mkdtemp(prefix="otlp-")) if args.quick else BENCH / "results"
    work = Path(tempfile.mkdtemp(prefix="otlp-work-"))
    res: dict[str, Any] = {
        "machine": procinfo.machine(str(BENCH.parent / ".tools" / "bin" / "ghz")),
        "load_before": procinfo.loadavg(),
        "runs": {"noop": [], "real": []},
    }
    for r in range(rounds):
        for kind in ("noop", "real"):
            argv = rsb.real_server_argv() if kind == "real" else rsb.variant_argv("noop-aio", 1)
            server = rsb.start(f"otlp-{kind}-{r}", argv, work, work)
            try:
                bodies = requests(r * 10_000_000 + 1, calls)
                meter = rsb.CpuMeter(server.pid)
                wall, client_cpu, spans = send(server.target, bodies)
                cpu = meter.stop(client_cpu)
            finally:
                server.stop()
            row = {
                "spans": spans,
                "spans_per_s": round(spans / wall),
                "server_cpu_us_per_span": round(cpu.server / spans * 1e6, 2),
                **cpu.as_dict(),
            }
            res["runs"][kind].append(row)
            rsb.log(
                f"otlp round {r + 1} {kind:4s}: {row['spans_per_s']:>9,}/s  server "
                f"{row['server_cpu_us_per_span']} us/span  others {row['other_cores']} cores"
            )
    pairs = list(zip(res["runs"]["noop"], res["runs"]["real"], strict=True))
    res["ratio"] = round(
        statistics.median(b["spans_per_s"] / a["spans_per_s"] for a, b in pairs), 3
    )
    res["cpu_ratio"] = round(
        statistics.median(
            a["server_cpu_us_per_span"] / b["server_cpu_us_per_span"] for a, b in pairs
        ),
        3,
    )

    rsb.log("otlp memory: children whose agent never comes, past the buffer's bound")
    server = rsb.start(
        "otlp-memory", [*rsb.real_server_argv(), "--otlp-max-pending-spans", "20000"], work, work
    )
    try:
        before = procinfo.rss_bytes(server.pid)
        orphans = requests(50_000_000, 1000 if not args.quick else 200, agents=False)
        send(server.target, orphans)
        after = procinfo.rss_bytes(server.pid)
        _, text = rsb.scrape(server.info["metrics_port"])
        res["memory"] = {
            "rss_before_mib": round(before / 2**20, 1),
            "rss_full_mib": round(after / 2**20, 1),
            "pending_spans": rsb.metric_value(text, "cugar_otlp_pending_spans"),
            "evicted": rsb.metric_value(text, "cugar_otlp_spans_total", 'result="evicted"'),
        }
    finally:
        server.stop()
    res["load_after"] = procinfo.loadavg()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "otlp.json").write_text(json.dumps(res, indent=1) + "\n")
    m, mem = res["machine"], res["memory"]
    noop = statistics.median(x["spans_per_s"] for x in res["runs"]["noop"])
    real = statistics.median(x["spans_per_s"] for x in res["runs"]["real"])
    noop_cpu = statistics.median(x["server_cpu_us_per_span"] for x in res["runs"]["noop"])
    real_cpu = statistics.median(x["server_cpu_us_per_span"] for x in res["runs"]["real"])
    (out_dir / "otlp.md").write_text(
        "\n".join(
            [
                "# OTLP ingest beside a do-nothing receiver",
                "",
                f"{m['cpu_model']} ({m['nproc']} cores), Python {m['python']}, grpcio "
                f"{m['grpcio']}; load average {res['load_before'][0]:.2f} before, "
                f"{res['load_after'][0]:.2f} after. Export calls of 300 spans (100 agent runs: "
                "invoke_agent, chat, execute_tool; children one call before their agent), 4 "
                "in flight from one Python process on the same machine.",
                "",
                "| | do-nothing receiver | `cugar-metrics serve` | ratio |",
                "|---|---:|---:|---:|",
                f"| spans/s (median of {rounds}) | {noop:,.0f} | {real:,.0f} | "
                f"{res['ratio']:.2f} |",
                f"| server CPU per span | {noop_cpu} µs | {real_cpu} µs | {res['cpu_ratio']:.2f} |",
                "",
                f"Assembly buffer at its bound (`--otlp-max-pending-spans 20000`, "
                f"{mem['pending_spans'] + mem['evicted']:,.0f} child spans whose agent never "
                "comes): "
                f"RSS {mem['rss_before_mib']} MiB before, {mem['rss_full_mib']} MiB with the "
                f"buffer full; {mem['pending_spans']:,.0f} spans held, "
                f"{mem['evicted']:,.0f} evicted.",
                "",
            ]
        )
    )
    rsb.log(f"wrote {out_dir / 'otlp.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
