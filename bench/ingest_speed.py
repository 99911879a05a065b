"""The ingest speed table: every figure beside a do-nothing servicer of the same proto, in one run.

`make bench-speed` runs it from the repository root and writes bench/results/speed.md and
bench/results/speed.json. Rows (each against real processes on 127.0.0.1; the load generator
runs on the same machine):

  batches-routine  RecordExecutions, batches of 500 executions with one tool call each, unique
                   ids, from client processes (bench/server/batch_client.py)
  batches-rich     the same with five tool calls and an approval per execution
  batches-models   the rich executions with three model calls each
  unary            RecordExecution with ghz
  dashboard        GetDashboard p99 (1 h window) at the full caps, with ghz
  metrics          GET /metrics p99 at the full caps
  recorder         the Python client's BatchRecorder, end to end from one process

Each throughput row alternates the do-nothing grpc.aio servicer (bench/server/variants.py,
`noop-aio`: it parses the request and answers without work) and `cugar-metrics serve`
`--rounds` times, and reports the median of the per-round ratios real / do-nothing, by
throughput and by server CPU per execution (the steadier figure on a shared machine).

    .venv/bin/python bench/ingest_speed.py                 full run (about 6 minutes)
    .venv/bin/python bench/ingest_speed.py --quick         smoke run, results in a temp dir
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import recorder_bench
import run_server_bench as rsb

from server import procinfo, workload

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

#: Issue targets: ratio to the do-nothing servicer, or an absolute figure.
TARGETS = {
    "batches-routine": 0.35,
    "batches-rich": 0.30,
    "batches-models": 0.30,  # no target of its own: the rich row's
    "unary": 0.85,
    "dashboard_p99_ms": 10.0,
    "metrics_p99_ms": 25.0,
    "recorder_eps": 50_000,
}
log = rsb.log


def batch_run(
    s: rsb.Settings, server: rsb.Proc, templates: str, batches: int, workdir: Path, tag: str
) -> dict[str, Any]:
    """`batches` batches of 500 unique executions from the benchmark's client processes."""
    clients = rsb.BatchClients(s, server.target, workdir, templates=templates, prefix=tag)
    try:
        clients.go(4)  # warm: connections, code paths, caches
        meter = rsb.CpuMeter(server.pid)
        results = clients.go(batches)
        cpu = meter.stop(sum(r["cpu_s"] for r in results))
    finally:
        clients.close()
    errors = [r["error"] for r in results if r["errors"]]
    if errors:
        raise RuntimeError(f"batch errors: {errors[:3]}")
    executions = sum(r["executions"] for r in results)
    accepted = sum(r["accepted"] for r in results)
    return {
        "executions": executions,
        "accepted": accepted,
        "eps": round(executions / cpu.wall),
        "server_cpu_us_per_execution": round(cpu.server / executions * 1e6, 3),
        **cpu.as_dict(),
    }


def alternate(
    name: str,
    rounds: int,
    workdir: Path,
    run: Callable[[rsb.Proc, str], dict[str, Any]],
    rate_key: str,
    cpu_key: str,
) -> dict[str, Any]:
    """`rounds` x (do-nothing, real), each on a fresh server process; per-round ratios."""
    runs: dict[str, list[dict[str, Any]]] = {"noop": [], "real": []}
    for r in range(rounds):
        for kind in ("noop", "real"):
            argv = rsb.real_server_argv() if kind == "real" else rsb.variant_argv("noop-aio", 1)
            server = rsb.start(f"{name}-{kind}-{r}", argv, workdir, workdir)
            try:
                result = run(server, f"{kind[0]}{r}")
            finally:
                server.stop()
            runs[kind].append(result)
            log(
                f"{name:16s} round {r + 1} {kind:4s}: {result[rate_key]:>10,.0f}/s  "
                f"server {result[cpu_key]:.2f} us each  others {result['other_cores']} cores"
            )
    ratios = [
        real[rate_key] / noop[rate_key]
        for noop, real in zip(runs["noop"], runs["real"], strict=True)
    ]
    cpu_ratios = [
        noop[cpu_key] / real[cpu_key] for noop, real in zip(runs["noop"], runs["real"], strict=True)
    ]
    return {
        "runs": runs,
        "ratios": [round(x, 3) for x in ratios],
        "cpu_ratios": [round(x, 3) for x in cpu_ratios],
        "ratio": round(statistics.median(ratios), 3),
        "cpu_ratio": round(statistics.median(cpu_ratios), 3),
        "noop_rate": round(statistics.median(x[rate_key] for x in runs["noop"])),
        "real_rate": round(statistics.median(x[rate_key] for x in runs["real"])),
        "noop_cpu_us": round(statistics.median(x[cpu_key] for x in runs["noop"]), 2),
        "real_cpu_us": round(statistics.median(x[cpu_key] for x in runs["real"]), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small run, results in a temp dir")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    args = parser.parse_args()
    quick = args.quick
    rounds = 1 if quick else args.rounds
    batches = 40 if quick else 400
    out_dir = Path(tempfile.mkdtemp(prefix="speed-")) if quick else args.out
    workdir = Path(tempfile.mkdtemp(prefix="speed-work-"))
    ghz_bin = str(ROOT / ".tools" / "bin" / "ghz")
    settings = rsb.Settings(
        quick=quick,
        out_dir=out_dir,
        ghz=ghz_bin,
        levels=[16],
        unary_seconds=3 if quick else 10,
        threads=8,
        clients=2,
        inflight=4,
        memory_target=0,
        memory_chunk=0,
        memory_budget=0,
        driver_total=0,
        dashboard_requests=100 if quick else 1000,
        metrics_requests=20 if quick else 200,
        history=0,
    )
    res: dict[str, Any] = {
        "machine": procinfo.machine(ghz_bin),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_before": procinfo.loadavg(),
        "targets": TARGETS,
    }
    for templates in ("routine", "rich", "models"):
        res[f"batches-{templates}"] = alternate(
            f"batches-{templates}",
            rounds,
            workdir,
            lambda server, tag, t=templates: batch_run(settings, server, t, batches, workdir, tag),
            "eps",
            "server_cpu_us_per_execution",
        )

    def unary(server: rsb.Proc, tag: str) -> dict[str, Any]:
        return rsb.ghz(
            settings,
            server.target,
            "RecordExecution",
            workload.unary_json(f"u{tag}-"),
            workdir,
            concurrency=16,
            seconds=settings.unary_seconds,
            server_pid=server.pid,
        )

    res["unary"] = alternate("unary", rounds, workdir, unary, "rps", "server_cpu_us_per_req")

    log("reads: a real server at the full caps")
    server = rsb.start("reads", rsb.real_server_argv(), workdir, workdir)
    try:
        rsb.record_caps(server.target, "caps-")
        res["reads"] = rsb.measure_dashboard(settings, server, workdir)
    finally:
        server.stop()

    log("recorder: the Python BatchRecorder from one process")
    popen, port = recorder_bench.start_server(workdir)
    try:
        executions = 20_000 if quick else 200_000
        t = recorder_bench.measure_throughput(f"127.0.0.1:{port}", executions, popen.pid)
        res["recorder"] = {
            "executions": t.executions,
            "accepted": t.accepted,
            "dropped": t.dropped,
            "eps": round(t.per_second),
            "client_cpu_us": round(t.client_cpu_us, 2),
            "server_cpu_us": round(t.server_cpu_us, 2),
        }
    finally:
        recorder_bench.stop_server(popen)
    log(f"recorder: {res['recorder']['eps']:,}/s")
    res["load_after"] = procinfo.loadavg()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "speed.json").write_text(json.dumps(res, indent=1) + "\n")
    (out_dir / "speed.md").write_text(markdown(res))
    log(f"wrote {out_dir / 'speed.md'}")
    return 0


def verdict(met: bool) -> str:
    return "met" if met else "missed"


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    t = res["targets"]
    reads = res["reads"]
    dash_p99 = reads["window_1h"]["p99_ms"]
    metrics_p99 = reads["metrics"]["p99_ms"]

    def row(name: str, what: str) -> str:
        r = res[name]
        met = verdict(r["ratio"] >= t[name])
        return (
            f"| {what} | {r['real_rate']:,} / {r['noop_rate']:,} per s | **{r['ratio']:.2f}** "
            f"({', '.join(f'{x:.2f}' for x in r['ratios'])}) | {r['real_cpu_us']} / "
            f"{r['noop_cpu_us']} µs ({r['cpu_ratio']:.2f}) | ≥ {t[name]:.2f}: {met} |"
        )

    rec = res["recorder"]
    lines = [
        "# Ingest speed beside a do-nothing servicer",
        "",
        f"Run {res['started']} on {m.get('cpu_model', '?')} ({m.get('nproc', '?')} cores), "
        f"Python {m.get('python', '?')}, grpcio {m.get('grpcio', '?')}, ghz {m.get('ghz', '?')}. "
        f"Load average before {res['load_before'][0]:.2f}, after {res['load_after'][0]:.2f}. "
        "The load generator runs on the same machine; each throughput row alternates the "
        "do-nothing grpc.aio servicer and `cugar-metrics serve` on fresh processes and gives "
        "the median of the per-round ratios.",
        "",
        "| measure | real / do-nothing throughput | ratio (rounds) | server CPU per item, "
        "real / do-nothing (CPU ratio) | target |",
        "|---|---|---|---|---|",
        row("batches-routine", "batches of 500 routine executions (1 tool call)"),
        row("batches-rich", "batches of 500 rich executions (5 tool calls, 1 approval)"),
        row(
            "batches-models",
            "batches of 500 rich executions with 3 model calls each (issue 11's row)",
        ),
        row("unary", "unary `RecordExecution` (ghz, concurrency 16)"),
        "",
        "| measure | figure | target |",
        "|---|---|---|",
        f"| `GetDashboard` p99 at the full caps (1 h window) | {dash_p99:.2f} ms | "
        f"≤ {t['dashboard_p99_ms']:g} ms: {verdict(dash_p99 <= t['dashboard_p99_ms'])} |",
        f"| `/metrics` p99 at the full caps ({reads['metrics']['samples']:,} samples) | "
        f"{metrics_p99:.2f} ms | ≤ {t['metrics_p99_ms']:g} ms: "
        f"{verdict(metrics_p99 <= t['metrics_p99_ms'])} |",
        f"| Python recorder, end to end from one process | {rec['eps']:,} executions/s "
        f"(client {rec['client_cpu_us']} µs, server {rec['server_cpu_us']} µs of CPU each; "
        f"{rec['accepted']:,} of {rec['executions']:,} accepted) | ≥ {t['recorder_eps']:,}: "
        f"{verdict(rec['eps'] >= t['recorder_eps'])} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
