"""Model calls: each field validated, each violation names its field and reason."""

from __future__ import annotations

from typing import Any

import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.model import ModelCall
from cugar_metrics.validation import Limits, validate_execution
from tests.conftest import dur, pb_execution

NOW = 1_800_000_000.0


def model_call(**overrides: Any) -> pb.ModelCall:
    fields: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "operation": pb.MODEL_OPERATION_CHAT,
        "status": pb.MODEL_CALL_STATUS_SUCCESS,
        "duration": dur(2.5),
        "time_to_first_token": dur(0.4),
        "input_tokens": 1200,
        "output_tokens": 300,
        "cached_input_tokens": 200,
        "reasoning_tokens": 50,
        "cost": 0.0125,
    }
    fields.update(overrides)
    return pb.ModelCall(**{k: v for k, v in fields.items() if v is not None})


def check(call: pb.ModelCall) -> list[tuple[str, str]]:
    message = pb_execution("m-1")
    message.model_calls.append(call)
    result, found = validate_execution(message, "execution", Limits(), NOW)
    assert (result is None) == bool(found)
    return [(v.field, v.reason) for v in found]


def test_a_valid_model_call_converts_to_the_domain_model() -> None:
    message = pb_execution("m-1")
    message.model_calls.append(model_call())
    message.model_calls.append(
        model_call(
            status=pb.MODEL_CALL_STATUS_RATE_LIMITED,
            error_type="RateLimitError",
            time_to_first_token=None,
            cached_input_tokens=None,
            reasoning_tokens=None,
            cost=None,
            output_tokens=0,
        )
    )
    result, found = validate_execution(message, "execution", Limits(), NOW)
    assert found == []
    assert result is not None
    assert result.model_calls == (
        ModelCall("openai", "gpt-4o", "chat", "success", 2.5, 0.4, 1200, 300, 200, 50, 0.0125),
        ModelCall("openai", "gpt-4o", "chat", "rate_limited", 2.5, None, 1200, 0, 0, 0, None),
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"provider": ""}, ("provider", "REQUIRED")),
        ({"model": "gpt 4"}, ("model", "INVALID_NAME")),
        ({"response_model": "1x"}, ("response_model", "INVALID_NAME")),
        ({"operation": 0}, ("operation", "REQUIRED")),
        ({"operation": 9}, ("operation", "INVALID_ENUM")),
        ({"status": 0}, ("status", "REQUIRED")),
        ({"error_type": "timeout"}, ("error_type", "INCONSISTENT")),
        ({"duration": None, "time_to_first_token": None}, ("duration", "REQUIRED")),
        ({"duration": dur(1.7e9)}, ("duration", "OUT_OF_RANGE")),
        ({"time_to_first_token": dur(3.0)}, ("time_to_first_token", "INCONSISTENT")),
        ({"input_tokens": 100_000_001}, ("input_tokens", "OUT_OF_RANGE")),
        ({"output_tokens": 2**64 - 1, "reasoning_tokens": 0}, ("output_tokens", "OUT_OF_RANGE")),
        ({"cached_input_tokens": 1201}, ("cached_input_tokens", "INCONSISTENT")),
        ({"reasoning_tokens": 301}, ("reasoning_tokens", "INCONSISTENT")),
        ({"cost": -0.5}, ("cost", "OUT_OF_RANGE")),
        ({"cost": float("nan")}, ("cost", "OUT_OF_RANGE")),
        ({"cost": 1e308}, ("cost", "OUT_OF_RANGE")),
    ],
)
def test_each_bad_field_is_named(overrides: dict[str, Any], expected: tuple[str, str]) -> None:
    field, reason = expected
    assert check(model_call(**overrides)) == [(f"execution.model_calls[0].{field}", reason)]


def test_too_many_model_calls_are_refused() -> None:
    message = pb_execution("m-1")
    message.model_calls.extend([model_call()] * 1001)
    _, found = validate_execution(message, "execution", Limits(), NOW)
    assert [(v.field, v.reason) for v in found] == [("execution.model_calls", "TOO_MANY")]
