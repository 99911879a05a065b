"""The Python client's defaults are those of clients/spec.yaml, the file all four clients share.

Each value is read from what the client actually uses (signature defaults, the backoff of a
direct call's retries, the channel options and service config it builds, the recorder's
backoff), not from a copy of the file,
so changing a default on one side only fails here.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import yaml

from cugar_metrics_client import AsyncClient, BatchRecorder, Client
from cugar_metrics_client import _spec as spec
from cugar_metrics_client._channel import channel_options, service_config
from cugar_metrics_client._retry import unavailable_backoff

SPEC = Path(__file__).resolve().parents[2] / "spec.yaml"


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every value of the spec by its dotted path (``recorder.batch_size``)."""
    found: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            found.update(leaves(value, f"{prefix}{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


def defaults(callable_: Any) -> dict[str, Any]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(callable_).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def seconds(text: str) -> float:
    assert text.endswith("s"), text
    return float(text[:-1])


def python_values() -> dict[str, Any]:
    """What the Python client does, by the spec's paths."""
    client = defaults(Client.__init__)
    assert defaults(AsyncClient.__init__) == client, "Client and AsyncClient defaults differ"
    recorder = defaults(BatchRecorder.__init__)
    config = json.loads(service_config())
    (balancing,) = config["loadBalancingConfig"]
    options = dict(channel_options())
    assert recorder["retry_info_cap"] == client["retry_info_cap"]
    assert recorder["timeout"] == client["attempt_timeout"], "attempt deadlines differ"
    backoffs = [unavailable_backoff(n) for n in range(1, 4)]
    return {
        "call.deadline_seconds": client["timeout"],
        "call.attempt_deadline_seconds": client["attempt_timeout"],
        "call.max_attempts": client["max_attempts"],
        "call.initial_backoff_seconds": backoffs[0],
        "call.max_backoff_seconds": unavailable_backoff(100),
        "call.backoff_multiplier": backoffs[2] / backoffs[1],
        "call.retryable_codes": list(spec.RETRYABLE_CODES),
        "connection.initial_reconnect_backoff_seconds": (
            int(options["grpc.initial_reconnect_backoff_ms"]) / 1000
        ),
        "connection.max_reconnect_backoff_seconds": (
            int(options["grpc.max_reconnect_backoff_ms"]) / 1000
        ),
        "connection.load_balancing_policy": next(iter(balancing)),
        "rate_limit.retry_info_cap_seconds": client["retry_info_cap"],
        "rate_limit.rate_limit_retries": client["rate_limit_retries"],
        "recorder.buffer_size": recorder["max_buffer"],
        "recorder.batch_size": recorder["max_batch"],
        "recorder.flush_interval_seconds": recorder["flush_interval"],
        "recorder.close_timeout_seconds": recorder["close_timeout"],
        "recorder.retry_initial_backoff_seconds": spec.RECORDER_RETRY_INITIAL_BACKOFF,
        "recorder.retry_max_backoff_seconds": spec.RECORDER_RETRY_MAX_BACKOFF,
        "recorder.retry_backoff_multiplier": spec.RECORDER_RETRY_BACKOFF_MULTIPLIER,
        "recorder.retryable_codes": list(spec.RECORDER_RETRYABLE_CODES),
        "watch.interval_seconds": defaults(Client.watch_dashboard)["interval"],
        "watch.reconnect_codes": list(spec.WATCH_RECONNECT_CODES),
        "watch.reconnect_initial_backoff_seconds": spec.watch_backoff(0),
        "watch.reconnect_max_backoff_seconds": spec.watch_backoff(100),
        "watch.reconnect_backoff_multiplier": spec.watch_backoff(2) / spec.watch_backoff(1),
    }


def test_every_default_matches_the_shared_spec() -> None:
    shared = leaves(yaml.safe_load(SPEC.read_text()))
    assert shared.pop("version") == 1
    ours = python_values()
    assert sorted(shared) == sorted(ours), "spec.yaml and the Python client name other settings"
    differ = {path: (ours[path], shared[path]) for path in shared if ours[path] != shared[path]}
    assert not differ, f"Python value != clients/spec.yaml value: {differ}"


def test_the_recorder_backs_off_as_the_spec_says() -> None:
    """The waits between retries of a failed batch: initial, times the multiplier, capped."""
    recorder = BatchRecorder("127.0.0.1:1", flush_interval=60.0)
    try:
        waits = []
        for failures in range(1, 7):
            recorder._failures = failures
            waits.append(recorder._backoff())
    finally:
        recorder.close(timeout=0)
    shared = yaml.safe_load(SPEC.read_text())["recorder"]
    expected = [
        min(
            shared["retry_initial_backoff_seconds"] * shared["retry_backoff_multiplier"] ** n,
            shared["retry_max_backoff_seconds"],
        )
        for n in range(6)
    ]
    assert waits == expected
