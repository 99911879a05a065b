"""WireBatch finds the same items protobuf decodes, skips other fields, and refuses what
protobuf refuses."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.wire import MAX_FIELDS, UndecodableError, WireBatch
from tests.conftest import pb_execution


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.text(max_size=20), max_size=30),
    noise=st.lists(st.binary(max_size=8), max_size=5),
)
def test_items_are_those_protobuf_decodes(ids: list[str], noise: list[bytes]) -> None:
    request = pb.RecordExecutionsRequest(executions=[pb_execution(i) for i in ids])
    # Unknown fields (2: bytes, 3: varint) in between, as a newer client might send.
    extra = b"".join(b"\x12" + bytes([len(n)]) + n + b"\x18\x96\x01" for n in noise)
    data = extra + request.SerializeToString() + extra
    batch = WireBatch(data)
    parsed = pb.RecordExecutionsRequest.FromString(data)
    assert len(batch) == len(batch.executions) == len(parsed.executions) == len(ids)
    assert [batch.decode(i) for i in range(len(batch))] == list(parsed.executions)


@given(data=st.binary(max_size=64))
def test_garbage_is_refused_where_protobuf_refuses_it(data: bytes) -> None:
    try:
        parsed = pb.RecordExecutionsRequest.FromString(data)
    except DecodeError:
        parsed = None
    try:
        batch = WireBatch(data)
        items = [batch.decode(i) for i in range(len(batch))]
    except UndecodableError:
        items = None
    if parsed is not None and items is not None:
        assert items == list(parsed.executions)
    if items is not None:  # what WireBatch accepts, protobuf accepts (groups aside)
        assert parsed is not None


def test_a_body_of_many_tiny_fields_is_refused_after_a_bounded_walk() -> None:
    with pytest.raises(UndecodableError, match=f"more than {MAX_FIELDS} fields") as caught:
        WireBatch(b"\x10\x01" * (MAX_FIELDS + 1))
    assert caught.value.field == "request"
    assert len(WireBatch(b"\x10\x01" * MAX_FIELDS)) == 0


def test_a_field_number_past_protobufs_largest_is_refused() -> None:
    """A tag of field number 2^29 (a varint of five bytes) is refused by protobuf: here too."""
    data = b"\x80\x80\x80\x80\x10\x00"
    with pytest.raises(DecodeError):
        pb.RecordExecutionsRequest.FromString(data)
    with pytest.raises(UndecodableError, match="field number 536870912"):
        WireBatch(data)
