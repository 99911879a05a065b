"""The OTLP/gRPC trace receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

An Export call's spans go through the assembler (assembly.py); the executions it makes ready
are validated by the same rules as any recorded execution, go through the same label policy
(`--labels-file`, and `--max-values-per-agent` for the Export call's key) and are recorded,
as are model calls with no agent above them (under the labels file's `model` rule). A span
that cannot be used (ids of the wrong length, or an execution or lone model call that fails
validation or the labels file) is counted in
`partial_success.rejected_spans` with an `error_message`, as the OTLP specification asks:
the request as a whole is never refused for them. Re-exported agent spans count once: their
execution id is the trace and span id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from prometheus_client import CollectorRegistry, Counter, Gauge

from cugar_metrics import validation
from cugar_metrics.aggregator import Aggregator
from cugar_metrics.auth import current_agent
from cugar_metrics.labels import LabelPolicy, admit, admit_model_call
from cugar_metrics.model import Execution, ModelCall
from cugar_metrics.otlp.assembly import RESULTS, Assembler, Output

log = logging.getLogger(__name__)

SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"
#: At most this many reasons are quoted in `partial_success.error_message`.
_MAX_MESSAGES = 5


class OtlpMetrics:
    """cugar_otlp_spans_total{result} and cugar_otlp_pending_spans."""

    def __init__(self, registry: CollectorRegistry, assembler: Assembler) -> None:
        spans = Counter(
            "cugar_otlp_spans",
            "Spans received through OTLP, by what became of them.",
            ["result"],
            registry=registry,
        )
        self.spans = {r: spans.labels(r) for r in RESULTS}
        pending = Gauge(
            "cugar_otlp_pending_spans",
            "Spans held while their trace waits for its agent span (bounded by "
            "--otlp-max-pending-spans).",
            registry=registry,
        )
        pending.set_function(lambda: assembler.held)

    def count(self, out: Output) -> None:
        for result, n in out.counts.items():
            self.spans[result].inc(n)


class TraceIngest(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(
        self,
        aggregator: Aggregator,
        assembler: Assembler,
        limits: validation.Limits,
        metrics: OtlpMetrics,
        clock: Callable[[], float] = time.time,
        labels: LabelPolicy | None = None,
    ) -> None:
        self._aggregator = aggregator
        self._labels = labels if labels is not None and labels.active else None
        self._assembler = assembler
        self._limits = limits
        self._metrics = metrics
        self._clock = clock

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        now = self._clock()
        usable = []
        messages: list[str] = []
        rejected = 0
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if (
                        len(span.trace_id) != 16
                        or len(span.span_id) != 8
                        or len(span.parent_span_id) not in (0, 8)
                    ):
                        rejected += 1
                        messages.append(
                            f"span {span.name!r}: trace_id must be 16 bytes and span_id 8 "
                            f"(got {len(span.trace_id)} and {len(span.span_id)})"
                        )
                    else:
                        usable.append(span)
        out = self._assembler.add(usable, now)
        rejected += self.record(out, now, messages)
        self._metrics.count(out)
        if rejected:
            self._metrics.spans["rejected"].inc(rejected)
            shown = "; ".join(messages[:_MAX_MESSAGES])
            more = len(messages) - _MAX_MESSAGES
            return trace_service_pb2.ExportTraceServiceResponse(
                partial_success=trace_service_pb2.ExportTracePartialSuccess(
                    rejected_spans=rejected,
                    error_message=shown + (f"; and {more} more" if more > 0 else ""),
                )
            )
        return trace_service_pb2.ExportTraceServiceResponse()

    def record(self, out: Output, now: float, messages: list[str]) -> int:
        """Validates and records what `out` made ready; returns how many spans were refused
        (and takes them out of the other results of `out.counts`)."""
        executions: list[Execution] = []
        rejected = 0
        agent = current_agent.get()  # the key of the Export call (None without keys)
        for message, span_ids in out.executions:
            # The label policy as for RecordExecution(s): a value outside the labels file is
            # refused (a rejected span) or folded, and the key's per-agent quota applies.
            execution, violations = admit(message, "span", self._limits, now, self._labels, agent)
            if execution is None:
                rejected += len(span_ids)
                out.counts["execution"] -= 1
                out.counts["tool_call"] -= len(message.tool_calls)
                out.counts["model_call"] -= len(message.model_calls)
                v = violations[0]
                messages.append(f"agent span {span_ids[0].hex()}: {v.field} {v.description}")
            else:
                executions.append(execution)
        lone: list[tuple[str, ModelCall]] = []
        for span_id, span_call in out.lone_model_calls:
            call, violations = admit_model_call(span_call, "span", self._limits, now, self._labels)
            if call is None:
                rejected += 1
                out.counts["model_call"] -= 1
                v = violations[0]
                messages.append(f"model span: {v.field} {v.description}")
            else:
                lone.append((span_id, call))
        if executions:
            self._aggregator.record(executions, now)
        self._aggregator.record_model_calls(lone, now)
        return rejected

    def expire(self) -> None:
        """Lets go of traces that waited too long (called periodically)."""
        out = self._assembler.expire(self._clock())
        self.record(out, self._clock(), [])
        self._metrics.count(out)

    def drain(self) -> Output:
        """On shutdown: model calls still waiting are recorded alone, tool calls dropped."""
        out = self._assembler.drain()
        self.record(out, self._clock(), [])
        self._metrics.count(out)
        return out


def add_to_server(servicer: TraceIngest, server: grpc.aio.Server) -> None:
    # opentelemetry-proto's generated gRPC module has no type annotations.
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
