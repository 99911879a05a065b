"""The window state on the wire, the --peers syntax, and which peers a replica asks."""

from __future__ import annotations

import asyncio
import json
import random
import re
import zlib
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from cugar.metrics.v1 import peer_service_pb2 as peer_pb
from cugar_metrics.aggregator import Aggregator, WindowState, merge_windows
from cugar_metrics.aggregator.persist import StateFormatError
from cugar_metrics.aggregator.windowwire import BodyCache, decode_window, encode_window
from cugar_metrics.cluster import PeerMetrics, Peers, PeerServicer, own_addresses, parse_peers
from cugar_metrics.clustermerge import ClusterMerger, merge_cluster
from tests.server.persistence.helpers import demo_execution
from tests.server.persistence.test_persist import T0, assert_same_state, populated


def test_a_window_state_survives_the_wire_and_merges_as_the_original() -> None:
    agg, _ = populated()
    now = agg.snapshot(T0 + 300).time
    for version in (1, 2):
        for seconds in (None, 60.0, 300.0):
            w = agg.window(now, seconds)
            back = decode_window(encode_window(w, version), version)
            assert (back.start, back.end, back.first_execution) == (
                w.start,
                w.end,
                w.first_execution,
            )
            assert back.first_by_profile == w.first_by_profile
            assert_same_state(back.current, w.current)
            assert_same_state(merge_windows([w, back]).current, merge_windows([w, w]).current)


def test_an_empty_window_survives_the_wire() -> None:
    agg = Aggregator(start_time=T0)
    w = agg.window(T0 + 5, None)
    back = decode_window(encode_window(w))
    assert_same_state(back.current, w.current)
    assert back.current.executions == {} and back.current.durations == {}


def test_a_version_1_window_state_of_another_layout_or_shape_is_refused_saying_where() -> None:
    agg, _ = populated(n=200)
    doc = json.loads(encode_window(agg.window(T0 + 300, None), 1))
    other = {**doc, "layout": {**doc["layout"], "tool_buckets": [1, 2]}}
    with pytest.raises(StateFormatError, match="layout"):
        decode_window(json.dumps(other).encode(), 1)
    bad = {**doc, "executions": [["p", "success", "", -1]]}
    with pytest.raises(StateFormatError, match=r"executions\['p', 'success', ''\]"):
        decode_window(json.dumps(bad).encode(), 1)
    with pytest.raises(StateFormatError, match="not JSON"):
        decode_window(b"\xff", 1)


def _v2_parts(data: bytes) -> tuple[dict[str, Any], bytes]:
    n = int.from_bytes(data[:4], "little")
    return json.loads(data[4 : 4 + n]), zlib.decompress(data[4 + n :])


def _v2(header: dict[str, Any], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(4, "little") + raw + zlib.compress(body)


def test_a_version_2_window_state_that_is_not_sound_is_refused_saying_where() -> None:
    agg, _ = populated(n=200)
    data = encode_window(agg.window(T0 + 300, None), 2)
    header, body = _v2_parts(data)
    assert_same_state(decode_window(_v2(header, body)).current, decode_window(data).current)
    other = {**header, "layout": {**header["layout"], "tool_buckets": [1, 2]}}
    with pytest.raises(StateFormatError, match="layout"):
        decode_window(_v2(other, body))
    with pytest.raises(StateFormatError, match="ends before"):
        decode_window(_v2(header, body[:-9]))
    with pytest.raises(StateFormatError, match="after the last array"):
        decode_window(_v2(header, body + b"\0" * 8))
    with pytest.raises(StateFormatError, match="not zlib"):
        decode_window(data[:-40] + b"\x01" * 40)
    with pytest.raises(StateFormatError, match="header is not JSON"):
        decode_window(b"\x05\0\0\0\xff\xff\xff\xff\xff")
    # The first execution count, made negative: named by its labels.
    n = int.from_bytes(body[:4], "little")
    directory = json.loads(body[4 : 4 + n])
    start = 4 + n + (-(4 + n) % 8)
    rows = directory["counters"]["executions"]
    values_at = start + rows * 3 * 4
    values_at += -values_at % 8
    first = np.frombuffer(body, "<i4", count=3, offset=start).tolist()
    labels = [directory["strings"][i] for i in first]
    broken = body[:values_at] + np.array([-1], "<i8").tobytes() + body[values_at + 8 :]
    with pytest.raises(StateFormatError, match=re.escape(f"executions{labels}: -1")):
        decode_window(_v2(header, broken))
    with pytest.raises(StateFormatError, match="version 3"):
        decode_window(data, 3)


def test_a_peer_answers_the_version_asked_and_reuses_its_encoded_body() -> None:
    agg, _ = populated(n=300)
    clock = [T0 + 301.0]
    servicer = PeerServicer(agg, "p", clock=lambda: clock[0])

    def ask(versions: list[int], seconds: int = 300) -> peer_pb.GetWindowStateResponse:
        request = peer_pb.GetWindowStateRequest(versions=versions)
        request.window.FromSeconds(seconds)
        return asyncio.run(servicer.GetWindowState(request, None))  # type: ignore[arg-type]

    old = ask([])  # a replica from before version 2
    assert old.version == 1 and json.loads(old.state)["end"] == T0 + 301
    first = ask([1, 2])
    assert first.version == 2
    assert (servicer.encoded, servicer.reused) == (1, 0)
    clock[0] += 2  # same tick, nothing recorded: the body again, a new header
    again = ask([1, 2])
    assert (servicer.encoded, servicer.reused) == (1, 1)
    assert decode_window(again.state).end == T0 + 303
    assert_same_state(decode_window(again.state).current, decode_window(first.state).current)
    # A window of another length with the same rounded start shares it too.
    ask([2], seconds=301)
    assert (servicer.encoded, servicer.reused) == (1, 2)
    # An execution recorded: encoded again, with it.
    agg.record([demo_execution(random.Random(1), "late")], clock[0])
    after = decode_window(ask([2]).state)
    assert servicer.encoded == 2
    assert (
        sum(after.current.ingest.values())
        == sum(decode_window(first.state).current.ingest.values()) + 1
    )
    assert_same_state(after.current, agg.window(clock[0], 300).current)
    # The next tick: encoded again.
    clock[0] += 10
    ask([2])
    assert servicer.encoded == 3


def test_peers_syntax() -> None:
    assert parse_peers("a:1, b:2,") == (["a:1", "b:2"], None)
    assert parse_peers("dns:///svc.ns:50051") == ([], "svc.ns:50051")
    for bad, message in (
        ("a", "not host:port"),
        ("a:x", "not host:port"),
        ("dns:///svc:1,b:2", "cannot be mixed"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_peers(bad)


def test_a_replica_leaves_its_own_address_out() -> None:
    async def targets(spec: str) -> list[str]:
        peers = Peers(
            spec,
            own=own_addresses("127.0.0.1", 4001),
            replica="me",
            timeout=1.0,
            metrics=PeerMetrics(CollectorRegistry()),
        )
        return await peers.targets()

    assert asyncio.run(targets("127.0.0.1:4001,127.0.0.1:4002,localhost:4001")) == [
        "127.0.0.1:4002"
    ]
    # A DNS name resolving to this replica (localhost) and nothing else: no peer left.
    assert asyncio.run(targets("dns:///localhost:4001")) == []
    assert asyncio.run(targets("dns:///localhost:4003")) != []


def test_bad_peers_are_a_configuration_error_naming_the_flag() -> None:
    from cugar_metrics.config import Config, ConfigError

    with pytest.raises(ConfigError, match=r"--peers: peer 'nohost' is not host:port"):
        Config(peers="a:1,nohost")
    assert Config(peers="dns:///svc:50051").peers == "dns:///svc:50051"


def test_the_cluster_merge_is_reused_while_no_state_changed() -> None:
    own, _ = populated(n=300)
    peer, _ = populated(seed=8, n=300)
    merger = ClusterMerger(own.caps)
    cache = BodyCache()
    now = T0 + 301.0

    def dashboard(at: float) -> WindowState:
        state = decode_window(encode_window(peer.window(at, 300)), cache=cache)
        return merger.merge(own.window(at, 300), int(at // 10), [state])

    first = dashboard(now)
    assert (merger.merged, merger.reused) == (1, 0)
    again = dashboard(now + 1)
    assert (merger.merged, merger.reused) == (1, 1)
    assert again.end == now + 1
    assert_same_state(again.current, first.current)
    want = merge_cluster([own.window(now + 1, 300), peer.window(now + 1, 300)], own.caps)
    assert_same_state(again.current, want.current)
    # A change on either side: merged again, with it.
    for agg in (own, peer):
        agg.record([demo_execution(random.Random(2), f"late-{id(agg)}")], now + 2)
        merged = dashboard(now + 2)
        want = merge_cluster([own.window(now + 2, 300), peer.window(now + 2, 300)], own.caps)
        assert_same_state(merged.current, want.current)
    assert (merger.merged, merger.reused) == (3, 1)
    assert sum(merged.current.ingest.values()) == sum(first.current.ingest.values()) + 2
