"""The saved state: a restored aggregator is the original, and bad bytes are refused."""

from __future__ import annotations

import hashlib
import json
import random
import struct
from typing import Any

import pytest

from cugar_metrics.aggregator import Aggregator, Caps, build_dashboard
from cugar_metrics.aggregator.core import Snapshot
from cugar_metrics.aggregator.persist import (
    FORMAT_VERSION,
    MAGIC,
    StateFormatError,
    decode,
    encode,
)
from cugar_metrics.aggregator.sketch import FrozenDistribution
from tests.conftest import execution
from tests.server.persistence.helpers import demo_execution

T0 = 1_000_000.0  # a 10 s boundary
CAPS = Caps(profile=2, domain=5, tool=12, error_type=3)  # small: some values overflow


def _plain(value: Any) -> Any:
    """A comparable form of a snapshot field (numpy bins become tuples)."""
    if isinstance(value, FrozenDistribution):
        return (
            value.count,
            value.sum,
            value.buckets,
            value.zero_count,
            value.offset,
            tuple(int(n) for n in value.bins),
        )
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def assert_same_state(a: Snapshot, b: Snapshot) -> None:
    for name in a.values:
        assert _plain(getattr(a, name)) == _plain(getattr(b, name)), name


def populated(seed: int = 7, n: int = 3000) -> tuple[Aggregator, list[str]]:
    """An aggregator fed for 5 minutes: overflowed labels, duplicates, rejections, several
    sealed dedup generations and an open one."""
    rng = random.Random(seed)
    agg = Aggregator(start_time=T0, caps=CAPS, dedup_horizon=600, dedup_max_entries=100_000)
    ids = []
    for i in range(n):
        now = T0 + 300 * i / n
        eid = f"e-{i}"
        ids.append(eid)
        agg.record([demo_execution(rng, eid)], now)
        if i % 50 == 0:
            agg.record([demo_execution(rng, f"e-{i // 2}")], now)  # a retry: duplicate
        if i % 70 == 0:
            agg.reject(["out_of_range", "required"], now)
    agg.record([execution("zero", duration=0.0, steps=0)], T0 + 300)
    return agg, ids


def restored_copy(agg: Aggregator, now: float) -> Aggregator:
    data = encode(agg.export_state(now))
    fresh = Aggregator(start_time=now, caps=CAPS, dedup_horizon=600, dedup_max_entries=100_000)
    fresh.restore(decode(data), now)
    return fresh


def test_round_trip_restores_every_snapshot_field_and_quantile() -> None:
    agg, _ = populated()
    now = T0 + 301
    back = restored_copy(agg, now)
    before, after = agg.snapshot(now), back.snapshot(now)
    assert before.overflow["profile"] > 0 and before.dedup_entries == 3001
    assert_same_state(before, after)
    assert back.start_time == T0
    # Since start, the dashboard (quantiles, rates, first/last times) is the same.
    assert build_dashboard(back.window(now, None)) == build_dashboard(agg.window(now, None))
    for profile in ("demo", "sales_rep", "_overflow"):
        assert build_dashboard(back.window(now, None), profile=profile) == build_dashboard(
            agg.window(now, None), profile=profile
        )


def test_restored_aggregator_still_knows_every_id_and_continues_like_the_original() -> None:
    agg, ids = populated()
    now = T0 + 301
    back = restored_copy(agg, now)
    assert back.record([execution(i) for i in ids], now) == ["duplicate"] * len(ids)
    assert agg.record([execution(i) for i in ids], now) == ["duplicate"] * len(ids)
    # The same further traffic, past the next dedup generations, gives the same state.
    rng_a, rng_b = random.Random(99), random.Random(99)
    for i in range(2000):
        t = now + 0.5 * i
        assert agg.record([demo_execution(rng_a, f"n-{i % 1500}")], t) == back.record(
            [demo_execution(rng_b, f"n-{i % 1500}")], t
        )
    end = now + 1000
    assert_same_state(agg.snapshot(end), back.snapshot(end))
    # Ids older than the horizon are forgotten by both: each accepts them again.
    for old_id in ("e-0", "e-1"):
        assert agg.record([execution(old_id)], end) == ["accepted"]
        assert back.record([execution(old_id)], end) == ["accepted"]


def test_recent_windows_restart_at_the_restore_and_since_start_continues() -> None:
    agg, _ = populated(n=600)
    restore_at = T0 + 3600 + 3  # an hour later: the whole 5-minute window is after start
    back = restored_copy(agg, restore_at)
    back.record([execution("after-1"), execution("after-2")], restore_at + 20)
    now = restore_at + 30
    window = build_dashboard(back.window(now, 300))
    assert (window.window_start, window.total) == (restore_at, 2)
    since_start = build_dashboard(back.window(now, None))
    assert (since_start.window_start, since_start.total) == (T0, 601 + 2)


def test_a_fresh_aggregator_round_trips() -> None:
    agg = Aggregator(start_time=T0)
    back = Aggregator(start_time=T0 + 5)
    back.restore(decode(encode(agg.export_state(T0 + 1))), T0 + 5)
    assert_same_state(agg.snapshot(T0 + 5), back.snapshot(T0 + 5))
    assert back.record([execution("a")], T0 + 6) == ["accepted"]


def _reheader(data: bytes, change: dict[str, Any], version: int | None = None) -> bytes:
    """The same state with header fields changed and a valid checksum (an incompatible file,
    not a damaged one)."""
    body = data[:-32]
    v, head_len = struct.unpack_from("<IQ", body, len(MAGIC))
    start = len(MAGIC) + 12
    header = json.loads(body[start : start + head_len])
    header.update(change)
    head = json.dumps(header).encode()
    new = b"".join(
        [MAGIC, struct.pack("<IQ", version or v, len(head)), head, body[start + head_len :]]
    )
    return new + hashlib.sha256(new).digest()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: b"\x00\xffnot a state file at all" * 10, "wrong magic"),
        (lambda d: b"", "wrong magic"),
        (lambda d: d[: len(d) // 2], "checksum mismatch"),
        (lambda d: d[:30], "truncated: 30 bytes"),
        (lambda d: d[:-1], "checksum mismatch"),
        (lambda d: d[:200] + bytes([d[200] ^ 1]) + d[201:], "checksum mismatch"),
        (lambda d: _reheader(d, {}, version=FORMAT_VERSION + 1), "format version 2"),
        (
            lambda d: _reheader(d, {"layout": {"execution_buckets": [1, 2, 3]}}),
            "bucket layout or sketch mapping differs",
        ),
        (
            lambda d: _reheader(d, {"ingest": {"accepted": 1, "duplicate": 0}}),
            "ingest: keys",
        ),
        (lambda d: _reheader(d, {"payload_bytes": 3}), "payload is"),
        (lambda d: _reheader(d, {"start_time": "yesterday"}), "start_time"),
    ],
)
def test_damaged_or_incompatible_bytes_are_refused_with_the_reason(
    damage: Any, reason: str
) -> None:
    agg, _ = populated(n=300)
    data = encode(agg.export_state(T0 + 301))
    decode(data)  # the undamaged bytes are fine
    with pytest.raises(StateFormatError, match=reason):
        decode(damage(data))


def test_inconsistent_distribution_is_refused() -> None:
    agg, _ = populated(n=300)
    data = encode(agg.export_state(T0 + 301))
    body = data[:-32]
    _, head_len = struct.unpack_from("<IQ", body, len(MAGIC))
    start = len(MAGIC) + 12
    header = json.loads(body[start : start + head_len])
    header["durations"][0][2]["count"] += 1
    with pytest.raises(StateFormatError, match="bucket counts add up"):
        decode(_reheader(data, {"durations": header["durations"]}))


def test_state_of_100k_demo_executions_is_small() -> None:
    """100k executions over the demo's label set (every id still in the dedup horizon):
    about 8 bytes an id plus a bounded header."""
    rng = random.Random(1)
    agg = Aggregator(start_time=T0)
    batch = []
    for i in range(100_000):
        batch.append(demo_execution(rng, f"exec-{i:06d}"))
        if len(batch) == 1000:
            agg.record(batch, T0 + i / 400)
            batch = []
    now = T0 + 251
    data = encode(agg.export_state(now))
    assert agg.snapshot(now).ingest["accepted"] == 100_000
    header = len(data) - 8 * 100_000
    print(f"state of 100k demo executions: {len(data)} bytes ({header} bytes besides the ids)")
    assert 800_000 < len(data) < 1_100_000
    back = Aggregator(start_time=now)
    back.restore(decode(data), now)
    assert_same_state(agg.snapshot(now), back.snapshot(now))


def test_a_state_written_before_the_not_allowed_reason_restores_it_at_zero() -> None:
    """`not_allowed` joined the rejection reasons with --labels-file: a state file written
    before it, whose rejections lack it, restores with every other count kept."""
    agg = Aggregator(start_time=T0)
    agg.reject(["required", "required", "batch_size"], T0 + 1)
    data = encode(agg.export_state(T0 + 2))
    body = data[:-32]
    _, head_len = struct.unpack_from("<IQ", body, len(MAGIC))
    header = json.loads(body[len(MAGIC) + 12 : len(MAGIC) + 12 + head_len])
    older = {k: v for k, v in header["rejections"].items() if k != "not_allowed"}
    back = Aggregator(start_time=T0 + 5)
    back.restore(decode(_reheader(data, {"rejections": older})), T0 + 5)
    rejections = back.snapshot(T0 + 5).rejections
    assert rejections["required"] == 2 and rejections["batch_size"] == 1
    assert rejections["not_allowed"] == 0
