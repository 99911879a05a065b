"""What an OpenTelemetry span means here, by the GenAI semantic conventions.

A span is classified by `gen_ai.operation.name` (with the fallbacks of older
instrumentations, below) into an agent run, a tool call, a model call, or something else:

- `invoke_agent`, `invoke_workflow`: an execution. Its id is the trace id and span id (a
  re-export counts once); its profile `gen_ai.agent.name` (or the attribute chosen by
  `--otlp-profile-attribute`); its outcome from the span status and `error.type`; its start
  and duration from the span.
- `execute_tool`: a tool call of its nearest agent ancestor: `gen_ai.tool.name`; the domain
  from `cugar.domain`, else `unknown`; the status from the span status and `error.type`.
- `chat`, `text_completion`, `generate_content`, `embeddings`: a model call, of its nearest
  agent ancestor or on its own: the provider from `gen_ai.provider.name` or `gen_ai.system`;
  `gen_ai.request.model` and `gen_ai.response.model`; tokens from `gen_ai.usage.input_tokens`,
  `gen_ai.usage.output_tokens`, `gen_ai.usage.cache_read.input_tokens` and
  `gen_ai.usage.reasoning.output_tokens`; rate-limited when `error.type` says so (a 429, a
  rate or quota limit), an error otherwise when the span failed.

Extra attributes of the agent span: `cugar.steps` (else the number of model calls),
`cugar.budget.spent`/`cugar.budget.limit`/`cugar.budget.exceeded`, and approvals as span
events named `cugar.approval` with `cugar.approval.decision`, `cugar.approval.operation` and
`cugar.approval.wait` (seconds). A model call may carry `cugar.cost`.

Older instrumentations without `gen_ai.operation.name`: `traceloop.span.kind` `agent` or
`workflow` is an agent run and `tool` a tool call; `llm.request.type` `chat` or `completion`
is a model call.

An agent span that wraps a run already recorded under the same `gen_ai.agent.name` (as
OpenLLMetry's LangGraph instrumentation emits) is not a second execution: see `assembly`.

Pure: no I/O, no gRPC. The result is protobuf messages of the contract, validated afterwards
by the same rules as any recorded execution.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from cugar.metrics.v1 import metrics_service_pb2 as pb


class Kind(enum.Enum):
    AGENT = "agent"
    TOOL = "tool"
    MODEL = "model"
    OTHER = "other"


AGENT_OPERATIONS: Final = frozenset({"invoke_agent", "invoke_workflow", "create_agent"})
TOOL_OPERATIONS: Final = frozenset({"execute_tool"})
MODEL_OPERATIONS: Final = {
    "chat": pb.MODEL_OPERATION_CHAT,
    "text_completion": pb.MODEL_OPERATION_TEXT_COMPLETION,
    "generate_content": pb.MODEL_OPERATION_GENERATE_CONTENT,
    "embeddings": pb.MODEL_OPERATION_EMBEDDINGS,
}
_TRACELOOP_KINDS: Final = {
    "agent": Kind.AGENT,
    "workflow": Kind.AGENT,
    "tool": Kind.TOOL,
}
_LLM_REQUEST_TYPES: Final = {
    "chat": pb.MODEL_OPERATION_CHAT,
    "completion": pb.MODEL_OPERATION_TEXT_COMPLETION,
    "embedding": pb.MODEL_OPERATION_EMBEDDINGS,
}
#: `create_agent` is not a run: it is ignored like any span that is not GenAI.
_NOT_A_RUN: Final = "create_agent"
#: A label-bound name: what `error.type` and names are reduced to (see `_name`).
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")
_RATE_LIMITED = re.compile(r"429|rate.?limit|too.?many.?requests|quota", re.IGNORECASE)
UNKNOWN: Final = "unknown"
DEFAULT_PROFILE_ATTRIBUTE: Final = "gen_ai.agent.name"

Attributes = dict[str, str | bool | int | float]


def attributes(kvs: Iterable[common_pb2.KeyValue]) -> Attributes:
    """The scalar attributes of a span or event (arrays, maps and bytes are left out)."""
    out: Attributes = {}
    for kv in kvs:
        v = kv.value
        which = v.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = v.string_value
        elif which == "int_value":
            out[kv.key] = v.int_value
        elif which == "double_value":
            out[kv.key] = v.double_value
        elif which == "bool_value":
            out[kv.key] = v.bool_value
    return out


def classify(attrs: Attributes) -> Kind:
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation:
        if operation in AGENT_OPERATIONS and operation != _NOT_A_RUN:
            return Kind.AGENT
        if operation in TOOL_OPERATIONS:
            return Kind.TOOL
        if operation in MODEL_OPERATIONS:
            return Kind.MODEL
        return Kind.OTHER
    kind = _TRACELOOP_KINDS.get(str(attrs.get("traceloop.span.kind", "")))
    if kind is not None:
        return kind
    if str(attrs.get("llm.request.type", "")) in _LLM_REQUEST_TYPES:
        return Kind.MODEL
    return Kind.OTHER


def _name(value: object) -> str:
    """A label-bound name made from an attribute: invalid characters become `_`, a leading
    non-letter gets a prefix, and it is cut to 64 characters. Empty stays empty."""
    text = str(value) if value is not None else ""
    if not text:
        return ""
    text = _NAME_CHARS.sub("_", text)
    if not text[0].isalpha() or not text[0].isascii():
        text = "e_" + text
    return text[:64]


def _duration(span: trace_pb2.Span) -> int:
    """The span's duration in nanoseconds (0 when its end precedes its start)."""
    return max(0, span.end_time_unix_nano - span.start_time_unix_nano)


def _failed(span: trace_pb2.Span, attrs: Attributes) -> bool:
    return span.status.code == trace_pb2.Status.STATUS_CODE_ERROR or bool(attrs.get("error.type"))


def _error_type(attrs: Attributes) -> str:
    return _name(attrs.get("error.type")) or "error"


def execution_id(trace_id: bytes, span_id: bytes) -> str:
    """The id of the execution an agent span becomes: a re-export of the span counts once."""
    return f"{trace_id.hex()}-{span_id.hex()}"


def tool_call(span: trace_pb2.Span, attrs: Attributes) -> pb.ToolCall:
    call = pb.ToolCall(
        tool=_name(attrs.get("gen_ai.tool.name")) or _name(span.name.removeprefix("execute_tool ")),
        domain=_name(attrs.get("cugar.domain")) or UNKNOWN,
        status=pb.TOOL_CALL_STATUS_SUCCESS,
    )
    call.duration.FromNanoseconds(_duration(span))
    if _failed(span, attrs):
        call.status = pb.TOOL_CALL_STATUS_ERROR
        call.error_type = _error_type(attrs)
    return call


def _int(value: object) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and value == value:
        return max(0, int(value))
    return 0


def model_call(span: trace_pb2.Span, attrs: Attributes) -> pb.ModelCall:
    operation = MODEL_OPERATIONS.get(str(attrs.get("gen_ai.operation.name", "")))
    if operation is None:
        operation = _LLM_REQUEST_TYPES.get(
            str(attrs.get("llm.request.type", "")), pb.MODEL_OPERATION_OTHER
        )
    call = pb.ModelCall(
        provider=_name(attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system")) or UNKNOWN,
        model=_name(attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model"))
        or UNKNOWN,
        response_model=_name(attrs.get("gen_ai.response.model")),
        operation=operation,
        status=pb.MODEL_CALL_STATUS_SUCCESS,
        input_tokens=_int(attrs.get("gen_ai.usage.input_tokens")),
        output_tokens=_int(attrs.get("gen_ai.usage.output_tokens")),
    )
    call.duration.FromNanoseconds(_duration(span))
    cached = attrs.get("gen_ai.usage.cache_read.input_tokens")
    if cached is not None:
        call.cached_input_tokens = _int(cached)
    reasoning = attrs.get("gen_ai.usage.reasoning.output_tokens")
    if reasoning is not None:
        call.reasoning_tokens = _int(reasoning)
    cost = attrs.get("cugar.cost")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        call.cost = float(cost)
    if _failed(span, attrs):
        error = attrs.get("error.type")
        rate_limited = error is not None and bool(_RATE_LIMITED.search(str(error)))
        call.status = (
            pb.MODEL_CALL_STATUS_RATE_LIMITED if rate_limited else pb.MODEL_CALL_STATUS_ERROR
        )
        call.error_type = _error_type(attrs)
    return call


_DECISIONS: Final = {
    "approved": pb.APPROVAL_DECISION_APPROVED,
    "denied": pb.APPROVAL_DECISION_DENIED,
    "timeout": pb.APPROVAL_DECISION_TIMEOUT,
    "cancelled": pb.APPROVAL_DECISION_CANCELLED,
}
_APPROVAL_OPERATIONS: Final = {
    "propose": pb.APPROVAL_OPERATION_PROPOSE,
    "execute": pb.APPROVAL_OPERATION_EXECUTE,
}


@dataclass(frozen=True, slots=True)
class AgentRun:
    """An agent span, waiting for its tool and model calls to make one execution."""

    execution: pb.Execution
    #: `cugar.steps`, when the span said; else the number of model calls is used.
    steps: int | None


def agent_run(
    span: trace_pb2.Span, attrs: Attributes, profile_attribute: str = DEFAULT_PROFILE_ATTRIBUTE
) -> AgentRun:
    e = pb.Execution(
        execution_id=execution_id(span.trace_id, span.span_id),
        trace_id=span.trace_id.hex(),
        profile=_name(attrs.get(profile_attribute)) or UNKNOWN,
        outcome=pb.OUTCOME_SUCCESS,
    )
    e.start_time.FromNanoseconds(span.start_time_unix_nano)
    e.duration.FromNanoseconds(_duration(span))
    if _failed(span, attrs):
        e.outcome = pb.OUTCOME_FAILURE
        e.error_type = _error_type(attrs)
    spent, limit = attrs.get("cugar.budget.spent"), attrs.get("cugar.budget.limit")
    if isinstance(spent, int | float) and isinstance(limit, int | float):
        e.budget.spent, e.budget.limit = float(spent), float(limit)
        e.budget.exceeded = bool(attrs.get("cugar.budget.exceeded", False))
    for event in span.events:
        if event.name != "cugar.approval":
            continue
        a = attributes(event.attributes)
        approval = e.approvals.add(
            decision=_DECISIONS.get(str(a.get("cugar.approval.decision", "")), 0),
            operation=_APPROVAL_OPERATIONS.get(str(a.get("cugar.approval.operation", "")), 0),
        )
        wait = a.get("cugar.approval.wait")
        if isinstance(wait, int | float) and not isinstance(wait, bool):
            approval.wait.FromNanoseconds(round(float(wait) * 1e9))
    steps = attrs.get("cugar.steps")
    return AgentRun(e, _int(steps) if steps is not None else None)


def finish(run: AgentRun, tools: list[pb.ToolCall], models: list[pb.ModelCall]) -> pb.Execution:
    """The execution of an agent run with its tool and model calls, in start order."""
    e = pb.Execution()
    e.CopyFrom(run.execution)
    e.tool_calls.extend(tools)
    e.model_calls.extend(models)
    e.steps = run.steps if run.steps is not None else len(models)
    return e
