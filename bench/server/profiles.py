"""Where a server process spends its time: py-spy samples it while the benchmark sends load
(`--profile`; py-spy is not a project dependency: `pip install py-spy` into the venv). The
profiled runs are extra runs, never the measured ones."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    return shutil.which("py-spy") or next(
        (str(p) for p in [Path(sys.executable).with_name("py-spy")] if p.exists()), None
    )


class Sampler:
    """py-spy attached to a process for `seconds`, collapsed stacks into `out`."""

    def __init__(self, pid: int, seconds: float, out: Path, native: bool = False) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        argv = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ]
        if native:
            argv.append("--native")
        self.out = out
        self.popen = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def result(self, top: int = 14) -> dict[str, Any]:
        _, err = self.popen.communicate(timeout=120)
        if self.popen.returncode != 0 or not self.out.exists():
            raise RuntimeError(f"py-spy failed: {err.decode().strip()[-500:]}")
        return summarize(self.out.read_text(), top)


#: Frames shown in the inclusive list: the server's code and the libraries it calls.
_APP = ("cugar_metrics/", "prometheus_client/", "ddsketch/", "google/protobuf/", "numpy/")
#: Entry points under which everything runs: left out of the inclusive list.
_ENTRY = ("main (", "serve (", "run (")


def _shown(frame: str) -> bool:
    return any(m in frame for m in _APP) and not frame.startswith(_ENTRY)


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py:123)"
    name, _, where = frame.partition(" (")
    if not where:
        return frame
    return f"{name} ({where.rsplit('/', 1)[-1]}"


def summarize(collapsed: str, top: int = 14) -> dict[str, Any]:
    """Self and inclusive shares per function (line numbers folded) from collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        raw = stack.split(";")
        frames = [_fold(_short(f)) for f in raw]
        own[frames[-1]] += n
        for f in {_fold(_short(f)) for f in raw if _shown(f)}:
            inclusive[f] += n
    if not total:
        return {"samples": 0, "self": [], "inclusive": []}

    def rows(c: collections.Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * v / total, 1)] for name, v in c.most_common(top)]

    return {"samples": total, "self": rows(own), "inclusive": rows(inclusive)}


def _fold(frame: str) -> str:
    """Drops the line number, so one function is one row."""
    name, sep, where = frame.partition(" (")
    if not sep:
        return frame
    module = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({module})"
