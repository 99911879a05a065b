"""Availability under faults, against real `cugar-metrics serve` processes; writes
bench/results/faults.md.

    .venv/bin/python bench/faults_bench.py [--seconds 20] [--before DIR]

1. Health/Check latency while eight maximum-size RecordExecutions batches are in flight.
   The batches (1000 valid executions of 535 tool calls each, 15.9 MiB) are sent without
   pause by 8 concurrent callers in a separate process at nice 10 (pre-serialized, a fresh
   id prefix per send, so every batch is validated and aggregated). This process sends one
   Health/Check every 20 ms on its own connection and records each latency. The do-nothing
   baseline is the same checks against the same server with no batch in flight, same run.
2. SIGTERM to exit, with and without one connection that opened TCP and never sent the HTTP/2
   preface, `--shutdown-grace 10s`.

`--before DIR` also measures the server found in DIR (a `server/` directory of an earlier
commit, e.g. from `git archive <commit> server | tar -x -C DIR`), to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import duration_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / ".venv" / "bin" / "cugar-metrics"
BATCHES = 8
TOOL_CALLS = 535  # 1000 executions: 15.9 MiB, just under the 16 MiB message limit


def launch(directory: Path, name: str, source: str | None, *args: str) -> tuple[Any, int]:
    ready = directory / f"{name}.ready.json"
    ready.unlink(missing_ok=True)
    env = dict(os.environ)
    if source:
        env["PYTHONPATH"] = source
    log = open(directory / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        [str(CLI), "serve", "--no-auth", "--host", "127.0.0.1", "--grpc-port", "0",
         "--metrics-port", "0", "--ready-file", str(ready), *args],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            return proc, int(json.loads(ready.read_text())["grpc_port"])
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server {name} did not start")


def stop(proc: Any, timeout: float = 60) -> float:
    """SIGTERM; the seconds until the process exited."""
    t0 = time.monotonic()
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - t0


def batch_bytes() -> bytes:
    from cugar.metrics.v1 import metrics_service_pb2 as pb

    def d(seconds: float) -> duration_pb2.Duration:
        out = duration_pb2.Duration()
        out.FromNanoseconds(round(seconds * 1e9))
        return out

    calls = [
        pb.ToolCall(
            tool=f"tool_{i % 20}",
            domain="territory",
            status=pb.TOOL_CALL_STATUS_SUCCESS,
            duration=d(0.01 * (1 + i % 50)),
        )
        for i in range(TOOL_CALLS)
    ]
    executions = [
        pb.Execution(
            execution_id=f"P000000-{i:06d}",
            profile=f"profile_{i % 5}",
            outcome=pb.OUTCOME_SUCCESS,
            duration=d(1 + i % 30),
            steps=TOOL_CALLS,
            budget=pb.Budget(spent=1, limit=10),
            tool_calls=calls,
        )
        for i in range(1000)
    ]
    return pb.RecordExecutionsRequest(executions=executions).SerializeToString()


def sender(port: int, seconds: float) -> None:
    """The load: BATCHES callers, each sending batches back to back for `seconds`."""
    import asyncio

    # In production the agents are on other machines; here they share the server's two
    # cores, so the load generator runs at a lower priority to take less from the server.
    os.nice(10)
    data = batch_bytes()

    async def run() -> None:
        opts = [
            ("grpc.max_send_message_length", 32 << 20),
            ("grpc.max_receive_message_length", 32 << 20),
        ]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=opts) as channel:
            call = channel.unary_unary("/cugar.metrics.v1.MetricsService/RecordExecutions")
            end = time.monotonic() + seconds
            sent = 0

            async def one(worker: int) -> None:
                nonlocal sent
                n = 0
                while time.monotonic() < end:
                    n += 1
                    prefix = f"P{worker}{n:06d}"[:7].encode()
                    await call(data.replace(b"P000000", prefix), timeout=120)
                    sent += 1

            await asyncio.gather(*(one(w) for w in range(BATCHES)))
            print(json.dumps({"batches": sent, "bytes": len(data)}))

    asyncio.run(run())


def checks(port: int, seconds: float) -> list[float]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        out = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.perf_counter()
            try:
                check(health_pb2.HealthCheckRequest(), timeout=10)
                out.append(time.perf_counter() - t0)
            except grpc.RpcError:
                out.append(float("inf"))
            time.sleep(0.02)
        return out


def quantiles(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)

    def q(p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000

    return {"n": len(xs), "p50": q(0.5), "p99": q(0.99), "max": xs[-1] * 1000}


def health_under_batches(directory: Path, source: str | None, seconds: float) -> dict[str, Any]:
    proc, port = launch(directory, "health", source)
    try:
        baseline = quantiles(checks(port, 5))
        load = subprocess.Popen(
            [sys.executable, __file__, "--sender", str(port), "--seconds", str(seconds + 4)],
            stdout=subprocess.PIPE,
        )
        time.sleep(4)  # every caller has a batch in flight
        loaded = quantiles(checks(port, seconds))
        out, _ = load.communicate(timeout=600)
        sent = json.loads(out.decode().strip().splitlines()[-1])
    finally:
        stop(proc)
    return {"baseline": baseline, "loaded": loaded, **sent}


def sigterm_with_silent_connection(directory: Path, source: str | None) -> dict[str, float]:
    out = {}
    for silent in (False, True):
        proc, port = launch(directory, "drain", source, "--shutdown-grace", "10s")
        sock = None
        if silent:
            sock = socket.create_connection(("127.0.0.1", port))  # and nothing is sent
            time.sleep(0.5)
        out["silent" if silent else "none"] = stop(proc)
        if sock is not None:
            sock.close()
    return out


def machine() -> dict[str, Any]:
    import google.protobuf

    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": f"{len(os.sched_getaffinity(0))} usable x {model}",
        "kernel": platform.release(),
        "versions": f"Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"protobuf {google.protobuf.__version__}",
        "load": "/".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--before", help="a server/ directory of an earlier commit, to compare")
    parser.add_argument("--sender", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "faults.md"))
    a = parser.parse_args()
    if a.sender:
        sender(a.sender, a.seconds)
        return
    load_before = "/".join(f"{x:.2f}" for x in os.getloadavg())
    servers = [("this commit", None)] + ([("before", a.before)] if a.before else [])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, source in servers:
            results[label] = {
                "health": health_under_batches(Path(tmp), source, a.seconds),
                "drain": sigterm_with_silent_connection(Path(tmp), source),
            }
            print(label, json.dumps(results[label]), flush=True)
    m = machine()
    lines = [
        "# Availability under faults",
        "",
        f"`bench/faults_bench.py --seconds {a.seconds:g}` on {m['date']}: {m['cpu']}, kernel "
        f"{m['kernel']}, {m['versions']}; load average at the end {m['load']} (the machine is "
        "shared with other builds, so absolute figures are noisy; the baseline is measured in "
        "the same run). `before` is the server of the commit before the change.",
        "",
        "## Health/Check latency with eight maximum-size batches in flight",
        "",
        f"8 callers (one process at nice 10) send RecordExecutions batches of 1000 executions "
        f"x {TOOL_CALLS} tool calls back to back; one Health/Check every 20 ms on another "
        "connection, 10 s timeout (a check that timed out counts as infinite). Load average "
        f"before the run {load_before}.",
        "",
        "| server | checks | baseline p50 ms | baseline p99 ms | loaded p50 ms | loaded p99 ms "
        "| loaded max ms | batches done | batch MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in results.items():
        h = r["health"]
        b, lo = h["baseline"], h["loaded"]
        lines.append(
            f"| {label} | {lo['n']} | {b['p50']:.1f} | {b['p99']:.1f} | {lo['p50']:.1f} | "
            f"{lo['p99']:.1f} | {lo['max']:.1f} | {h['batches']} | {h['bytes'] / 2**20:.1f} |"
        )
    lines += [
        "",
        "## SIGTERM to exit with a connection that never sent the HTTP/2 preface",
        "",
        "`--shutdown-grace 10s`; seconds from SIGTERM until the process exited.",
        "",
        "| server | no extra connection | one silent connection |",
        "|---|---:|---:|",
    ]
    for label, r in results.items():
        d = r["drain"]
        lines.append(f"| {label} | {d['none']:.2f} | {d['silent']:.2f} |")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
