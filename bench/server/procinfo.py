"""Process and machine measurements from /proc: RSS, CPU time, system busy time, the machine."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of a process."""
    return _status_kib(pid, "VmRSS") * 1024


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size (VmHWM) of a process."""
    return _status_kib(pid, "VmHWM") * 1024


def _status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise LookupError(f"{key} not in /proc/{pid}/status")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def busy_seconds() -> float:
    """CPU time spent by the whole machine (every core, every process) since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / _TICK


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


@dataclass
class CpuWindow:
    """CPU used during a measurement: by the server, by the load clients, by everyone else."""

    wall: float
    server: float
    clients: float
    total: float

    @property
    def others(self) -> float:
        return max(0.0, self.total - self.server - self.clients)

    def cores(self, seconds: float) -> float:
        return seconds / self.wall if self.wall > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "wall_s": round(self.wall, 3),
            "server_cores": round(self.cores(self.server), 2),
            "client_cores": round(self.cores(self.clients), 2),
            "other_cores": round(self.cores(self.others), 2),
            "server_cpu_s": round(self.server, 3),
        }


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


def ghz_version(ghz: str) -> str:
    """ghz's version; a `go install` build says `dev`, so read the module version too."""
    said = _first_line([ghz, "--version"])
    module = ""
    go = shutil.which("go")
    if go:
        try:
            info = subprocess.run(
                [go, "version", "-m", ghz], capture_output=True, text=True, timeout=30, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            info = ""
        m = re.search(r"^\s*mod\s+github\.com/bojand/ghz\s+(\S+)", info, re.M)
        module = m.group(1) if m else ""
    if module and said != module:
        return f"{module} (module version; the binary says {said!r})"
    return said or module or "unknown"


def machine(ghz: str) -> dict[str, object]:
    import google.protobuf
    import grpc

    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "ghz": ghz_version(ghz),
    }
