"""Benchmark of the Python client's BatchRecorder against one real server process.

Measures
  1. caller time of BatchRecorder.record() (p50/p99/p99.9/max over >= 100k calls) while the
     background thread sends to a live server;
  2. the same with nobody listening (the agent must not notice the server is down);
  3. sustained executions/s from this process into one server: record as fast as the
     server takes them (the benchmark, not the recorder, waits when the buffer is nearly
     full), until every execution is answered.

Writes bench/results/recorder.md. Usage: .venv/bin/python bench/recorder_bench.py [--calls N]
[--sustained N]. Short by design (a few seconds per phase): the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import __version__ as protobuf_version

from cugar_metrics_client import BatchRecorder, Budget, Client, Execution, ToolCall

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.serverproc import serve_command, wait_for_ready  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "recorder.md"
CALLER_P99_TARGET_US = 10.0
THROUGHPUT_TARGET = 50_000.0


def typical_execution(i: int) -> Execution:
    """An execution of the size agents send: two tool calls, a budget, a few steps."""
    return Execution(
        profile="sales_rep",
        outcome="success",
        duration=3.2 + (i % 7) * 0.1,
        steps=4,
        budget=Budget(spent=1.5, limit=10.0),
        tool_calls=[
            ToolCall("search_accounts", "territory", duration=0.21),
            ToolCall("score_lead", "qualification", duration=0.09),
        ],
    )


@dataclass
class CallerTimes:
    calls: int
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float
    accepted: int
    dropped: int


def percentile(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000.0


def measure_caller_time(target: str, calls: int, max_buffer: int) -> CallerTimes:
    """Time each record() call; executions are built outside the timed region."""
    recorder = BatchRecorder(target, max_buffer=max_buffer, timeout=10.0)
    timings: list[int] = []
    append = timings.append
    clock = time.perf_counter_ns
    record = recorder.record
    for i in range(calls):
        execution = typical_execution(i)
        started = clock()
        record(execution)
        append(clock() - started)
    recorder.close(timeout=60.0)
    stats = recorder.stats()
    timings.sort()
    return CallerTimes(
        calls,
        percentile(timings, 0.50),
        percentile(timings, 0.99),
        percentile(timings, 0.999),
        timings[-1] / 1000.0,
        stats.accepted,
        stats.dropped,
    )


@dataclass
class Throughput:
    executions: int
    seconds: float
    accepted: int
    dropped: int
    batches: int
    client_cpu_us: float
    """CPU time of this process (every thread) per execution."""
    server_cpu_us: float
    """CPU time of the server process per execution."""

    @property
    def per_second(self) -> float:
        return self.accepted / self.seconds


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_throughput(target: str, executions: int, server_pid: int) -> Throughput:
    """Record as fast as the server takes them; stop the clock when all are answered."""
    batch = [typical_execution(i) for i in range(executions)]  # the agents' own work
    recorder = BatchRecorder(target, max_batch=1000, max_buffer=20_000, timeout=30.0)
    server_cpu = process_cpu_seconds(server_pid)
    client_cpu = time.process_time()
    started = time.perf_counter()
    for i, execution in enumerate(batch):
        if i % 500 == 0:
            # Backpressure by the benchmark: the buffer bound counts what is in flight too.
            while (stats := recorder.stats()).buffered + stats.in_flight >= 18_000:
                time.sleep(0.0005)
        recorder.record(execution)
    recorder.flush(timeout=120.0)
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_cpu
    server_cpu = process_cpu_seconds(server_pid) - server_cpu
    recorder.close()
    stats = recorder.stats()
    return Throughput(
        executions,
        seconds,
        stats.accepted,
        stats.dropped,
        stats.batches_sent,
        client_cpu / executions * 1e6,
        server_cpu / executions * 1e6,
    )


def start_server(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    ready, log = workdir / "ready.json", workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            serve_command(ready, "--host", "127.0.0.1", "--no-auth", "--log-level", "WARNING"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, int(wait_for_ready(process, ready, log, 30)["grpc_port"])


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--sustained", type=int, default=100_000)
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        process, port = start_server(Path(tmp))
        target = f"127.0.0.1:{port}"
        try:
            with Client(target) as client:  # warm the server up (imports, first calls)
                client.record_batch([typical_execution(i) for i in range(2000)])
            live = measure_caller_time(target, args.calls, max_buffer=10_000)
            print(f"caller time, live server: {live}", file=sys.stderr)
            sustained = measure_throughput(target, args.sustained, process.pid)
            print(f"sustained: {sustained} -> {sustained.per_second:.0f}/s", file=sys.stderr)
        finally:
            stop_server(process)
    down = measure_caller_time(f"127.0.0.1:{free_port()}", args.calls, max_buffer=10_000)
    print(f"caller time, no server: {down}", file=sys.stderr)

    caller_met = live.p99_us <= CALLER_P99_TARGET_US and down.p99_us <= CALLER_P99_TARGET_US
    throughput_met = sustained.per_second >= THROUGHPUT_TARGET
    lines = [
        "# BatchRecorder benchmark (Python client)",
        "",
        "Produced by `.venv/bin/python bench/recorder_bench.py` "
        f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "## Machine",
        "",
        f"- CPU: {cpu_model()}, nproc {os.cpu_count()}, shared with other work: load average "
        f"{load_before:.2f} before and {os.getloadavg()[0]:.2f} after the run",
        f"- Python {platform.python_version()} ({platform.python_implementation()}), "
        f"grpcio {grpc.__version__}, protobuf {protobuf_version}",
        "- One server process (`cugar-metrics serve`, Python grpc.aio) and this process on the "
        "same host, over loopback TCP",
        "- Execution: profile, outcome, duration, steps, budget and two tool calls "
        "(the dataclass API, converted to protobuf by the recorder's thread)",
        "",
        "## Caller time of `record()`",
        "",
        "Each call timed with `time.perf_counter_ns`; executions built outside the timed "
        "region; default settings (max_batch 500, flush_interval 1 s, max_buffer 10000).",
        "",
        "| server | calls | p50 µs | p99 µs | p99.9 µs | max µs | accepted | dropped |",
        "|---|---|---|---|---|---|---|---|",
        f"| live | {live.calls} | {live.p50_us:.2f} | {live.p99_us:.2f} | {live.p999_us:.2f} | "
        f"{live.max_us:.0f} | {live.accepted} | {live.dropped} |",
        f"| unreachable | {down.calls} | {down.p50_us:.2f} | {down.p99_us:.2f} | "
        f"{down.p999_us:.2f} | {down.max_us:.0f} | {down.accepted} | {down.dropped} |",
        "",
        f"Target p99 ≤ {CALLER_P99_TARGET_US:g} µs: **{verdict(caller_met)}**. "
        "The maximum is the calling thread waiting, for the GIL while the sending thread "
        "converts a batch (CPython hands it over every 5 ms) or for a CPU on this shared "
        "machine, not the call's own work. With the live server the calls arrive faster than one "
        "server process takes them, so the bounded buffer fills and the surplus is dropped "
        "(counted): that is the recorder protecting the agent, not an error.",
        "",
        "## Sustained throughput into one server",
        "",
        f"{sustained.executions} executions, built beforehand, recorded as fast as the server "
        "answered (the benchmark pauses while the buffer holds 18000; max_batch 1000), clock "
        "stopped when the last batch was answered.",
        "",
        "| executions | seconds | accepted | dropped | batches | executions/s | "
        "client CPU µs/execution | server CPU µs/execution |",
        "|---|---|---|---|---|---|---|---|",
        f"| {sustained.executions} | {sustained.seconds:.2f} | {sustained.accepted} | "
        f"{sustained.dropped} | {sustained.batches} | {sustained.per_second:,.0f} | "
        f"{sustained.client_cpu_us:.1f} | {sustained.server_cpu_us:.1f} |",
        "",
        f"Target ≥ {THROUGHPUT_TARGET:,.0f} executions/s: **{verdict(throughput_met)}**. "
        f"The client spends {sustained.client_cpu_us:.1f} µs of CPU per execution "
        "(building the protobuf from the dataclasses, gRPC), a ceiling of "
        f"{1e6 / sustained.client_cpu_us:,.0f}/s on one core; the server spends "
        f"{sustained.server_cpu_us:.1f} µs (validation and aggregation in Python), a "
        f"ceiling of {1e6 / sustained.server_cpu_us:,.0f}/s for one server process. "
        "On this machine both processes share two cores with other work, so the rate is "
        "bounded by their sum. More throughput comes from more server replicas (the "
        "service scales out behind a round-robin Service), not from this client.",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
