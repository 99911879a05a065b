"""Server variants built only for the benchmark, each a process of its own like the real one.

  noop-aio          grpc.aio server, a servicer that answers ACCEPTED (an empty dashboard to
                    GetDashboard) and does no work (and an OTLP TraceService that answers
                    every Export with success)
  noop-threaded     grpc.server(ThreadPoolExecutor), the same do-nothing servicer
  real-threaded     grpc.server(ThreadPoolExecutor) running the real MetricsService (the same
                    validation and Aggregator as `cugar-metrics serve`) with the same per-RPC
                    metrics, to compare the two server models on the real work

Each binds 127.0.0.1:0, writes {"grpc_port", "pid"} to --ready-file and serves until SIGTERM.

    python -m server.variants --model noop-aio --ready-file /tmp/ready.json   (cwd: bench/)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc

MODELS = ("noop-aio", "noop-threaded", "real-threaded")
_OPTIONS = [
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
]
_ACCEPTED = pb.RecordExecutionResponse(result=pb.RECORD_RESULT_ACCEPTED)
_EXPORTED = trace_service_pb2.ExportTraceServiceResponse()
_EMPTY_DASHBOARD = pb.GetDashboardResponse()
T = TypeVar("T")


class NoopService(pb_grpc.MetricsServiceServicer):  # type: ignore[misc]
    """Answers every Record RPC with ACCEPTED without looking at the request."""

    def RecordExecution(self, request: Any, context: Any) -> Any:
        return _ACCEPTED

    def RecordExecutions(self, request: Any, context: Any) -> Any:
        n = len(request.executions)
        return pb.RecordExecutionsResponse(
            accepted_count=n, results=[pb.RECORD_RESULT_ACCEPTED] * n
        )


class AsyncNoopService(pb_grpc.MetricsServiceServicer):  # type: ignore[misc]
    async def RecordExecution(self, request: Any, context: Any) -> Any:
        return _ACCEPTED

    async def GetDashboard(self, request: Any, context: Any) -> Any:
        return _EMPTY_DASHBOARD

    async def RecordExecutions(self, request: Any, context: Any) -> Any:
        n = len(request.executions)
        return pb.RecordExecutionsResponse(
            accepted_count=n, results=[pb.RECORD_RESULT_ACCEPTED] * n
        )


def _drive(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs a coroutine that only ever yields to the loop with `asyncio.sleep(0)` (the real
    servicer does between slices of a batch) and otherwise never suspends."""
    while True:
        try:
            yielded = coroutine.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        if yielded is not None:
            coroutine.close()
            raise RuntimeError("the servicer suspended: it cannot run on a thread-pool server")


class _SyncContext:
    """A grpc.ServicerContext seen through the grpc.aio API the servicer uses."""

    def __init__(self, context: grpc.ServicerContext) -> None:
        self._context = context

    async def abort_with_status(self, status: Any) -> None:
        self._context.abort_with_status(status)  # raises

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class ThreadedRealService(pb_grpc.MetricsServiceServicer):  # type: ignore[misc]
    """The real async MetricsService, driven synchronously on the pool's threads."""

    def __init__(self, service: Any) -> None:
        self._s = service
        self._batches = threading.Lock()  # one batch at a time, as on the event loop

    def RecordExecution(self, request: Any, context: Any) -> Any:
        return _drive(self._s.RecordExecution(request, _SyncContext(context)))

    def RecordExecutions(self, request: Any, context: Any) -> Any:
        with self._batches:
            return _drive(self._s.RecordExecutions(request, _SyncContext(context)))

    def GetDashboard(self, request: Any, context: Any) -> Any:
        return _drive(self._s.GetDashboard(request, _SyncContext(context)))


class _SyncMetricsInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """The per-RPC metrics of cugar_metrics.interceptors, for a thread-pool server."""

    def __init__(self, metrics: Any) -> None:
        self._m = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        service, _, method = details.method.lstrip("/").rpartition("/")
        behavior = handler.unary_unary
        started = self._m.started.labels("unary", service, method)
        seconds = self._m.seconds.labels("unary", service, method)
        handled = self._m.handled

        def observed(request: Any, context: Any) -> Any:
            started.inc()
            t0 = time.perf_counter()
            code = "UNKNOWN"
            try:
                response = behavior(request, context)
                code = "OK"
                return response
            except Exception:
                code = (context.code() or grpc.StatusCode.UNKNOWN).name
                raise
            finally:
                seconds.observe(time.perf_counter() - t0)
                handled.labels("unary", service, method, code).inc()

        return grpc.unary_unary_rpc_method_handler(
            observed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _write_ready(path: str, port: int) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump({"grpc_port": port, "pid": os.getpid()}, f)
    os.replace(path + ".tmp", path)


def _serve_threaded(model: str, ready_file: str, workers: int) -> None:
    interceptors = []
    if model == "noop-threaded":
        servicer: Any = NoopService()
    else:
        from prometheus_client import CollectorRegistry

        from cugar_metrics.aggregator import Aggregator
        from cugar_metrics.config import Config
        from cugar_metrics.interceptors import RpcMetrics
        from cugar_metrics.service import MetricsService
        from cugar_metrics.validation import Limits

        config = Config()
        aggregator = Aggregator(
            start_time=time.time(),
            caps=config.caps,
            dedup_horizon=config.dedup_horizon,
            dedup_max_entries=config.dedup_max_entries,
        )
        metrics = RpcMetrics(CollectorRegistry(auto_describe=False))
        interceptors.append(_SyncMetricsInterceptor(metrics))
        servicer = ThreadedRealService(
            MetricsService(aggregator, Limits(max_duration=config.max_duration), "bench")
        )
    server = grpc.server(
        ThreadPoolExecutor(max_workers=workers), interceptors=interceptors, options=_OPTIONS
    )
    pb_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    _write_ready(ready_file, port)
    stop.wait()
    server.stop(2).wait()


class AsyncNoopTraceService(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """The OTLP trace receiver's do-nothing twin: answers every Export with success."""

    async def Export(self, request: Any, context: Any) -> Any:
        return _EXPORTED


async def _serve_aio(ready_file: str) -> None:
    server = grpc.aio.server(options=_OPTIONS)
    pb_grpc.add_MetricsServiceServicer_to_server(AsyncNoopService(), server)
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(AsyncNoopTraceService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    _write_ready(ready_file, port)
    await stop.wait()
    await server.stop(2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument(
        "--workers", type=int, default=16, help="thread-pool size of the threaded models"
    )
    args = parser.parse_args()
    if args.model == "noop-aio":
        asyncio.run(_serve_aio(args.ready_file))
    else:
        _serve_threaded(args.model, args.ready_file, args.workers)


if __name__ == "__main__":
    main()
