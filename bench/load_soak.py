"""Load and soak benchmark of `cugar-metrics serve`. `make load` and `make soak` run it from the
repository root; results go to bench/results/{load,soak}.{md,json}.

    .venv/bin/python bench/load_soak.py load             10, 50 and 100 concurrent agents, then
                                                         the same level with and without API
                                                         keys + TLS (a few minutes)
    .venv/bin/python bench/load_soak.py soak             30 minutes at half the maximum
                                                         throughput of the last `load` run
    .venv/bin/python bench/load_soak.py soak --minutes 2 a short check (results in a temporary
                                                         directory unless --out is given)

The agents are ghz workers: each simulated agent is one ghz worker on its own HTTP/2
connection, sending RecordExecution (a realistic execution: 3 tool calls, an approval, a
budget, a unique execution_id) in a loop with no think time, or paced to a total rate in the
soak. ghz (Go) was chosen over a Python asyncio client because it is not held to one core by
a GIL, its latencies are not inflated by a saturated Python event loop's own queueing, and it
paces a total rate (`--rps`) for the soak. It is not free: rendering the templated request per
call costs it about 0.6 ms of CPU per request here, a little more than a grpc.aio client
(about 0.45 ms); the `ghz cores` column shows it. Each run also records the CPU used by the
server and by every other process, and the load average before and after, since the machine
may be shared.

The servers are real processes started with their defaults; the secured one has an API keys
file (`cugar-metrics keys create`, role recorder) and a TLS certificate from a CA generated for
the run, and ghz sends `authorization: Bearer <key>` and verifies the certificate. To show
where the overhead goes, each round also runs a server with only the keys file and one with
only TLS (`--no-breakdown` skips them).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import ipaddress
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server import procinfo, workload

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.append(str(ROOT))  # after bench/: its `server` package
from tests.support.serverproc import CLI, serve_command, stop_process, wait_for_ready  # noqa: E402

RESULTS = BENCH / "results"
PROTO = "cugar/metrics/v1/metrics_service.proto"
CALL = "cugar.metrics.v1.MetricsService/RecordExecution"

TARGETS = {"overhead_ratio": 0.90, "rss_growth": 0.05}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def uptime() -> str:
    """`uptime` as printed (time, up, users, load averages)."""
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    return out or "load average: {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# --- the server ----------------------------------------------------------------------------


@dataclass
class Security:
    """API key and TLS material for a secured server and its clients."""

    keys_file: Path
    key: str
    ca: Path
    cert: Path
    private_key: Path


@dataclass
class Server:
    name: str
    popen: subprocess.Popen[bytes]
    grpc_port: int
    metrics_port: int
    security: Security | None
    log: Path
    #: plain (the defaults), secured (API keys and TLS), auth (keys only) or tls (TLS only)
    kind: str = "plain"

    @property
    def auth(self) -> bool:
        return self.kind in ("secured", "auth")

    @property
    def tls(self) -> bool:
        return self.kind in ("secured", "tls")

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def stop(self) -> int:
        return stop_process(self.popen, timeout=30)

    def ingest(self) -> dict[str, float]:
        """cugar_ingest_executions_total by result, and cugar_dedup_entries."""
        conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=30)
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"GET /metrics answered {response.status}")
        out: dict[str, float] = {}
        for m in re.finditer(
            r'^cugar_ingest_executions_total\{result="(\w+)"\} (\S+)$', text, re.M
        ):
            out[m.group(1)] = float(m.group(2))
        m = re.search(r"^cugar_dedup_entries (\S+)$", text, re.M)
        out["dedup_entries"] = float(m.group(1)) if m else 0.0
        return out


def start_server(
    workdir: Path, name: str, security: Security | None, kind: str = "plain"
) -> Server:
    ready = workdir / f"{name}.ready.json"
    log_path = workdir / f"{name}.log"
    ready.unlink(missing_ok=True)
    argv = serve_command(ready, "--host", "127.0.0.1", "--replica", name, "--log-level", "WARNING")
    if security and kind in ("secured", "auth"):
        argv += ["--auth-keys-file", str(security.keys_file), "--metrics-open"]
    else:
        argv += ["--no-auth"]
    if security and kind in ("secured", "tls"):
        argv += ["--tls-cert", str(security.cert), "--tls-key", str(security.private_key)]
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    info = wait_for_ready(popen, ready, log_path, 60, name)
    grpc_port, metrics_port = int(info["grpc_port"]), int(info["metrics_port"])
    return Server(name, popen, grpc_port, metrics_port, security, log_path, kind)


@contextlib.contextmanager
def running(
    workdir: Path, name: str, security: Security | None = None, kind: str = "plain"
) -> Iterator[Server]:
    server = start_server(workdir, name, security, kind)
    try:
        yield server
    finally:
        code = server.stop()
        if code != 0:
            log(f"warning: {name} exited with {code}: see {server.log}")


def make_security(workdir: Path) -> Security:
    """A recorder key in a fresh keys file, a CA and a server certificate for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    keys_file = workdir / "keys"
    created = subprocess.run(
        [
            str(CLI),
            "keys",
            "create",
            "--file",
            str(keys_file),
            "--name",
            "bench",
            "--role",
            "recorder",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip()

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=2))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("bench CA"))
        .issuer_name(name("bench CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca = workdir / "ca.crt"
    cert = workdir / "server.crt"
    private_key = workdir / "server.key"
    ca.write_bytes(ca_cert.public_bytes(pem))
    cert.write_bytes(leaf.public_bytes(pem))
    private_key.write_bytes(
        leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private_key.chmod(0o600)
    return Security(keys_file, key, ca, cert, private_key)


# --- ghz -----------------------------------------------------------------------------------


def find_ghz() -> str:
    local = ROOT / ".tools" / "bin" / "ghz"
    found = str(local) if local.exists() else shutil.which("ghz")
    if not found:
        raise SystemExit("ghz not found: run 'make install'")
    return found


def protoset(workdir: Path) -> Path:
    """The contract compiled to a descriptor set with its imports (no reflection per run)."""
    out = workdir / "metrics_service.protoset"
    if not out.exists():
        from importlib.resources import files

        from grpc_tools import protoc

        args = [
            "protoc",
            "--include_imports",
            f"--descriptor_set_out={out}",
            f"-I{ROOT / 'protos'}",
            f"-I{files('grpc_tools') / '_proto'}",
            str(ROOT / "protos" / PROTO),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc could not compile " + PROTO)
    return out


class RssSampler:
    """Samples a process's RSS every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self.t0 = time.monotonic()
        self.samples: list[tuple[float, int, float]] = []  # (seconds, rss bytes, load1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError, LookupError):
                self.samples.append(
                    (
                        round(time.monotonic() - self.t0, 1),
                        procinfo.rss_bytes(self.pid),
                        load1(),
                    )
                )
            if self._stop.wait(self.interval):
                return

    @property
    def peak(self) -> int:
        return max((s[1] for s in self.samples), default=0)


@dataclass
class Run:
    """One ghz run against one server."""

    ghz: str
    workdir: Path
    server: Server
    concurrency: int
    seconds: float
    rps: float | None = None
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def argv(self, data_file: Path, out: Path) -> list[str]:
        argv = [
            self.ghz,
            "--protoset",
            str(protoset(self.workdir)),
            "--call",
            CALL,
            "--data-file",
            str(data_file),
            "--concurrency",
            str(self.concurrency),
            "--connections",
            str(self.concurrency),
            "--timeout",
            "20s",
            "--duration",
            f"{self.seconds:g}s",
            "--duration-stop",
            "wait",
            "--format",
            "json",
            "--output",
            str(out),
        ]
        sec = self.server.security
        if sec and self.server.tls:
            argv += ["--cacert", str(sec.ca), "--cname", "localhost"]
        else:
            argv.append("--insecure")
        if sec and self.server.auth:
            argv += ["--metadata", json.dumps({"authorization": f"Bearer {sec.key}"})]
        if self.rps:
            argv += ["--rps", str(round(self.rps))]
        return [*argv, self.server.target]

    def execute(self) -> dict[str, Any]:
        prefix = f"{self.label or 'run'}-{uuid.uuid4().hex[:10]}"
        data_file = self.workdir / "ghz-data.json"
        out = self.workdir / "ghz.json"
        data_file.write_text(workload.unary_json(prefix))
        out.unlink(missing_ok=True)
        before_uptime = uptime()
        ingest0 = self.server.ingest()
        busy0 = procinfo.busy_seconds()
        server0 = procinfo.cpu_seconds(self.server.pid)
        t0 = time.perf_counter()
        with RssSampler(self.server.pid, 1.0) as rss:
            popen = subprocess.Popen(
                self.argv(data_file, out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            _, status, usage = os.wait4(popen.pid, 0)
        wall = time.perf_counter() - t0
        popen.returncode = os.waitstatus_to_exitcode(status)
        stderr = popen.stderr.read().decode() if popen.stderr else ""
        if popen.returncode != 0:
            raise RuntimeError(f"ghz failed ({popen.returncode}): {stderr.strip()}")
        server_cpu = procinfo.cpu_seconds(self.server.pid) - server0
        client_cpu = usage.ru_utime + usage.ru_stime
        total_cpu = procinfo.busy_seconds() - busy0
        ingest1 = self.server.ingest()
        report = json.loads(out.read_text())
        lat = {
            int(p["percentage"]): p["latency"] / 1e6 for p in report["latencyDistribution"] or []
        }
        codes = report.get("statusCodeDistribution") or {}
        count = int(report["count"])
        ok = int(codes.get("OK", 0))
        accepted = int(ingest1.get("accepted", 0) - ingest0.get("accepted", 0))
        return {
            "label": self.label,
            "server": self.server.kind,
            "agents": self.concurrency,
            "target_rps": round(self.rps) if self.rps else None,
            "seconds": self.seconds,
            "count": count,
            "ok": ok,
            "errors": count - ok,
            "error_kinds": report.get("errorDistribution") or {},
            "accepted_by_server": accepted,
            "rps": round(report["rps"], 1),
            "p50_ms": round(lat.get(50, 0.0), 3),
            "p95_ms": round(lat.get(95, 0.0), 3),
            "p99_ms": round(lat.get(99, 0.0), 3),
            "max_ms": round(report["slowest"] / 1e6, 3),
            "server_cores": round(server_cpu / wall, 2),
            "server_cpu_us_per_req": round(server_cpu / ok * 1e6, 1) if ok else None,
            "ghz_cores": round(client_cpu / wall, 2),
            "other_cores": round(max(0.0, total_cpu - server_cpu - client_cpu) / wall, 2),
            "rss_end_mib": round(procinfo.rss_bytes(self.server.pid) / 2**20, 1),
            "rss_peak_mib": round(rss.peak / 2**20, 1),
            "dedup_entries": int(ingest1.get("dedup_entries", 0)),
            "uptime_before": before_uptime,
            "uptime_after": uptime(),
            **self.extra,
        }


def describe(r: dict[str, Any]) -> str:
    return (
        f"{r['label']}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} p95 {r['p95_ms']:.2f} "
        f"p99 {r['p99_ms']:.2f} ms errors {r['errors']} server {r['server_cores']} cores "
        f"ghz {r['ghz_cores']} others {r['other_cores']} RSS {r['rss_end_mib']} MiB "
        f"load1 {load1()}"
    )


# --- load ----------------------------------------------------------------------------------


def run_load(args: argparse.Namespace, out_dir: Path) -> None:
    ghz = find_ghz()
    started = uptime()
    log(f"load: {started}")
    result: dict[str, Any] = {"machine": procinfo.machine(ghz), "uptime_before": started}
    result["settings"] = {
        "levels": args.levels,
        "seconds": args.seconds,
        "warmup_seconds": args.warmup,
        "overhead_agents": args.overhead_agents,
        "overhead_seconds": args.overhead_seconds,
        "overhead_repeats": args.repeats,
        "overhead_breakdown": args.breakdown,
    }
    with tempfile.TemporaryDirectory(prefix="cugar-load-") as tmp:
        work = Path(tmp)
        levels = []
        with running(work, "plain") as plain:
            Run(ghz, work, plain, 10, args.warmup, label="warmup").execute()
            for n in args.levels:
                r = Run(ghz, work, plain, n, args.seconds, label=f"agents-{n}").execute()
                log(describe(r))
                levels.append(r)
        result["levels"] = levels

        security = make_security(work)
        pairs = []
        n = args.overhead_agents
        kinds = ["plain", "secured"] + (["auth", "tls"] if args.breakdown else [])
        with contextlib.ExitStack() as stack:
            servers = [stack.enter_context(running(work, k, security, k)) for k in kinds]
            for server in servers:
                Run(ghz, work, server, n, args.warmup, label="warmup").execute()
            for i in range(args.repeats):
                # Plain and secured back to back, their order alternating; then the parts.
                order = servers[:2] if i % 2 == 0 else servers[1::-1]
                order += servers[2:] if i % 2 == 0 else servers[:1:-1]
                pair: dict[str, Any] = {"order": [s.kind for s in order]}
                for server in order:
                    r = Run(
                        ghz, work, server, n, args.overhead_seconds, label=f"{server.kind}-{i + 1}"
                    ).execute()
                    log(describe(r))
                    pair[server.kind] = r
                plain = pair["plain"]
                for k in kinds[1:]:
                    suffix = "" if k == "secured" else f"_{k}"
                    pair[f"ratio{suffix}"] = round(pair[k]["rps"] / plain["rps"], 3)
                    pair[f"server_cpu_ratio{suffix}"] = round(
                        plain["server_cpu_us_per_req"] / pair[k]["server_cpu_us_per_req"], 3
                    )
                pairs.append(pair)
        result["overhead"] = {
            "agents": n,
            "pairs": pairs,
            "median_ratio": statistics.median(p["ratio"] for p in pairs),
            "median_server_cpu_ratio": statistics.median(p["server_cpu_ratio"] for p in pairs),
        }
        for k in kinds[2:]:
            result["overhead"][f"median_ratio_{k}"] = statistics.median(
                p[f"ratio_{k}"] for p in pairs
            )
            result["overhead"][f"median_server_cpu_ratio_{k}"] = statistics.median(
                p[f"server_cpu_ratio_{k}"] for p in pairs
            )
    best = max(levels, key=lambda r: r["rps"])
    result["max_rps"] = best["rps"]
    result["max_rps_agents"] = best["agents"]
    result["uptime_after"] = uptime()
    log(f"load: {result['uptime_after']}")
    (out_dir / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "load.md").write_text(load_markdown(result))
    log(f"wrote {out_dir / 'load.md'} and load.json")


def machine_md(m: dict[str, Any]) -> list[str]:
    return [
        f"- CPU: {m['cpu_model']}, nproc {m['nproc']} ({m['cpus_usable']} usable), "
        f"{m['memory_gib']} GiB, Linux {m['kernel']}",
        f"- Python {m['python']}, grpcio {m['grpcio']}, protobuf {m['protobuf']}, ghz {m['ghz']}",
        "- Server and ghz on the same host over loopback TCP; the machine is shared with other "
        "work (see the load averages and the `others` column: cores busy with other processes)",
        "- The load average counts the benchmark's own threads too: the server and ghz alone "
        "keep the 1-minute figure near 3 to 4 during a run; `others` is the CPU of everyone "
        "else",
    ]


def load_markdown(r: dict[str, Any]) -> str:
    s = r["settings"]
    ov = r["overhead"]
    lines = [
        "# Load benchmark (`make load`)",
        "",
        f"Produced by `.venv/bin/python bench/load_soak.py load` on {r['machine']['date']}.",
        "",
        "## Machine",
        "",
        *machine_md(r["machine"]),
        f"- Before: `{r['uptime_before']}`",
        f"- After: `{r['uptime_after']}`",
        "",
        "## Concurrent agents",
        "",
        "Each agent is a ghz worker on its own connection sending RecordExecution (3 tool "
        "calls, an approval, a budget, a unique execution_id) with no think time, for "
        f"{s['seconds']:g} s per level, after a {s['warmup_seconds']:g} s warm-up, against one "
        "`cugar-metrics serve` process with its defaults (no auth, no TLS). `accepted` is the "
        'server\'s own count (cugar_ingest_executions_total{result="accepted"}); `cores` '
        "columns are CPU cores used during the level by the server, by ghz and by other "
        "processes.",
        "",
        "| agents | req/s | p50 ms | p95 ms | p99 ms | max ms | requests | errors | accepted "
        "| server cores | server CPU µs/req | ghz cores | others cores | RSS MiB (peak) "
        "| load before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["levels"]:
        lines.append(
            f"| {x['agents']} | {x['rps']:,.0f} | {x['p50_ms']:.2f} | {x['p95_ms']:.2f} "
            f"| {x['p99_ms']:.2f} | {x['max_ms']:.1f} | {x['count']:,} | {x['errors']} "
            f"| {x['accepted_by_server']:,} | {x['server_cores']} | {x['server_cpu_us_per_req']} "
            f"| {x['ghz_cores']} | {x['other_cores']} | {x['rss_end_mib']} ({x['rss_peak_mib']}) "
            f"| {_load(x['uptime_before'])} → {_load(x['uptime_after'])} |"
        )
    runs = r["levels"] + [p[k] for p in ov["pairs"] for k in p["order"]]
    others = [x["other_cores"] for x in runs]
    server = [x["server_cores"] for x in runs]
    lines += [
        "",
        f"Maximum throughput: **{r['max_rps']:,.0f} req/s** ({r['max_rps_agents']} agents); "
        f"the soak runs at half of it.",
        "",
        f"Reading these figures: across all runs of this page other processes used "
        f"{min(others)} to {max(others)} of the {r['machine']['nproc']} cores and the server "
        f"{min(server)} to {max(server)} cores (one Python process: at most about one core). "
        "Throughput and latency are bounded by the CPU left to the server; the server's CPU "
        "per request is the figure least affected by other work.",
        "",
        "## API keys + TLS overhead",
        "",
        f"{ov['agents']} agents, {s['overhead_seconds']:g} s per run, against two servers "
        "started side by side: one with the defaults, one with `--auth-keys-file` (a recorder "
        "key; ghz sends `authorization: Bearer <key>`) and `--tls-cert/--tls-key` (ghz "
        "verifies the certificate against the run's CA). Runs back to back, in alternating "
        "order, after a warm-up of each.",
        "",
        "| pair | order | plain req/s | secured req/s | secured/plain | plain p99 ms "
        "| secured p99 ms | plain CPU µs/req | secured CPU µs/req | errors | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, p in enumerate(ov["pairs"], 1):
        a, b = p["plain"], p["secured"]
        lines.append(
            f"| {i} | {' then '.join(p['order'])} | {a['rps']:,.0f} | {b['rps']:,.0f} "
            f"| {p['ratio']:.3f} | {a['p99_ms']:.2f} | {b['p99_ms']:.2f} "
            f"| {a['server_cpu_us_per_req']} | {b['server_cpu_us_per_req']} "
            f"| {a['errors'] + b['errors']} | {_load(p[p['order'][0]]['uptime_before'])} → "
            f"{_load(p[p['order'][1]]['uptime_after'])} |"
        )
    plains = [p["plain"]["rps"] for p in ov["pairs"]]
    plain_cpu = [p["plain"]["server_cpu_us_per_req"] for p in ov["pairs"]]
    ratio = ov["median_ratio"]
    met = "met" if ratio >= TARGETS["overhead_ratio"] else "NOT met"
    lines += [
        "",
        f"Median throughput ratio secured/plain: **{ratio:.3f}** (overhead "
        f"{(1 - ratio) * 100:.1f} %). Target ≥ {TARGETS['overhead_ratio']:.2f} (overhead ≤ 10 %): "
        f"**{met}**. Median server CPU per request, plain/secured: "
        f"{ov['median_server_cpu_ratio']:.3f} (the same comparison by the server's own CPU "
        "cost, less sensitive to other work on the machine).",
        "",
        f"For scale: the plain server alone gave {min(plains):,.0f} to {max(plains):,.0f} "
        f"req/s over these rounds ({(max(plains) / min(plains) - 1) * 100:.0f} % apart) and "
        f"{min(plain_cpu)} to {max(plain_cpu)} µs of CPU per request; a difference smaller "
        "than that spread is not a measured overhead.",
        "",
    ]
    if "median_ratio_auth" in ov:
        lines += [
            "Where it goes: in the same rounds, right after each pair, a server with only the "
            "keys file (ghz sends the key over plaintext) and one with only TLS (no key).",
            "",
            "| round | keys only req/s | keys only/plain | keys only CPU µs/req | TLS only req/s "
            "| TLS only/plain | TLS only CPU µs/req |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, p in enumerate(ov["pairs"], 1):
            a, t = p["auth"], p["tls"]
            lines.append(
                f"| {i} | {a['rps']:,.0f} | {p['ratio_auth']:.3f} | {a['server_cpu_us_per_req']} "
                f"| {t['rps']:,.0f} | {p['ratio_tls']:.3f} | {t['server_cpu_us_per_req']} |"
            )
        lines += [
            "",
            f"Median throughput ratio to plain: keys only {ov['median_ratio_auth']:.3f}, TLS "
            f"only {ov['median_ratio_tls']:.3f}; median server CPU per request, plain/keys "
            f"only {ov['median_server_cpu_ratio_auth']:.3f}, plain/TLS only "
            f"{ov['median_server_cpu_ratio_tls']:.3f}.",
            "",
        ]
    return "\n".join(lines)


def _load(text: str) -> str:
    m = re.search(r"load averages?:\s*([\d.]+)", text)
    return m.group(1) if m else "?"


# --- soak ----------------------------------------------------------------------------------


def wait_for_quiet(threshold: float, hold: float, start_by: str | None) -> str:
    """Waits until the 1-minute load average has stayed below `threshold` for `hold` seconds,
    or until the local time `start_by` (HH:MM); says which."""
    deadline = None
    if start_by:
        hh, mm = (int(v) for v in start_by.split(":"))
        now = datetime.datetime.now()
        deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if deadline < now - datetime.timedelta(hours=12):
            deadline += datetime.timedelta(days=1)
    log(f"waiting for the 1-minute load average to stay below {threshold} for {hold:g} s")
    quiet_since: float | None = None
    while True:
        if os.getloadavg()[0] < threshold:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= hold:
                return (
                    f"started once the 1-minute load average had been below {threshold} "
                    f"for {hold:g} s"
                )
        else:
            quiet_since = None
        if deadline and datetime.datetime.now() >= deadline:
            return (
                f"started at the {start_by} deadline: the 1-minute load average had not stayed "
                f"below {threshold} for {hold:g} s"
            )
        time.sleep(2)


def run_soak(args: argparse.Namespace, out_dir: Path) -> None:
    ghz = find_ghz()
    start_reason = args.start_note or "started at once"
    if args.quiet_below:
        start_reason = wait_for_quiet(args.quiet_below, 60, args.start_by)
    rps = args.rps
    source = "--rps"
    if rps is None:
        load_json = RESULTS / "load.json"
        if not load_json.exists():
            raise SystemExit("no bench/results/load.json: run 'make load' first or give --rps")
        max_rps = float(json.loads(load_json.read_text())["max_rps"])
        rps = max_rps / 2
        source = f"half of {max_rps:,.0f} req/s, the maximum in bench/results/load.json"
    started = uptime()
    log(f"soak: {args.minutes} min at {rps:.0f} req/s ({source}); {started}")
    result: dict[str, Any] = {
        "machine": procinfo.machine(ghz),
        "uptime_before": started,
        "settings": {
            "minutes": args.minutes,
            "rps": round(rps),
            "rps_source": source,
            "agents": args.agents,
            "start": start_reason,
        },
    }
    minutes = []
    with tempfile.TemporaryDirectory(prefix="cugar-soak-") as tmp:
        work = Path(tmp)
        with running(work, "soak") as server, RssSampler(server.pid, 10.0) as rss:
            for minute in range(1, args.minutes + 1):
                r = Run(ghz, work, server, args.agents, 60, rps, label=f"minute-{minute}")
                m = r.execute()
                m["minute"] = minute
                m["t_end_s"] = round(time.monotonic() - rss.t0, 1)
                minutes.append(m)
                log(describe(m))
            result["rss_samples"] = [
                {"t_s": t, "rss_mib": round(b / 2**20, 2), "load1": la} for t, b, la in rss.samples
            ]
    result["minutes"] = minutes
    result["uptime_after"] = uptime()
    result["summary"] = soak_summary(result)
    log(f"soak: {result['uptime_after']}")
    (out_dir / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "soak.md").write_text(soak_markdown(result))
    log(f"wrote {out_dir / 'soak.md'} and soak.json")


def _rss_at(samples: list[dict[str, Any]], t: float) -> float:
    """The RSS sample nearest to `t` seconds."""
    return float(min(samples, key=lambda s: abs(s["t_s"] - t))["rss_mib"])


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def soak_summary(r: dict[str, Any]) -> dict[str, Any]:
    minutes = r["minutes"]
    samples = r["rss_samples"]
    n = len(minutes)
    mid = max(1, round(n / 2))
    t_of = {m["minute"]: m["t_end_s"] for m in minutes}
    rss1, rss_mid, rss_end = _rss_at(samples, t_of[1]), _rss_at(samples, t_of[mid]), 0.0
    rss_end = _rss_at(samples, t_of[n])
    k = min(5, max(1, n // 2))
    p99 = [m["p99_ms"] for m in minutes]
    first, last = statistics.median(p99[:k]), statistics.median(p99[-k:])
    loads = [s["load1"] for s in samples]
    return {
        "rss_mib": {"minute_1": rss1, f"minute_{mid}": rss_mid, f"minute_{n}": rss_end},
        "rss_growth": round((rss_end - rss1) / rss1, 4),
        "rss_growth_second_half": round((rss_end - rss_mid) / rss_mid, 4),
        "rss_max_mib": max(s["rss_mib"] for s in samples),
        "p99_first_median_ms": first,
        "p99_last_median_ms": last,
        "p99_window_minutes": k,
        "p99_slope_ms_per_min": round(_slope([float(m["minute"]) for m in minutes], p99), 4),
        "rps_median": statistics.median(m["rps"] for m in minutes),
        "requests": sum(m["count"] for m in minutes),
        "errors": sum(m["errors"] for m in minutes),
        "accepted_by_server": sum(m["accepted_by_server"] for m in minutes),
        "dedup_entries_end": minutes[-1]["dedup_entries"],
        "load1_min": min(loads),
        "load1_median": statistics.median(loads),
        "load1_max": max(loads),
    }


def soak_markdown(r: dict[str, Any]) -> str:
    s, x = r["settings"], r["summary"]
    n = len(r["minutes"])
    mid = max(1, round(n / 2))
    growth_ok = x["rss_growth"] < TARGETS["rss_growth"]
    lines = [
        "# Soak benchmark (`make soak`)",
        "",
        f"Produced by `.venv/bin/python bench/load_soak.py soak --minutes {s['minutes']}` on "
        f"{r['machine']['date']}.",
        "",
        "## Machine",
        "",
        *machine_md(r["machine"]),
        f"- Before: `{r['uptime_before']}`",
        f"- After: `{r['uptime_after']}`",
        f"- 1-minute load average during the run (every 10 s): min {x['load1_min']}, median "
        f"{x['load1_median']}, max {x['load1_max']}",
        f"- Start: {s['start']}",
        "",
        "## Run",
        "",
        f"{s['minutes']} minutes at {s['rps']:,} req/s ({s['rps_source']}), {s['agents']} "
        "agents (ghz workers, one connection each, paced to the total rate by ghz `--rps`), "
        "RecordExecution with a unique execution_id each, against one `cugar-metrics serve` "
        "with its defaults (dedup horizon 10 min). One ghz run per minute; RSS of the server "
        "sampled every 10 s.",
        "",
        f"- Requests: {x['requests']:,}, errors: {x['errors']}, accepted by the server: "
        f"{x['accepted_by_server']:,}; median rate {x['rps_median']:,.0f} req/s",
        f"- RSS: minute 1 {x['rss_mib']['minute_1']} MiB, minute {mid} "
        f"{x['rss_mib'][f'minute_{mid}']} MiB, minute {n} {x['rss_mib'][f'minute_{n}']} MiB, "
        f"max {x['rss_max_mib']} MiB",
        f"- RSS growth minute 1 → {n}: **{x['rss_growth'] * 100:+.2f} %** (target < 5 %: "
        f"**{'met' if growth_ok else 'NOT met'}**); minute {mid} → {n}: "
        f"{x['rss_growth_second_half'] * 100:+.2f} %. Ids remembered for dedup at the end: "
        f"{x['dedup_entries_end']:,} (8 bytes each once sealed; the index fills for the first "
        "10 minutes, the horizon, then stays level).",
        f"- p99: median of the first {x['p99_window_minutes']} minutes "
        f"{x['p99_first_median_ms']:.2f} ms, of the last {x['p99_window_minutes']} "
        f"{x['p99_last_median_ms']:.2f} ms; least-squares trend "
        f"{x['p99_slope_ms_per_min']:+.4f} ms per minute",
        "",
        "## Per minute",
        "",
        "| minute | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | server cores "
        "| ghz cores | others cores | RSS MiB | dedup ids | load1 after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in r["minutes"]:
        lines.append(
            f"| {m['minute']} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p95_ms']:.2f} "
            f"| {m['p99_ms']:.2f} | {m['max_ms']:.1f} | {m['errors']} | {m['server_cores']} "
            f"| {m['ghz_cores']} | {m['other_cores']} | {m['rss_end_mib']} "
            f"| {m['dedup_entries']:,} | {_load(m['uptime_after'])} |"
        )
    lines.append("")
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="concurrency levels and the API keys + TLS overhead")
    load.add_argument("--levels", default="10,50,100", help="agents per level (comma-separated)")
    load.add_argument("--seconds", type=float, default=30, help="length of each level")
    load.add_argument("--warmup", type=float, default=5, help="warm-up before measuring")
    load.add_argument("--overhead-agents", type=int, default=50)
    load.add_argument("--overhead-seconds", type=float, default=20)
    load.add_argument("--repeats", type=int, default=3, help="plain/secured pairs")
    load.add_argument(
        "--no-breakdown",
        dest="breakdown",
        action="store_false",
        help="skip the keys-only and TLS-only servers of the overhead section",
    )
    load.add_argument("--out", type=Path, help="results directory (default bench/results)")
    soak = sub.add_parser("soak", help="a long run at half the maximum throughput")
    soak.add_argument("--minutes", type=int, default=30)
    soak.add_argument("--rps", type=float, help="total rate (default: half of load.json's max)")
    soak.add_argument("--agents", type=int, default=50)
    soak.add_argument(
        "--quiet-below",
        type=float,
        help="first wait until the 1-minute load average stays below this for a minute",
    )
    soak.add_argument("--start-by", help="HH:MM local time: stop waiting then")
    soak.add_argument("--start-note", help="how the start was chosen, for the results")
    soak.add_argument(
        "--out", type=Path, help="results directory (default bench/results for a full run)"
    )
    args = parser.parse_args()
    short = (args.command == "soak" and args.minutes < 30) or (
        args.command == "load" and args.seconds < 30
    )
    out_dir: Path = args.out or (
        Path(tempfile.mkdtemp(prefix="cugar-bench-")) if short else RESULTS
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "load":
        args.levels = [int(v) for v in args.levels.split(",")]
        run_load(args, out_dir)
    else:
        if args.minutes < 1:
            parser.error("--minutes must be at least 1")
        run_soak(args, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
