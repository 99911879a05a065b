"""Peers found by DNS, as the Kubernetes base and the compose stack configure them: two real
`cugar-metrics serve` processes given the same `--peers dns:///NAME:PORT`, a name that
resolves to both of them (and so to each one itself).

`cugar-replicas.test` resolves to 127.0.0.2 and 127.0.0.3 through /etc/hosts
(scripts/install-tools.sh adds the lines); each replica listens on its own address, on the
same port, like pods behind a headless Service.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.process.cluster.test_cluster import _comparable, _spent
from tests.process.windows.load import cap_batch
from tests.support.serverproc import ServerProcess, launch

NAME = "cugar-replicas.test"
ADDRESSES = ("127.0.0.2", "127.0.0.3")


def _resolved(port: int) -> list[str]:
    infos = socket.getaddrinfo(NAME, port, type=socket.SOCK_STREAM)
    return sorted({str(i[4][0]) for i in infos})


def _port_free_on_both() -> int:
    """A port that is free on 127.0.0.2 and on 127.0.0.3."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind((ADDRESSES[0], 0))
            port = int(a.getsockname()[1])
            with socket.socket() as b:
                try:
                    b.bind((ADDRESSES[1], port))
                except OSError:
                    continue
                return port
    raise AssertionError("no port free on both replica addresses")


def _stub(server: ServerProcess) -> tuple[grpc.Channel, pb_grpc.MetricsServiceStub]:
    channel = grpc.insecure_channel(server.target)
    return channel, pb_grpc.MetricsServiceStub(channel)


def _window(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


def test_dns_peers_each_replica_leaves_itself_out_of_the_answer(tmp_path: Path) -> None:
    port = _port_free_on_both()
    assert _resolved(port) == list(ADDRESSES), (
        f"{NAME} must resolve to {ADDRESSES}: run scripts/install-tools.sh as root"
    )
    peers = f"dns:///{NAME}:{port}"
    reference = launch(tmp_path, name="reference")
    servers: list[ServerProcess] = []
    channels: list[grpc.Channel] = []
    try:
        for i, address in enumerate(ADDRESSES):
            servers.append(
                launch(
                    tmp_path,
                    "--peers",
                    peers,
                    "--peer-timeout",
                    "1s",
                    "--shutdown-grace",
                    "2s",
                    name=f"dns-{i}",
                    host=address,
                    grpc_port=port,
                )
            )
        assert [s.target for s in servers] == [f"{a}:{port}" for a in ADDRESSES]
        stubs = []
        for s in [reference, *servers]:
            channel, stub = _stub(s)
            channels.append(channel)
            stubs.append(stub)
        ref, *replica_stubs = stubs

        rng = random.Random(13)
        sizes = (420, 180)
        for k, (stub, size) in enumerate(zip(replica_stubs, sizes, strict=True)):
            batch = cap_batch(rng, f"dns{k}", k * 1000, size=size)
            assert stub.RecordExecutions(batch, timeout=30).accepted_count == size
            assert ref.RecordExecutions(batch, timeout=30).accepted_count == size

        whole = ref.GetDashboard(pb.GetDashboardRequest(), timeout=10)
        assert whole.executions.total == 600
        whole_five = ref.GetDashboard(pb.GetDashboardRequest(window=_window(300)), timeout=10)
        assert whole_five.executions.total == 600
        for k, stub in enumerate(replica_stubs):
            d = stub.GetDashboard(pb.GetDashboardRequest(), timeout=10)
            # Cluster by default with peers; both replicas, each counted once.
            assert d.scope == pb.DASHBOARD_SCOPE_CLUSTER
            assert d.replica == f"dns-{k}"
            assert list(d.replicas) == [f"dns-{k}", f"dns-{1 - k}"]
            assert not d.partial
            assert list(d.missing_replicas) == []
            assert d.executions.total == 600
            assert d.ingest.accepted == 600
            assert _comparable(d) == _comparable(whole)
            assert _spent(d) == pytest.approx(_spent(whole), rel=1e-12)
            five = stub.GetDashboard(pb.GetDashboardRequest(window=_window(300)), timeout=10)
            assert five.executions.total == 600
            assert _comparable(five) == _comparable(whole_five)
            mine = stub.GetDashboard(
                pb.GetDashboardRequest(scope=pb.DASHBOARD_SCOPE_REPLICA), timeout=10
            )
            assert mine.scope == pb.DASHBOARD_SCOPE_REPLICA
            assert list(mine.replicas) == [f"dns-{k}"]
            assert mine.executions.total == sizes[k]

        # A replica still in the DNS answer that is gone: named by its address, the rest exact.
        assert servers[1].stop() == 0
        d = replica_stubs[0].GetDashboard(pb.GetDashboardRequest(), timeout=15)
        assert d.partial
        assert list(d.missing_replicas) == [f"{ADDRESSES[1]}:{port}"]
        assert list(d.replicas) == ["dns-0"]
        assert d.executions.total == sizes[0]
    finally:
        for c in channels:
            c.close()
        for s in servers:
            s.stop()
        reference.stop()
