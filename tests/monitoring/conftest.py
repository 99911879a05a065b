"""Fixtures for the monitoring tests: real server replicas, a real Prometheus, traffic.

`stack` starts two `cugar-metrics serve` processes and a Prometheus scraping both with a
copy of the project's rules (alerts' `for:` shortened); it is first left idle, and the
alerts Prometheus reports then are kept for the idle test. `traffic` then drives both
replicas with the deterministic traffic of traffic.py and waits until Prometheus has
scraped all of it.

These tests need the extra packages of monitoring/requirements.txt and run from
scripts/ci/monitoring.sh, which sets CUGAR_MONITORING_TESTS=1; a plain `pytest` over the
whole tree leaves this directory out instead of failing on the missing packages.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.monitoring.promstack import (
    PROMETHEUS,
    SCRAPE,
    PromAPI,
    Stack,
    free_port,
    shortened_rules,
    start_replica,
    wait_for,
)
from tests.monitoring.traffic import PHASE, Driver
from tests.support.serverproc import stop_process

if os.environ.get("CUGAR_MONITORING_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("monitoring-e2e")
    replicas = [start_replica(tmp, "replica-0"), start_replica(tmp, "replica-1")]
    rules = shortened_rules(tmp / "rules")
    config: dict[str, object] = {
        "global": {
            "scrape_interval": f"{SCRAPE:g}s",
            "scrape_timeout": f"{SCRAPE:g}s",
            "evaluation_interval": f"{SCRAPE:g}s",
        },
        "rule_files": [str(p) for p in rules],
        "scrape_configs": [
            {
                "job_name": "cugar-metrics",
                "static_configs": [{"targets": [r.metrics_target for r in replicas]}],
            }
        ],
    }
    # JSON is YAML: Prometheus reads it as its config file.
    (tmp / "prometheus.yml").write_text(json.dumps(config, indent=2))
    port = free_port()
    prom_log = tmp / "prometheus.log"
    with prom_log.open("wb") as out:
        prom_proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prom = PromAPI(f"http://127.0.0.1:{port}")
    stack = Stack(replicas, prom, prom_proc, tmp)
    try:

        def ready() -> bool:
            if prom_proc.poll() is not None:
                pytest.fail(f"prometheus exited: {prom_log.read_text()}")
            try:
                with urllib.request.urlopen(f"{prom.base}/-/ready", timeout=2):
                    return True
            except OSError:
                return False

        wait_for("prometheus to be ready", ready, timeout=60)
        stack.wait_scraped('count(up{job="cugar-metrics"} == 1)', 2)
        # Idle: both replicas up, nothing recorded; let every rule run a few more rounds.
        stack.wait_evaluated_after(time.time(), rounds=4)
        stack.idle_alerts = prom.alerts()
        stack.idle_alerts_series = prom.query("ALERTS")
        yield stack
    finally:
        stop_process(prom_proc)
        codes = [r.stop() for r in replicas]
        assert codes == [0, 0], [r.log.read_text() for r in replicas]


@pytest.fixture(scope="session")
def traffic(stack: Stack) -> Iterator[Driver]:
    """Two phases of traffic (the first sets every counter's baseline), then scraped."""
    driver = Driver([r.target for r in stack.replicas])
    try:
        driver.send_phase(0, PHASE)
        driver.send_invalid(0, "a")
        stack.wait_scraped("sum(cugar_executions_total)", sum(driver.tally.executions.values()))
        driver.baseline = len(driver.accepted)
        driver.send_phase(PHASE, PHASE)
        driver.send_duplicates([PHASE, PHASE + 1, PHASE + 2])
        driver.send_invalid(1, "b")
        stack.wait_scraped("sum(cugar_executions_total)", sum(driver.tally.executions.values()))
        stack.wait_scraped('sum(cugar_ingest_executions_total{result="duplicate"})', 3)
        driver.phase_end = len(driver.accepted)
        stack.wait_evaluated_after(time.time(), rounds=2)
        yield driver
    finally:
        driver.close()
