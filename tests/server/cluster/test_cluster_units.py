"""The window state on the wire, the --peers syntax, and which peers a replica asks."""

from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client import CollectorRegistry

from cugar_metrics.aggregator import merge_windows
from cugar_metrics.aggregator.persist import StateFormatError
from cugar_metrics.aggregator.windowwire import decode_window, encode_window
from cugar_metrics.cluster import PeerMetrics, Peers, own_addresses, parse_peers
from tests.server.persistence.test_persist import T0, assert_same_state, populated


def test_a_window_state_survives_the_wire_and_merges_as_the_original() -> None:
    agg, _ = populated()
    now = agg.snapshot(T0 + 300).time
    for seconds in (None, 60.0, 300.0):
        w = agg.window(now, seconds)
        back = decode_window(encode_window(w))
        assert (back.start, back.end, back.first_execution) == (
            w.start,
            w.end,
            w.first_execution,
        )
        assert back.first_by_profile == w.first_by_profile
        assert_same_state(back.current, w.current)
        assert_same_state(merge_windows([w, back]).current, merge_windows([w, w]).current)


def test_a_window_state_of_another_layout_or_shape_is_refused_saying_where() -> None:
    agg, _ = populated(n=200)
    doc = json.loads(encode_window(agg.window(T0 + 300, None)))
    other = {**doc, "layout": {**doc["layout"], "tool_buckets": [1, 2]}}
    with pytest.raises(StateFormatError, match="layout"):
        decode_window(json.dumps(other).encode())
    bad = {**doc, "executions": [["p", "success", "", -1]]}
    with pytest.raises(StateFormatError, match=r"executions\['p', 'success', ''\]"):
        decode_window(json.dumps(bad).encode())
    with pytest.raises(StateFormatError, match="not JSON"):
        decode_window(b"\xff")


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
