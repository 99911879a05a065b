"""TLS and mutual TLS on the gRPC port, through the Python client and raw grpc channels, and
certificate rotation without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics_client import (
    AsyncClient,
    BatchRecorder,
    Client,
    CugarMetricsError,
    Execution,
    RecordResult,
    TlsConfig,
)
from tests.conftest import pb_execution
from tests.server.tls.conftest import tls_server
from tests.support.certs import Leaf, Pki, peer_serial


def execution(execution_id: str) -> Execution:
    return Execution(
        execution_id=execution_id, profile="sales_rep", outcome="success", duration=1.0
    )


def record_raw(port: int, credentials: grpc.ChannelCredentials, execution_id: str) -> int:
    """One RecordExecution over a fresh channel; returns the RecordResult."""
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = pb_grpc.MetricsServiceStub(channel)
        response = stub.RecordExecution(
            pb.RecordExecutionRequest(execution=pb_execution(execution_id)), timeout=5
        )
    return int(response.result)


def refused_code(port: int, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    """The status of a RecordExecution whose handshake is expected to fail."""
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        stub = pb_grpc.MetricsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution("refused")), timeout=3
            )
    code: grpc.StatusCode = caught.value.code()
    return code


def test_tls_client_with_the_server_ca_records(pki: Pki, server_cert: Leaf) -> None:
    with (
        tls_server(tls_cert=str(server_cert.cert), tls_key=str(server_cert.key)) as running,
        Client(
            f"localhost:{running.grpc_port}", tls=TlsConfig(root_ca=pki.server_ca.cert)
        ) as client,
    ):
        assert client.record(execution("tls-1")) is RecordResult.ACCEPTED
        assert client.record(execution("tls-1")) is RecordResult.DUPLICATE
        assert running.aggregator.snapshot(0).ingest["accepted"] == 1


def test_tls_client_with_a_wrong_ca_is_refused(pki: Pki, server_cert: Leaf) -> None:
    with tls_server(tls_cert=str(server_cert.cert), tls_key=str(server_cert.key)) as running:
        wrong = grpc.ssl_channel_credentials(pki.other_ca.cert_pem)
        assert refused_code(running.grpc_port, wrong) == grpc.StatusCode.UNAVAILABLE
        with (
            Client(
                f"localhost:{running.grpc_port}",
                tls=TlsConfig(root_ca=pki.other_ca.cert_pem),
                max_attempts=2,
                timeout=3,
            ) as client,
            pytest.raises(CugarMetricsError) as caught,
        ):
            client.record(execution("wrong-ca"))
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert running.aggregator.snapshot(0).ingest["accepted"] == 0


def test_a_plaintext_client_cannot_talk_to_the_tls_port(server_cert: Leaf) -> None:
    with (
        tls_server(tls_cert=str(server_cert.cert), tls_key=str(server_cert.key)) as running,
        grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        pb_grpc.MetricsServiceStub(channel).RecordExecution(
            pb.RecordExecutionRequest(execution=pb_execution("plain")), timeout=3
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_accepts_a_client_certificate_signed_by_the_client_ca(
    pki: Pki, server_cert: Leaf
) -> None:
    with tls_server(
        tls_cert=str(server_cert.cert),
        tls_key=str(server_cert.key),
        tls_client_ca=str(pki.client_ca.cert),
    ) as running:
        tls = TlsConfig(
            root_ca=pki.server_ca.cert, client_cert=pki.client.cert, client_key=pki.client.key
        )
        with Client(f"localhost:{running.grpc_port}", tls=tls) as client:
            assert client.record(execution("mtls-1")) is RecordResult.ACCEPTED
        raw = grpc.ssl_channel_credentials(
            pki.server_ca.cert_pem, pki.client.key_pem, pki.client.cert_pem
        )
        assert record_raw(running.grpc_port, raw, "mtls-2") == pb.RECORD_RESULT_ACCEPTED
        assert running.aggregator.snapshot(0).ingest["accepted"] == 2


def test_mtls_refuses_a_client_without_a_certificate_or_with_another_cas(
    pki: Pki, server_cert: Leaf
) -> None:
    with tls_server(
        tls_cert=str(server_cert.cert),
        tls_key=str(server_cert.key),
        tls_client_ca=str(pki.client_ca.cert),
    ) as running:
        none = grpc.ssl_channel_credentials(pki.server_ca.cert_pem)
        assert refused_code(running.grpc_port, none) == grpc.StatusCode.UNAVAILABLE
        stranger = grpc.ssl_channel_credentials(
            pki.server_ca.cert_pem, pki.stranger.key_pem, pki.stranger.cert_pem
        )
        assert refused_code(running.grpc_port, stranger) == grpc.StatusCode.UNAVAILABLE
        assert running.aggregator.snapshot(0).ingest["accepted"] == 0
        # The refusals cost nobody else: a good client still records.
        good = grpc.ssl_channel_credentials(
            pki.server_ca.cert_pem, pki.client.key_pem, pki.client.cert_pem
        )
        assert record_raw(running.grpc_port, good, "after") == pb.RECORD_RESULT_ACCEPTED


def test_a_rotated_server_certificate_is_served_to_new_connections_without_restart(
    pki: Pki, server_cert: Leaf
) -> None:
    with tls_server(tls_cert=str(server_cert.cert), tls_key=str(server_cert.key)) as running:
        port = running.grpc_port
        assert peer_serial(port, pki.server_ca) == server_cert.serial
        creds = grpc.ssl_channel_credentials(pki.server_ca.cert_pem)
        with grpc.secure_channel(f"localhost:{port}", creds) as old_channel:
            old_stub = pb_grpc.MetricsServiceStub(old_channel)
            old_stub.RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution("before")), timeout=5
            )
            rotated = pki.server_ca.issue(
                "server", "localhost", server=True, directory=server_cert.cert.parent
            )
            assert rotated.cert == server_cert.cert
            assert rotated.serial != server_cert.serial
            assert peer_serial(port, pki.server_ca) == rotated.serial
            assert record_raw(port, creds, "after") == pb.RECORD_RESULT_ACCEPTED
            # The connection opened before the rotation goes on working.
            old_stub.RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution("old-conn")), timeout=5
            )
        assert running.aggregator.snapshot(0).ingest["accepted"] == 3


def test_a_broken_certificate_update_keeps_the_previous_one(pki: Pki, server_cert: Leaf) -> None:
    """A key that does not match the new certificate is not loaded; the old pair serves on."""
    with tls_server(tls_cert=str(server_cert.cert), tls_key=str(server_cert.key)) as running:
        port = running.grpc_port
        other = pki.server_ca.issue(
            "other", "localhost", server=True, directory=server_cert.cert.parent
        )
        server_cert.cert.write_bytes(other.cert_pem)  # the key stays the old one
        assert peer_serial(port, pki.server_ca) == server_cert.serial
        creds = grpc.ssl_channel_credentials(pki.server_ca.cert_pem)
        assert record_raw(port, creds, "still") == pb.RECORD_RESULT_ACCEPTED
        server_cert.key.write_bytes(other.key_pem)  # now the pair matches
        assert peer_serial(port, pki.server_ca) == other.serial


def test_rotating_the_client_ca_admits_clients_of_the_new_ca(pki: Pki, server_cert: Leaf) -> None:
    client_ca = server_cert.cert.parent / "clients.pem"
    client_ca.write_bytes(pki.client_ca.cert_pem)
    with tls_server(
        tls_cert=str(server_cert.cert),
        tls_key=str(server_cert.key),
        tls_client_ca=str(client_ca),
    ) as running:
        stranger = grpc.ssl_channel_credentials(
            pki.server_ca.cert_pem, pki.stranger.key_pem, pki.stranger.cert_pem
        )
        assert refused_code(running.grpc_port, stranger) == grpc.StatusCode.UNAVAILABLE
        client_ca.write_bytes(pki.client_ca.cert_pem + pki.other_ca.cert_pem)
        assert record_raw(running.grpc_port, stranger, "now") == pb.RECORD_RESULT_ACCEPTED


def test_async_client_over_mtls(pki: Pki, server_cert: Leaf) -> None:
    tls = TlsConfig(
        root_ca=pki.server_ca.cert_pem,
        client_cert=pki.client.cert_pem,
        client_key=pki.client.key_pem,
    )

    async def record(port: int) -> RecordResult:
        async with AsyncClient(f"localhost:{port}", tls=tls) as client:
            return await client.record(execution("async-mtls"))

    with tls_server(
        tls_cert=str(server_cert.cert),
        tls_key=str(server_cert.key),
        tls_client_ca=str(pki.client_ca.cert),
    ) as running:
        assert asyncio.run(record(running.grpc_port)) is RecordResult.ACCEPTED


def test_batch_recorder_over_mtls(pki: Pki, server_cert: Leaf) -> None:
    tls = TlsConfig(
        root_ca=pki.server_ca.cert, client_cert=pki.client.cert, client_key=pki.client.key
    )
    with tls_server(
        tls_cert=str(server_cert.cert),
        tls_key=str(server_cert.key),
        tls_client_ca=str(pki.client_ca.cert),
    ) as running:
        with BatchRecorder(f"localhost:{running.grpc_port}", tls=tls) as recorder:
            for i in range(25):
                recorder.record(execution(f"batch-{i}"))
        stats = recorder.stats()
        assert (stats.accepted, stats.dropped) == (25, 0)
        assert running.aggregator.snapshot(0).ingest["accepted"] == 25


def test_server_name_override_checks_the_certificate_against_that_name(
    pki: Pki, tmp_path: Path
) -> None:
    """A certificate naming only a DNS name, reached by IP address: refused unless the client
    sets server_name to that name."""
    named = pki.server_ca.issue(
        "named", "metrics", server=True, directory=tmp_path, names=("metrics.internal",)
    )
    with tls_server(tls_cert=str(named.cert), tls_key=str(named.key)) as running:
        target = f"127.0.0.1:{running.grpc_port}"
        with (
            Client(
                target, tls=TlsConfig(root_ca=pki.server_ca.cert), max_attempts=2, timeout=3
            ) as client,
            pytest.raises(CugarMetricsError) as caught,
        ):
            client.record(execution("no-override"))
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        tls = TlsConfig(root_ca=pki.server_ca.cert, server_name="metrics.internal")
        with Client(target, tls=tls) as client:
            assert client.record(execution("override")) is RecordResult.ACCEPTED


def test_tls_config_needs_the_client_key_with_the_client_cert(pki: Pki) -> None:
    with pytest.raises(ValueError, match="client_cert and client_key together"):
        TlsConfig(root_ca=pki.server_ca.cert, client_cert=pki.client.cert)
    with pytest.raises(ValueError, match="credentials or tls, not both"):
        Client(
            "localhost:1",
            tls=TlsConfig(),
            credentials=grpc.ssl_channel_credentials(),
        )
