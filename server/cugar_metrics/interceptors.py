"""Per-RPC server metrics with the go-grpc-prometheus names, and the request guard.

grpc_server_started_total, grpc_server_handled_total (with grpc_code) and
grpc_server_handling_seconds, for unary RPCs; every MetricsService method is created at zero
for every code at start-up, as go-grpc-prometheus' InitializeMetrics does.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from cugar_metrics import errors
from cugar_metrics.connection_limits import StreamCaps
from cugar_metrics.validation import Violation
from cugar_metrics.wire import UndecodableError

_LABELS = ["grpc_type", "grpc_service", "grpc_method"]
# go-grpc-prometheus' default buckets (prometheus.DefBuckets).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class RpcMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", _LABELS, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, regardless of success or failure.",
            [*_LABELS, "grpc_code"],
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "Response latency of RPCs handled by the server.",
            _LABELS,
            buckets=_BUCKETS,
            registry=registry,
        )

    def initialize(self, service: str, methods: list[str]) -> None:
        for method in methods:
            self.started.labels("unary", service, method)
            self.seconds.labels("unary", service, method)
            for code in grpc.StatusCode:
                self.handled.labels("unary", service, method, code.name)


def _split(full_method: str) -> tuple[str, str]:
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: RpcMetrics) -> None:
        self._m = metrics
        #: Labelled children by (service, method) and by (service, method, code): found once
        #: (prometheus_client's labels() takes a lock and builds a key at every call).
        self._per_method: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._per_code: dict[tuple[str, str, str], Any] = {}

    def _handled(self, service: str, method: str, code: str) -> Any:
        key = (service, method, code)
        child = self._per_code.get(key)
        if child is None:
            child = self._m.handled.labels("unary", service, method, code)
            if len(self._per_code) < 10_000:  # bounded by the methods served
                self._per_code[key] = child
        return child

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, method = _split(details.method)
        behavior = handler.unary_unary
        children = self._per_method.get((service, method))
        if children is None:
            children = (
                self._m.started.labels("unary", service, method),
                self._m.seconds.labels("unary", service, method),
            )
            if len(self._per_method) < 10_000:  # bounded by the methods served
                self._per_method[(service, method)] = children
        started, seconds = children
        handled = self._handled

        async def observed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started.inc()
            t0 = time.perf_counter()
            code: grpc.StatusCode | None = None
            try:
                response = await behavior(request, context)
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except BaseException:
                code = grpc.StatusCode.UNKNOWN
                raise
            else:
                code = context.code() or grpc.StatusCode.OK
                return response
            finally:
                name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
                handled(service, method, name).inc()
                seconds.observe(time.perf_counter() - t0)  # last: a complete record

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


#: Why `RequestGuard` refused a call: cugar_rpc_refusals_total{reason}.
REFUSAL_REASONS = ("undecodable", "concurrent_rpcs", "watch_streams", "reflection_streams")

_WATCH = "/grpc.health.v1.Health/Watch"
_REFLECTION_SERVICES = (
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


class Undecodable:
    """What a guarded deserializer returns for bytes that are not the request message."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


class RequestGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The innermost interceptor: the request-handling bounds of every call.

    - MetricsService and the OTLP TraceService (`services`): a body that does not decode as
      the request message is answered
      INVALID_ARGUMENT (never UNKNOWN with a traceback); at most `max_concurrent_rpcs` calls
      run at once, the rest are answered RESOURCE_EXHAUSTED. The authentication interceptor
      runs before this one and refuses callers without a valid key without decoding.
    - Health `Watch` and reflection streams: capped per connection and in total by `watch`
      and `reflection`. Health `Check` is never limited.
    Refusals are counted in cugar_rpc_refusals_total{reason}.
    """

    def __init__(
        self,
        services: tuple[str, ...],
        max_concurrent_rpcs: int,
        watch: StreamCaps,
        reflection: StreamCaps,
        registry: CollectorRegistry,
    ) -> None:
        self._prefixes = tuple(f"/{service}/" for service in services)
        self._limit = max_concurrent_rpcs
        self.in_flight = 0
        self._watch = watch
        self._reflection = reflection
        refusals = Counter(
            "cugar_rpc_refusals",
            "Calls refused before their handler ran: an undecodable body, or a limit on "
            "calls in flight or open streams, by reason.",
            ["reason"],
            registry=registry,
        )
        self._refused = {r: refusals.labels(r) for r in REFUSAL_REASONS}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None:
            return handler
        if method.startswith(self._prefixes) and handler.unary_unary is not None:
            return self._guarded(handler, method.rpartition("/")[2])
        if method == _WATCH:
            return _capped(handler, self._watch, self._refused["watch_streams"])
        if method.lstrip("/").rpartition("/")[0] in _REFLECTION_SERVICES:
            return _capped(handler, self._reflection, self._refused["reflection_streams"])
        return handler

    def _guarded(self, handler: grpc.RpcMethodHandler, name: str) -> grpc.RpcMethodHandler:
        decode = handler.request_deserializer
        behavior = handler.unary_unary
        # The request message's name, from its decoder (`SomeRequest.FromString`).
        request_type = getattr(getattr(decode, "__self__", None), "__name__", f"{name}Request")

        def deserialize(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception as e:  # DecodeError, or whatever a malformed body raises
                return Undecodable(f"{type(e).__name__}: {e}")

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, Undecodable):
                self._refused["undecodable"].inc()
                violation = Violation(
                    "request",
                    f"is not a {request_type} message ({request.error})",
                    "UNDECODABLE",
                )
                await context.abort_with_status(
                    errors.invalid_argument("undecodable request", [violation], "UNDECODABLE")
                )
            if self.in_flight >= self._limit:
                self._refused["concurrent_rpcs"].inc()
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{self.in_flight} calls are in flight, the most allowed "
                    f"(--max-concurrent-rpcs {self._limit}); retry with backoff",
                )
            self.in_flight += 1
            try:
                return await behavior(request, context)
            except UndecodableError as e:  # an item of a batch decoded one at a time
                self._refused["undecodable"].inc()
                await context.abort_with_status(
                    errors.invalid_argument(
                        "undecodable request",
                        [Violation(e.field, str(e), "UNDECODABLE")],
                        "UNDECODABLE",
                    )
                )
            finally:
                self.in_flight -= 1

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )


def _capped(
    handler: grpc.RpcMethodHandler, caps: StreamCaps, refused: Any
) -> grpc.RpcMethodHandler:
    """`handler` (a unary-stream or stream-stream method) with `caps` held while it runs."""

    async def acquire(context: grpc.aio.ServicerContext) -> None:
        why = caps.acquire(context.peer())
        if why is not None:
            refused.inc()
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{why}; retry later")

    return _around(handler, acquire, lambda context: caps.release(context.peer()))


_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def _around(
    handler: grpc.RpcMethodHandler,
    before: Callable[[grpc.aio.ServicerContext], Awaitable[None]],
    after: Callable[[grpc.aio.ServicerContext], None],
) -> grpc.RpcMethodHandler:
    """`handler` with `before(context)` awaited when a call starts and, if it returned,
    `after(context)` when the call ends, streams included."""

    def wrap(behavior: Any) -> Any:
        if inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await before(context)
                try:
                    async for response in behavior(request, context):
                        yield response
                finally:
                    after(context)

            return stream

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await before(context)
            try:
                return await behavior(request, context)
            finally:
                after(context)

        return call

    for kind, make in _KINDS:
        behavior = getattr(handler, kind)
        if behavior is not None:
            return make(
                wrap(behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


class CallTracker(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """The outermost interceptor: which calls have arrived and not finished, so a drain can
    end as soon as none is left, instead of waiting the whole grace for connections that
    carry no call (one that never sent its HTTP/2 preface holds gRPC's shutdown).

    A call counts from its arrival (before its body is received) until its handler returns.
    A call cancelled before its handler started is never seen to finish; it stops counting
    `STALE_SECONDS` after its arrival.
    """

    STALE_SECONDS = 60.0

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._waiting: dict[int, float] = {}  # arrived, handler not started: id -> arrival
        self._running = 0
        self._next = 0

    def busy(self) -> bool:
        if self._running:
            return True
        oldest = self._monotonic() - self.STALE_SECONDS
        for key in [k for k, t in self._waiting.items() if t < oldest]:
            del self._waiting[key]
        return bool(self._waiting)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        self._next += 1
        key = self._next
        self._waiting[key] = self._monotonic()
        if len(self._waiting) > 100_000:  # bounded even if every call were cancelled early
            self._waiting.pop(next(iter(self._waiting)))

        async def started(context: grpc.aio.ServicerContext) -> None:
            self._waiting.pop(key, None)
            self._running += 1

        def ended(context: grpc.aio.ServicerContext) -> None:
            self._running -= 1

        return _around(handler, started, ended)
