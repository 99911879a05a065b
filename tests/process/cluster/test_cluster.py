"""Cluster dashboards and WatchDashboard against real `cugar-metrics serve` processes."""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from prometheus_client.parser import text_string_to_metric_families

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.process.windows.load import cap_batch
from tests.support.serverproc import ServerProcess, launch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stub(server: ServerProcess) -> tuple[grpc.Channel, pb_grpc.MetricsServiceStub]:
    channel = grpc.insecure_channel(server.target)
    return channel, pb_grpc.MetricsServiceStub(channel)


def _metric(server: ServerProcess, name: str) -> float:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise LookupError(name)


@contextmanager
def _cluster(tmp_path: Path, *extra: str) -> Iterator[list[ServerProcess]]:
    """Three replicas whose --peers list all three (each leaves itself out)."""
    ports = [_free_port() for _ in range(3)]
    peers = ",".join(f"127.0.0.1:{p}" for p in ports)
    servers: list[ServerProcess] = []
    try:
        for i, port in enumerate(ports):
            servers.append(
                launch(
                    tmp_path,
                    "--peers",
                    peers,
                    "--shutdown-grace",
                    "2s",
                    *extra,
                    name=f"r{i}",
                    grpc_port=port,
                )
            )
        yield servers
    finally:
        for s in servers:
            s.stop()


def _comparable(d: pb.GetDashboardResponse) -> pb.GetDashboardResponse:
    """The dashboard without what depends on which process answered or when."""
    out = pb.GetDashboardResponse()
    out.CopyFrom(d)
    for name in (
        "window",
        "window_start_time",
        "window_end_time",
        "scope",
        "replica",
        "replicas",
        "missing_replicas",
        "partial",
        "first_execution_time",
        "last_execution_time",
        "ingest",
    ):
        out.ClearField(name)
    out.golden_signals.ClearField("throughput_per_second")
    out.golden_signals.ClearField("tokens_per_second")
    # Sums and means of floats: equal up to the order of the additions (see _spent).
    for name in ("budget_utilization", "latency_mean", "cost_per_execution"):
        out.golden_signals.ClearField(name)
    out.budget.ClearField("spent")
    out.budget.ClearField("mean_spent_per_execution")
    for p in out.profiles:
        p.ClearField("budget_spent")
    return out


def _spent(d: pb.GetDashboardResponse) -> list[float]:
    g = d.golden_signals
    return [
        d.budget.spent,
        d.budget.mean_spent_per_execution,
        g.budget_utilization,
        g.latency_mean.ToNanoseconds(),
        g.cost_per_execution,
    ] + [p.budget_spent for p in d.profiles]


def test_cluster_dashboard_is_the_exact_sum_and_partial_without_a_replica(
    tmp_path: Path,
) -> None:
    reference = launch(tmp_path, name="reference")
    try:
        with _cluster(tmp_path, "--peer-timeout", "1s") as servers:
            channels = [_stub(s) for s in servers]
            ref_channel, ref = _stub(reference)
            rng = random.Random(7)
            per_replica = [0, 0, 0]
            for n in range(6):
                if n == 3:
                    # The rest in the next 10-s slot: windows then merge several slots.
                    time.sleep(10 - time.time() % 10 + 0.2)
                batch = cap_batch(rng, "cl", n * 500, size=500)
                assert ref.RecordExecutions(batch, timeout=30).accepted_count == 500
                parts: list[list[pb.Execution]] = [[], [], []]
                for i, e in enumerate(batch.executions):
                    parts[(i * 7 + n) % 3].append(e)
                for k, part in enumerate(parts):
                    reply = channels[k][1].RecordExecutions(
                        pb.RecordExecutionsRequest(executions=part), timeout=30
                    )
                    assert reply.rejected_count == 0
                    per_replica[k] += len(part)
            assert all(per_replica)
            whole = ref.GetDashboard(pb.GetDashboardRequest(), timeout=10)
            assert whole.executions.total == 3000
            for k, (_, stub) in enumerate(channels):
                d = stub.GetDashboard(pb.GetDashboardRequest(), timeout=10)
                assert d.scope == pb.DASHBOARD_SCOPE_CLUSTER
                assert d.replica == f"r{k}"
                assert sorted(d.replicas) == ["r0", "r1", "r2"]
                assert d.replicas[0] == f"r{k}"
                assert not d.partial and not d.missing_replicas
                assert d.executions.total == 3000
                assert d.ingest.accepted == 3000
                # Counts exact, quantiles bit for bit those of the replica that saw all.
                assert _comparable(d) == _comparable(whole)
                assert _spent(d) == pytest.approx(_spent(whole), rel=1e-12)
                assert d.golden_signals.latency_p99 == whole.golden_signals.latency_p99
                mine = stub.GetDashboard(
                    pb.GetDashboardRequest(scope=pb.DASHBOARD_SCOPE_REPLICA), timeout=10
                )
                assert mine.scope == pb.DASHBOARD_SCOPE_REPLICA
                assert mine.executions.total == per_replica[k]
                assert list(mine.replicas) == [f"r{k}"]
            # A recent window: the same, from the merged windows' sketch keys.
            five = pb.GetDashboardRequest(window=_interval(300))
            whole_five = ref.GetDashboard(five, timeout=10)
            assert whole_five.executions.total == 3000
            for _, stub in channels:
                d = stub.GetDashboard(five, timeout=10)
                assert d.scope == pb.DASHBOARD_SCOPE_CLUSTER and not d.partial
                assert _comparable(d) == _comparable(whole_five)
                assert _spent(d) == pytest.approx(_spent(whole_five), rel=1e-12)
            filtered = channels[1][1].GetDashboard(
                pb.GetDashboardRequest(profile="profile_03"), timeout=10
            )
            assert _comparable(filtered) == _comparable(
                ref.GetDashboard(pb.GetDashboardRequest(profile="profile_03"), timeout=10)
            )

            # A replica that accepts connections but never answers: named, within the deadline.
            stuck = servers[2]
            os.kill(stuck.proc.pid, signal.SIGSTOP)
            try:
                d = channels[0][1].GetDashboard(pb.GetDashboardRequest(), timeout=15)
            finally:
                os.kill(stuck.proc.pid, signal.SIGCONT)
            assert d.partial
            assert list(d.missing_replicas) == [stuck.target]
            assert sorted(d.replicas) == ["r0", "r1"]
            assert d.executions.total == per_replica[0] + per_replica[1]
            assert _metric(servers[0], "cugar_peer_errors_total") >= 1

            # A stopped replica: the same.
            assert servers[2].stop() == 0
            d = channels[1][1].GetDashboard(pb.GetDashboardRequest(), timeout=15)
            assert d.partial and list(d.missing_replicas) == [servers[2].target]
            assert d.executions.total == per_replica[0] + per_replica[1]
            assert _metric(servers[1], "cugar_peer_fanout_seconds_count") >= 1
            for c, _ in channels:
                c.close()
            ref_channel.close()
    finally:
        reference.stop()


def _interval(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def test_watch_ticks_shares_computations_and_ends_on_drain(tmp_path: Path) -> None:
    server = launch(tmp_path, "--max-watchers-per-key", "25", "--shutdown-grace", "5s")
    channel, stub = _stub(server)
    try:
        # Ticks at the interval, and new executions appear.
        stream = stub.WatchDashboard(
            pb.WatchDashboardRequest(dashboard=pb.GetDashboardRequest(), interval=_interval(1))
        )
        first = next(stream)
        assert first.executions.total == 0
        assert first.scope == pb.DASHBOARD_SCOPE_REPLICA
        batch = cap_batch(random.Random(1), "w", 0, size=50)
        assert stub.RecordExecutions(batch, timeout=10).accepted_count == 50
        ends = [first.window_end_time.ToNanoseconds()]
        seen = first
        while seen.executions.total != 50:
            seen = next(stream)
            ends.append(seen.window_end_time.ToNanoseconds())
        seen = next(stream)
        ends.append(seen.window_end_time.ToNanoseconds())
        gaps = [b - a for a, b in itertools.pairwise(ends)]
        assert len(gaps) >= 2
        assert all(g >= 990_000_000 for g in gaps), gaps  # not sooner than the interval
        stream.cancel()
        # Its feed ends with its last watcher; until then it could still tick.
        deadline = time.monotonic() + 30
        while _metric(server, "cugar_dashboard_watchers") != 0:
            assert time.monotonic() < deadline, "the cancelled watcher is still counted"
            time.sleep(0.05)

        # Twenty watchers of the same dashboard: one computation for all of them.
        before = _metric(server, "cugar_dashboard_watch_computations_total")
        request = pb.WatchDashboardRequest(
            dashboard=pb.GetDashboardRequest(profile="profile_01"), interval=_interval(3600)
        )
        streams = [stub.WatchDashboard(request) for _ in range(20)]
        got = [next(s) for s in streams]
        assert len({g.window_end_time.ToNanoseconds() for g in got}) == 1
        assert all(g.executions.total == 1 for g in got)
        assert _metric(server, "cugar_dashboard_watchers") == 20
        assert _metric(server, "cugar_dashboard_watch_computations_total") == before + 1

        # Past the per-key cap: RESOURCE_EXHAUSTED, naming the flag.
        extra = [stub.WatchDashboard(request) for _ in range(5)]
        for s in extra:
            next(s)
        refused = stub.WatchDashboard(request)
        try:
            next(refused)
            raise AssertionError("a 26th watcher was accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-watchers-per-key" in (e.details() or "")
        for s in extra:
            s.cancel()

        # A drain ends every stream with UNAVAILABLE "draining, reconnect".
        codes: list[tuple[grpc.StatusCode, str]] = []

        def drain_one(s: grpc.Call) -> None:
            try:
                for _ in s:
                    pass
            except grpc.RpcError as e:
                codes.append((e.code(), e.details() or ""))

        threads = [threading.Thread(target=drain_one, args=(s,)) for s in streams]
        for t in threads:
            t.start()
        assert server.stop() == 0
        for t in threads:
            t.join(timeout=30)
        assert codes == [(grpc.StatusCode.UNAVAILABLE, "draining, reconnect")] * 20
    finally:
        channel.close()
        server.stop()


def test_watch_request_is_checked(tmp_path: Path) -> None:
    server = launch(tmp_path)
    channel, stub = _stub(server)
    try:
        for interval, field in ((0.5, "interval"), (3601, "interval")):
            try:
                next(
                    stub.WatchDashboard(
                        pb.WatchDashboardRequest(interval=_interval(interval)), timeout=10
                    )
                )
                raise AssertionError("accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert field in (e.details() or "")
        try:
            next(
                stub.WatchDashboard(
                    pb.WatchDashboardRequest(
                        dashboard=pb.GetDashboardRequest(window=_interval(30))
                    ),
                    timeout=10,
                )
            )
            raise AssertionError("accepted")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "dashboard.window" in (e.details() or "")
    finally:
        channel.close()
        server.stop()


def test_cluster_caps_profiles_after_the_merge(tmp_path: Path) -> None:
    """Replicas with profiles {a, b}, {c, d}, {e}, each under --max-profiles 3: the cluster
    keeps the 3 with the most executions (ties by name) and folds the others into
    _overflow, every count kept."""
    with _cluster(tmp_path, "--max-profiles", "3") as servers:
        counts = [{"a": 5, "b": 1}, {"c": 3, "d": 3}, {"e": 3}]
        channels = [_stub(s) for s in servers]
        try:
            for k, (_, stub) in enumerate(channels):
                executions = [
                    pb.Execution(
                        execution_id=f"{profile}-{i}",
                        profile=profile,
                        outcome=pb.OUTCOME_SUCCESS,
                        duration=_interval(0.25 * (i + 1)),
                        steps=1,
                    )
                    for profile, n in counts[k].items()
                    for i in range(n)
                ]
                reply = stub.RecordExecutions(
                    pb.RecordExecutionsRequest(executions=executions), timeout=30
                )
                assert reply.accepted_count == len(executions)
            for _, stub in channels:
                d = stub.GetDashboard(pb.GetDashboardRequest(), timeout=10)
                assert not d.partial
                assert [(p.profile, p.total) for p in d.profiles] == [
                    ("_overflow", 4),
                    ("a", 5),
                    ("c", 3),
                    ("d", 3),
                ]
                assert d.executions.total == 15
                mine = stub.GetDashboard(
                    pb.GetDashboardRequest(scope=pb.DASHBOARD_SCOPE_REPLICA), timeout=10
                )
                assert "_overflow" not in [p.profile for p in mine.profiles]
        finally:
            for c, _ in channels:
                c.close()
