"""Performance benchmark of the cugar-metrics server. `make bench` runs it from the repository
root; it writes bench/results/server.md and bench/results/server.json.

Sections (each against real processes on 127.0.0.1, bounded in time):
  1. unary      RecordExecution with ghz against `cugar-metrics serve`, a do-nothing grpc.aio
                server, a do-nothing thread-pool server and the real servicer on a thread pool,
                at several concurrency levels, interleaved
  2. batches    RecordExecutions, batches of 500 unique executions from several client processes
  4. memory     RSS of the server process along the way (same run as 2), and, when the server
                cannot reach 10 M executions within the time budget, an in-process Aggregator
                driver that records 10 M
  3. dashboard  GetDashboard and GET /metrics at the full cardinality caps: on the server of
                section 2, and on a server with one hour of checkpoints at the caps

The machine is shared: every measurement also records the CPU used by the server, by the load
clients and by every other process (from /proc), so figures can be read against the load.

    .venv/bin/python bench/run_server_bench.py            full run (about 13 minutes)
    .venv/bin/python bench/run_server_bench.py --quick    smoke run (about 1 minute), results
                                                          in a temporary directory
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from server import procinfo, profiles, workload

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after bench/: its `server`
from tests.support.serverproc import stop_process, wait_for_ready

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROTO = "cugar/metrics/v1/metrics_service.proto"
SERVICE = "cugar.metrics.v1.MetricsService"

TARGETS = {
    "unary_rps": 5000,
    "unary_p99_ms": 20.0,
    "noop_ratio": 0.80,
    "batch_eps": 200_000,
    "dashboard_p99_ms": 10.0,
    "metrics_ms": 50.0,
    "rss_mib": 150.0,
    "rss_growth": 0.05,
}


@dataclass
class Settings:
    quick: bool
    out_dir: Path
    ghz: str
    levels: list[int]
    unary_seconds: float
    threads: int
    clients: int
    inflight: int
    memory_target: int
    memory_chunk: int
    memory_budget: float
    driver_total: int
    dashboard_requests: int
    metrics_requests: int
    history: float
    profile: bool = False
    deadline: float = 0.0  # time.monotonic() by which the run must end


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- processes --------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    info: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.info['grpc_port']}"

    def stop(self) -> int:
        return stop_process(self.popen, timeout=20)


def start(name: str, argv: list[str], workdir: Path, log_dir: Path) -> Proc:
    ready = workdir / f"{name}.ready.json"
    ready.unlink(missing_ok=True)
    logf = open(log_dir / f"{name}.log", "wb")  # noqa: SIM115 (lives as long as the process)
    popen = subprocess.Popen(
        [*argv, "--ready-file", str(ready)],
        cwd=BENCH,
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    return Proc(name, popen, wait_for_ready(popen, ready, Path(logf.name), 120, name))


def real_server_argv() -> list[str]:
    exe = Path(sys.executable).with_name("cugar-metrics")
    return [
        str(exe),
        "serve",
        "--host",
        "127.0.0.1",
        "--grpc-port",
        "0",
        "--metrics-port",
        "0",
        "--no-auth",
        "--log-level",
        "WARNING",
    ]


def variant_argv(model: str, threads: int) -> list[str]:
    return [sys.executable, "-m", "server.variants", "--model", model, "--workers", str(threads)]


class CpuMeter:
    """CPU used between start and stop by the server, the clients and everyone else."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.t0 = time.perf_counter()
        self.busy0 = procinfo.busy_seconds()
        self.server0 = procinfo.cpu_seconds(server_pid) if server_pid else 0.0

    def stop(self, client_cpu: float) -> procinfo.CpuWindow:
        server = (procinfo.cpu_seconds(self.server_pid) - self.server0) if self.server_pid else 0.0
        return procinfo.CpuWindow(
            time.perf_counter() - self.t0, server, client_cpu, procinfo.busy_seconds() - self.busy0
        )


def background_load(seconds: float = 3.0) -> float:
    """Cores busy with other people's work while the benchmark does nothing."""
    meter = CpuMeter(None)
    time.sleep(seconds)
    window = meter.stop(0.0)
    return round(window.cores(window.total), 2)


# --- ghz --------------------------------------------------------------------------------------


def protoset(workdir: Path) -> Path:
    """The contract compiled to a descriptor set (with its imports) by grpcio-tools' protoc:
    every ghz version reads it, and proto3 `optional` fields need no parser support."""
    out = workdir / "metrics_service.protoset"
    if not out.exists():
        from importlib.resources import files

        from grpc_tools import protoc

        well_known = files("grpc_tools") / "_proto"  # google/protobuf/*.proto
        args = [
            "protoc",
            "--include_imports",
            f"--descriptor_set_out={out}",
            f"-I{ROOT / 'protos'}",
            f"-I{well_known}",
            str(ROOT / "protos" / PROTO),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc could not compile " + PROTO)
    return out


def ghz(
    s: Settings,
    target: str,
    method: str,
    data: str,
    workdir: Path,
    *,
    concurrency: int,
    seconds: float | None = None,
    total: int | None = None,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Runs ghz once; returns its summary plus the CPU used by server, ghz and others."""
    out = workdir / "ghz.json"
    data_file = workdir / "ghz-data.json"
    data_file.write_text(data)
    argv = [
        s.ghz,
        "--insecure",
        "--protoset",
        str(protoset(workdir)),
        "--call",
        f"{SERVICE}/{method}",
        "--data-file",
        str(data_file),
        "--concurrency",
        str(concurrency),
        "--connections",
        "1",
        "--timeout",
        "20s",
        "--format",
        "json",
        "--output",
        str(out),
    ]
    if seconds is not None:
        argv += ["--duration", f"{seconds:g}s", "--duration-stop", "wait"]
    else:
        argv += ["--total", str(total)]
    meter = CpuMeter(server_pid)
    popen = subprocess.Popen([*argv, target], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(popen.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    cpu = meter.stop(usage.ru_utime + usage.ru_stime)
    stderr = popen.stderr.read().decode() if popen.stderr else ""
    if popen.returncode != 0:
        raise RuntimeError(f"ghz failed ({popen.returncode}): {stderr.strip()}")
    report = json.loads(out.read_text())
    lat = {int(p["percentage"]): p["latency"] / 1e6 for p in report["latencyDistribution"] or []}
    codes = report.get("statusCodeDistribution") or {}
    count = int(report["count"])
    ok = int(codes.get("OK", 0))
    result = {
        "concurrency": concurrency,
        "count": count,
        "ok": ok,
        "errors": count - ok,
        "error_kinds": report.get("errorDistribution") or {},
        "rps": round(report["rps"], 1),
        "mean_ms": round(report["average"] / 1e6, 3),
        "p50_ms": round(lat.get(50, 0.0), 3),
        "p95_ms": round(lat.get(95, 0.0), 3),
        "p99_ms": round(lat.get(99, 0.0), 3),
        "max_ms": round(report["slowest"] / 1e6, 3),
        **cpu.as_dict(),
    }
    if server_pid and ok:
        result["server_cpu_us_per_req"] = round(cpu.server / ok * 1e6, 1)
        result["rps_per_server_core"] = round(ok / cpu.server) if cpu.server else None
    return result


# --- helpers over the gRPC and HTTP ports -----------------------------------------------------


def scrape(metrics_port: int) -> tuple[float, str]:
    conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=30)
    t0 = time.perf_counter()
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - t0
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"GET /metrics answered {response.status}")
    return elapsed, body.decode()


def metric_value(text: str, name: str, labels: str = "") -> float:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    raise LookupError(prefix)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = q * (len(ordered) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def record_caps(target: str, prefix: str) -> int:
    """Records the 200 cap-filling executions (every capped label value) with the stubs."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.MetricsServiceStub(channel)
        templates = workload.cap_filling_templates()
        ids = workload.unique_ids(prefix)
        request = pb.RecordExecutionsRequest()
        for t in templates:
            e = request.executions.add()
            e.CopyFrom(t)
            e.execution_id = next(ids)
        response = stub.RecordExecutions(request, timeout=30)
        if response.accepted_count != len(templates):
            raise RuntimeError(f"cap fill: {response}")
        return int(response.accepted_count)


# --- section 1: unary -------------------------------------------------------------------------


def section_unary(s: Settings, workdir: Path) -> dict[str, Any]:
    log("unary: starting the real server and the variants")
    servers = {"real-aio": start("real-aio", real_server_argv(), workdir, workdir)}
    for model in ("noop-aio", "noop-threaded", "real-threaded"):
        servers[model] = start(model, variant_argv(model, s.threads), workdir, workdir)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    sent_ok = 0
    try:
        for name, proc in servers.items():  # warm-up: connections, code paths, allocator
            r = ghz(
                s,
                proc.target,
                "RecordExecution",
                workload.unary_json(f"warm-{name}"),
                workdir,
                concurrency=8,
                total=500 if s.quick else 2000,
            )
            sent_ok += r["ok"] if name == "real-aio" else 0
        load_before = procinfo.loadavg()
        for level in s.levels:  # interleaved, so background load hits every server alike
            for name, proc in servers.items():
                r = ghz(
                    s,
                    proc.target,
                    "RecordExecution",
                    workload.unary_json(f"c{level}-{name}"),
                    workdir,
                    concurrency=level,
                    seconds=s.unary_seconds,
                    server_pid=proc.pid,
                )
                r["load_1m"] = round(procinfo.loadavg()[0], 2)
                runs[name].append(r)
                if name == "real-aio":
                    sent_ok += r["ok"]
                log(
                    f"unary {name:13s} c={level:3d}: {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f}"
                    f"  p99 {r['p99_ms']:7.2f} ms  server {r.get('server_cpu_us_per_req')} us"
                    f"/req  others {r['other_cores']} cores  errors {r['errors']}"
                )
        profile = None
        if s.profile:  # an extra run, after the measured ones
            real = servers["real-aio"]
            sampler = profiles.Sampler(real.pid, 6, workdir / "unary.spy")
            time.sleep(0.3)
            r = ghz(
                s,
                real.target,
                "RecordExecution",
                workload.unary_json("profiled"),
                workdir,
                concurrency=32,
                seconds=6.5,
            )
            sent_ok += r["ok"]
            profile = sampler.result()
        _, text = scrape(servers["real-aio"].info["metrics_port"])
        ingest = {
            k: int(metric_value(text, "cugar_ingest_executions_total", f'result="{k}"'))
            for k in ("accepted", "duplicate", "rejected")
        }
    finally:
        codes = {name: proc.stop() for name, proc in servers.items()}
    ratios = []
    for i, level in enumerate(s.levels):
        real, noop = runs["real-aio"][i], runs["noop-aio"][i]
        threaded, real_threaded = runs["noop-threaded"][i], runs["real-threaded"][i]
        ratios.append(
            {
                "concurrency": level,
                "real_vs_noop_aio": round(real["rps"] / noop["rps"], 3),
                "real_vs_noop_threaded": round(real["rps"] / threaded["rps"], 3),
                "noop_threaded_vs_aio": round(threaded["rps"] / noop["rps"], 3),
                "real_threaded_vs_aio": round(real_threaded["rps"] / real["rps"], 3),
                "cpu_real_vs_noop_aio": round(
                    noop["server_cpu_us_per_req"] / real["server_cpu_us_per_req"], 3
                ),
            }
        )
    return {
        "runs": runs,
        "ratios": ratios,
        "load_before": load_before,
        "real_server_ingest": ingest,
        "real_server_ok_responses": sent_ok,
        "profile": profile,
        "exit_codes": codes,
    }


# --- sections 2 and 4: batches and the server's memory ----------------------------------------


class BatchClients:
    """`clients` load-client processes (bench/server/batch_client.py), driven by `go`."""

    def __init__(
        self,
        s: Settings,
        target: str,
        workdir: Path,
        *,
        templates: str = "realistic",
        prefix: str = "w",
    ) -> None:
        self.procs = []
        for i in range(s.clients):
            argv = [
                sys.executable,
                "-m",
                "server.batch_client",
                "--target",
                target,
                "--prefix",
                f"{prefix}{i}-",
                "--batch-size",
                "500",
                "--inflight",
                str(s.inflight),
                "--templates",
                templates,
            ]
            log_file = workdir / f"client-{prefix}{i}.log"
            errors = open(log_file, "w")  # noqa: SIM115 (the process's life)
            self.procs.append(
                subprocess.Popen(
                    argv,
                    cwd=BENCH,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    stderr=errors,
                )
            )
        for p in self.procs:
            assert p.stdout is not None
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"batch client did not start: {line!r}")

    def go(self, batches: int) -> list[dict[str, Any]]:
        n = len(self.procs)
        shares = [batches // n + (1 if i < batches % n else 0) for i in range(n)]
        for p, share in zip(self.procs, shares, strict=True):
            assert p.stdin is not None
            p.stdin.write(f"go {share}\n")
            p.stdin.flush()
        out = []
        for p in self.procs:
            assert p.stdout is not None
            out.append(json.loads(p.stdout.readline()))
        return out

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(BrokenPipeError, OSError):
                assert p.stdin is not None
                p.stdin.write("quit\n")
                p.stdin.close()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def section_batches(s: Settings, workdir: Path) -> tuple[dict[str, Any], Proc]:
    """Records up to `memory_target` unique executions; returns the results and the server,
    still running, for the dashboard section."""
    server = start("batch-server", real_server_argv(), workdir, workdir)
    rss_start = procinfo.rss_bytes(server.pid)
    clients = BatchClients(s, server.target, workdir)
    warm = clients.go(s.clients * 4)  # connections and code paths warm, not counted below
    recorded = sum(r["accepted"] for r in warm)
    points = [{"executions": recorded, "rss": procinfo.rss_bytes(server.pid), "wall_s": 0.0}]
    load_before = procinfo.loadavg()
    chunks = []
    t_start = time.perf_counter()
    try:
        while recorded < s.memory_target:
            # chunks end on multiples of memory_chunk, so RSS is read at 5 M and 10 M exactly
            size = min(s.memory_chunk - recorded % s.memory_chunk, s.memory_target - recorded)
            meter = CpuMeter(server.pid)
            results = clients.go(size // 500)
            cpu = meter.stop(sum(r["cpu_s"] for r in results))
            accepted = sum(r["accepted"] for r in results)
            problems = [
                r["error"] for r in results if r["errors"] or r["duplicate"] or r["rejected"]
            ]
            if problems:
                raise RuntimeError(f"batches not all accepted: {problems}")
            recorded += accepted
            chunks.append(
                {
                    "executions": accepted,
                    "eps": round(accepted / cpu.wall),
                    "eps_per_server_core": round(accepted / cpu.server) if cpu.server else None,
                    "load_1m": round(procinfo.loadavg()[0], 2),
                    **cpu.as_dict(),
                }
            )
            points.append(
                {
                    "executions": recorded,
                    "rss": procinfo.rss_bytes(server.pid),
                    "wall_s": round(time.perf_counter() - t_start, 1),
                }
            )
            log(
                f"batches: {recorded:>10,d} executions  {chunks[-1]['eps']:7,d}/s  server "
                f"{chunks[-1]['server_cores']} cores  others {chunks[-1]['other_cores']} cores  "
                f"RSS {points[-1]['rss'] / 2**20:6.1f} MiB"
            )
            elapsed = time.perf_counter() - t_start
            if elapsed > s.memory_budget:
                log(f"batches: time budget of {s.memory_budget:g}s spent at {recorded:,d}")
                break
        profile = None
        if s.profile:  # an extra chunk, after the measured ones
            sampler = profiles.Sampler(server.pid, 6, workdir / "batches.spy")
            time.sleep(0.3)
            extra = clients.go(max(s.clients, s.memory_chunk // 500 // 5))
            recorded += sum(r["accepted"] for r in extra)
            profile = sampler.result()
    finally:
        clients.close()
    _, text = scrape(server.info["metrics_port"])
    wall = sum(c["wall_s"] for c in chunks)
    server_cpu = sum(c["server_cpu_s"] for c in chunks)
    counted = sum(c["executions"] for c in chunks)
    return {
        "batch_size": 500,
        "clients": s.clients,
        "inflight_per_client": s.inflight,
        "executions": counted,
        "wall_s": round(wall, 1),
        "eps": round(counted / wall) if wall else 0,
        "eps_per_server_core": round(counted / server_cpu) if server_cpu else 0,
        "server_cpu_us_per_execution": round(server_cpu / counted * 1e6, 2) if counted else 0,
        "best_chunk_eps": max((c["eps"] for c in chunks), default=0),
        "chunks": chunks,
        "rss_points": points,
        "rss_start": rss_start,
        "peak_rss": procinfo.peak_rss_bytes(server.pid),
        "load_before": load_before,
        "dedup_entries": int(metric_value(text, "cugar_dedup_entries")),
        "dedup_evicted": int(metric_value(text, "cugar_dedup_evictions_total")),
        "accepted_total": int(
            metric_value(text, "cugar_ingest_executions_total", 'result="accepted"')
        ),
        "reached_target": counted + points[0]["executions"] >= s.memory_target,
        "target_executions": s.memory_target,
        "profile": profile,
    }, server


def memory_driver(s: Settings) -> dict[str, Any]:
    every = max(s.driver_total // 10, 500)
    argv = [
        sys.executable,
        "-m",
        "server.memory_driver",
        "--total",
        str(s.driver_total),
        "--every",
        str(every),
    ]
    budget = max(10.0, s.deadline - time.monotonic() - 5)
    argv += ["--max-seconds", f"{budget:.0f}"]
    log(
        f"memory: in-process Aggregator driver, {s.driver_total:,d} executions (at most "
        f"{budget:.0f} s)"
    )
    out = subprocess.run(argv, cwd=BENCH, capture_output=True, text=True, check=True)
    points = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    for p in points[1:]:
        log(
            f"memory driver: {p['executions']:>10,d} executions  RSS {p['rss'] / 2**20:6.1f} "
            f"MiB  dedup {p['dedup_entries']:,d}  evicted {p['dedup_evicted']:,d}"
        )
    reached = points[-1]["executions"]
    if reached < s.driver_total:
        log(f"memory driver: stopped at {reached:,d} to end the run in time")
    return {"total": s.driver_total, "reached": reached, "points": points}


def unary_steady(s: Settings, server: Proc, workdir: Path) -> dict[str, Any]:
    """RecordExecution against the server of section 2: its dedup index holds millions of ids
    in sealed generations, as on a replica that has been busy for 10 minutes."""
    _, text = scrape(server.info["metrics_port"])
    entries = int(metric_value(text, "cugar_dedup_entries"))
    level = 32 if 32 in s.levels else s.levels[-1]
    r = ghz(
        s,
        server.target,
        "RecordExecution",
        workload.unary_json("steady"),
        workdir,
        concurrency=level,
        seconds=s.unary_seconds,
        server_pid=server.pid,
    )
    r["dedup_entries"] = entries
    log(
        f"unary after section 2 ({entries:,d} ids remembered) c={level}: {r['rps']:.0f} req/s  "
        f"p99 {r['p99_ms']:.2f} ms  server {r.get('server_cpu_us_per_req')} us/req"
    )
    return r


# --- section 3: dashboard and /metrics --------------------------------------------------------

WINDOWS = {"unset": "{}", "1h": '{"window": "3600s"}', "1m": '{"window": "60s"}'}


def measure_dashboard(
    s: Settings, proc: Proc, workdir: Path, profile: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with grpc.insecure_channel(proc.target) as channel:
        stub = pb_grpc.MetricsServiceStub(channel)
        d = stub.GetDashboard(pb.GetDashboardRequest(), timeout=30)
        out["rows"] = {
            "profiles": len(d.profiles),
            "domains": len(d.domains),
            "tools": len(d.tools),
            "error_types": len(d.error_types),
            "executions": d.executions.total,
            "response_bytes": d.ByteSize(),
        }
    for name, data in WINDOWS.items():
        r = ghz(
            s,
            proc.target,
            "GetDashboard",
            data,
            workdir,
            concurrency=1,
            total=s.dashboard_requests,
            server_pid=proc.pid,
        )
        if r["errors"]:
            raise RuntimeError(f"GetDashboard {name}: {r['error_kinds']}")
        out[f"window_{name}"] = r
        log(
            f"dashboard {proc.name} window {name:5s}: p50 {r['p50_ms']:6.2f}  p99 "
            f"{r['p99_ms']:6.2f} ms  others {r['other_cores']} cores"
        )
    times = []
    meter = CpuMeter(proc.pid)
    text = ""
    for _ in range(s.metrics_requests):
        elapsed, text = scrape(proc.info["metrics_port"])
        times.append(elapsed * 1000)
    cpu = meter.stop(0.0)
    labels = {
        k: int(metric_value(text, "cugar_label_values", f'label="{k}"'))
        for k in ("profile", "domain", "tool", "error_type")
    }
    out["metrics"] = {
        "requests": len(times),
        "p50_ms": round(percentile(times, 0.5), 2),
        "p99_ms": round(percentile(times, 0.99), 2),
        "max_ms": round(max(times), 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "bytes": len(text.encode()),
        "samples": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        "label_values": labels,
        **cpu.as_dict(),
    }
    out["rss"] = procinfo.rss_bytes(proc.pid)
    log(
        f"metrics {proc.name}: p50 {out['metrics']['p50_ms']} p99 {out['metrics']['p99_ms']} ms,"
        f" {out['metrics']['samples']} samples, {out['metrics']['bytes']} bytes, labels {labels}"
    )
    if profile:  # extra requests, after the measured ones
        sampler = profiles.Sampler(proc.pid, 5, workdir / "dashboard.spy")
        time.sleep(0.3)
        ghz(s, proc.target, "GetDashboard", WINDOWS["1h"], workdir, concurrency=1, seconds=5)
        out["profile_dashboard_1h"] = sampler.result()
        sampler = profiles.Sampler(proc.pid, 5, workdir / "metrics.spy")
        time.sleep(0.3)
        end = time.monotonic() + 5
        while time.monotonic() < end:
            scrape(proc.info["metrics_port"])
        out["profile_metrics"] = sampler.result()
    return out


def section_dashboard(s: Settings, batch_server: Proc, workdir: Path) -> dict[str, Any]:
    load_before = procinfo.loadavg()
    record_caps(batch_server.target, "caps-")
    served = measure_dashboard(s, batch_server, workdir)
    served["uptime_s"] = round(time.time() - batch_server.started)
    log("dashboard: starting a server with one hour of checkpoints at the caps")
    aged = start(
        "aged-server",
        [sys.executable, "-m", "server.aged_server", "--history", f"{s.history:g}"],
        workdir,
        workdir,
    )
    try:
        long_running = measure_dashboard(s, aged, workdir, profile=s.profile)
        long_running["backfill"] = aged.info
    finally:
        aged.stop()
    return {"load_before": load_before, "after_batches": served, "aged": long_running}


def hot_spots(res: dict[str, Any]) -> list[str]:
    found = [
        ("RecordExecution, `cugar-metrics serve`, ghz concurrency 32", res["unary"].get("profile")),
        ("RecordExecutions, batches of 500", res["batches"].get("profile")),
        (
            "GetDashboard, 1 h window, server with history",
            res["dashboard"]["aged"].get("profile_dashboard_1h"),
        ),
        ("GET /metrics, server with history", res["dashboard"]["aged"].get("profile_metrics")),
    ]
    found = [(title, p) for title, p in found if p]
    if not found:
        return []
    lines = [
        "## Hot spots",
        "",
        "py-spy samples of the server process (Python frames; native gRPC code shows up as "
        "the Python frame that called it) during extra runs after the measured ones. `self` "
        "is the share of samples in that function itself; `inclusive` counts the samples "
        "anywhere under it, for the server's own code and the libraries it calls.",
        "",
    ]
    for title, p in found:
        lines += [
            f"**{title}** ({p['samples']:,d} samples)",
            "",
            "| self % | function | | inclusive % | function |",
            "|---:|---|---|---:|---|",
        ]
        for i in range(max(len(p["self"]), len(p["inclusive"]))):
            a = p["self"][i] if i < len(p["self"]) else ["", ""]
            b = p["inclusive"][i] if i < len(p["inclusive"]) else ["", ""]
            lines.append(f"| {a[1]} | `{a[0]}` | | {b[1]} | `{b[0]}` |".replace("``", ""))
        lines.append("")
    return lines


# --- report -----------------------------------------------------------------------------------


def mib(n: float) -> float:
    return round(n / 2**20, 1)


def verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


def rss_at(points: list[dict[str, Any]], n: int) -> float | None:
    for p in points:
        if p["executions"] == n:
            return float(p["rss"])
    return None


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    """The headline figures against the targets."""
    t = TARGETS
    unary = res["unary"]
    real = unary["runs"]["real-aio"]
    best = max(real, key=lambda r: r["rps"])
    both = [r for r in real if r["rps"] >= t["unary_rps"] and r["p99_ms"] <= t["unary_p99_ms"]]
    ratios = [r["real_vs_noop_aio"] for r in unary["ratios"]]
    batches = res["batches"]
    dash = res["dashboard"]
    worst_dash = max(
        dash[k][f"window_{w}"]["p99_ms"] for k in ("after_batches", "aged") for w in WINDOWS
    )
    worst_metrics = max(dash[k]["metrics"]["p99_ms"] for k in ("after_batches", "aged"))
    memory = {}
    sources = {"server": (batches["rss_points"], batches["target_executions"])}
    if res.get("memory_driver"):
        sources["driver"] = (res["memory_driver"]["points"], res["memory_driver"]["total"])
    for kind, (points, total) in sources.items():
        half, full = rss_at(points, total // 2), rss_at(points, total)
        growth = (full - half) / half if half and full else None
        memory[kind] = {
            "half": total // 2,
            "full": total,
            "rss_half_mib": mib(half) if half else None,
            "rss_full_mib": mib(full) if full else None,
            "growth": round(growth, 4) if growth is not None else None,
            "rss_half_met": half is not None and half / 2**20 <= t["rss_mib"],
            "rss_full_met": full is not None and full / 2**20 <= t["rss_mib"],
            "growth_met": growth is not None and growth < t["rss_growth"],
        }
    return {
        "unary_best": {
            "concurrency": best["concurrency"],
            "rps": best["rps"],
            "p99_ms": best["p99_ms"],
            "met": bool(both),
        },
        "noop_ratio_min": min(ratios),
        "noop_ratio_max": max(ratios),
        "noop_ratio_met": min(ratios) >= t["noop_ratio"],
        "noop_cpu_ratio_min": min(r["cpu_real_vs_noop_aio"] for r in unary["ratios"]),
        "noop_cpu_ratio_max": max(r["cpu_real_vs_noop_aio"] for r in unary["ratios"]),
        "unary_per_core": max(r["rps_per_server_core"] or 0 for r in real),
        "batch_eps": batches["eps"],
        "batch_met": batches["eps"] >= t["batch_eps"],
        "dashboard_p99_worst_ms": worst_dash,
        "dashboard_met": worst_dash <= t["dashboard_p99_ms"],
        "metrics_p99_worst_ms": worst_metrics,
        "metrics_met": worst_metrics <= t["metrics_ms"],
        "memory": memory,
        "aged_rss_mib": mib(dash["aged"]["rss"]),
    }


def fmt_load(load: list[float] | tuple[float, ...]) -> str:
    return " / ".join(f"{x:.2f}" for x in load) + " (1/5/15 min)"


def faster_model(ratios: list[dict[str, Any]]) -> str:
    noop = [r["noop_threaded_vs_aio"] for r in ratios]
    real = [r["real_threaded_vs_aio"] for r in ratios]

    def say(values: list[float], what: str) -> str:
        if all(v > 1.05 for v in values):
            verdict = "the thread pool is faster at every level"
        elif all(v < 0.95 for v in values):
            verdict = "grpc.aio is faster at every level"
        else:
            verdict = "neither is faster at every level"
        return (
            f"{what}: {verdict} (thread pool / grpc.aio req/s {min(values):.0%} to "
            f"{max(values):.0%}, mean {statistics.fmean(values):.0%})"
        )

    return f"{say(noop, 'do-nothing servicer')}; {say(real, 'real servicer')}"


def contention_note(other_cores: float) -> str:
    return " (contended)" if other_cores >= 0.3 else ""


def markdown(res: dict[str, Any]) -> str:
    env, sm, t = res["environment"], res["summary"], TARGETS
    unary, batches, dash = res["unary"], res["batches"], res["dashboard"]
    load = fmt_load(res["load_before"])
    lines = [
        "# cugar-metrics server benchmark",
        "",
        f"Run {'`--quick` (smoke run: short, not comparable)' if res['quick'] else 'full'} "
        f"of `bench/run_server_bench.py` on {env['date']}, {res['duration_s']:.0f} s.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {env['nproc']} x {env['cpu_model']} ({env['cpus_usable']} usable) |",
        f"| memory | {env['memory_gib']} GiB |",
        f"| kernel | {env['kernel']} |",
        f"| Python / grpcio / protobuf | {env['python']} / {env['grpcio']} / {env['protobuf']} |",
        f"| ghz | {env['ghz']} |",
        f"| load average before the run | {load} |",
        f"| load average after the run | {fmt_load(res['load_after'])} |",
        f"| other processes' CPU before the run | {res['background_cores']} cores of "
        f"{env['nproc']} |",
        "",
        "The machine is shared with other builds. Every row says how many cores other "
        "processes used during that measurement (`others`); rows marked *(contended)* had "
        "0.3 core or more taken by them, so their wall-clock figures are lower than an idle "
        "machine gives. `server CPU/req` is the server process's CPU time per request, which "
        "contention changes much less (it still rises with cache and scheduler pressure): "
        "`1e6 / server CPU/req` is roughly what one dedicated core serves.",
        "",
        "## 1. Unary RecordExecution (ghz, one connection)",
        "",
        "One realistic execution per request (3 tool calls, 1 approval, budget, start time, "
        "trace id), a unique `execution_id` per request (`<run>-{{.RequestNumber}}`); "
        f"{res['settings']['unary_seconds']:g} s per run; servers interleaved at each level. "
        f"Load average before the section: {fmt_load(unary['load_before'])}.",
        "",
        "| server | concurrency | req/s | p50 ms | p95 ms | p99 ms | server CPU/req | "
        "server cores | ghz cores | others |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = {
        "real-aio": "`cugar-metrics serve` (grpc.aio)",
        "noop-aio": "do-nothing, grpc.aio",
        "noop-threaded": f"do-nothing, thread pool ({res['settings']['threads']})",
        "real-threaded": f"real servicer, thread pool ({res['settings']['threads']})",
    }
    for name, runs in unary["runs"].items():
        for r in runs:
            lines.append(
                f"| {names[name]} | {r['concurrency']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | "
                f"{r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {r.get('server_cpu_us_per_req')} us | "
                f"{r['server_cores']} | {r['client_cores']} | {r['other_cores']}"
                f"{contention_note(r['other_cores'])} |"
            )
    lines += [
        "",
        "| concurrency | real / do-nothing aio | real / do-nothing threaded | "
        "threaded / aio (do-nothing) | threaded / aio (real) | "
        "CPU/req do-nothing / real |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in unary["ratios"]:
        lines.append(
            f"| {r['concurrency']} | {r['real_vs_noop_aio']:.0%} | "
            f"{r['real_vs_noop_threaded']:.0%} | {r['noop_threaded_vs_aio']:.0%} | "
            f"{r['real_threaded_vs_aio']:.0%} | {r['cpu_real_vs_noop_aio']:.0%} |"
        )
    ub = sm["unary_best"]
    ing = unary["real_server_ingest"]
    steady = res.get("unary_steady")
    if steady:
        lines += [
            "",
            f"The same RecordExecution run (concurrency {steady['concurrency']}) against the "
            f"server of section 2 after its batches, with {steady['dedup_entries']:,d} ids "
            "remembered by the dedup index (the steady state of a busy replica; the runs above "
            "start from an empty index):",
            "",
            "| server | concurrency | req/s | p50 ms | p95 ms | p99 ms | server CPU/req | "
            "server cores | ghz cores | others |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| `cugar-metrics serve`, dedup index full | {steady['concurrency']} | "
            f"{steady['rps']:,.0f} | {steady['p50_ms']:.2f} | {steady['p95_ms']:.2f} | "
            f"{steady['p99_ms']:.2f} | {steady.get('server_cpu_us_per_req')} us | "
            f"{steady['server_cores']} | {steady['client_cores']} | {steady['other_cores']}"
            f"{contention_note(steady['other_cores'])} |",
        ]
    lines += [
        "",
        f"Server model: {faster_model(unary['ratios'])}. "
        f"The real server counted {ing['accepted']:,d} accepted, {ing['duplicate']} duplicate, "
        f"{ing['rejected']} rejected for {unary['real_server_ok_responses']:,d} OK responses "
        "(every id unique).",
        "",
        "| figure | value | target | met? |",
        "|---|---:|---:|---|",
        f"| best req/s of `cugar-metrics serve` (concurrency {ub['concurrency']}) | "
        f"{ub['rps']:,.0f} at p99 {ub['p99_ms']:.1f} ms | >= {t['unary_rps']:,} with p99 <= "
        f"{t['unary_p99_ms']:g} ms | {verdict(ub['met'])} |",
        f"| real / do-nothing (grpc.aio) req/s | {sm['noop_ratio_min']:.0%} to "
        f"{sm['noop_ratio_max']:.0%} | >= {t['noop_ratio']:.0%} | "
        f"{verdict(sm['noop_ratio_met'])} |",
        f"| real / do-nothing (grpc.aio) server CPU per request | "
        f"{sm['noop_cpu_ratio_min']:.0%} to {sm['noop_cpu_ratio_max']:.0%} | "
        f">= {t['noop_ratio']:.0%} | {verdict(sm['noop_cpu_ratio_min'] >= t['noop_ratio'])} |",
        f"| requests per second of server CPU, `cugar-metrics serve` (one dedicated core) | "
        f"{sm['unary_per_core']:,d} | | |",
        "",
        "## 2. Batched RecordExecutions",
        "",
        f"Batches of 500 unique executions (the realistic mix: 3 profiles, 6 domains, 3 tool "
        f"calls and an approval each), encoded with the generated stubs, from "
        f"{batches['clients']} client processes with {batches['inflight_per_client']} batches "
        f"in flight each, against `cugar-metrics serve` with its defaults. Load average before "
        f"the section: {fmt_load(batches['load_before'])}.",
        "",
        "| figure | value | target | met? |",
        "|---|---:|---:|---|",
        f"| executions/s over {batches['executions']:,d} executions "
        f"({batches['wall_s']:g} s) | {batches['eps']:,d} | >= {t['batch_eps']:,} | "
        f"{verdict(sm['batch_met'])} |",
        f"| best chunk | {batches['best_chunk_eps']:,d} | | |",
        f"| executions per second of server CPU (one dedicated core) | "
        f"{batches['eps_per_server_core']:,d} | | |",
        f"| server CPU per execution | {batches['server_cpu_us_per_execution']} us | "
        f"<= {1e6 / t['batch_eps']:g} us on one core | |",
        "",
        "| chunk | executions/s | server cores | client cores | others |",
        "|---:|---:|---:|---:|---:|",
    ]
    for i, c in enumerate(batches["chunks"]):
        lines.append(
            f"| {i + 1} | {c['eps']:,d} | {c['server_cores']} | {c['client_cores']} | "
            f"{c['other_cores']}{contention_note(c['other_cores'])} |"
        )
    lines += [
        "",
        "## 3. GetDashboard and /metrics at the full cardinality caps",
        "",
        "Caps filled with 200 executions that touch every capped value (50 profiles, 20 "
        "domains, 200 domain/tool pairs, 100 error types); GetDashboard called serially by ghz "
        "(concurrency 1), /metrics fetched serially over HTTP/1.1. Load average before the "
        f"section: {fmt_load(dash['load_before'])}.",
        "",
    ]
    for key, title in (
        ("after_batches", "`cugar-metrics serve` of section 2"),
        ("aged", f"server with {res['settings']['history'] / 60:.0f} min of history at the caps"),
    ):
        d = dash[key]
        rows = d["rows"]
        lines += [
            f"**{title}**: {rows['executions']:,d} executions; dashboard rows: "
            f"{rows['profiles']} profiles, {rows['domains']} domains, {rows['tools']} tools, "
            f"{rows['error_types']} error types ({rows['response_bytes']:,d} bytes); label "
            f"values kept: {d['metrics']['label_values']}; RSS {mib(d['rss'])} MiB.",
        ]
        if key == "after_batches":
            lines.append(
                f"Uptime {d['uptime_s']} s, so a 1 h window covers the whole uptime "
                "(the same computation as an unset window) and the 1 m window is the "
                "one that subtracts a checkpoint."
            )
        else:
            b = d["backfill"]
            lines.append(
                f"`create_server` with a clock started {b['history_s']:g} s in the past; "
                f"{b['recorded']:,d} executions recorded into its Aggregator every 10 s of "
                f"that history (each batch touches every series at the caps), "
                f"{b['window_slots']} window slots kept; RSS {mib(b['rss_before_backfill'])} "
                f"MiB before the history, {mib(b['rss_after_backfill'])} MiB after."
            )
        lines += [
            "",
            "| request | p50 ms | p99 ms | max ms | target | met? | others |",
            "|---|---:|---:|---:|---:|---|---:|",
        ]
        for w in WINDOWS:
            r = d[f"window_{w}"]
            lines.append(
                f"| GetDashboard window {w} ({r['count']} serial calls, ghz) | "
                f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} | p99 <= "
                f"{t['dashboard_p99_ms']:g} | "
                f"{verdict(r['p99_ms'] <= t['dashboard_p99_ms'])} | {r['other_cores']}"
                f"{contention_note(r['other_cores'])} |"
            )
        m = d["metrics"]
        lines += [
            f"| GET /metrics ({m['requests']} serial, {m['samples']:,d} samples, "
            f"{m['bytes']:,d} bytes) | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | "
            f"{m['max_ms']:.2f} | <= {t['metrics_ms']:g} | "
            f"{verdict(m['p99_ms'] <= t['metrics_ms'])} | {m['other_cores']}"
            f"{contention_note(m['other_cores'])} |",
            "",
        ]
    lines += ["## 4. Resident memory", ""]
    lines += [
        "**`cugar-metrics serve`** (defaults: dedup horizon 10 m, at most 5,000,000 ids), "
        "RSS from /proc/PID/status while recording the batches of section 2:",
        "",
        "| executions recorded | RSS MiB | wall s |",
        "|---:|---:|---:|",
        f"| 0 (started) | {mib(batches['rss_start'])} | |",
    ]
    for p in batches["rss_points"]:
        lines.append(f"| {p['executions']:,d} | {mib(p['rss'])} | {p['wall_s']} |")
    lines += [
        "",
        f"Peak RSS (VmHWM) of the server: {mib(batches['peak_rss'])} MiB. Dedup entries at "
        f"the end: {batches['dedup_entries']:,d}, evicted {batches['dedup_evicted']:,d}.",
    ]
    mem = res.get("memory_driver")
    if mem:
        why = (
            "run in addition because the server did not reach "
            f"{batches['target_executions']:,d} executions within the time budget"
            if not batches["reached_target"]
            else "run in addition"
        )
        lines += [
            "",
            "**In-process Aggregator driver** (`bench/server/memory_driver.py`: the "
            "server's Aggregator with its defaults in a process of its own, "
            f"{mem['total']:,d} unique executions of the same mix in batches of 500, "
            f"no gRPC, no validation), {why}:",
            "",
            "| executions recorded | RSS MiB | dedup entries | evicted | elapsed s |",
            "|---:|---:|---:|---:|---:|",
        ]
        for p in mem["points"]:
            lines.append(
                f"| {p['executions']:,d} | {mib(p['rss'])} | "
                f"{p.get('dedup_entries', 0):,d} | {p.get('dedup_evicted', 0):,d} | "
                f"{p['elapsed_s']} |"
            )
    lines += ["", "| figure | value | target | met? |", "|---|---:|---:|---|"]
    names = {"server": "`cugar-metrics serve`", "driver": "in-process Aggregator driver"}
    for kind, m in sm["memory"].items():
        for which in ("half", "full"):
            value = m[f"rss_{which}_mib"]
            lines.append(
                f"| RSS after {m[which]:,d} executions ({names[kind]}) | "
                f"{'not reached' if value is None else f'{value} MiB'} | <= {t['rss_mib']:g} "
                f"MiB | {verdict(m[f'rss_{which}_met']) if value is not None else 'n/a'} |"
            )
        growth = "n/a" if m["growth"] is None else f"{m['growth']:.1%}"
        lines.append(
            f"| RSS growth from {m['half']:,d} to {m['full']:,d} ({names[kind]}) | {growth} | "
            f"< {t['rss_growth']:.0%} | "
            f"{verdict(m['growth_met']) if m['growth'] is not None else 'n/a'} |"
        )
    aged = dash["aged"]
    lines += [
        f"| RSS of the server with {aged['backfill']['history_s'] / 60:.0f} min of history at "
        f"the caps (section 3) | {sm['aged_rss_mib']} MiB | <= {t['rss_mib']:g} MiB | "
        f"{verdict(sm['aged_rss_mib'] <= t['rss_mib'])} |",
        "",
    ]
    lines += hot_spots(res)
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def settings(args: argparse.Namespace) -> Settings:
    ghz_path = args.ghz or shutil.which("ghz") or str(ROOT / ".tools" / "bin" / "ghz")
    if not Path(ghz_path).exists():
        raise SystemExit(f"ghz not found ({ghz_path}): run `make install` or pass --ghz")
    if args.profile and profiles.py_spy() is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    common = {
        "ghz": ghz_path,
        "threads": args.threads,
        "clients": 2,
        "inflight": 4,
        "profile": args.profile,
    }
    if args.quick:
        out_dir = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="bench-"))
        return Settings(
            quick=True,
            out_dir=out_dir,
            levels=[8],
            unary_seconds=2.0,
            memory_target=200_000,
            memory_chunk=100_000,
            memory_budget=60.0,
            driver_total=200_000,
            dashboard_requests=20,
            metrics_requests=5,
            history=600.0,
            deadline=time.monotonic() + args.max_minutes * 60,
            **common,
        )
    return Settings(
        quick=False,
        out_dir=Path(args.out_dir or BENCH / "results"),
        levels=[int(x) for x in args.levels.split(",")],
        unary_seconds=args.unary_seconds,
        memory_target=10_000_000,
        memory_chunk=500_000,
        memory_budget=args.memory_budget,
        driver_total=10_000_000,
        dashboard_requests=200,
        metrics_requests=30,
        history=3700.0,
        deadline=time.monotonic() + args.max_minutes * 60,
        **common,
    )


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cugar-bench-") as d:
        yield Path(d)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short smoke run (about 1 minute)")
    parser.add_argument(
        "--out-dir",
        help="where server.md/server.json go (default: "
        "bench/results, or a temporary directory with --quick)",
    )
    parser.add_argument("--ghz", help="the ghz binary (default: ghz on PATH)")
    parser.add_argument("--levels", default="8,32,64", help="ghz concurrency levels")
    parser.add_argument("--unary-seconds", type=float, default=10.0)
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=14.5,
        help="the in-process memory driver stops early so the whole run ends by then",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the server with py-spy during extra runs and report its hot spots",
    )
    parser.add_argument(
        "--threads", type=int, default=16, help="thread-pool size of the threaded servers"
    )
    parser.add_argument(
        "--memory-budget",
        type=float,
        default=330.0,
        help="seconds the server may spend recording batches",
    )
    args = parser.parse_args()
    s = settings(args)
    s.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "quick": s.quick,
        "settings": {k: v for k, v in vars(s).items() if k not in ("out_dir", "ghz", "deadline")},
        "targets": TARGETS,
        "load_before": procinfo.loadavg(),
    }
    res["environment"] = procinfo.machine(s.ghz)
    res["background_cores"] = background_load(1.0 if s.quick else 3.0)
    log(
        f"machine: {res['environment']}; load {res['load_before']}; others "
        f"{res['background_cores']} cores"
    )
    with workspace() as workdir:
        try:
            res["unary"] = section_unary(s, workdir)
            res["batches"], batch_server = section_batches(s, workdir)
            try:
                res["unary_steady"] = unary_steady(s, batch_server, workdir)
                res["dashboard"] = section_dashboard(s, batch_server, workdir)
            finally:
                res["batches"]["server_exit_code"] = batch_server.stop()
            if s.quick or not res["batches"]["reached_target"]:
                res["memory_driver"] = memory_driver(s)
        except Exception:
            for f in sorted(workdir.glob("*.log")):
                sys.stderr.write(f"--- {f.name}\n{f.read_text()[-3000:]}\n")
            raise
    res["load_after"] = procinfo.loadavg()
    res["duration_s"] = round(time.perf_counter() - t0, 1)
    res["summary"] = summarize(res)
    text = markdown(res)
    (s.out_dir / "server.json").write_text(json.dumps(res, indent=2) + "\n")
    (s.out_dir / "server.md").write_text(text)
    log(f"wrote {s.out_dir / 'server.md'} and server.json in {res['duration_s']:.0f} s")
    if s.quick:
        print(text)


if __name__ == "__main__":
    main()
