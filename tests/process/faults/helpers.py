"""Shared pieces of the fault tests against a real `cugar-metrics serve` process."""

from __future__ import annotations

import re
import urllib.request

import grpc

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conftest import pb_execution
from tests.server.auth.helpers import bearer
from tests.support.serverproc import ServerProcess

SERVICE = "/cugar.metrics.v1.MetricsService"


def scrape(process: ServerProcess, query: str = "") -> str:
    with urllib.request.urlopen(process.metrics_url + query, timeout=10) as r:
        assert r.status == 200
        return str(r.read().decode())


def value(text: str, sample: str) -> float:
    """The value of one exposition line, `name{labels}` exactly as written, else 0."""
    m = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def accepted(process: ServerProcess) -> float:
    return value(scrape(process), 'cugar_ingest_executions_total{result="accepted"}')


def record(channel: grpc.Channel, execution_id: str, key: str | None = None) -> int:
    """Records one execution; returns its RecordResult (raises grpc.RpcError on refusal)."""
    response = pb_grpc.MetricsServiceStub(channel).RecordExecution(
        pb.RecordExecutionRequest(execution=pb_execution(execution_id)),
        metadata=bearer(key),
        timeout=10,
    )
    return int(response.result)


def raw_call(
    channel: grpc.Channel, method: str, body: bytes, key: str | None = None
) -> grpc.RpcError | bytes:
    """Sends `body` as the request of `method` unchanged; returns the error or the reply."""
    call = channel.unary_unary(
        f"{SERVICE}/{method}", request_serializer=None, response_deserializer=None
    )
    try:
        reply: bytes = call(body, metadata=bearer(key), timeout=10)
        return reply
    except grpc.RpcError as e:
        return e
