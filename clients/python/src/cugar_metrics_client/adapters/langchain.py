"""A LangChain/LangGraph callback handler that records each top-level run as one execution.

    from cugar_metrics_client import BatchRecorder
    from cugar_metrics_client.adapters.langchain import CugarMetricsCallbackHandler

    handler = CugarMetricsCallbackHandler(recorder, profile="sales_rep")
    graph.invoke(inputs, config={"callbacks": [handler]})

A run without a parent (the graph, chain or agent invoked) is one execution; tool runs inside it
are tool calls (their domain from the tool's metadata ``cugar.domain``, else ``unknown``);
chat-model and LLM runs are model calls with the usage of the message's ``usage_metadata``.
An error ends the run as a failure of the exception's class name. Times come from the
monotonic clock. The handler never raises: a failure to turn an event into metrics is logged
and counted in ``failures``. Needs ``cugar-metrics-client[langchain]``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.outputs import ChatGeneration, LLMResult

from .._batch import BatchRecorder
from .._model import Execution, ModelCall, ModelStatus, Outcome, ToolCall, ToolStatus
from .._run import error_type_of
from ._common import FailureCount

DOMAIN_KEY = "cugar.domain"
UNKNOWN = "unknown"


@dataclass(slots=True)
class _Execution:
    started: float
    start_time: datetime
    tool_calls: list[ToolCall] = field(default_factory=list)
    model_calls: list[ModelCall] = field(default_factory=list)
    steps: int = 0


@dataclass(slots=True)
class _Child:
    root: UUID
    started: float
    name: str = ""
    domain: str = UNKNOWN
    provider: str = UNKNOWN
    model: str = UNKNOWN
    first_token: float | None = None


def _rate_limited(error: BaseException) -> bool:
    status = getattr(error, "status_code", None)
    return status == 429 or "RateLimit" in type(error).__name__


class CugarMetricsCallbackHandler(BaseCallbackHandler):
    """Records LangChain/LangGraph runs through a ``BatchRecorder`` (never blocks, never
    raises)."""

    raise_error = False
    run_inline = True

    def __init__(
        self, recorder: BatchRecorder, profile: str, *, default_provider: str = UNKNOWN
    ) -> None:
        self.recorder = recorder
        self.profile = profile
        self.default_provider = default_provider
        self.failures = FailureCount()
        self._lock = threading.Lock()
        self._roots: dict[UUID, _Execution] = {}
        self._children: dict[UUID, _Child] = {}
        self._parents: dict[UUID, UUID] = {}

    # Bookkeeping.

    def _root_of(self, run_id: UUID, parent_run_id: UUID | None) -> UUID | None:
        """Registers ``run_id``; its root run, or None when it is a root itself."""
        with self._lock:
            if parent_run_id is None:
                return None
            self._parents[run_id] = parent_run_id
            root = parent_run_id
            while root in self._parents:
                root = self._parents[root]
            return root

    def _start_root(self, run_id: UUID) -> None:
        with self._lock:
            self._roots[run_id] = _Execution(time.perf_counter(), datetime.now(UTC))

    def _finish_root(self, run_id: UUID, error: BaseException | None) -> None:
        with self._lock:
            state = self._roots.pop(run_id, None)
            for child, parent in list(self._parents.items()):
                if parent == run_id:
                    del self._parents[child]
        if state is None:
            return
        elapsed = time.perf_counter() - state.started
        execution = Execution(
            profile=self.profile,
            outcome=Outcome.FAILURE if error is not None else Outcome.SUCCESS,
            error_type=error_type_of(error) if error is not None else "",
            duration=elapsed,
            steps=state.steps,
            tool_calls=state.tool_calls,
            model_calls=state.model_calls,
            trace_id=str(run_id),
            start_time=state.start_time,
        )
        self.recorder.record(execution)

    def _start_child(self, run_id: UUID, parent_run_id: UUID | None, child: _Child) -> bool:
        root = self._root_of(run_id, parent_run_id)
        if root is None:
            self._start_root(run_id)  # a tool or model invoked on its own
            root = run_id
        child.root = root
        with self._lock:
            self._children[run_id] = child
        return True

    def _pop_child(self, run_id: UUID) -> tuple[_Child, _Execution] | None:
        with self._lock:
            child = self._children.pop(run_id, None)
            if child is None:
                return None
            state = self._roots.get(child.root)
            if state is None:
                return None
            return child, state

    # Chains and graphs: the root is the execution.

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            if self._root_of(run_id, parent_run_id) is None:
                self._start_root(run_id)
        except Exception:
            self.failures.add("a chain start")

    def on_chain_end(
        self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._end_chain(run_id, None)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._end_chain(run_id, error)

    def _end_chain(self, run_id: UUID, error: BaseException | None) -> None:
        try:
            with self._lock:
                is_root = run_id in self._roots and run_id not in self._children
            if is_root:
                self._finish_root(run_id, error)
        except Exception:
            self.failures.add("a chain end")

    # Tools.

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = kwargs.get("name") or (serialized or {}).get("name") or UNKNOWN
            domain = str((metadata or {}).get(DOMAIN_KEY) or UNKNOWN)
            child = _Child(run_id, time.perf_counter(), name=str(name), domain=domain)
            self._start_child(run_id, parent_run_id, child)
        except Exception:
            self.failures.add("a tool start")

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_tool(run_id, None)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_tool(run_id, error)

    def _end_tool(self, run_id: UUID, error: BaseException | None) -> None:
        try:
            found = self._pop_child(run_id)
            if found is None:
                return
            child, state = found
            call = ToolCall(
                child.name,
                child.domain,
                ToolStatus.ERROR if error is not None else ToolStatus.SUCCESS,
                time.perf_counter() - child.started,
                error_type_of(error) if error is not None else "",
            )
            with self._lock:
                state.tool_calls.append(call)
                state.steps += 1
            if child.root == run_id:
                self._finish_root(run_id, error)
        except Exception:
            self.failures.add("a tool end")

    # Models.

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start_model(serialized, run_id, parent_run_id, metadata, kwargs)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._start_model(serialized, run_id, parent_run_id, metadata, kwargs)

    def _start_model(
        self,
        serialized: dict[str, Any] | None,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        try:
            meta = metadata or {}
            params = kwargs.get("invocation_params") or {}
            provider = meta.get("ls_provider") or self.default_provider
            model = (
                meta.get("ls_model_name")
                or params.get("model")
                or params.get("model_name")
                or kwargs.get("name")
                or (serialized or {}).get("name")
                or UNKNOWN
            )
            child = _Child(run_id, time.perf_counter(), provider=str(provider), model=str(model))
            self._start_child(run_id, parent_run_id, child)
        except Exception:
            self.failures.add("a model start")

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            with self._lock:
                child = self._children.get(run_id)
                if child is not None and child.first_token is None:
                    child.first_token = time.perf_counter() - child.started
        except Exception:
            self.failures.add("a streamed token")

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_model(run_id, response, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end_model(run_id, None, error)

    def _end_model(
        self, run_id: UUID, response: LLMResult | None, error: BaseException | None
    ) -> None:
        try:
            found = self._pop_child(run_id)
            if found is None:
                return
            child, state = found
            elapsed = time.perf_counter() - child.started
            call = ModelCall(child.provider, child.model, duration=elapsed)
            if child.first_token is not None:
                call.time_to_first_token = min(child.first_token, elapsed)
            if error is not None:
                call.status = (
                    ModelStatus.RATE_LIMITED if _rate_limited(error) else ModelStatus.ERROR
                )
                call.error_type = error_type_of(error)
            elif response is not None:
                _usage(call, response)
            with self._lock:
                state.model_calls.append(call)
            if child.root == run_id:
                self._finish_root(run_id, error)
        except Exception:
            self.failures.add("a model end")


def _usage(call: ModelCall, response: LLMResult) -> None:
    """Adds up the ``usage_metadata`` of every generated message into ``call``."""
    for generations in response.generations:
        for generation in generations:
            if not isinstance(generation, ChatGeneration):
                continue
            message = generation.message
            usage = getattr(message, "usage_metadata", None)
            if usage:
                call.input_tokens += int(usage.get("input_tokens", 0))
                call.output_tokens += int(usage.get("output_tokens", 0))
                cached = (usage.get("input_token_details") or {}).get("cache_read")
                if cached is not None:
                    call.cached_input_tokens = (call.cached_input_tokens or 0) + int(cached)
                reasoning = (usage.get("output_token_details") or {}).get("reasoning")
                if reasoning is not None:
                    call.reasoning_tokens = (call.reasoning_tokens or 0) + int(reasoning)
            name = (getattr(message, "response_metadata", None) or {}).get("model_name")
            if name:
                call.response_model = str(name)
