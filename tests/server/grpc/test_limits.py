"""Limits that hold today: message size and batch size are enforced, the server stays up."""

from __future__ import annotations

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics.server import MAX_MESSAGE_BYTES
from tests.conftest import ServerHandle, pb_execution


def test_an_oversized_message_is_refused_and_the_server_keeps_serving(
    server: ServerHandle,
) -> None:
    huge = pb_execution("big")
    huge.profile = "p" * (MAX_MESSAGE_BYTES + 1)
    with grpc.insecure_channel(
        server.target, options=[("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES)]
    ) as channel:
        stub = pb_grpc.MetricsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.RecordExecution(pb.RecordExecutionRequest(execution=huge), timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    ok = server.stub.RecordExecution(pb.RecordExecutionRequest(execution=pb_execution("ok")))
    assert ok.result == pb.RECORD_RESULT_ACCEPTED
