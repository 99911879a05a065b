"""Per-key token buckets: a flood from one key is limited, another key is unaffected."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from cugar_metrics.config import Config, ConfigError
from cugar_metrics.ratelimit import KeyedLimiter, RateLimit, TokenBucket, parse_rate
from tests.server.auth.helpers import Keys, auth_server, bearer, retry_delay, sample
from tests.server.auth.test_matrix import get_dashboard, record_execution


def test_a_flood_from_one_key_is_limited_while_another_key_is_unaffected(
    tmp_path: Path,
) -> None:
    """Recorder limit 1/m with a burst of 5: key A gets exactly 5 of 20 calls through, each
    refusal is RESOURCE_EXHAUSTED with a RetryInfo of about a minute; key B, same role, still
    gets its own 5."""
    keys = Keys(tmp_path / "keys.json")
    a = keys.add("agent-a", "recorder")
    b = keys.add("agent-b", "recorder")
    reader = keys.add("agent-r", "reader")
    with auth_server(auth_keys_file=str(keys.path), rate_limit_recorder=parse_rate("1/m:5")) as h:
        outcomes = []
        delays = []
        for _ in range(20):
            try:
                record_execution(h.channel, bearer(a))
                outcomes.append("ok")
            except grpc.RpcError as e:
                outcomes.append(e.code().name)
                delays.append(retry_delay(e))
        for _ in range(5):
            record_execution(h.channel, bearer(b))
        for _ in range(30):
            get_dashboard(h.channel, bearer(reader))  # no reader limit configured
        text = h.metrics()
    assert outcomes == ["ok"] * 5 + ["RESOURCE_EXHAUSTED"] * 15
    assert all(55 < d <= 60 for d in delays), delays
    assert sample(text, "cugar_rate_limited_total", role="recorder") == 15
    assert sample(text, "cugar_rate_limited_total", role="reader") == 0
    assert sample(text, "cugar_rate_limited_total", role="admin") == 0
    assert sample(text, "cugar_ingest_executions_total", result="accepted") == 10


def test_a_key_of_its_own_rate_limit_overrides_its_role(tmp_path: Path) -> None:
    keys = Keys(tmp_path / "keys.json")
    slow = keys.add("slow", "admin", rate_limit="1/h:2")
    fast = keys.add("fast", "admin")
    with auth_server(auth_keys_file=str(keys.path), rate_limit_admin=parse_rate("1000/s")) as h:
        record_execution(h.channel, bearer(slow))
        record_execution(h.channel, bearer(slow))
        with pytest.raises(grpc.RpcError) as caught:
            get_dashboard(h.channel, bearer(slow))
        for _ in range(10):
            record_execution(h.channel, bearer(fast))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert 3590 < retry_delay(caught.value) <= 3600


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(RateLimit(rate=2.0, burst=3), now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert bucket.take(100.25) == 0.25  # half a token back, half still missing
    assert bucket.take(100.5) == 0.0
    assert bucket.take(200.0) == 0.0  # idle: full again, but never more than the burst
    assert [bucket.take(200.0) for _ in range(3)] == [0.0, 0.0, 0.5]


def test_keyed_limiter_keeps_one_bucket_per_key_and_forgets_removed_keys() -> None:
    limiter = KeyedLimiter()
    limit = RateLimit(rate=1.0, burst=1)
    assert limiter.take("a", limit, 0.0) == 0.0
    assert limiter.take("a", limit, 0.0) == 1.0
    assert limiter.take("b", limit, 0.0) == 0.0
    limiter.retain(["b"])
    assert len(limiter) == 1
    assert limiter.take("a", limit, 0.0) == 0.0  # a fresh bucket


@pytest.mark.parametrize(
    ("text", "rate", "burst"),
    [
        ("200/s", 200.0, 200),
        ("600/m:50", 10.0, 50),
        ("5", 5.0, 5),
        ("1/h", 1 / 3600, 1),
        ("0.5/s:2", 0.5, 2),
    ],
)
def test_rate_syntax(text: str, rate: float, burst: int) -> None:
    limit = parse_rate(text)
    assert (limit.rate, limit.burst, str(limit)) == (rate, burst, text)


@pytest.mark.parametrize("text", ["", "fast", "10/d", "0/s", "10:0", "-1", "10/s:"])
def test_bad_rate_syntax_is_explained(text: str) -> None:
    with pytest.raises(ValueError, match=r"RATE\[/s\|/m\|/h\]\[:BURST\]|more than 0|at least 1"):
        parse_rate(text)


def test_rate_limits_without_a_keys_file_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--rate-limit-reader: rate limits are per API key"):
        Config(rate_limit_reader=parse_rate("10/s"))
    with pytest.raises(ConfigError, match="--reflection-requires-auth: needs --auth-keys-file"):
        Config(reflection_requires_auth=True)
