"""`Client.watch_dashboard` and `scope=` against real server processes: ticks, the reconnect
after a drain, auth, and the dashboard view of a cluster answer."""

from __future__ import annotations

import socket
from pathlib import Path

import grpc
import pytest
from conftest import auth_process

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import peer_service_pb2 as peer_pb
from cugar.metrics.v1 import peer_service_pb2_grpc as peer_grpc
from cugar_metrics import dashboard_view
from cugar_metrics_client import (
    Client,
    CugarMetricsError,
    Execution,
    InvalidRequestError,
)
from tests.support.serverproc import launch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_watch_follows_new_executions_and_reconnects_after_a_drain(tmp_path: Path) -> None:
    port = _free_port()
    first = launch(tmp_path, name="first", grpc_port=port)
    second = None
    reconnects: list[CugarMetricsError] = []
    try:
        with Client(first.target) as client:
            stream = client.watch_dashboard(interval=1, on_reconnect=reconnects.append)
            d = next(stream)
            assert (d.replica, d.executions.total) == ("first", 0)
            client.record(Execution("sales_rep", "success", 1.0, execution_id="w-1"))
            while d.executions.total != 1:
                d = next(stream)
            assert d.replica == "first"
            assert first.stop() == 0  # the drain ends the stream: UNAVAILABLE
            second = launch(tmp_path, name="second", grpc_port=port)
            d = next(stream)
            assert d.replica == "second"
            assert d.executions.total == 0
            # The drain first; then, maybe, attempts the channel made before the new server
            # was up (its reconnect backoff): each one reported, none raised.
            assert "draining, reconnect" in str(reconnects[0])
            assert all("UNAVAILABLE" in str(e) for e in reconnects)
            stream.close()
    finally:
        first.stop()
        if second is not None:
            assert second.stop() == 0


def test_watch_and_scope_are_checked(tmp_path: Path) -> None:
    server = launch(tmp_path, name="checked")
    try:
        with Client(server.target) as client:
            with pytest.raises(InvalidRequestError) as e:
                next(client.watch_dashboard(interval=0.5))
            assert [v.field for v in e.value.violations] == ["interval"]
            with pytest.raises(ValueError, match="scope"):
                client.get_dashboard(scope="everything")  # type: ignore[arg-type]
            replica = client.get_dashboard(scope="replica")
            assert replica.scope == pb.DASHBOARD_SCOPE_REPLICA
            # Asked for the cluster, a replica without peers answers for itself alone.
            cluster = client.get_dashboard(scope="cluster")
            assert cluster.scope == pb.DASHBOARD_SCOPE_CLUSTER
            assert list(cluster.replicas) == ["checked"] and not cluster.partial
    finally:
        assert server.stop() == 0


def test_readers_may_watch_and_only_admins_read_peer_state(tmp_path: Path) -> None:
    keys: dict[str, tuple[str, str | None]] = {
        "rec": ("recorder", None),
        "read": ("reader", None),
        "admin": ("admin", None),
    }
    with auth_process(tmp_path, keys, name="auth") as server:
        with Client(server.target, api_key=server.keys["read"]) as client:
            assert next(client.watch_dashboard(interval=1)).replica == "auth"
        with grpc.insecure_channel(server.target) as channel:
            stub = peer_grpc.PeerServiceStub(channel)
            for name, code in (
                ("read", grpc.StatusCode.PERMISSION_DENIED),
                ("rec", grpc.StatusCode.PERMISSION_DENIED),
            ):
                with pytest.raises(grpc.RpcError) as refused:
                    stub.GetWindowState(
                        peer_pb.GetWindowStateRequest(),
                        metadata=[("authorization", f"Bearer {server.keys[name]}")],
                        timeout=5,
                    )
                assert refused.value.code() == code
            with pytest.raises(grpc.RpcError) as anonymous:
                stub.GetWindowState(peer_pb.GetWindowStateRequest(), timeout=5)
            assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
            reply = stub.GetWindowState(
                peer_pb.GetWindowStateRequest(),
                metadata=[("authorization", f"Bearer {server.keys['admin']}")],
                timeout=5,
            )
            assert (reply.version, reply.replica) == (1, "auth")
            assert b'"executions":[]' in reply.state


def test_the_view_names_the_replicas_of_a_cluster_answer() -> None:
    d = pb.GetDashboardResponse(
        scope=pb.DASHBOARD_SCOPE_CLUSTER,
        replica="r0",
        replicas=["r0", "r1"],
        missing_replicas=["10.0.0.3:50051"],
        partial=True,
    )
    out = dashboard_view.render(d, profile=None, domain=None)
    assert "cluster of 2 replicas (r0, r1), answered by r0" in out
    assert "PARTIAL: no answer in time from 10.0.0.3:50051" in out
    assert "this replica's only" not in out
