"""Model calls over gRPC: recorded with their execution, shown by GetDashboard and /metrics."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from cugar.metrics.v1 import metrics_service_pb2 as pb
from tests.conftest import ServerHandle, dur, pb_execution


def with_models(execution_id: str, *calls: pb.ModelCall) -> pb.Execution:
    e = pb_execution(execution_id)
    e.model_calls.extend(calls)
    return e


def model_call(model: str, status: int, tokens: tuple[int, int], cost: float) -> pb.ModelCall:
    c = pb.ModelCall(
        provider="openai",
        model=model,
        operation=pb.MODEL_OPERATION_CHAT,
        status=status,
        duration=dur(1.2),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost=cost,
    )
    if status != pb.MODEL_CALL_STATUS_SUCCESS:
        c.error_type = "RateLimitError"
    return c


def test_model_rows_and_signals_through_getdashboard_and_metrics(server: ServerHandle) -> None:
    ok = pb.MODEL_CALL_STATUS_SUCCESS
    limited = pb.MODEL_CALL_STATUS_RATE_LIMITED
    batch = pb.RecordExecutionsRequest(
        executions=[
            with_models("g-1", model_call("gpt-4o", ok, (1000, 200), 0.02)),
            with_models(
                "g-2",
                model_call("gpt-4o", limited, (0, 0), 0.0),
                model_call("mini", ok, (10, 5), 0.001),
            ),
            with_models("g-1", model_call("gpt-4o", ok, (1000, 200), 0.02)),  # duplicate
        ]
    )
    assert server.stub.RecordExecutions(batch).accepted_count == 2
    d = server.stub.GetDashboard(pb.GetDashboardRequest())
    assert [
        (m.model, m.calls, m.rate_limited, m.input_tokens, m.output_tokens) for m in d.models
    ] == [
        ("gpt-4o", 2, 1, 1000, 200),
        ("mini", 1, 0, 10, 5),
    ]
    assert d.models[0].cost == pytest.approx(0.02)
    g = d.golden_signals
    assert g.tokens_per_execution == pytest.approx((1200 + 15) / 2)
    assert g.model_error_rate == 0.0  # a rate-limited call is not an error
    only = server.stub.GetDashboard(pb.GetDashboardRequest(model="mini"))
    assert [m.model for m in only.models] == ["mini"]
    with urllib.request.urlopen(server.metrics_url, timeout=10) as r:
        text = r.read().decode()
    assert (
        'cugar_model_calls_total{model="gpt-4o",operation="chat",provider="openai",'
        'status="rate_limited"} 1.0' in text
    )
    assert 'cugar_model_tokens_total{model="gpt-4o",provider="openai",type="input"} 1000.0' in text


def test_an_invalid_model_filter_names_its_field(server: ServerHandle) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.GetDashboard(pb.GetDashboardRequest(model="not a name"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["model"]


def test_an_epoch_time_as_a_model_call_duration_is_refused_with_its_path(
    server: ServerHandle,
) -> None:
    e = with_models("bad-1", model_call("gpt-4o", pb.MODEL_CALL_STATUS_SUCCESS, (1, 1), 0.0))
    e.model_calls[0].duration.FromSeconds(1_700_000_000)
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.RecordExecution(pb.RecordExecutionRequest(execution=e))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["execution.model_calls[0].duration"]
