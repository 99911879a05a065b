"""Measuring one execution: a context manager and a decorator around the agent's work."""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ParamSpec, Protocol, Self, TypeVar

from ._model import (
    Approval,
    Budget,
    Decision,
    DurationLike,
    Execution,
    ModelCall,
    ModelOperation,
    ModelStatus,
    Operation,
    Outcome,
    RecordResult,
    ToolCall,
    ToolStatus,
    new_execution_id,
)

logger = logging.getLogger("cugar_metrics_client")

P = ParamSpec("P")
R = TypeVar("R")

_current: contextvars.ContextVar[RunState | None] = contextvars.ContextVar(
    "cugar_metrics_run", default=None
)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.:-]")
_LEADING = re.compile(r"^[^A-Za-z]+")


def error_type_of(error: BaseException) -> str:
    """The exception's class name, made a valid label-bound name (``_Private`` → ``Private``)."""
    name = _LEADING.sub("", _NAME_CHARS.sub("_", type(error).__name__))[:64]
    return name or "Exception"


def current_run() -> RunState | None:
    """The run being measured in this thread or task, if any (for code deep in the agent)."""
    return _current.get()


class ModelCallTimer:
    """One model call being timed by ``run.model_call(...)``.

    The agent sets the usage it got back (``input_tokens``, ``output_tokens`` and, when known,
    ``cached_input_tokens``, ``reasoning_tokens``, ``cost``, ``response_model``), may mark the
    first token with ``first_token()``, and may end the call as ``rate_limited(...)`` or
    ``error(...)``. Times come from ``time.perf_counter`` (a monotonic clock).
    """

    def __init__(self, provider: str, model: str, operation: ModelOperation | str) -> None:
        self.provider = provider
        self.model = model
        self.operation = operation
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.cost: float | None = None
        self.response_model = ""
        self.status: ModelStatus | str = ModelStatus.SUCCESS
        self.error_type = ""
        self.call: ModelCall | None = None
        """The call as added to the execution, once the block has ended."""
        self._started = time.perf_counter()
        self._first_token: float | None = None

    def usage(
        self,
        input_tokens: int,
        output_tokens: int,
        *,
        cached_input_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cost: float | None = None,
    ) -> None:
        """Set the token usage (and cost) the provider reported, in one call."""
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cached_input_tokens = cached_input_tokens
        self.reasoning_tokens = reasoning_tokens
        self.cost = cost

    def first_token(self) -> None:
        """Mark now as the arrival of the first token (the first call counts)."""
        if self._first_token is None:
            self._first_token = time.perf_counter() - self._started

    def rate_limited(self, error_type: str = "RateLimitError") -> None:
        """End the call as refused for a rate or quota limit."""
        self.status, self.error_type = ModelStatus.RATE_LIMITED, error_type

    def error(self, error_type: str) -> None:
        """End the call as failed with ``error_type`` even though the block does not raise."""
        self.status, self.error_type = ModelStatus.ERROR, error_type

    def _finish(self) -> ModelCall:
        elapsed = time.perf_counter() - self._started
        ttft = self._first_token
        if ttft is not None:
            ttft = min(ttft, elapsed)
        self.call = ModelCall(
            provider=self.provider,
            model=self.model,
            operation=self.operation,
            status=self.status,
            duration=elapsed,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cached_input_tokens=self.cached_input_tokens,
            reasoning_tokens=self.reasoning_tokens,
            cost=self.cost,
            time_to_first_token=ttft,
            response_model=self.response_model,
            error_type=self.error_type,
        )
        return self.call


class RunState:
    """What the body of ``run()`` adds to the execution being measured.

    Durations come from ``time.perf_counter`` (a monotonic clock); ``start_time`` is the wall
    clock at the start, sent as a timestamp only.
    """

    def __init__(
        self, profile: str, *, execution_id: str | None = None, trace_id: str = ""
    ) -> None:
        self.profile = profile
        self.execution_id = execution_id or new_execution_id()
        self.trace_id = trace_id
        self.steps = 0
        self.tool_calls: list[ToolCall] = []
        self.approvals: list[Approval] = []
        self.model_calls: list[ModelCall] = []
        self.budget: Budget | None = None
        self.failure: str | None = None
        self.execution: Execution | None = None
        """The execution as sent, once the run has finished."""
        self.result: RecordResult | None = None
        """What the server did with it (clients only; a BatchRecorder answers later)."""
        self._started = 0.0
        self._start_time: datetime | None = None
        self._token: contextvars.Token[RunState | None] | None = None

    # The body's API.

    def step(self, count: int = 1) -> None:
        """Count ``count`` more steps."""
        self.steps += count

    def tool_call(
        self,
        tool: str,
        domain: str,
        *,
        status: ToolStatus | str = ToolStatus.SUCCESS,
        duration: DurationLike = 0.0,
        error_type: str = "",
    ) -> None:
        """Add a tool call measured elsewhere."""
        self.tool_calls.append(ToolCall(tool, domain, status, duration, error_type))

    def skip_tool(self, tool: str, domain: str, reason: str = "") -> None:
        """Add a tool call that did not run (budget exhausted, approval denied)."""
        self.tool_calls.append(ToolCall(tool, domain, ToolStatus.SKIPPED, 0.0, reason))

    @contextmanager
    def tool(self, tool: str, domain: str) -> Iterator[None]:
        """Time a tool call; if the block raises, record it as an error of the exception's
        class name and re-raise."""
        started = time.perf_counter()
        try:
            yield
        except BaseException as error:
            elapsed = time.perf_counter() - started
            self.tool_call(
                tool,
                domain,
                status=ToolStatus.ERROR,
                duration=elapsed,
                error_type=error_type_of(error),
            )
            raise
        self.tool_call(tool, domain, duration=time.perf_counter() - started)

    def add_model_call(self, call: ModelCall) -> None:
        """Add a model call measured elsewhere."""
        self.model_calls.append(call)

    @contextmanager
    def model_call(
        self, provider: str, model: str, operation: ModelOperation | str = ModelOperation.CHAT
    ) -> Iterator[ModelCallTimer]:
        """Time a call to a model: ``with run.model_call("openai", "gpt-4o") as call: ...``.

        Set the usage on ``call``; if the block raises, the call is an error of the
        exception's class name (unless ``call.rate_limited()`` was said first) and the
        exception propagates. The call is added on exit.
        """
        timer = ModelCallTimer(provider, model, operation)
        try:
            yield timer
        except BaseException as error:
            if timer.status == ModelStatus.SUCCESS:  # a rate limit set before stays one
                timer.error(error_type_of(error))
            self.model_calls.append(timer._finish())
            raise
        self.model_calls.append(timer._finish())

    def approval(
        self,
        decision: Decision | str,
        wait: DurationLike,
        operation: Operation | str = Operation.EXECUTE,
    ) -> None:
        """Add a human sign-off: the decision and the wait until it."""
        self.approvals.append(Approval(decision, wait, operation))

    def set_budget(self, spent: float, limit: float, *, exceeded: bool = False) -> None:
        """Report the budget spent against its limit."""
        self.budget = Budget(spent, limit, exceeded)

    def fail(self, error_type: str) -> None:
        """End the run as a failure of ``error_type`` even though the body does not raise."""
        self.failure = error_type

    # Lifecycle, used by the context managers.

    def _begin(self) -> None:
        self._start_time = datetime.now(UTC)
        self._token = _current.set(self)
        self._started = time.perf_counter()

    def _finish(self, error: BaseException | None) -> Execution:
        elapsed = time.perf_counter() - self._started
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if error is not None:
            outcome, error_type = Outcome.FAILURE, error_type_of(error)
        elif self.failure is not None:
            outcome, error_type = Outcome.FAILURE, self.failure
        else:
            outcome, error_type = Outcome.SUCCESS, ""
        self.execution = Execution(
            profile=self.profile,
            outcome=outcome,
            duration=elapsed,
            error_type=error_type,
            steps=self.steps,
            budget=self.budget,
            tool_calls=self.tool_calls,
            approvals=self.approvals,
            execution_id=self.execution_id,
            trace_id=self.trace_id,
            start_time=self._start_time,
            model_calls=self.model_calls,
        )
        return self.execution


class _Sink(Protocol):
    def __call__(self, execution: Execution, /) -> RecordResult | None: ...


class _AsyncSink(Protocol):
    def __call__(self, execution: Execution, /) -> Awaitable[RecordResult | None]: ...


class Run(RunState):
    """A measured execution, recorded when the ``with`` block ends, even if it raises.

    The exception, if any, is re-raised after recording; a failure to record is logged, never
    raised, so metrics never break the agent.
    """

    def __init__(
        self, sink: _Sink, profile: str, *, execution_id: str | None = None, trace_id: str = ""
    ) -> None:
        super().__init__(profile, execution_id=execution_id, trace_id=trace_id)
        self._sink = sink

    def __enter__(self) -> Self:
        self._begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        execution = self._finish(exc)
        try:
            self.result = self._sink(execution)
        except Exception:
            logger.warning(
                "cugar-metrics: could not record execution %s",
                execution.execution_id,
                exc_info=True,
            )


class AsyncRun(RunState):
    """``Run`` for asyncio: ``async with client.run(profile) as run: ...``."""

    def __init__(
        self,
        sink: _AsyncSink,
        profile: str,
        *,
        execution_id: str | None = None,
        trace_id: str = "",
    ) -> None:
        super().__init__(profile, execution_id=execution_id, trace_id=trace_id)
        self._sink = sink

    async def __aenter__(self) -> Self:
        self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        execution = self._finish(exc)
        try:
            self.result = await self._sink(execution)
        except Exception:
            logger.warning(
                "cugar-metrics: could not record execution %s",
                execution.execution_id,
                exc_info=True,
            )


def track_sync(
    start: Callable[[], Run],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator that measures each call of a function with a fresh ``Run``.

    Coroutine functions are measured from the first step to the end of the coroutine.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(fn):
            coroutine_fn: Callable[P, Awaitable[Any]] = fn

            @functools.wraps(fn)
            async def measured_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with start():
                    return await coroutine_fn(*args, **kwargs)

            wrapped: Callable[P, R] = measured_async  # type: ignore[assignment]  # the wrapper returns the same awaitable type as fn
            return wrapped

        @functools.wraps(fn)
        def measured(*args: P.args, **kwargs: P.kwargs) -> R:
            with start():
                return fn(*args, **kwargs)

        return measured

    return decorate


def track_async(
    start: Callable[[], AsyncRun],
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """A decorator for coroutine functions that measures each call with a fresh ``AsyncRun``."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def measured(*args: P.args, **kwargs: P.kwargs) -> R:
            async with start():
                return await fn(*args, **kwargs)

        return measured

    return decorate
