"""Per-RPC server metrics with the go-grpc-prometheus names.

grpc_server_started_total, grpc_server_handled_total (with grpc_code) and
grpc_server_handling_seconds, for unary RPCs; every MetricsService method is created at zero
for every code at start-up, as go-grpc-prometheus' InitializeMetrics does.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

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
        started = self._m.started.labels("unary", service, method)
        seconds = self._m.seconds.labels("unary", service, method)
        handled = self._m.handled

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
                handled.labels("unary", service, method, name).inc()
                seconds.observe(time.perf_counter() - t0)  # last: a complete record

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
