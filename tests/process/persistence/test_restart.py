"""A real server process with --state-file: drain and restart, corrupt files, SIGKILL."""

from __future__ import annotations

import random
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics.aggregator import Aggregator
from cugar_metrics.aggregator.persist import FORMAT_VERSION, MAGIC, decode, encode
from tests.conftest import dur, pb_execution
from tests.server.persistence.helpers import demo_execution
from tests.support.serverproc import ServerProcess, launch

# Per-process series: the RPC metrics and the checkpoint counters start again with a process.
PER_PROCESS = (
    "grpc_server_",
    "cugar_state_",
    "cugar_build_info",
    "cugar_rpc_refusals",
    "cugar_otlp_",
    "cugar_peer_",
    "cugar_dashboard_",
)


def stub(server: ServerProcess) -> tuple[grpc.Channel, pb_grpc.MetricsServiceStub]:
    channel = grpc.insecure_channel(server.target)
    return channel, pb_grpc.MetricsServiceStub(channel)


def samples(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def aggregator_samples(
    server: ServerProcess,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        k: v
        for k, v in samples(server).items()
        if not k[0].startswith(PER_PROCESS) and not k[0].endswith("_created")
    }


def batch(ids: list[str], rng: random.Random) -> pb.RecordExecutionsRequest:
    executions = []
    for eid in ids:
        outcome = rng.choice([pb.OUTCOME_SUCCESS, pb.OUTCOME_SUCCESS, pb.OUTCOME_FAILURE])
        executions.append(
            pb_execution(
                eid,
                profile=rng.choice(["demo", "sales_rep", "sales_manager"]),
                outcome=outcome,
                error_type="timeout" if outcome == pb.OUTCOME_FAILURE else None,
                duration=dur(rng.uniform(0.1, 90)),
                steps=rng.randint(1, 9),
            )
        )
    return pb.RecordExecutionsRequest(executions=executions)


def dashboard_without_clock(response: pb.GetDashboardResponse) -> pb.GetDashboardResponse:
    """The dashboard without what moves with the clock (the window's end and length)."""
    d = pb.GetDashboardResponse()
    d.CopyFrom(response)
    for name in ("window_end_time", "window", "replica", "replicas"):
        d.ClearField(name)
    d.golden_signals.ClearField("throughput_per_second")
    return d


def test_drain_and_restart_continue_the_dashboard_counters_and_dedup(tmp_path: Path) -> None:
    state = tmp_path / "state.bin"
    rng = random.Random(5)
    ids = [f"exec-{i}" for i in range(300)]
    first = launch(tmp_path, "--state-file", str(state), name="first")
    try:
        channel, client = stub(first)
        for start in range(0, 300, 100):
            client.RecordExecutions(batch(ids[start : start + 100], rng), timeout=10)
        client.RecordExecutions(batch(ids[:7], rng), timeout=10)  # 7 duplicates
        bad = pb_execution("bad", duration=dur(1_700_000_000))  # rejected
        with pytest.raises(grpc.RpcError):
            client.RecordExecution(pb.RecordExecutionRequest(execution=bad), timeout=10)
        before = client.GetDashboard(pb.GetDashboardRequest(), timeout=10)
        counters_before = aggregator_samples(first)
        channel.close()
    finally:
        assert first.stop() == 0
    assert before.executions.total == 300
    assert (before.ingest.accepted, before.ingest.duplicate, before.ingest.rejected) == (300, 7, 1)
    assert "state saved to" in first.output()
    assert decode(state.read_bytes()).snapshot.ingest == {
        "accepted": 300,
        "duplicate": 7,
        "rejected": 1,
    }

    second = launch(tmp_path, "--state-file", str(state), name="second")
    try:
        assert (
            "executions=300 (accepted=300 duplicate=7 rejected=1), dedup entries=300"
            in second.output()
        )
        channel, client = stub(second)
        after = client.GetDashboard(pb.GetDashboardRequest(), timeout=10)
        assert dashboard_without_clock(after) == dashboard_without_clock(before)
        assert after.window_start_time == before.window_start_time  # the original start
        assert aggregator_samples(second) == counters_before
        # Every id is still known; a new one is accepted.
        again = client.RecordExecutions(batch(ids, rng), timeout=10)
        assert list(again.results) == [pb.RECORD_RESULT_DUPLICATE] * 300
        new = client.RecordExecution(
            pb.RecordExecutionRequest(execution=pb_execution("exec-new")), timeout=10
        )
        assert new.result == pb.RECORD_RESULT_ACCEPTED
        now = samples(second)
        ingest = "cugar_ingest_executions_total"
        assert now[(ingest, (("result", "accepted"),))] == 301
        assert now[(ingest, (("result", "duplicate"),))] == 307
        assert now[(ingest, (("result", "rejected"),))] == 1
        # Five minutes reach back past the original start: the window is everything since.
        recent = client.GetDashboard(pb.GetDashboardRequest(window=dur(300)), timeout=10)
        assert recent.executions.total == 301
        assert recent.window_start_time == before.window_start_time
        channel.close()
    finally:
        assert second.stop() == 0
    assert decode(state.read_bytes()).snapshot.ingest["accepted"] == 301


def _valid_state() -> bytes:
    agg = Aggregator(start_time=1_000_000.0)
    agg.record([demo_execution(random.Random(3), f"e{i}") for i in range(20)], 1_000_001.0)
    return encode(agg.export_state(1_000_002.0))


def _other_version(data: bytes) -> bytes:
    import hashlib
    import struct

    body = bytearray(data[:-32])
    struct.pack_into("<I", body, len(MAGIC), FORMAT_VERSION + 1)
    return bytes(body) + hashlib.sha256(body).digest()


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("garbage", lambda: bytes(random.Random(1).getrandbits(8) for _ in range(4096)), "magic"),
        ("truncated", lambda: _valid_state()[:-100], "checksum mismatch"),
        ("version", lambda: _other_version(_valid_state()), f"format version {FORMAT_VERSION + 1}"),
    ],
)
def test_a_corrupt_or_incompatible_state_file_is_moved_aside_and_the_server_starts_fresh(
    tmp_path: Path, name: str, make: object, reason: str
) -> None:
    state = tmp_path / "state.bin"
    content = make()  # type: ignore[operator]
    state.write_bytes(content)
    server = launch(tmp_path, "--state-file", str(state), name=name)
    try:
        aside = list(tmp_path.glob("state.bin.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == content
        lines = [line for line in server.output().splitlines() if "cannot be restored" in line]
        assert len(lines) == 1
        assert reason in lines[0] and f"moved it to {aside[0]}" in lines[0]
        assert "starting fresh" in lines[0]
        channel, client = stub(server)
        fresh = client.GetDashboard(pb.GetDashboardRequest(), timeout=10)
        assert fresh.executions.total == 0
        client.RecordExecution(pb.RecordExecutionRequest(execution=pb_execution("one")), timeout=10)
        channel.close()
    finally:
        assert server.stop() == 0
    assert decode(state.read_bytes()).snapshot.ingest["accepted"] == 1


def test_sigkill_between_checkpoints_loses_only_what_came_after_the_last_one(
    tmp_path: Path,
) -> None:
    """Checkpoints every second; SIGKILL at an arbitrary phase of the interval. The state file
    is the last checkpoint that completed (never an older one), it holds everything
    acknowledged before its state was taken, and a restart knows exactly those ids."""
    state = tmp_path / "state.bin"
    interval = 1.0
    first = launch(
        tmp_path, "--state-file", str(state), "--checkpoint-interval", "1s", name="killed"
    )
    rng = random.Random(11)
    acked: list[tuple[str, float]] = []  # (id, when its acknowledgement arrived)
    channel, client = stub(first)
    checkpoints = 0.0
    deadline = time.monotonic() + 60  # bounds the wait for two checkpoints
    extra = rng.uniform(0, interval)  # kill at an arbitrary phase of the interval
    stop_at: float | None = None
    while stop_at is None or time.monotonic() < stop_at:
        ids = [f"k-{len(acked) + i}" for i in range(20)]
        client.RecordExecutions(batch(ids, rng), timeout=10)
        done = time.time()
        acked.extend((i, done) for i in ids)
        if stop_at is None:
            checkpoints = samples(first)[
                ("cugar_state_checkpoints_total", (("result", "success"),))
            ]
            if checkpoints >= 2:
                stop_at = time.monotonic() + extra
        assert time.monotonic() < deadline
    channel.close()
    completed_before_kill = decode(state.read_bytes()).saved_at
    first.proc.kill()
    first.proc.wait()

    saved = decode(state.read_bytes())  # the last checkpoint that completed
    assert saved.saved_at >= completed_before_kill
    kept = saved.snapshot.ingest["accepted"]
    # Everything acknowledged before that checkpoint's state was taken is in it; what is lost
    # was acknowledged after it.
    assert sum(1 for _, t in acked if t <= saved.saved_at) <= kept <= len(acked)
    lost = len(acked) - kept
    assert lost <= sum(1 for _, t in acked if t > saved.saved_at)
    print(f"acknowledged {len(acked)}, kept {kept}, lost {lost} (checkpoint interval {interval}s)")

    second = launch(tmp_path, "--state-file", str(state), name="after-kill")
    try:
        assert samples(second)[("cugar_ingest_executions_total", (("result", "accepted"),))] == kept
        channel, client = stub(second)
        # Resending everything: exactly the kept prefix is known, the lost rest is accepted.
        results: list[int] = []
        all_ids = [i for i, _ in acked]
        for start in range(0, len(all_ids), 500):
            reply = client.RecordExecutions(batch(all_ids[start : start + 500], rng), timeout=10)
            results.extend(reply.results)
        assert results == [pb.RECORD_RESULT_DUPLICATE] * kept + [pb.RECORD_RESULT_ACCEPTED] * lost
        total = client.GetDashboard(pb.GetDashboardRequest(), timeout=10).executions.total
        assert total == len(acked)
        channel.close()
    finally:
        assert second.stop() == 0


def test_a_damaged_section_is_dropped_alone_and_every_other_counter_continues(
    tmp_path: Path,
) -> None:
    import hashlib
    import json
    import struct

    state = tmp_path / "state.bin"
    rng = random.Random(9)
    first = launch(tmp_path, "--state-file", str(state), name="first")
    try:
        channel, client = stub(first)
        client.RecordExecutions(batch([f"exec-{i}" for i in range(200)], rng), timeout=10)
        client.RecordExecutions(batch([f"exec-{i}" for i in range(5)], rng), timeout=10)
        counters_before = aggregator_samples(first)
        channel.close()
    finally:
        assert first.stop() == 0
    # Damage one series section: a duration distribution whose buckets no longer add up.
    data = state.read_bytes()
    head_len = struct.unpack_from("<IQ", data, len(MAGIC))[1]
    start = len(MAGIC) + 12
    header = json.loads(data[start : start + head_len])
    header["durations"][0][-1]["count"] += 1
    head = json.dumps(header, separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<IQ", FORMAT_VERSION, len(head)) + head
    body += data[start + head_len : -32]
    damaged = body + hashlib.sha256(body).digest()
    state.write_bytes(damaged)

    second = launch(tmp_path, "--state-file", str(state), name="second")
    try:
        lines = [line for line in second.output().splitlines() if "section " in line]
        assert len(lines) == 1
        assert "WARNING" in lines[0] and "section durations cannot be restored" in lines[0]
        assert "bucket counts add up to" in lines[0]
        assert not list(tmp_path.glob("state.bin.corrupt-*"))
        copies = list(tmp_path.glob("state.bin.partial-*"))
        assert len(copies) == 1 and copies[0].read_bytes() == damaged
        assert "executions=200 (accepted=200 duplicate=5 rejected=0)" in second.output()
        now = samples(second)
        assert now[("cugar_state_restore_problems_total", (("section", "durations"),))] == 1
        assert now[("cugar_state_restore_problems_total", (("section", "executions"),))] == 0
        after = aggregator_samples(second)
        duration = "cugar_execution_duration_seconds"
        kept = {k: v for k, v in counters_before.items() if not k[0].startswith(duration)}
        assert {k: v for k, v in after.items() if not k[0].startswith(duration)} == kept
        assert sum(v for k, v in counters_before.items() if k[0] == f"{duration}_count") == 200
        assert all(v == 0 for k, v in after.items() if k[0] == f"{duration}_count")
        channel, client = stub(second)
        dashboard = client.GetDashboard(pb.GetDashboardRequest(), timeout=10)
        assert dashboard.executions.total == 200
        again = client.RecordExecutions(batch([f"exec-{i}" for i in range(200)], rng), timeout=10)
        assert list(again.results) == [pb.RECORD_RESULT_DUPLICATE] * 200
        channel.close()
    finally:
        assert second.stop() == 0
    assert decode(state.read_bytes()).snapshot.ingest == {
        "accepted": 200,
        "duplicate": 205,
        "rejected": 0,
    }
