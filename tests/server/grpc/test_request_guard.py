"""RequestGuard on a real grpc.aio server: the MetricsService in-flight limit, released when
calls end, and undecodable bodies answered INVALID_ARGUMENT."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from prometheus_client import CollectorRegistry

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.connection_limits import StreamCaps
from cugar_metrics.interceptors import RequestGuard

SERVICE = "cugar.metrics.v1.MetricsService"


def test_calls_past_the_in_flight_limit_are_refused_and_slots_come_back() -> None:
    asyncio.run(_in_flight_limit())


async def _in_flight_limit() -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def dashboard(request: pb.GetDashboardRequest, context: object) -> object:
        entered.set()
        await release.wait()
        return pb.GetDashboardResponse(replica="held")

    registry = CollectorRegistry()
    guard = RequestGuard(
        (SERVICE,), 1, StreamCaps("health Watch", 1, 1), StreamCaps("reflection", 1, 1), registry
    )
    server = grpc.aio.server(interceptors=[guard])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "GetDashboard": grpc.unary_unary_rpc_method_handler(
                        dashboard,
                        request_deserializer=pb.GetDashboardRequest.FromString,
                        response_serializer=pb.GetDashboardResponse.SerializeToString,
                    )
                },
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(
                f"/{SERVICE}/GetDashboard",
                request_serializer=pb.GetDashboardRequest.SerializeToString,
                response_deserializer=pb.GetDashboardResponse.FromString,
            )
            held = asyncio.ensure_future(call(pb.GetDashboardRequest(), timeout=10))
            await entered.wait()
            assert guard.in_flight == 1
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(pb.GetDashboardRequest(), timeout=10)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-concurrent-rpcs 1" in (caught.value.details() or "")

            raw = channel.unary_unary(f"/{SERVICE}/GetDashboard")
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await raw(b"\xff\xff\xff", timeout=10)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "request is not a GetDashboardRequest message" in (bad.value.details() or "")

            release.set()
            assert (await held).replica == "held"
            assert guard.in_flight == 0
            assert (await call(pb.GetDashboardRequest(), timeout=10)).replica == "held"
    finally:
        await server.stop(0)
    refused = {
        s.labels["reason"]: s.value
        for m in registry.collect()
        for s in m.samples
        if s.name == "cugar_rpc_refusals_total"
    }
    assert refused == {
        "undecodable": 1,
        "concurrent_rpcs": 1,
        "watch_streams": 0,
        "reflection_streams": 0,
    }
