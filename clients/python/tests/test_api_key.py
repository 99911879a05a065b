"""api_key= on Client, AsyncClient and BatchRecorder against `cugar-metrics serve
--auth-keys-file` (plaintext: the key is added by an interceptor), and the readable errors of
UNAUTHENTICATED and PERMISSION_DENIED."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import grpc
import pytest
from conftest import AuthServer, auth_process

from cugar_metrics_client import (
    AsyncClient,
    BatchRecorder,
    Client,
    CugarMetricsError,
    Execution,
    PermissionDeniedError,
    RecordResult,
    UnauthenticatedError,
)

KEYS: dict[str, tuple[str, str | None]] = {
    "rec": ("recorder", None),
    "read": ("reader", None),
    "admin": ("admin", None),
}


@pytest.fixture(scope="module")
def authed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with auth_process(tmp_path_factory.mktemp("auth"), KEYS, name="auth") as server:
        yield server


def run(profile: str, n: int = 0) -> Execution:
    return Execution(profile, "success", 1.0, execution_id=f"{profile}-{n}")


def executions_of(server: AuthServer, profile: str) -> int:
    with Client(server.target, api_key=server.keys["admin"]) as client:
        return int(client.get_dashboard(profile=profile).executions.total)


def test_no_key_is_unauthenticated_with_its_reason(authed: AuthServer) -> None:
    """Without api_key: UnauthenticatedError, reason MISSING_CREDENTIALS, in str() too."""
    with Client(authed.target) as client, pytest.raises(UnauthenticatedError) as caught:
        client.record(run("nokey"))
    error = caught.value
    assert isinstance(error, CugarMetricsError)
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "MISSING_CREDENTIALS"
    assert str(error).startswith("UNAUTHENTICATED (MISSING_CREDENTIALS): ")
    assert error.retry_delay is None


@pytest.mark.parametrize(
    ("key", "reason"),
    [("cgm_" + "x" * 43, "UNKNOWN_KEY"), ("gone", "REVOKED_KEY")],
)
def test_unknown_and_revoked_keys_are_unauthenticated(
    authed: AuthServer, key: str, reason: str
) -> None:
    with (
        Client(authed.target, api_key=authed.keys.get(key, key)) as client,
        pytest.raises(UnauthenticatedError) as caught,
    ):
        client.get_dashboard()
    assert caught.value.reason == reason


def test_a_recorder_key_records(authed: AuthServer) -> None:
    """Both RPCs carry the key: ACCEPTED, DUPLICATE, and a batch of 2 accepted."""
    with Client(authed.target, api_key=authed.keys["rec"]) as client:
        assert client.record(run("rec")) is RecordResult.ACCEPTED
        assert client.record(run("rec")) is RecordResult.DUPLICATE
        result = client.record_batch([run("rec", 1), run("rec", 2)])
    assert (result.accepted, result.duplicate, result.rejected) == (2, 0, 0)
    assert executions_of(authed, "rec") == 3


def test_a_reader_key_is_permission_denied_on_record(authed: AuthServer) -> None:
    """PermissionDeniedError names the reason, the key's role and the method; reading works."""
    with Client(authed.target, api_key=authed.keys["read"]) as client:
        with pytest.raises(PermissionDeniedError) as caught:
            client.record(run("reader"))
        assert client.get_dashboard(profile="reader").executions.total == 0
    error = caught.value
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.reason == "ROLE_NOT_ALLOWED"
    assert error.metadata == {
        "role": "reader",
        "method": "cugar.metrics.v1.MetricsService/RecordExecution",
    }


def test_async_client_sends_the_key(authed: AuthServer) -> None:
    async def main() -> tuple[RecordResult, str]:
        async with AsyncClient(authed.target, api_key=authed.keys["rec"]) as client:
            result = await client.record(run("async"))
        async with AsyncClient(authed.target) as client:
            try:
                await client.record(run("async", 1))
            except UnauthenticatedError as error:
                return result, error.reason
        raise AssertionError("recorded without a key")

    assert asyncio.run(main()) == (RecordResult.ACCEPTED, "MISSING_CREDENTIALS")
    assert executions_of(authed, "async") == 1


def test_batch_recorder_sends_the_key(authed: AuthServer) -> None:
    """With the key, 3 accepted; without, the batch fails and is counted as dropped."""
    with BatchRecorder(authed.target, api_key=authed.keys["rec"], flush_interval=0.1) as rec:
        for n in range(3):
            rec.record(run("batch", n))
        assert rec.flush(5.0)
        stats = rec.stats()
    assert (stats.accepted, stats.dropped) == (3, 0)
    with BatchRecorder(authed.target, flush_interval=0.1) as rec:
        rec.record(run("batch", 9))
        assert rec.flush(5.0)
        stats = rec.stats()
    assert (stats.accepted, stats.dropped_failed, stats.batches_failed) == (0, 1, 1)
    assert executions_of(authed, "batch") == 3


@pytest.mark.parametrize("key", ["", "two words", "line\nbreak", "clé"])
def test_an_api_key_that_cannot_be_sent_is_refused_at_once(key: str) -> None:
    with pytest.raises(ValueError, match="api_key"):
        Client("127.0.0.1:1", api_key=key)
