"""Cluster dashboards at the full label caps, against real processes on this machine.

Three `cugar-metrics serve` replicas whose `--peers` list all three, each loaded to the full
caps (every capped series present: 50 profiles x both outcomes, 200 domain/tool pairs, 100
error types, 50 provider/model pairs, 50 profiles x 4 approval decisions, durations, waits
and model latencies log-uniform from 1 us to 1 h), in batches of 500 spread over several
10-s slots. Then:

  latency   GetDashboard, one call at a time from this process, interleaved in rounds:
            cluster scope (1-hour and 5-minute windows), replica scope (the same windows) and
            a do-nothing grpc.aio server's GetDashboard (an empty answer, same client) as the
            baseline measured in the same run, because the machine is shared and noisy.
  watch     100 WatchDashboard streams (interval 1 s) on one replica for `--watch-seconds`:
            first all with the same request, then 100 distinct requests (windows from 60 s
            to 3030 s, a profile filter each); CPU time of each replica over wall time (from
            /proc), dashboards received, and cugar_dashboard_watch_computations_total.

Writes bench/results/cluster.md and cluster.json (`--out` elsewhere).

    .venv/bin/python bench/cluster_bench.py [--calls 300] [--watch-seconds 60] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from cugar.metrics.v1 import metrics_service_pb2 as pb  # noqa: E402
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc  # noqa: E402
from server import procinfo  # noqa: E402
from tests.process.windows.load import cap_batch as windows_cap_batch  # noqa: E402
from tests.process.windows.load import duration  # noqa: E402
from tests.support.serverproc import ServerProcess, launch, stop_process  # noqa: E402

TARGET_P99_MS = 50.0
WATCHERS = 100


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cap_batch(rng: random.Random, prefix: str, seq: int, size: int = 500) -> Any:
    """`size` executions with fresh ids, each with a model call: every capped series."""
    return windows_cap_batch(rng, prefix, seq, size, models=True)


def metric(server: ServerProcess, name: str) -> float:
    text = urllib.request.urlopen(server.metrics_url, timeout=30).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise LookupError(name)


def start_noop(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = workdir / "noop.ready.json"
    popen = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.variants",
            "--model",
            "noop-aio",
            "--ready-file",
            str(ready),
        ],
        cwd=BENCH,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if popen.poll() is not None or time.monotonic() > deadline:
            popen.kill()
            raise RuntimeError("the do-nothing server did not start")
        time.sleep(0.05)
    time.sleep(0.1)
    return popen, f"127.0.0.1:{json.loads(ready.read_text())['grpc_port']}"


def load(servers: list[ServerProcess], batches: int, rounds: int) -> int:
    """`batches` batches of 500 into each replica, in `rounds` rounds, each round in its own
    10-s slot; returns the executions sent."""
    rng = random.Random(11)
    sent = 0
    stubs = [pb_grpc.MetricsServiceStub(grpc.insecure_channel(s.target)) for s in servers]
    per_round = max(1, batches // rounds)
    done = 0
    while done < batches:
        if done:
            time.sleep(10 - time.time() % 10 + 0.3)
        n = min(per_round, batches - done)
        for k, stub in enumerate(stubs):
            for b in range(n):
                request = cap_batch(rng, f"r{k}", (done + b) * 500)
                reply = stub.RecordExecutions(request, timeout=60)
                if reply.accepted_count != 500:
                    raise RuntimeError(f"r{k}: {reply.accepted_count} of 500 accepted")
                sent += 500
        done += n
        log(f"loaded {done}/{batches} batches per replica")
    return sent


def quantiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in samples)

    def q(p: float) -> float:
        return round(ms[min(len(ms) - 1, max(0, math.ceil(p * len(ms)) - 1))], 2)

    return {
        "calls": len(ms),
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "max_ms": round(ms[-1], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def latency(servers: list[ServerProcess], noop: str, calls: int, sent: int) -> dict[str, Any]:
    own = pb_grpc.MetricsServiceStub(grpc.insecure_channel(servers[0].target))
    base = pb_grpc.MetricsServiceStub(grpc.insecure_channel(noop))
    cluster, replica = pb.DASHBOARD_SCOPE_CLUSTER, pb.DASHBOARD_SCOPE_REPLICA
    hour = pb.GetDashboardRequest(window=duration(3600), scope=cluster)
    five = pb.GetDashboardRequest(window=duration(300), scope=cluster)
    kinds: dict[str, tuple[Any, pb.GetDashboardRequest]] = {
        "cluster, 1 h": (own, hour),
        "cluster, 5 min": (own, five),
        "cluster, 1 h, every replica changed": (own, hour),
        "cluster, 5 min, every replica changed": (own, five),
        "replica, 1 h": (own, pb.GetDashboardRequest(window=duration(3600), scope=replica)),
        "replica, 5 min": (own, pb.GetDashboardRequest(window=duration(300), scope=replica)),
        "do-nothing server": (base, pb.GetDashboardRequest()),
    }
    # Warm up and check the cluster answer: every execution, every capped series.
    for name, (stub, request) in kinds.items():
        d = stub.GetDashboard(request, timeout=30)
        if name in ("cluster, 1 h", "cluster, 5 min"):
            shape = (
                d.executions.total,
                len(d.profiles),
                len(d.tools),
                len(d.error_types),
                len(d.models),
                d.partial,
            )
            if shape != (sent, 50, 200, 100, 50, False):
                raise RuntimeError(f"{name}: unexpected cluster dashboard {shape}")
    # "changed": one more execution recorded on every replica before each call (not timed),
    # so that no replica can reuse an encoded, decoded or merged state.
    recorders = [pb_grpc.MetricsServiceStub(grpc.insecure_channel(s.target)) for s in servers]
    fresh = itertools.count()

    def change() -> None:
        for stub in recorders:
            e = cap_batch(random.Random(0), f"late-{next(fresh)}", 0, size=1).executions[0]
            stub.RecordExecution(pb.RecordExecutionRequest(execution=e), timeout=30)

    samples: dict[str, list[float]] = {name: [] for name in kinds}
    pids = [s.proc.pid for s in servers]
    cpu0 = [procinfo.cpu_seconds(p) for p in pids]
    busy0, wall0 = procinfo.busy_seconds(), time.monotonic()
    rounds = max(1, calls // 10)
    for _ in range(rounds):
        for name, (stub, request) in kinds.items():
            for _ in range(10):
                if "changed" in name:
                    change()
                t = time.perf_counter()
                stub.GetDashboard(request, timeout=30)
                samples[name].append(time.perf_counter() - t)
    wall = time.monotonic() - wall0
    servers_cpu = sum(procinfo.cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True))
    others = procinfo.busy_seconds() - busy0 - servers_cpu
    out: dict[str, Any] = {name: quantiles(s) for name, s in samples.items()}
    noop_p50 = out["do-nothing server"]["p50_ms"]
    for name in kinds:
        out[name]["p50_over_do_nothing"] = round(out[name]["p50_ms"] / noop_p50, 1)
    out["_cpu"] = {
        "wall_s": round(wall, 1),
        "replica_cores": round(servers_cpu / wall, 2),
        "other_cores": round(max(0.0, others) / wall, 2),
    }
    return out


async def _watch(
    target: str, requests: list[pb.WatchDashboardRequest], seconds: float
) -> tuple[list[int], dict[str, int]]:
    """Opens one stream per request and counts the dashboards each receives in `seconds`
    (the first included), and the streams that ended with an error, by code."""
    counts = [0] * len(requests)
    errors: dict[str, int] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.MetricsServiceStub(channel)
        calls = [stub.WatchDashboard(r) for r in requests]
        stop = time.monotonic() + seconds

        async def follow(i: int, call: Any) -> None:
            try:
                while time.monotonic() < stop:
                    await call.read()
                    counts[i] += 1
            except grpc.aio.AioRpcError as e:
                errors[e.code().name] = errors.get(e.code().name, 0) + 1

        tasks = [asyncio.create_task(follow(i, c)) for i, c in enumerate(calls)]
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        for c in calls:
            c.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return counts, errors


async def watch(servers: list[ServerProcess], seconds: float, distinct: bool) -> dict[str, Any]:
    interval = duration(1)
    if distinct:
        requests = [
            pb.WatchDashboardRequest(
                dashboard=pb.GetDashboardRequest(
                    window=duration(60 + 30 * i), profile=f"profile_{i % 50:02d}"
                ),
                interval=interval,
            )
            for i in range(WATCHERS)
        ]
    else:
        same = pb.GetDashboardRequest(window=duration(300))
        requests = [pb.WatchDashboardRequest(dashboard=same, interval=interval)] * WATCHERS
    target = servers[0]
    pids = [s.proc.pid for s in servers]
    before = metric(target, "cugar_dashboard_watch_computations_total")
    cpu0 = [procinfo.cpu_seconds(p) for p in pids]
    me0 = time.process_time()
    busy0, wall0 = procinfo.busy_seconds(), time.monotonic()
    counts, errors = await _watch(target.target, requests, seconds)
    wall = time.monotonic() - wall0
    cpu = [procinfo.cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
    me = time.process_time() - me0
    computations = metric(target, "cugar_dashboard_watch_computations_total") - before
    others = procinfo.busy_seconds() - busy0 - sum(cpu) - me
    return {
        "watchers": WATCHERS,
        "distinct_requests": len({r.SerializeToString(deterministic=True) for r in requests}),
        "wall_s": round(wall, 1),
        "watched_replica_cores": round(cpu[0] / wall, 3),
        "peer_cores": [round(c / wall, 3) for c in cpu[1:]],
        "client_cores": round(me / wall, 2),
        "other_cores": round(max(0.0, others) / wall, 2),
        "computations": int(computations),
        "computations_per_second": round(computations / wall, 2),
        "dashboards_received": sum(counts),
        "streams_failed": errors,
        "dashboards_per_watcher_per_second": round(sum(counts) / len(counts) / seconds, 2),
    }


async def watches(servers: list[ServerProcess], seconds: float) -> dict[str, Any]:
    """Both watch runs in one event loop (grpc.aio keeps per-loop state)."""
    out = {}
    for name in ("same", "distinct"):
        log(f"watch: {name}")
        out[name] = await watch(servers, seconds, name == "distinct")
        log(json.dumps(out[name]))
    return out


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Cluster dashboards at the caps",
        "",
        f"Run of `bench/cluster_bench.py` on {m['date']} ({result['seconds']:.0f} s), commit "
        f"{result['commit']}.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {m['nproc']} x {m['cpu_model']} ({m['cpus_usable']} usable) |",
        f"| kernel | {m['kernel']} |",
        f"| Python / grpcio / protobuf | {m['python']} / {m['grpcio']} / {m['protobuf']} |",
        f"| load average before / after | {result['load_before']} / {result['load_after']} |",
        "",
        "Three replicas with `--peers` listing all three, each loaded with "
        f"{result['per_replica']:,} executions at the full caps (50 profiles x 2 outcomes, "
        "200 domain/tool pairs, 100 error types, 50 models, 50 profiles x 4 decisions; "
        "values from 1 us to 1 h) in "
        f"{result['rounds']} 10-s slots. The replicas are younger than an hour, so the 1-hour "
        "window is everything since they started (cumulative state, with bucket counts).",
        "",
        "## GetDashboard latency",
        "",
        "One call at a time from one Python client, the kinds interleaved in rounds of 10 calls;"
        " the do-nothing server is a grpc.aio server answering an empty `GetDashboardResponse`"
        " (the gRPC and client cost alone). Rows marked *every replica changed*: before each"
        " call (not timed) one execution is recorded on every replica, so nothing encoded,"
        " decoded or merged before can be reused; the other rows ask again for an unchanged"
        " cluster (a dashboard polled or watched between executions).",
        "",
        "| request | calls | p50 ms | p95 ms | p99 ms | max ms | p50 / do-nothing |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lat = result["latency"]
    for name, q in lat.items():
        if name.startswith("_"):
            continue
        lines.append(
            f"| {name} | {q['calls']} | {q['p50_ms']} | {q['p95_ms']} | {q['p99_ms']} | "
            f"{q['max_ms']} | {q['p50_over_do_nothing']}x |"
        )
    c = lat["_cpu"]
    worst = max(q["p99_ms"] for name, q in lat.items() if name.startswith("cluster"))
    lines += [
        "",
        f"During these calls ({c['wall_s']} s) the three replicas used {c['replica_cores']} cores"
        f" and other processes on the machine {c['other_cores']} cores. Cluster p99 (worst of"
        f" the cluster rows): **{worst} ms**, target <= {TARGET_P99_MS:g} ms:"
        f" {'met' if worst <= TARGET_P99_MS else '**not met**'}.",
        "",
        f"## {WATCHERS} WatchDashboard streams (interval 1 s)",
        "",
        "On one replica (cluster scope: each computation fetches both peers' states), for "
        f"{result['watch_seconds']:g} s. Cores = process CPU time / wall time, from /proc.",
        "",
        "| requests | watched replica cores | peers' cores | computations/s "
        "| dashboards / watcher / s | streams failed | client cores | other cores |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("same", "distinct"):
        w = result["watch"][name]
        lines.append(
            f"| {w['distinct_requests']} distinct | {w['watched_replica_cores']} | "
            f"{' + '.join(str(p) for p in w['peer_cores'])} | {w['computations_per_second']} "
            f"({w['computations']} in {w['wall_s']} s) | "
            f"{w['dashboards_per_watcher_per_second']} | "
            f"{', '.join(f'{n} {c}' for c, n in w['streams_failed'].items()) or 'none'} | "
            f"{w['client_cores']} | {w['other_cores']} |"
        )
    lines.append("")
    before = result.get("before")
    if before:
        lines += [
            "## Before and after",
            "",
            f"Before: the same script on commit {before['commit']} (state format version 1, "
            f"JSON with base64/zlib sketch counts, decoded and merged on every call), run "
            f"{before['machine']['date']}, load average {before['load_before']}. That run had"
            " no *every replica changed* rows: nothing was reused then, so every call was"
            " such a call, and those rows are compared with its plain rows.",
            "",
            "| figure | before | after |",
            "|---|---:|---:|",
        ]
        for name, q in lat.items():
            if name.startswith("_"):
                continue
            was = before["latency"].get(name) or before["latency"].get(name.split(", every")[0])
            if was:
                for k in ("p50_ms", "p99_ms"):
                    lines.append(f"| {name}: {k.replace('_ms', '')} ms | {was[k]} | {q[k]} |")
        for name in ("same", "distinct"):
            b, a = before["watch"][name], result["watch"][name]
            label = f"{a['distinct_requests']} distinct request(s), 100 watchers"
            lines += [
                f"| {label}: watched replica cores | {b['watched_replica_cores']} "
                f"| {a['watched_replica_cores']} |",
                f"| {label}: computations/s | {b['computations_per_second']} "
                f"| {a['computations_per_second']} |",
                f"| {label}: dashboards / watcher / s | {b['dashboards_per_watcher_per_second']} "
                f"| {a['dashboards_per_watcher_per_second']} |",
            ]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300, help="calls per kind of request")
    parser.add_argument("--watch-seconds", type=float, default=60.0)
    parser.add_argument("--batches", type=int, default=40, help="batches of 500 per replica")
    parser.add_argument("--rounds", type=int, default=4, help="10-s slots the load spans")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--name", default="cluster", help="file name of the results")
    parser.add_argument("--quick", action="store_true", help="a short smoke run, not written")
    parser.add_argument(
        "--before", type=Path, help="the JSON of an earlier run, shown beside this one"
    )
    args = parser.parse_args()
    if args.quick:
        args.calls, args.watch_seconds, args.batches, args.rounds = 20, 5.0, 4, 2
    started = time.monotonic()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    result: dict[str, Any] = {
        "machine": {k: v for k, v in procinfo.machine("").items() if k != "ghz"},
        "commit": commit,
        "load_before": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "per_replica": args.batches * 500,
        "rounds": args.rounds,
        "watch_seconds": args.watch_seconds,
    }
    workdir = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    log(f"server logs in {workdir} (removed after a successful run)")
    ports = [_free_port() for _ in range(3)]
    peers = ",".join(f"127.0.0.1:{p}" for p in ports)
    servers: list[ServerProcess] = []
    noop, noop_target = start_noop(workdir)
    try:
        for i, port in enumerate(ports):
            servers.append(
                launch(
                    workdir,
                    "--peers",
                    peers,
                    "--max-watchers",
                    "1000",
                    "--max-watchers-per-key",
                    "1000",
                    "--log-level",
                    "WARNING",
                    name=f"r{i}",
                    grpc_port=port,
                )
            )
        sent = load(servers, args.batches, args.rounds)
        log("latency")
        result["latency"] = latency(servers, noop_target, args.calls, sent)
        log(json.dumps(result["latency"]))
        result["watch"] = asyncio.run(watches(servers, args.watch_seconds))
    finally:
        for s in servers:
            s.stop()
        stop_process(noop, timeout=10)
    shutil.rmtree(workdir)
    if args.before:
        result["before"] = json.loads(args.before.read_text())
    result["load_after"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    result["seconds"] = time.monotonic() - started
    if args.quick:
        print(render(result))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{args.name}.md").write_text(render(result))
    log(f"wrote {args.out / args.name}.md and .json")


if __name__ == "__main__":
    main()
