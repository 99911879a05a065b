"""An OpenAI Agents SDK ``TracingProcessor`` that records each agent trace as one execution.

    from agents import add_trace_processor
    from cugar_metrics_client.adapters.openai_agents import CugarMetricsProcessor

    add_trace_processor(CugarMetricsProcessor(recorder, profile="sales_rep"))

A trace (one ``Runner.run``) is one execution; function spans are tool calls (the domain from
``domains``, a tool-name-to-domain mapping, else ``unknown``); generation and response spans
are model calls with their usage (``input_tokens``, ``output_tokens``, cached and reasoning
tokens from the details). A trace with an agent or function span that ended in an error that
was not handled is a failure (``error_type`` ``AgentError``). Durations come from the
monotonic clock at the span's start and end events. The processor never raises: a failure to
turn an event into metrics is logged and counted in ``failures``. Needs
``cugar-metrics-client[openai-agents]``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents.tracing import Span, Trace, TracingProcessor
from agents.tracing.span_data import (
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    ResponseSpanData,
)

from .._batch import BatchRecorder
from .._model import Execution, ModelCall, ModelStatus, Outcome, ToolCall, ToolStatus
from ._common import FailureCount

UNKNOWN = "unknown"
AGENT_ERROR = "AgentError"
TOOL_ERROR = "ToolError"
MODEL_ERROR = "ModelError"


@dataclass(slots=True)
class _Trace:
    started: float
    start_time: datetime
    tool_calls: list[ToolCall] = field(default_factory=list)
    model_calls: list[ModelCall] = field(default_factory=list)
    steps: int = 0
    failed: bool = False


def _get(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key)
    return getattr(value, key, None)


def _usage(call: ModelCall, usage: Any) -> None:
    if usage is None:
        return
    call.input_tokens = int(_get(usage, "input_tokens") or 0)
    call.output_tokens = int(_get(usage, "output_tokens") or 0)
    cached = _get(_get(usage, "input_tokens_details"), "cached_tokens")
    if cached is not None:
        call.cached_input_tokens = int(cached)
    reasoning = _get(_get(usage, "output_tokens_details"), "reasoning_tokens")
    if reasoning is not None:
        call.reasoning_tokens = int(reasoning)


class CugarMetricsProcessor(TracingProcessor):
    """Records OpenAI Agents SDK traces through a ``BatchRecorder`` (never blocks, never
    raises)."""

    def __init__(
        self,
        recorder: BatchRecorder,
        profile: str,
        *,
        provider: str = "openai",
        domains: Mapping[str, str] | None = None,
    ) -> None:
        self.recorder = recorder
        self.profile = profile
        self.provider = provider
        self.domains = dict(domains or {})
        self.failures = FailureCount()
        self._lock = threading.Lock()
        self._traces: dict[str, _Trace] = {}
        self._spans: dict[str, float] = {}

    def on_trace_start(self, trace: Trace) -> None:
        try:
            with self._lock:
                self._traces[trace.trace_id] = _Trace(time.perf_counter(), datetime.now(UTC))
        except Exception:
            self.failures.add("a trace start")

    def on_trace_end(self, trace: Trace) -> None:
        try:
            with self._lock:
                state = self._traces.pop(trace.trace_id, None)
            if state is None:
                return
            self.recorder.record(
                Execution(
                    profile=self.profile,
                    outcome=Outcome.FAILURE if state.failed else Outcome.SUCCESS,
                    error_type=AGENT_ERROR if state.failed else "",
                    duration=time.perf_counter() - state.started,
                    steps=state.steps,
                    tool_calls=state.tool_calls,
                    model_calls=state.model_calls,
                    trace_id=trace.trace_id,
                    start_time=state.start_time,
                )
            )
        except Exception:
            self.failures.add("a trace end")

    def on_span_start(self, span: Span[Any]) -> None:
        try:
            with self._lock:
                self._spans[span.span_id] = time.perf_counter()
        except Exception:
            self.failures.add("a span start")

    def on_span_end(self, span: Span[Any]) -> None:
        try:
            self._end(span)
        except Exception:
            self.failures.add("a span end")

    def _end(self, span: Span[Any]) -> None:
        now = time.perf_counter()
        with self._lock:
            started = self._spans.pop(span.span_id, now)
            state = self._traces.get(span.trace_id)
        if state is None:
            return
        data = span.span_data
        error = span.error
        elapsed = now - started
        if isinstance(data, FunctionSpanData):
            call = ToolCall(
                data.name,
                self.domains.get(data.name, UNKNOWN),
                ToolStatus.ERROR if error else ToolStatus.SUCCESS,
                elapsed,
                TOOL_ERROR if error else "",
            )
            with self._lock:
                state.tool_calls.append(call)
                state.steps += 1
        elif isinstance(data, GenerationSpanData | ResponseSpanData):
            if isinstance(data, GenerationSpanData):
                model, response_model, usage = data.model, "", data.usage
            else:
                response = data.response
                model = str(_get(response, "model") or "") or None
                response_model = ""
                usage = data.usage or _get(response, "usage")
            model_call = ModelCall(self.provider, model or UNKNOWN, duration=elapsed)
            model_call.response_model = response_model
            if error:
                message = str(error.get("message") or "")
                limited = "429" in message or "rate" in message.lower()
                model_call.status = ModelStatus.RATE_LIMITED if limited else ModelStatus.ERROR
                model_call.error_type = "RateLimitError" if limited else MODEL_ERROR
            else:
                _usage(model_call, usage)
            with self._lock:
                state.model_calls.append(model_call)
        elif isinstance(data, AgentSpanData) and error:
            with self._lock:
                state.failed = True

    def shutdown(self) -> None:
        """Nothing to release: the recorder is the caller's to close."""

    def force_flush(self) -> None:
        """Send what the recorder holds, waiting at most 5 s (the SDK calls it at exit)."""
        try:
            self.recorder.flush(timeout=5.0)
        except Exception:
            self.failures.add("a flush")
