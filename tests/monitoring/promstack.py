"""Helpers for the monitoring tests: real server replicas and a real Prometheus.

Replicas are `cugar-metrics serve` processes on free ports, read from their ready files;
Prometheus is Debian's /usr/bin/prometheus on a free loopback port with a temporary data
directory, scraping and evaluating every second. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.serverproc import ServerProcess, launch

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "monitoring" / "prometheus" / "rules"
PROMETHEUS = "/usr/bin/prometheus"
SCRAPE = 1.0  # seconds, scrape and rule evaluation interval of the test Prometheus
ALERT_FOR = "2s"


def free_port() -> int:
    """A port the kernel picks (for Prometheus, which cannot report a port 0 binding)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25
) -> Any:
    """Polls `check` until it returns a truthy value; fails with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def start_replica(tmp: Path, name: str, env: dict[str, str] | None = None) -> ServerProcess:
    return launch(tmp, name=name, env=env)


def shortened_rules(dest: Path) -> list[Path]:
    """A copy of the project's rule files with every alert's `for:` shortened."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        original = path.read_text()
        text, n = re.subn(
            r"^(\s+)for: \S+$", r"\g<1>for: " + ALERT_FOR, original, flags=re.MULTILINE
        )
        assert n == original.count("- alert: "), f"{path}: every alert needs a `for:`"
        target = dest / path.name
        target.write_text(text)
        out.append(target)
    return out


class PromAPI:
    """A minimal client of Prometheus' HTTP API."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query (now, or at Unix time `at`); raises (HTTP 400) on a query Prometheus
        cannot parse or run."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = self.get("/api/v1/query", **params)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return result  # type: ignore[no-any-return]

    def value(self, expr: str) -> float | None:
        """The single value of an expression, or None when it has no result."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def by(self, expr: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def by_at(self, expr: str, at: float, label: str = "instance") -> dict[str, float]:
        """`by`, evaluated at Unix time `at`."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr, at)}

    def alerts(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/alerts")["alerts"]  # type: ignore[no-any-return]

    def last_rule_evaluation(self) -> float:
        """The oldest of the latest evaluation times of every rule group (unix seconds)."""
        groups = self.get("/api/v1/rules")["groups"]
        times = []
        for g in groups:
            stamp = g.get("lastEvaluation", "0001-01-01T00:00:00Z")
            if stamp.startswith("0001"):
                return 0.0
            times.append(_parse_rfc3339(stamp))
        return min(times) if times else 0.0


def _parse_rfc3339(stamp: str) -> float:
    from datetime import datetime

    head, _, frac = stamp.rstrip("Z").partition(".")
    frac = frac.split("+")[0].split("-")[0]
    base = datetime.fromisoformat(head + "+00:00").timestamp()
    return base + (float("0." + frac) if frac else 0.0)


@dataclass
class Stack:
    replicas: list[ServerProcess]
    prom: PromAPI
    prom_proc: subprocess.Popen[bytes]
    tmp: Path
    idle_alerts: list[dict[str, Any]] = field(default_factory=list)
    idle_alerts_series: list[dict[str, Any]] = field(default_factory=list)

    def wait_evaluated_after(self, t: float, rounds: int = 2) -> None:
        """Waits until every rule group has been evaluated `rounds` intervals after t."""
        wait_for(
            "rule evaluation",
            lambda: self.prom.last_rule_evaluation() >= t + rounds * SCRAPE,
            timeout=30,
        )

    def wait_scraped(self, expr: str, expected: float) -> None:
        wait_for(f"{expr} == {expected}", lambda: self.prom.value(expr) == expected, timeout=30)


def finite(samples: list[dict[str, Any]]) -> bool:
    return bool(samples) and all(math.isfinite(float(s["value"][1])) for s in samples)
