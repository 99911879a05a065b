"""Assembly of executions from spans that arrive in any order, across Export calls.

A tool or model span belongs to its nearest agent ancestor, found through the spans' parent
ids (other spans in between, such as a framework's chain spans, are followed). Children end,
and are exported, before their agent span, often in an earlier Export call, so they wait
here, per trace, until it comes. When an agent span arrives, its execution is made at once
with every waiting descendant.

An agent span whose direct child is an agent span of the same `gen_ai.agent.name`, recorded
already, is that same run seen twice, and is not recorded again: OpenLLMetry's LangGraph
instrumentation (`opentelemetry-instrumentation-langchain`) wraps the graph's own
`invoke_agent` span in a second one of the same name. Children end before their parents, so
the inner span, which holds the calls and the error type, is the one recorded.

What is held is bounded by count (`max_spans`: every span kept, waiting or as a link) and by
time (a trace that received no span for `timeout` seconds is let go). A span is counted once,
under one result:

- `execution`: an agent span, recorded as an execution;
- `tool_call`: a tool span, recorded in its agent's execution;
- `model_call`: a model span, recorded in its agent's execution, or alone when no agent is
  above it;
- `ignored`: a span that is not GenAI (kept only as a link while its trace waits), a tool
  span with no agent above it, or an agent span that wraps the same run (above);
- `evicted`: a tool or model span let go before its agent came (count bound, timeout or
  drain); a model call among them is still recorded alone in the model series;
- `late`: a tool or model span that came after its agent was recorded, dropped: this is how
  the children of a re-exported trace arrive, and their calls were recorded the first time.

A model call recorded alone carries the id of its span (trace id and span id, as an
execution's), so the server's deduplication counts a re-exported one once.
- `rejected`: a span that could not be used (counted by the caller, after validation).

Pure: no I/O; time is passed in.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.proto.trace.v1 import trace_pb2

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.otlp import mapping
from cugar_metrics.otlp.mapping import Kind

RESULTS = ("execution", "tool_call", "model_call", "ignored", "rejected", "evicted", "late")


@dataclass
class Output:
    """What a call made ready: executions (each with the ids of the spans in it, agent span
    first) and model calls to record alone; and the spans counted, by result."""

    executions: list[tuple[pb.Execution, list[bytes]]] = field(default_factory=list)
    #: (id of the span, the call): model calls to record alone.
    lone_model_calls: list[tuple[str, pb.ModelCall]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def extend(self, other: Output) -> None:
        self.executions += other.executions
        self.lone_model_calls += other.lone_model_calls
        self.counts.update(other.counts)


@dataclass
class _Waiting:
    kind: Kind
    call: pb.ToolCall | pb.ModelCall
    start: int
    #: The span's id as a recorded model call carries it (see mapping.execution_id).
    id: str


@dataclass
class _Trace:
    last_seen: float
    #: span id -> parent span id, for every span of the trace still held.
    parents: dict[bytes, bytes] = field(default_factory=dict)
    #: The agent spans seen (recorded), to find a span's nearest agent ancestor.
    agents: set[bytes] = field(default_factory=set)
    #: (parent span id, agent name) -> the recorded agent span: to find a wrapper of a run.
    agent_children: dict[tuple[bytes, str], bytes] = field(default_factory=dict)
    #: Tool and model spans whose agent has not come yet.
    waiting: dict[bytes, _Waiting] = field(default_factory=dict)

    def size(self) -> int:
        return len(self.parents)


_ROOT = b""
_UNRESOLVED = b"?"


class Assembler:
    def __init__(
        self,
        *,
        max_spans: int = 20_000,
        timeout: float = 300.0,
        profile_attribute: str = mapping.DEFAULT_PROFILE_ATTRIBUTE,
    ) -> None:
        if max_spans < 1 or not timeout > 0:
            raise ValueError("max_spans must be at least 1 and timeout positive")
        self.max_spans = max_spans
        self.timeout = timeout
        self.profile_attribute = profile_attribute
        #: Traces by id, least recently active first.
        self._traces: OrderedDict[bytes, _Trace] = OrderedDict()
        self._held = 0

    @property
    def held(self) -> int:
        """Spans held: waiting for their agent, or kept as links."""
        return self._held

    def add(self, spans: Iterable[trace_pb2.Span], now: float) -> Output:
        """Takes the spans of one Export call; returns what became ready."""
        out = self.expire(now)
        for span in spans:
            self._add(span, now, out)
        self._bound(out)
        return out

    def expire(self, now: float) -> Output:
        """Lets go of the traces that received no span for `timeout` seconds."""
        out = Output()
        while self._traces:
            trace_id, trace = next(iter(self._traces.items()))
            if now - trace.last_seen < self.timeout:
                break
            self._let_go(trace_id, out)
        return out

    def drain(self) -> Output:
        """Lets go of everything held (on shutdown)."""
        out = Output()
        while self._traces:
            self._let_go(next(iter(self._traces)), out)
        return out

    # --- internals --------------------------------------------------------------------------

    def _add(self, span: trace_pb2.Span, now: float, out: Output) -> None:
        trace_id, span_id = span.trace_id, span.span_id
        attrs = mapping.attributes(span.attributes)
        kind = mapping.classify(attrs)
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = self._traces[trace_id] = _Trace(now)
        else:
            self._traces.move_to_end(trace_id)
            trace.last_seen = now
        if span_id not in trace.parents:
            trace.parents[span_id] = span.parent_span_id
            self._held += 1
        if kind is Kind.OTHER:
            out.counts["ignored"] += 1
            self._resolve_waiting(trace, out)
        elif kind is Kind.AGENT:
            name = str(attrs.get("gen_ai.agent.name", ""))
            if (span_id, name) in trace.agent_children:
                out.counts["ignored"] += 1  # a wrapper of a run already recorded
                self._resolve_waiting(trace, out)
                return
            run = mapping.agent_run(span, attrs, self.profile_attribute)
            trace.agents.add(span_id)
            trace.agent_children.setdefault((span.parent_span_id, name), span_id)
            tools: list[tuple[int, bytes, pb.ToolCall]] = []
            models: list[tuple[int, bytes, pb.ModelCall]] = []
            for child_id, w in list(trace.waiting.items()):
                if self._nearest_agent(trace, child_id) != span_id:
                    continue
                del trace.waiting[child_id]
                if isinstance(w.call, pb.ToolCall):
                    tools.append((w.start, child_id, w.call))
                else:
                    models.append((w.start, child_id, w.call))
            tools.sort(key=lambda t: t[0])
            models.sort(key=lambda t: t[0])
            execution = mapping.finish(run, [c for _, _, c in tools], [c for _, _, c in models])
            ids = [span_id] + [i for _, i, _ in tools] + [i for _, i, _ in models]
            out.executions.append((execution, ids))
            out.counts["execution"] += 1
            out.counts["tool_call"] += len(tools)
            out.counts["model_call"] += len(models)
            self._resolve_waiting(trace, out)
        else:
            call: pb.ToolCall | pb.ModelCall = (
                mapping.tool_call(span, attrs)
                if kind is Kind.TOOL
                else mapping.model_call(span, attrs)
            )
            w = _Waiting(
                kind, call, span.start_time_unix_nano, mapping.execution_id(trace_id, span_id)
            )
            self._place(trace, span_id, w, out)

    def _place(self, trace: _Trace, span_id: bytes, w: _Waiting, out: Output) -> None:
        """A tool or model span: waits, is late, or has no agent above it."""
        agent = self._nearest_agent(trace, span_id)
        if agent == _UNRESOLVED:
            trace.waiting[span_id] = w
        elif agent == _ROOT:
            self._alone(w, "model_call", "ignored", out)
        else:
            out.counts["late"] += 1

    def _resolve_waiting(self, trace: _Trace, out: Output) -> None:
        """After a new link or agent: waiting spans whose chain now ends are placed."""
        for span_id, w in list(trace.waiting.items()):
            if self._nearest_agent(trace, span_id) != _UNRESOLVED:
                del trace.waiting[span_id]
                self._place(trace, span_id, w, out)

    def _nearest_agent(self, trace: _Trace, span_id: bytes) -> bytes:
        """The id of the span's nearest agent ancestor; _ROOT when its chain reaches the root
        without one; _UNRESOLVED when a link of the chain has not arrived yet."""
        parents = trace.parents
        current = parents.get(span_id, _ROOT)
        for _ in range(len(parents) + 1):  # a cycle in bad parent ids cannot loop forever
            if not current:
                return _ROOT
            if current in trace.agents:
                return current
            if current not in parents:
                return _UNRESOLVED
            current = parents[current]
        return _ROOT

    @staticmethod
    def _alone(w: _Waiting, model_result: str, tool_result: str, out: Output) -> None:
        if isinstance(w.call, pb.ModelCall):
            out.lone_model_calls.append((w.id, w.call))
            out.counts[model_result] += 1
        else:
            out.counts[tool_result] += 1

    def _let_go(self, trace_id: bytes, out: Output) -> None:
        trace = self._traces.pop(trace_id)
        self._held -= trace.size()
        for w in trace.waiting.values():
            self._alone(w, "evicted", "evicted", out)

    def _bound(self, out: Output) -> None:
        while self._held > self.max_spans and self._traces:
            self._let_go(next(iter(self._traces)), out)
