"""RetryInfo honoured by Client, AsyncClient and BatchRecorder against `cugar-metrics serve
--rate-limit-recorder 2/s:1`: a refused call is sent again after the server's delay (about
0.5 s), within the call's deadline, a bounded number of times."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from conftest import AuthServer, auth_process
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from cugar_metrics_client import (
    AsyncClient,
    BatchRecorder,
    Client,
    Execution,
    RecordResult,
    ResourceExhaustedError,
)
from cugar_metrics_client._retry import wait_before_retry

# One recorder key per test, so each starts with a full bucket; "slow" has a limit of its own
# whose delay (a minute) is beyond any deadline here.
KEYS: dict[str, tuple[str, str | None]] = {
    "sync": ("recorder", None),
    "async": ("recorder", None),
    "batch": ("recorder", None),
    "noretry": ("recorder", None),
    "slow": ("recorder", "1/m:1"),
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    directory = tmp_path_factory.mktemp("ratelimit")
    with auth_process(directory, KEYS, "--rate-limit-recorder", "2/s:1", name="limited") as server:
        yield server


def run(name: str) -> Execution:
    return Execution("limited", "success", 1.0, execution_id=name)


def test_two_immediate_records_both_succeed_because_the_client_waited(
    limited: AuthServer,
) -> None:
    before = limited.rate_limited()
    with Client(limited.target, api_key=limited.keys["sync"]) as client:
        assert client.record(run("sync-1")) is RecordResult.ACCEPTED
        started = time.monotonic()
        assert client.record(run("sync-2")) is RecordResult.ACCEPTED
        waited = time.monotonic() - started
    assert waited >= 0.3, waited  # at least the server's delay (about 0.5 s)
    assert limited.rate_limited() == before + 1  # type: ignore[operator]


def test_async_client_waits_the_delay_too(limited: AuthServer) -> None:
    before = limited.rate_limited()

    async def main() -> float:
        async with AsyncClient(limited.target, api_key=limited.keys["async"]) as client:
            result = await client.record_batch([run("async-1")])
            assert result.accepted == 1
            started = time.monotonic()
            assert await client.record(run("async-2")) is RecordResult.ACCEPTED
            return time.monotonic() - started

    waited = asyncio.run(main())
    assert waited >= 0.3, waited  # at least the server's delay (about 0.5 s)
    assert limited.rate_limited() == before + 1  # type: ignore[operator]


def test_without_retries_the_error_carries_reason_and_delay(limited: AuthServer) -> None:
    with Client(limited.target, api_key=limited.keys["noretry"], rate_limit_retries=0) as c:
        c.record(run("noretry-1"))
        with pytest.raises(ResourceExhaustedError) as caught:
            c.record(run("noretry-2"))
    error = caught.value
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "RATE_LIMITED"
    assert error.retry_delay is not None and 0.3 <= error.retry_delay <= 0.5


def test_a_delay_beyond_the_deadline_fails_at_once(limited: AuthServer) -> None:
    """A minute's delay (capped at 30 s) does not fit in a 5 s deadline: the call gives up at
    once with the rate-limit error (had it slept, the retry would have had no time left and
    failed with DEADLINE_EXCEEDED), after one refusal."""
    before = limited.rate_limited()
    with Client(limited.target, api_key=limited.keys["slow"], timeout=5.0) as client:
        client.record(run("slow-1"))
        with pytest.raises(ResourceExhaustedError) as caught:
            client.record(run("slow-2"))
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.retry_delay is not None and 55 < caught.value.retry_delay <= 60
    assert limited.rate_limited() == before + 1  # type: ignore[operator]


def test_batch_recorder_keeps_the_batch_and_sends_it_after_the_delay(
    limited: AuthServer,
) -> None:
    """The second batch is refused once, kept, and accepted after ~0.5 s; record() takes a
    new execution while the refused batch waits; nothing is dropped."""
    before = limited.rate_limited()
    with BatchRecorder(limited.target, api_key=limited.keys["batch"], flush_interval=0.05) as rec:
        rec.record(run("batch-1"))
        assert rec.flush(5.0)
        started = time.monotonic()
        rec.record(run("batch-2"))
        while rec.stats().batches_rate_limited == 0:
            time.sleep(0.01)
        assert rec.record(run("batch-3"))
        held = rec.stats()
        # batch-2 is still held for its delay (not delivered), and record() took batch-3.
        assert (held.accepted, held.in_flight, held.buffered + held.in_flight) == (1, 1, 2)
        assert rec.flush(5.0)
        waited = time.monotonic() - started
        stats = rec.stats()
    # batch-2 waited one delay; batch-3, sent right after it, waited another.
    assert waited >= 0.6, waited
    assert (stats.accepted, stats.dropped, stats.batches_sent) == (3, 0, 3)
    assert stats.batches_rate_limited == 2
    assert limited.rate_limited() == before + 2  # type: ignore[operator]


class FakeError(grpc.RpcError):  # type: ignore[misc]  # grpc ships no type information
    """A failed call whose status carries a RetryInfo of `delay` seconds."""

    def __init__(self, code: grpc.StatusCode, delay: float) -> None:
        info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(delay)))
        packed = any_pb2.Any()
        packed.Pack(info)
        status = status_pb2.Status(code=code.value[0], message="m", details=[packed])
        self._code = code
        self._trailers = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "m"

    def trailing_metadata(self) -> Any:
        return self._trailers


def test_wait_before_retry_caps_the_delay_and_bounds_the_retries() -> None:
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
    assert wait_before_retry(FakeError(exhausted, 2), 0, 3, 10.0) == 2.0
    assert wait_before_retry(FakeError(exhausted, 45), 0, 3, 60.0) == 30.0  # capped
    assert wait_before_retry(FakeError(exhausted, 2), 3, 3, 10.0) is None  # retries used up
    assert wait_before_retry(FakeError(exhausted, 2), 0, 3, 1.5) is None  # past the deadline
    unavailable = grpc.StatusCode.UNAVAILABLE
    assert wait_before_retry(FakeError(unavailable, 2), 0, 3, 10.0) is None  # not a limit
