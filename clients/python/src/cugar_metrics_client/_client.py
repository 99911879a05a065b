"""The sync and asyncio clients of cugar.metrics.v1.MetricsService."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, ParamSpec, Self, TypeAlias, TypeVar

import grpc
import grpc.aio

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc

from ._auth import AsyncBearerInterceptor, BearerInterceptor, check_api_key, with_call_credentials
from ._channel import MAX_ATTEMPTS, channel_options
from ._errors import (
    CugarMetricsError,
    FieldViolation,
    InvalidExecutionError,
    InvalidRequestError,
    from_rpc_error,
)
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
from ._retry import (
    RATE_LIMIT_RETRIES,
    CallAttempts,
    check_attempt_timeout,
    check_attempts,
    check_cap,
    check_retries,
)
from ._run import AsyncRun, Run, track_async, track_sync
from ._spec import (
    ATTEMPT_DEADLINE,
    CALL_DEADLINE,
    RETRY_INFO_CAP,
    WATCH_INTERVAL,
    WATCH_RECONNECT_CODES,
    watch_backoff,
)
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


Scope: TypeAlias = Literal["replica", "cluster"]
_SCOPES = {
    None: pb.DASHBOARD_SCOPE_UNSPECIFIED,
    "replica": pb.DASHBOARD_SCOPE_REPLICA,
    "cluster": pb.DASHBOARD_SCOPE_CLUSTER,
}


def dashboard_request(
    window: DurationLike | None,
    profile: str | None,
    domain: str | None,
    scope: Scope | None = None,
    model: str | None = None,
) -> pb.GetDashboardRequest:
    """The GetDashboard request: ``window`` in seconds or a timedelta, or None for all time;
    ``scope`` "replica", "cluster", or None for the server's default (cluster when it has
    peers); ``model`` limits the model rows to one model."""
    if scope not in _SCOPES:
        raise ValueError(f"scope is {scope!r}: 'replica', 'cluster' or None")
    request = pb.GetDashboardRequest(
        profile=profile or "", domain=domain or "", model=model or "", scope=_SCOPES[scope]
    )
    if window is not None:
        set_duration(request.window, window)
    return request


def _options(options: Mapping[str, int | str] | None) -> list[tuple[str, int | str]]:
    return channel_options(extra=dict(options or {}))


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
    api_key: str | None,
) -> grpc.Channel:
    """The channel of a ``Client``: plaintext, or secure with ``tls``/``credentials``; with an
    API key as call credentials (secure) or added by an interceptor (plaintext)."""
    credentials, options = _with_tls(credentials, tls, options)
    channel_opts = _options(options)
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
    api_key: str | None,
) -> grpc.aio.Channel:
    """The ``grpc.aio`` channel of an ``AsyncClient``, made as ``sync_channel`` makes its."""
    credentials, options = _with_tls(credentials, tls, options)
    channel_opts = _options(options)
    if credentials is not None:
        if api_key is not None:
            credentials = with_call_credentials(credentials, check_api_key(api_key))
        return grpc.aio.secure_channel(target, credentials, options=channel_opts)
    interceptors = None if api_key is None else [AsyncBearerInterceptor(check_api_key(api_key))]
    return grpc.aio.insecure_channel(target, options=channel_opts, interceptors=interceptors)


def _attempts(client: Client | AsyncClient, timeout: float | None) -> CallAttempts:
    return CallAttempts(
        client.timeout if timeout is None else timeout,
        attempt_timeout=client.attempt_timeout,
        max_attempts=client.max_attempts,
        rate_limit_retries=client.rate_limit_retries,
        cap=client.retry_info_cap,
    )


class Client:
    """A blocking client.

    ``target`` is ``host:port`` or any gRPC target (``dns:///metrics.svc:50051``). Every call
    has a deadline (``timeout`` seconds unless the call says otherwise, 10 by default) for all
    its attempts; each attempt has at most ``attempt_timeout`` seconds of it (5; None: the
    whole deadline). While the server answers UNAVAILABLE the call is tried again, up to
    ``max_attempts`` in all, after a random wait of up to 0.1 s, doubling to at most 2 s,
    within the deadline. Failed
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
        attempt_timeout: float | None = ATTEMPT_DEADLINE,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.max_attempts = check_attempts(max_attempts)
        self.attempt_timeout = check_attempt_timeout(attempt_timeout)
        self.rate_limit_retries = check_retries(rate_limit_retries)
        self.retry_info_cap = check_cap(retry_info_cap)
        self._channel: grpc.Channel = sync_channel(
            target,
            credentials=credentials,
            tls=tls,
            options=options,
            api_key=api_key,
        )
        self._stub: Any = pb_grpc.MetricsServiceStub(self._channel)

    @property
    def stub(self) -> Any:
        """The generated ``MetricsServiceStub`` on this client's channel."""
        return self._stub

    def _attempts(self, timeout: float | None) -> CallAttempts:
        return _attempts(self, timeout)

    def _call(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None,
        invalid: type[InvalidRequestError],
    ) -> Any:
        """One RPC within one deadline: attempts retried on UNAVAILABLE and after the delay
        of each RetryInfo (``CallAttempts``)."""
        attempts = self._attempts(timeout)
        while True:
            try:
                return method(request, timeout=attempts.timeout())
            except grpc.RpcError as error:
                wait = attempts.wait(error)
                if wait is None:
                    raise from_rpc_error(error, invalid=invalid) from None
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
        scope: Scope | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> pb.GetDashboardResponse:
        """The golden signals and breakdowns of the replica that answers, or of the whole
        cluster (``scope="cluster"``; None: the server's default, cluster when it has peers).

        ``window`` (seconds or a timedelta, 1 minute to 1 hour) limits them to the recent
        past; None covers everything since the replica started. ``model`` limits the models
        rows (and model signals) to one model.
        """
        request = dashboard_request(window, profile, domain, scope, model)
        response: pb.GetDashboardResponse = self._call(
            self._stub.GetDashboard, request, timeout, InvalidRequestError
        )
        return response

    def watch_dashboard(
        self,
        window: DurationLike | None = None,
        profile: str | None = None,
        domain: str | None = None,
        *,
        scope: Scope | None = None,
        model: str | None = None,
        interval: DurationLike = WATCH_INTERVAL,
        reconnect: bool = True,
        on_reconnect: Callable[[CugarMetricsError], None] | None = None,
    ) -> Iterator[pb.GetDashboardResponse]:
        """A dashboard every ``interval`` (1 s to 1 h), pushed by the server
        (``WatchDashboard``), for as long as the caller iterates.

        When the stream ends with UNAVAILABLE (the server drains, or the connection is
        lost) and ``reconnect`` is true, it is opened again, after a short wait that grows
        while reopening fails; ``on_reconnect`` is called with the error first. Any other
        error is raised (``InvalidRequestError``, ``ResourceExhaustedError``, ...).
        """
        request = pb.WatchDashboardRequest(
            dashboard=dashboard_request(window, profile, domain, scope, model)
        )
        set_duration(request.interval, interval)
        failures = 0
        while True:
            stream = self._stub.WatchDashboard(request)
            try:
                for response in stream:
                    failures = 0
                    yield response
                return  # the server ended the stream without an error
            except grpc.RpcError as error:
                if not reconnect or error.code().name not in WATCH_RECONNECT_CODES:
                    raise from_rpc_error(error, invalid=InvalidRequestError) from None
                if on_reconnect is not None:
                    on_reconnect(from_rpc_error(error))
            finally:
                stream.cancel()
            time.sleep(watch_backoff(failures))
            failures += 1

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
        attempt_timeout: float | None = ATTEMPT_DEADLINE,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.max_attempts = check_attempts(max_attempts)
        self.attempt_timeout = check_attempt_timeout(attempt_timeout)
        self.rate_limit_retries = check_retries(rate_limit_retries)
        self.retry_info_cap = check_cap(retry_info_cap)
        self._channel: grpc.aio.Channel = async_channel(
            target,
            credentials=credentials,
            tls=tls,
            options=options,
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
        """One RPC within one deadline, retried as ``Client._call`` retries."""
        attempts = _attempts(self, timeout)
        while True:
            try:
                return await method(request, timeout=attempts.timeout())
            except grpc.RpcError as error:
                wait = attempts.wait(error)
                if wait is None:
                    raise from_rpc_error(error, invalid=invalid) from None
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
        scope: Scope | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> pb.GetDashboardResponse:
        """The golden signals and breakdowns of the replica that answers, or of the cluster
        (``scope``, ``model`` as for ``Client.get_dashboard``)."""
        request = dashboard_request(window, profile, domain, scope, model)
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
