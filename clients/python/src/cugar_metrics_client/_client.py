"""The sync and asyncio clients of cugar.metrics.v1.MetricsService."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import grpc
import grpc.aio

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc

from ._auth import AsyncBearerInterceptor, BearerInterceptor, check_api_key, with_call_credentials
from ._channel import MAX_ATTEMPTS, channel_options
from ._errors import FieldViolation, InvalidExecutionError, InvalidRequestError, from_rpc_error
from ._model import (
    RESULT_FROM_PB,
    BatchResult,
    DurationLike,
    Execution,
    ExecutionLike,
    RecordResult,
    RejectedItem,
    set_duration,
    to_proto,
)
from ._retry import RATE_LIMIT_RETRIES, check_cap, check_retries, wait_before_retry
from ._run import AsyncRun, Run, track_async, track_sync
from ._spec import CALL_DEADLINE, RETRY_INFO_CAP
from ._tls import TlsConfig

P = ParamSpec("P")
R = TypeVar("R")

#: The most executions one RecordExecutions call may carry; ``record_batch`` splits longer
#: sequences into calls of this size.
MAX_BATCH = 1000

_ITEM_PATH = re.compile(r"^executions\[(\d+)\]")


def _record_request(execution: ExecutionLike) -> pb.RecordExecutionRequest:
    request = pb.RecordExecutionRequest()
    request.execution.CopyFrom(to_proto(execution))
    return request


def _batch_requests(executions: Iterable[ExecutionLike]) -> list[pb.RecordExecutionsRequest]:
    requests: list[pb.RecordExecutionsRequest] = []
    current = pb.RecordExecutionsRequest()
    for execution in executions:
        if len(current.executions) == MAX_BATCH:
            requests.append(current)
            current = pb.RecordExecutionsRequest()
        current.executions.append(to_proto(execution))
    if current.executions:
        requests.append(current)
    return requests


def _shift_path(path: str, offset: int) -> str:
    if offset == 0:
        return path
    return _ITEM_PATH.sub(lambda m: f"executions[{int(m.group(1)) + offset}]", path, count=1)


def batch_result(responses: Sequence[pb.RecordExecutionsResponse]) -> BatchResult:
    """Merge the responses of consecutive RecordExecutions calls into one result."""
    results: list[RecordResult] = []
    rejected: list[RejectedItem] = []
    accepted = duplicate = rejected_count = 0
    for response in responses:
        offset = len(results)
        accepted += response.accepted_count
        duplicate += response.duplicate_count
        rejected_count += response.rejected_count
        results.extend(RESULT_FROM_PB.get(r, RecordResult.REJECTED) for r in response.results)
        rejected.extend(
            RejectedItem(
                index=item.index + offset,
                execution_id=item.execution_id,
                violations=tuple(
                    FieldViolation(_shift_path(v.field, offset), v.description, v.reason)
                    for v in item.field_violations
                ),
            )
            for item in response.rejected_executions
        )
    return BatchResult(accepted, duplicate, rejected_count, tuple(results), tuple(rejected))


def dashboard_request(
    window: DurationLike | None,
    profile: str | None,
    domain: str | None,
    model: str | None = None,
) -> pb.GetDashboardRequest:
    """The GetDashboard request: ``window`` in seconds or a timedelta, or None for all time."""
    request = pb.GetDashboardRequest(profile=profile or "", domain=domain or "", model=model or "")
    if window is not None:
        set_duration(request.window, window)
    return request


def _options(
    max_attempts: int, options: Mapping[str, int | str] | None
) -> list[tuple[str, int | str]]:
    return channel_options(max_attempts=max_attempts, extra=dict(options or {}))


def _with_tls(
    credentials: grpc.ChannelCredentials | None,
    tls: TlsConfig | None,
    options: Mapping[str, int | str] | None,
) -> tuple[grpc.ChannelCredentials | None, Mapping[str, int | str] | None]:
    """Folds ``tls`` into credentials and channel options (the caller's options win)."""
    if tls is None:
        return credentials, options
    if credentials is not None:
        raise ValueError("give credentials or tls, not both")
    return tls.channel_credentials(), {**tls.channel_options(), **(options or {})}


def sync_channel(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None,
    tls: TlsConfig | None,
    options: Mapping[str, int | str] | None,
    max_attempts: int,
    api_key: str | None,
) -> grpc.Channel:
    """The channel of a ``Client``: plaintext, or secure with ``tls``/``credentials``; with an
    API key as call credentials (secure) or added by an interceptor (plaintext)."""
    credentials, options = _with_tls(credentials, tls, options)
    channel_opts = _options(max_attempts, options)
    if credentials is not None:
        if api_key is not None:
            credentials = with_call_credentials(credentials, check_api_key(api_key))
        return grpc.secure_channel(target, credentials, options=channel_opts)
    channel = grpc.insecure_channel(target, options=channel_opts)
    if api_key is None:
        return channel
    return grpc.intercept_channel(channel, BearerInterceptor(check_api_key(api_key)))


def async_channel(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None,
    tls: TlsConfig | None,
    options: Mapping[str, int | str] | None,
    max_attempts: int,
    api_key: str | None,
) -> grpc.aio.Channel:
    """The ``grpc.aio`` channel of an ``AsyncClient``, made as ``sync_channel`` makes its."""
    credentials, options = _with_tls(credentials, tls, options)
    channel_opts = _options(max_attempts, options)
    if credentials is not None:
        if api_key is not None:
            credentials = with_call_credentials(credentials, check_api_key(api_key))
        return grpc.aio.secure_channel(target, credentials, options=channel_opts)
    interceptors = None if api_key is None else [AsyncBearerInterceptor(check_api_key(api_key))]
    return grpc.aio.insecure_channel(target, options=channel_opts, interceptors=interceptors)


class Client:
    """A blocking client.

    ``target`` is ``host:port`` or any gRPC target (``dns:///metrics.svc:50051``). Every call
    has a deadline (``timeout`` seconds unless the call says otherwise) and is retried with
    exponential backoff while the server answers UNAVAILABLE, within that deadline. Failed
    calls raise ``CugarMetricsError``; invalid input raises ``InvalidExecutionError`` (or
    ``InvalidRequestError`` for GetDashboard) with the field violations.

    The channel is plaintext unless ``tls=TlsConfig(...)`` (TLS, and mutual TLS with a
    client certificate) or ``credentials`` (any ``grpc.ChannelCredentials``) is given.
    ``api_key`` sends ``authorization: Bearer <api_key>`` on every call; a missing or bad
    key raises ``UnauthenticatedError``, a key of the wrong role ``PermissionDeniedError``,
    each with the server's ``reason``.

    A call refused by a rate limit (RESOURCE_EXHAUSTED with a ``google.rpc.RetryInfo``) is
    retried after the delay the server gives (at most ``retry_info_cap``, 30 s), up to
    ``rate_limit_retries`` times and only while the wait ends within the call's deadline;
    then it raises ``ResourceExhaustedError``. The defaults come from ``clients/spec.yaml``.

    Use it as a context manager, or call ``close()``.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = CALL_DEADLINE,
        credentials: grpc.ChannelCredentials | None = None,
        options: Mapping[str, int | str] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        tls: TlsConfig | None = None,
        api_key: str | None = None,
        rate_limit_retries: int = RATE_LIMIT_RETRIES,
        retry_info_cap: float = RETRY_INFO_CAP,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.rate_limit_retries = check_retries(rate_limit_retries)
        self.retry_info_cap = check_cap(retry_info_cap)
        self._channel: grpc.Channel = sync_channel(
            target,
            credentials=credentials,
            tls=tls,
            options=options,
            max_attempts=max_attempts,
            api_key=api_key,
        )
        self._stub: Any = pb_grpc.MetricsServiceStub(self._channel)

    @property
    def stub(self) -> Any:
        """The generated ``MetricsServiceStub`` on this client's channel."""
        return self._stub

    def _call(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None,
        invalid: type[InvalidRequestError],
    ) -> Any:
        """One RPC within one deadline, retried after the delay of each RetryInfo."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        retries = 0
        while True:
            try:
                return method(request, timeout=max(0.0, deadline - time.monotonic()))
            except grpc.RpcError as error:
                wait = wait_before_retry(
                    error,
                    retries,
                    self.rate_limit_retries,
                    deadline - time.monotonic(),
                    self.retry_info_cap,
                )
                if wait is None:
                    raise from_rpc_error(error, invalid=invalid) from None
            retries += 1
            time.sleep(wait)

    def record(self, execution: ExecutionLike, *, timeout: float | None = None) -> RecordResult:
        """Record one finished execution: ``ACCEPTED``, or ``DUPLICATE`` if its id was seen."""
        request = _record_request(execution)
        response: pb.RecordExecutionResponse = self._call(
            self._stub.RecordExecution, request, timeout, InvalidExecutionError
        )
        return RESULT_FROM_PB.get(response.result, RecordResult.REJECTED)

    def record_batch(
        self, executions: Iterable[ExecutionLike], *, timeout: float | None = None
    ) -> BatchResult:
        """Record many executions, each on its own, in calls of at most 1000.

        Invalid items are reported in the result, not raised. An empty input makes no call.
        """
        responses: list[pb.RecordExecutionsResponse] = [
            self._call(self._stub.RecordExecutions, request, timeout, InvalidRequestError)
            for request in _batch_requests(executions)
        ]
        return batch_result(responses)

    def get_dashboard(
        self,
        window: DurationLike | None = None,
        profile: str | None = None,
        domain: str | None = None,
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> pb.GetDashboardResponse:
        """The golden signals and breakdowns of the replica that answers.

        ``window`` (seconds or a timedelta, 1 minute to 1 hour) limits them to the recent
        past; None covers everything since the replica started. ``model`` limits the models
        rows (and model signals) to one model.
        """
        request = dashboard_request(window, profile, domain, model)
        response: pb.GetDashboardResponse = self._call(
            self._stub.GetDashboard, request, timeout, InvalidRequestError
        )
        return response

    def _sink(self, execution: Execution) -> RecordResult:
        return self.record(execution)

    def run(self, profile: str, *, execution_id: str | None = None, trace_id: str = "") -> Run:
        """Measure one execution: ``with client.run("sales_rep") as run: ...``.

        Recorded when the block ends, as a failure of the exception's class name if it
        raises (the exception propagates). A failure to record is logged, not raised.
        """
        return Run(self._sink, profile, execution_id=execution_id, trace_id=trace_id)

    def track(self, profile: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Decorator: measure every call of the function as one execution of ``profile``."""
        return track_sync(lambda: self.run(profile))

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncClient:
    """The asyncio (``grpc.aio``) client, with the same methods as ``Client`` as coroutines.

    Create it inside the running event loop; ``async with AsyncClient(target) as client``.
    ``api_key``, ``tls``, ``rate_limit_retries`` and ``retry_info_cap`` work as for
    ``Client``; the wait before
    a rate-limited retry is an ``asyncio.sleep``.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float = CALL_DEADLINE,
        credentials: grpc.ChannelCredentials | None = None,
        options: Mapping[str, int | str] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        tls: TlsConfig | None = None,
        api_key: str | None = None,
        rate_limit_retries: int = RATE_LIMIT_RETRIES,
        retry_info_cap: float = RETRY_INFO_CAP,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.rate_limit_retries = check_retries(rate_limit_retries)
        self.retry_info_cap = check_cap(retry_info_cap)
        self._channel: grpc.aio.Channel = async_channel(
            target,
            credentials=credentials,
            tls=tls,
            options=options,
            max_attempts=max_attempts,
            api_key=api_key,
        )
        self._stub: Any = pb_grpc.MetricsServiceStub(self._channel)

    async def _call(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None,
        invalid: type[InvalidRequestError],
    ) -> Any:
        """One RPC within one deadline, retried after the delay of each RetryInfo."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        retries = 0
        while True:
            try:
                return await method(request, timeout=max(0.0, deadline - time.monotonic()))
            except grpc.RpcError as error:
                wait = wait_before_retry(
                    error,
                    retries,
                    self.rate_limit_retries,
                    deadline - time.monotonic(),
                    self.retry_info_cap,
                )
                if wait is None:
                    raise from_rpc_error(error, invalid=invalid) from None
            retries += 1
            await asyncio.sleep(wait)

    async def record(
        self, execution: ExecutionLike, *, timeout: float | None = None
    ) -> RecordResult:
        """Record one finished execution: ``ACCEPTED``, or ``DUPLICATE`` if its id was seen."""
        request = _record_request(execution)
        response: pb.RecordExecutionResponse = await self._call(
            self._stub.RecordExecution, request, timeout, InvalidExecutionError
        )
        return RESULT_FROM_PB.get(response.result, RecordResult.REJECTED)

    async def record_batch(
        self, executions: Iterable[ExecutionLike], *, timeout: float | None = None
    ) -> BatchResult:
        """Record many executions, each on its own, in calls of at most 1000."""
        responses: list[pb.RecordExecutionsResponse] = [
            await self._call(self._stub.RecordExecutions, request, timeout, InvalidRequestError)
            for request in _batch_requests(executions)
        ]
        return batch_result(responses)

    async def get_dashboard(
        self,
        window: DurationLike | None = None,
        profile: str | None = None,
        domain: str | None = None,
        *,
        model: str | None = None,
        timeout: float | None = None,
    ) -> pb.GetDashboardResponse:
        """The golden signals and breakdowns of the replica that answers."""
        request = dashboard_request(window, profile, domain, model)
        response: pb.GetDashboardResponse = await self._call(
            self._stub.GetDashboard, request, timeout, InvalidRequestError
        )
        return response

    async def _sink(self, execution: Execution) -> RecordResult:
        return await self.record(execution)

    def run(self, profile: str, *, execution_id: str | None = None, trace_id: str = "") -> AsyncRun:
        """Measure one execution: ``async with client.run("sales_rep") as run: ...``."""
        return AsyncRun(self._sink, profile, execution_id=execution_id, trace_id=trace_id)

    def track(
        self, profile: str
    ) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
        """Decorator for coroutine functions: measure every call as one execution."""
        return track_async(lambda: self.run(profile))

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
