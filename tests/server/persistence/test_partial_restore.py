"""A state file with one damaged series section: that section is restored empty and reported,
every other count is kept; damage to the file as a whole still moves it aside."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from cugar_metrics.aggregator import Aggregator
from cugar_metrics.aggregator.core import SavedState, Snapshot
from cugar_metrics.aggregator.persist import (
    FORMAT_VERSION,
    MAGIC,
    SECTIONS,
    StateFormatError,
    decode,
    decode_partial,
    encode,
)
from cugar_metrics.aggregator.sketch import FrozenDistribution
from cugar_metrics.model import ModelCall
from cugar_metrics.statefile import CheckpointCollector, Checkpointer, restore
from tests.server.persistence.helpers import demo_execution

T0 = 1_000_000.0


def _plain(value: Any) -> Any:
    if isinstance(value, FrozenDistribution):
        return (value.count, value.sum, value.buckets, value.zero_count, value.offset)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def state_bytes() -> tuple[bytes, Snapshot]:
    """An encoded state in which every series section has data, and its snapshot."""
    agg = Aggregator(start_time=T0)
    rng = random.Random(11)
    executions = [demo_execution(rng, f"e{i}") for i in range(200)]
    executions[0] = executions[0]._replace(
        model_calls=(
            ModelCall("openai", "gpt-4o", "chat", "success", 1.5, 0.3, 120, 40, 0, 0, 0.002),
            ModelCall("openai", "gpt-4o", "chat", "error", 0.5, None, 10, 0, 0, 0, None),
        ),
    )
    agg.record(executions, T0 + 1)
    agg.record(executions[:9], T0 + 2)  # duplicates
    state = agg.export_state(T0 + 3)
    for name in SECTIONS:
        assert getattr(state.snapshot, name), f"{name} has no data to damage"
    return encode(state), state.snapshot


def rewrite(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """`data` with its JSON header changed by `change`, and a checksum that matches."""
    head_len = struct.unpack_from("<IQ", data, len(MAGIC))[1]
    start = len(MAGIC) + 12
    header = json.loads(data[start : start + head_len])
    change(header)
    head = json.dumps(header, separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<IQ", FORMAT_VERSION, len(head)) + head
    body += data[start + head_len : -32]
    return body + hashlib.sha256(body).digest()


def _first_row(key: str) -> Callable[[dict[str, Any]], None]:
    def change(h: dict[str, Any]) -> None:
        h[key][0] = h[key][0][:-1]  # a row without its value

    return change


def _uncounted(key: str) -> Callable[[dict[str, Any]], None]:
    def change(h: dict[str, Any]) -> None:
        h[key][0][-1]["count"] += 1  # the buckets no longer add up

    return change


def _unknown(key: str, position: int) -> Callable[[dict[str, Any]], None]:
    def change(h: dict[str, Any]) -> None:
        h[key][0][position] = "exploded"

    return change


def _bad_value(key: str) -> Callable[[dict[str, Any]], None]:
    def change(h: dict[str, Any]) -> None:
        h[key][next(iter(h[key]))] = "lots"

    return change


DAMAGE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "executions": (_unknown("executions", 1), "unknown values ['exploded']"),
    "durations": (_uncounted("durations"), "bucket counts add up to"),
    "steps": (_first_row("steps"), "a row is not 1 names and a value"),
    "tool_calls": (_unknown("tool_calls", 2), "unknown values ['exploded']"),
    "tool_durations": (_uncounted("tool_durations"), "bucket counts add up to"),
    "budget_spent": (_bad_value("budget_spent"), "'lots' is not a finite number"),
    "budget_utilization": (_uncounted("budget_utilization"), "bucket counts add up to"),
    "budget_exceeded": (_bad_value("budget_exceeded"), "'lots' is not a non-negative integer"),
    "approvals": (_unknown("approvals", 1), "unknown values ['exploded']"),
    "model_calls": (_unknown("model_calls", 3), "unknown values ['exploded']"),
    "model_tokens": (_first_row("model_tokens"), "a row is not 3 names and a value"),
    "model_cost": (_first_row("model_cost"), "a row is not 2 names and a value"),
    "model_durations": (_uncounted("model_durations"), "bucket counts add up to"),
    "model_ttft": (_uncounted("model_ttft"), "bucket counts add up to"),
    "last_execution": (_bad_value("last_execution"), "'lots' is not a finite number"),
}


def test_every_section_has_a_damage_case() -> None:
    assert set(DAMAGE) == set(SECTIONS)


def assert_only_section_empty(restored: SavedState, original: Snapshot, section: str) -> None:
    s = restored.snapshot
    assert getattr(s, section) == {}
    for name in original.values:
        if name != section:
            assert _plain(getattr(s, name)) == _plain(getattr(original, name)), name


@pytest.mark.parametrize("section", SECTIONS)
def test_decode_partial_drops_only_the_damaged_section(section: str) -> None:
    data, original = state_bytes()
    change, reason = DAMAGE[section]
    damaged = rewrite(data, change)
    state, problems = decode_partial(damaged)
    assert [p[0] for p in problems] == [section]
    assert reason in problems[0][1]
    assert_only_section_empty(state, original, section)
    assert len(state.dedup.open) + sum(len(g) for g, _ in state.dedup.sealed) == 200
    # The strict decode (what a checkpoint is checked with) still refuses it.
    with pytest.raises(StateFormatError, match=section):
        decode(damaged)


def test_agent_values_round_trip_and_a_damaged_set_is_dropped_alone() -> None:
    agg = Aggregator(start_time=T0)
    agg.record([demo_execution(random.Random(3), "e0")], T0 + 1)
    saved = dataclasses.replace(
        agg.export_state(T0 + 2),
        agent_values={"agent-a": {"profile": frozenset({"p1", "p2"}), "tool": frozenset()}},
    )
    data = encode(saved)
    assert decode(data).agent_values == saved.agent_values
    # A file written before the sets were saved: none, and nothing reported.
    old = rewrite(data, lambda h: h.pop("agent_label_values"))
    state, problems = decode_partial(old)
    assert (state.agent_values, problems) == ({}, [])

    def unknown_label(h: dict[str, Any]) -> None:
        h["agent_label_values"]["agent-a"]["hostname"] = ["x"]

    state, problems = decode_partial(rewrite(data, unknown_label))
    assert problems == [
        ("agent_label_values", "agent_label_values[agent-a]: unknown labels ['hostname']")
    ]
    assert state.agent_values == {}
    for name in saved.snapshot.values:
        assert _plain(getattr(state.snapshot, name)) == _plain(getattr(saved.snapshot, name))


def test_two_damaged_sections_are_both_reported() -> None:
    data, original = state_bytes()

    def change(h: dict[str, Any]) -> None:
        DAMAGE["executions"][0](h)
        DAMAGE["approvals"][0](h)

    state, problems = decode_partial(rewrite(data, change))
    assert [p[0] for p in problems] == ["executions", "approvals"]
    assert state.snapshot.executions == {} and state.snapshot.approvals == {}
    assert state.snapshot.ingest == original.ingest
    assert _plain(state.snapshot.durations) == _plain(original.durations)


@pytest.mark.parametrize(
    ("name", "change", "reason"),
    [
        ("layout", lambda h: h["layout"].update(tool_buckets=[1.0]), "bucket layout"),
        ("dedup", lambda h: h["dedup"]["open"].update(count=10**9), "past the end"),
        ("ingest", lambda h: h["ingest"].update(accepted=-1), "not a non-negative integer"),
    ],
)
def test_damage_outside_the_series_sections_still_refuses_the_file(
    name: str, change: Callable[[dict[str, Any]], None], reason: str
) -> None:
    data, _ = state_bytes()
    with pytest.raises(StateFormatError, match=reason):
        decode_partial(rewrite(data, change))


def test_restore_keeps_the_rest_logs_the_section_counts_it_and_keeps_a_copy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data, original = state_bytes()
    path = tmp_path / "state"
    damaged = rewrite(data, DAMAGE["durations"][0])
    path.write_bytes(damaged)
    agg = Aggregator(start_time=T0 + 100)
    with caplog.at_level(logging.INFO, logger="cugar_metrics.state"):
        state, problems = restore(agg, path, T0 + 100)
    assert state is not None and [p[0] for p in problems] == ["durations"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "section durations cannot be restored (durations[" in warnings[0]
    assert "bucket counts add up to" in warnings[0]
    copies = list(tmp_path.glob("state.partial-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == damaged
    assert f"a copy of it is kept at {copies[0]}" in warnings[1]
    assert path.read_bytes() == damaged  # left in place until the next checkpoint
    assert not list(tmp_path.glob("state.corrupt-*"))
    after = agg.snapshot(T0 + 100)
    assert after.executions == original.executions
    assert after.ingest == original.ingest
    assert _plain(after.approvals) == _plain(original.approvals)
    assert _plain(after.tool_durations) == _plain(original.tool_durations)
    assert after.model_calls == original.model_calls
    assert all(d.count == 0 for d in after.durations.values())
    assert after.dedup_entries == 200
    # The ids are still known: a retry is a duplicate.
    assert agg.record([demo_execution(random.Random(11), "e0")], T0 + 101) == ["duplicate"]

    checkpointer = Checkpointer(agg, path, 60, restored=state, restore_problems=problems)
    registry = CollectorRegistry(auto_describe=False, support_collectors_without_names=True)
    registry.register(CheckpointCollector(checkpointer))
    text = generate_latest(registry).decode()
    assert 'cugar_state_restore_problems_total{section="durations"} 1.0' in text
    assert 'cugar_state_restore_problems_total{section="executions"} 0.0' in text
    # The next checkpoint writes a whole state again.
    assert checkpointer.checkpoint()
    assert decode_partial(path.read_bytes())[1] == []
