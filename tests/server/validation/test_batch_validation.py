"""The batch validation path gives exactly what validating each item on its own gives."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.validation import Limits, validate_execution, validate_executions
from tests.server.validation.test_validation_properties import NOW, executions


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(executions(), min_size=1, max_size=8))
def test_batch_equals_items_one_by_one(messages: list[pb.Execution]) -> None:
    """Same domain values, same refusals with the same violations and paths, in order."""
    items, refused = validate_executions(messages, "executions", Limits(), NOW)
    assert len(items) == len(messages)
    for i, message in enumerate(messages):
        alone, violations = validate_execution(message, f"executions[{i}]", Limits(), NOW)
        assert items[i] == alone
        assert refused.get(i, []) == violations


def test_one_bad_id_refuses_only_its_item() -> None:
    """A batch whose joined ids fail the one-shot match still accepts every other item."""
    good = pb.Execution(execution_id="ok-1", profile="p", outcome=pb.OUTCOME_SUCCESS)
    good.duration.FromMilliseconds(5)
    bad = pb.Execution()
    bad.CopyFrom(good)
    bad.execution_id = "has space"
    items, refused = validate_executions([good, bad, good], "executions", Limits(), NOW)
    assert [item is not None for item in items] == [True, False, True]
    assert [v.field for v in refused[1]] == ["executions[1].execution_id"]
    assert refused[1][0].reason == "INVALID_NAME"


def test_newline_in_an_id_is_refused() -> None:
    """The separator of the one-shot match cannot smuggle two ids into one."""
    m = pb.Execution(execution_id="a\nb", profile="p", outcome=pb.OUTCOME_SUCCESS)
    m.duration.FromMilliseconds(5)
    items, refused = validate_executions([m], "executions", Limits(), NOW)
    assert items == [None]
    assert refused[0][0].field == "executions[0].execution_id"


def test_a_slice_reports_indices_and_paths_of_the_whole_batch() -> None:
    """`first` makes a slice's refusals read as positions in the batch it came from."""
    good = pb.Execution(execution_id="ok-1", profile="p", outcome=pb.OUTCOME_SUCCESS)
    good.duration.FromMilliseconds(5)
    bad = pb.Execution()
    bad.CopyFrom(good)
    bad.profile = ""
    items, refused = validate_executions([good, bad], "executions", Limits(), NOW, first=50)
    assert [item is not None for item in items] == [True, False]
    assert list(refused) == [51]
    assert [v.field for v in refused[51]] == ["executions[51].profile"]


def test_small_bodies_decode_at_once_and_large_or_broken_ones_item_by_item() -> None:
    """decode_batch: one C decode up to WIRE_THRESHOLD; above it, or for a body that does not
    decode, the item-by-item walk (which names the item at fault)."""
    from cugar_metrics.service import WIRE_THRESHOLD, decode_batch
    from cugar_metrics.wire import WireBatch

    good = pb.Execution(execution_id="ok-1", profile="p", outcome=pb.OUTCOME_SUCCESS)
    good.duration.FromMilliseconds(5)
    small = pb.RecordExecutionsRequest(executions=[good] * 10).SerializeToString()
    assert isinstance(decode_batch(small), pb.RecordExecutionsRequest)
    big = pb.Execution()
    big.CopyFrom(good)
    big.trace_id = "t" * 128
    for _ in range(20):
        big.tool_calls.add(tool="search_accounts", domain="territory", status=1)
    n = WIRE_THRESHOLD // len(big.SerializeToString()) + 10
    large = pb.RecordExecutionsRequest(executions=[big] * n).SerializeToString()
    assert len(large) > WIRE_THRESHOLD
    batch = decode_batch(large)
    assert isinstance(batch, WireBatch) and len(batch) == n
    assert n <= 1000 and batch.decode(n - 1) == big
    assert isinstance(decode_batch(small + b"\x0a\x03\xff\xff\xff"), WireBatch)
