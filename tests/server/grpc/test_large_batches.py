"""Batches above WIRE_THRESHOLD (decoded item by item, with the garbage collector's automatic
collections deferred while they are worked on): recorded exactly, refused whole when an item
does not decode, and the collector is back on after either."""

from __future__ import annotations

import gc

import grpc
import pytest
from google.protobuf.internal.encoder import _VarintBytes

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.service import WIRE_THRESHOLD, collections_deferred
from cugar_metrics_client._errors import violations_of
from tests.conftest import ServerHandle, dur, pb_execution

CALLS = [
    pb.ToolCall(
        tool=f"tool_{i % 4}",
        domain="territory",
        status=pb.TOOL_CALL_STATUS_SUCCESS,
        duration=dur(0.01),
    )
    for i in range(100)
]
ITEMS = 300  # of 100 tool calls each: about 1.3 MiB


def large_batch(prefix: str) -> pb.RecordExecutionsRequest:
    request = pb.RecordExecutionsRequest(
        executions=[pb_execution(f"{prefix}-{i}", tool_calls=CALLS) for i in range(ITEMS)]
    )
    assert request.ByteSize() > WIRE_THRESHOLD
    return request


def test_a_large_batch_is_recorded_exactly_and_collections_resume(server: ServerHandle) -> None:
    assert gc.isenabled()
    reply = server.stub.RecordExecutions(large_batch("big"))
    assert (reply.accepted_count, reply.duplicate_count, reply.rejected_count) == (ITEMS, 0, 0)
    assert list(reply.results) == [pb.RECORD_RESULT_ACCEPTED] * ITEMS
    assert gc.isenabled()
    again = server.stub.RecordExecutions(large_batch("big"))
    assert (again.accepted_count, again.duplicate_count) == (0, ITEMS)
    d = server.stub.GetDashboard(pb.GetDashboardRequest())
    assert (d.executions.total, d.ingest.accepted, d.ingest.duplicate) == (ITEMS, ITEMS, ITEMS)
    assert sum(t.calls for t in d.tools) == ITEMS * len(CALLS)
    assert gc.isenabled()


def test_a_large_batch_with_an_undecodable_item_records_nothing_and_collections_resume(
    server: ServerHandle,
) -> None:
    data = bytearray(large_batch("bad").SerializeToString())
    # Item 7 becomes bytes that do not parse: a length-delimited field whose length runs
    # past the item's end, keeping the item's own size so the walk still finds every item.
    item = pb_execution("bad-7", tool_calls=CALLS).SerializeToString()
    start = bytes(data).index(item)
    head = b"\x4a" + _VarintBytes(2 * len(item))
    broken = head + b"\x00" * (len(item) - len(head))
    data[start : start + len(item)] = broken
    raw = server.channel.unary_unary("/cugar.metrics.v1.MetricsService/RecordExecutions")
    with pytest.raises(grpc.RpcError) as caught:
        raw(bytes(data), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [(v.field, v.reason) for v in violations_of(caught.value)] == [
        ("executions[7]", "UNDECODABLE")
    ]
    assert gc.isenabled()
    d = server.stub.GetDashboard(pb.GetDashboardRequest())
    assert (d.executions.total, d.ingest.accepted, d.ingest.rejected) == (0, 0, 0)


def test_collections_deferred_nests_and_restores_the_state_it_found() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collections_deferred():
        assert not gc.isenabled()
        with collections_deferred():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer caller is still inside
        raise RuntimeError("left by an exception")
    assert gc.isenabled()
    gc.disable()
    try:
        with collections_deferred():
            assert not gc.isenabled()
        assert not gc.isenabled()  # off before: stays off
    finally:
        gc.enable()
