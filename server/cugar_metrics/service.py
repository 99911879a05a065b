"""The MetricsService servicer: proto in, validation, aggregator, proto out."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import DecodeError

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics import errors, validation
from cugar_metrics.aggregator import (
    CHECKPOINT_SECONDS,
    MAX_WINDOW_SECONDS,
    Aggregator,
    Dashboard,
    build_dashboard,
)
from cugar_metrics.auth import current_agent
from cugar_metrics.cluster import MIN_WINDOW_SECONDS, Peers, check_window
from cugar_metrics.clustermerge import ClusterMerger
from cugar_metrics.labels import LabelPolicy, admit
from cugar_metrics.model import Execution, RecordResult
from cugar_metrics.watch import WatchHub
from cugar_metrics.wire import WireBatch

log = logging.getLogger(__name__)

#: The largest RecordExecutions batch; documented in the proto.
MAX_BATCH = 1000
#: WatchDashboard intervals.
MIN_WATCH_INTERVAL = 1.0
MAX_WATCH_INTERVAL = 3600.0
DEFAULT_WATCH_INTERVAL = 5.0
#: A RecordExecutions body larger than this is decoded item by item (`WireBatch`), with yields
#: to the event loop; a smaller one is decoded at once and checked in one pass.
WIRE_THRESHOLD = 256 * 1024
#: About this many bytes of batch items are decoded and validated (or their equivalent
#: recorded) between two yields to the event loop: a few milliseconds of work.
SLICE_BYTES = 16 * 1024
_EXECUTION_WORK = 160  # bytes of a small execution, as a unit of work
_CALL_WORK = 40  # bytes of one tool call or approval
#: A rejected item's execution_id is echoed cut to this many characters (the longest valid
#: id), so the reply to a batch stays far under the message limit; documented in the proto.
MAX_ECHOED_ID = 128

_RESULT = {"accepted": pb.RECORD_RESULT_ACCEPTED, "duplicate": pb.RECORD_RESULT_DUPLICATE}
_DECISION = {
    "approved": pb.APPROVAL_DECISION_APPROVED,
    "denied": pb.APPROVAL_DECISION_DENIED,
    "timeout": pb.APPROVAL_DECISION_TIMEOUT,
    "cancelled": pb.APPROVAL_DECISION_CANCELLED,
}


class MetricsService(pb_grpc.MetricsServiceServicer):
    def __init__(
        self,
        aggregator: Aggregator,
        limits: validation.Limits,
        replica: str,
        clock: Callable[[], float] = time.time,
        *,
        peers: Peers | None = None,
        watch: WatchHub | None = None,
        labels: LabelPolicy | None = None,
    ) -> None:
        self._aggregator = aggregator
        self._limits = limits
        self._replica = replica
        self._clock = clock
        self._peers = peers
        self._merger = ClusterMerger(aggregator.caps)
        self._watch = watch if watch is not None else WatchHub()
        self._batch_gate = asyncio.Semaphore(1)
        self._labels = labels if labels is not None and labels.active else None

    async def RecordExecution(
        self, request: pb.RecordExecutionRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordExecutionResponse:
        now = self._clock()
        if not request.HasField("execution"):
            violations = [
                validation.Violation(
                    "execution", "is required: the execution to record", "REQUIRED"
                )
            ]
        else:
            execution, violations = admit(
                request.execution, "execution", self._limits, now, self._labels, current_agent.get()
            )
        if violations:
            self._aggregator.reject([violations[0].metric_reason], now)
            await context.abort_with_status(
                errors.invalid_argument("invalid execution", violations, "INVALID_EXECUTION")
            )
        assert execution is not None
        (result,) = self._aggregator.record([execution], now, current_agent.get())
        return pb.RecordExecutionResponse(result=_RESULT[result])

    async def RecordExecutions(
        self, request: pb.RecordExecutionsRequest | WireBatch, context: grpc.aio.ServicerContext
    ) -> pb.RecordExecutionsResponse:
        now = self._clock()
        n = len(request.executions)
        if n == 0 or n > MAX_BATCH:
            self._aggregator.reject(["batch_size"] * n, now)
            what = "is empty" if n == 0 else f"has {n} items"
            violation = validation.Violation(
                "executions", f"{what}: a batch holds 1 to {MAX_BATCH} executions", "BATCH_SIZE"
            )
            await context.abort_with_status(
                errors.invalid_argument("invalid batch", [violation], "INVALID_BATCH")
            )
        # One batch at a time does its work: with several, every await of a health check
        # would queue behind a slice of each of them.
        async with self._batch_gate:
            if not isinstance(request, WireBatch):
                return await self._record_batch(request, n, now)
            with collections_deferred():
                return await self._record_batch(request, n, now)

    async def _record_batch(
        self, request: pb.RecordExecutionsRequest | WireBatch, n: int, now: float
    ) -> pb.RecordExecutionsResponse:
        valid: list[Execution] = []
        positions: list[int] = []
        results = [pb.RECORD_RESULT_REJECTED] * n
        rejected = []
        reasons = []
        if isinstance(request, WireBatch):
            # A large body, item by item, yielding to the event loop after every SLICE_BYTES:
            # a batch of 1000 large items must not hold up health checks and other calls for
            # its whole length. Every item is decoded and checked before anything is recorded.
            done = 0
            for i in range(n):
                if done >= SLICE_BYTES:
                    done = 0
                    await asyncio.sleep(0)
                done += request.size(i)
                item = request.decode(i)
                execution, violations = validation.validate_execution(
                    item, f"executions[{i}]", self._limits, now
                )
                if execution is None:
                    reasons.append(violations[0].metric_reason)
                    rejected.append(_rejected(i, item.execution_id, violations))
                else:
                    valid.append(execution)
                    positions.append(i)
        else:
            # A body of at most WIRE_THRESHOLD bytes: a few milliseconds of work at most, in
            # one pass over the batch.
            items = request.executions
            checked, refused = validation.validate_executions(
                items, "executions", self._limits, now
            )
            for i, execution in enumerate(checked):
                if execution is not None:
                    valid.append(execution)
                    positions.append(i)
            for i, violations in refused.items():
                reasons.append(violations[0].metric_reason)
                rejected.append(_rejected(i, items[i].execution_id, violations))
        if self._labels is not None:
            valid, positions = self._apply_labels(valid, positions, rejected, reasons)
        self._aggregator.reject(reasons, now)
        recorded: list[RecordResult] = []
        if valid and isinstance(request, WireBatch):
            # Shielded: a caller that goes away mid-batch cannot leave it half recorded.
            recorded = await asyncio.shield(self._record(valid, now))
        elif valid:
            recorded = self._aggregator.record(valid, now, current_agent.get())
        for i, result in zip(positions, recorded, strict=True):
            results[i] = _RESULT[result]
        accepted = recorded.count("accepted")
        return pb.RecordExecutionsResponse(
            accepted_count=accepted,
            duplicate_count=len(recorded) - accepted,
            rejected_count=len(rejected),
            results=results,
            rejected_executions=rejected,
        )

    def _apply_labels(
        self,
        valid: list[Execution],
        positions: list[int],
        rejected: list[pb.RejectedExecution],
        reasons: list[str],
    ) -> tuple[list[Execution], list[int]]:
        """The valid items of a batch with the labels file and per-agent caps applied; the
        items they refuse join `rejected` (kept in index order) and `reasons`."""
        assert self._labels is not None
        agent = current_agent.get()
        kept: list[Execution] = []
        kept_positions: list[int] = []
        refused = False
        for i, execution in zip(positions, valid, strict=True):
            applied, violation = self._labels.apply(execution, f"executions[{i}]", agent)
            if applied is None:
                assert violation is not None
                reasons.append(violation.metric_reason)
                rejected.append(_rejected(i, execution.execution_id, [violation]))
                refused = True
            else:
                kept.append(applied)
                kept_positions.append(i)
        if refused:
            rejected.sort(key=lambda r: r.index)
        return kept, kept_positions

    async def _record(self, valid: list[Execution], now: float) -> list[RecordResult]:
        """Records `valid` in slices of about SLICE_BYTES of work, yielding between them.
        Empties `valid` as it goes: each slice's executions are freed with the slice, not
        all at once at the end (hundreds of thousands of tool calls in a 16 MiB batch)."""
        recorded: list[RecordResult] = []
        agent = current_agent.get()  # the task's context: set by the auth interceptor
        while valid:
            if recorded:
                await asyncio.sleep(0)
            stop, work = 0, 0
            while stop < len(valid) and work < SLICE_BYTES:
                e = valid[stop]
                work += _EXECUTION_WORK + _CALL_WORK * (len(e.tool_calls) + len(e.approvals))
                stop += 1
            recorded += self._aggregator.record(valid[:stop], now, agent)
            del valid[:stop]
        return recorded

    async def GetDashboard(
        self, request: pb.GetDashboardRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDashboardResponse:
        seconds, violations = check_window(request)
        if violations:
            await context.abort_with_status(
                errors.invalid_argument(
                    "invalid dashboard request", violations, "INVALID_DASHBOARD_REQUEST"
                )
            )
        return await self.dashboard(request, seconds)

    def _cluster(self, request: pb.GetDashboardRequest) -> bool:
        if request.scope == pb.DASHBOARD_SCOPE_CLUSTER:
            return True
        return request.scope == pb.DASHBOARD_SCOPE_UNSPECIFIED and self._peers is not None

    async def dashboard(
        self, request: pb.GetDashboardRequest, seconds: float | None
    ) -> pb.GetDashboardResponse:
        """The dashboard `request` asks for (already checked), of this replica or the
        cluster."""
        now = self._clock()
        state = self._aggregator.window(now, seconds)
        if not self._cluster(request):
            return dashboard_to_proto(
                build_dashboard(state, request.profile, request.domain, request.model),
                self._replica,
            )
        names = [self._replica]
        missing: list[str] = []
        if self._peers is not None:
            answer = await self._peers.fetch(
                seconds, now, request.profile, request.domain, request.model
            )
            if answer.states:
                state = self._merger.merge(
                    state, int(now // CHECKPOINT_SECONDS), [w for _, w in answer.states]
                )
            names += [name for name, _ in answer.states]
            missing = answer.missing
        response = dashboard_to_proto(
            build_dashboard(state, request.profile, request.domain, request.model),
            self._replica,
        )
        response.scope = pb.DASHBOARD_SCOPE_CLUSTER
        del response.replicas[:]
        response.replicas.extend(names)
        response.missing_replicas.extend(missing)
        response.partial = bool(missing)
        return response

    async def WatchDashboard(
        self, request: pb.WatchDashboardRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GetDashboardResponse]:
        seconds, violations = check_window(request.dashboard)
        violations = [
            validation.Violation(f"dashboard.{v.field}", v.description, v.reason)
            for v in violations
        ]
        interval = DEFAULT_WATCH_INTERVAL
        if request.HasField("interval"):
            i = request.interval
            interval = i.seconds + i.nanos / 1e9
            if not MIN_WATCH_INTERVAL <= interval <= MAX_WATCH_INTERVAL:
                violations.append(
                    validation.Violation(
                        "interval",
                        f"is {interval:g}s: an interval is from {MIN_WATCH_INTERVAL:g}s to "
                        f"{MAX_WATCH_INTERVAL:g}s; leave it unset for "
                        f"{DEFAULT_WATCH_INTERVAL:g}s",
                        "OUT_OF_RANGE",
                    )
                )
        if violations:
            await context.abort_with_status(
                errors.invalid_argument(
                    "invalid watch request", violations, "INVALID_WATCH_REQUEST"
                )
            )
        caller = _caller(context)
        refusal = self._watch.admit(caller)
        if refusal is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        try:
            async for response in self._watch.follow(
                request.dashboard, seconds, interval, self.dashboard
            ):
                yield response
        finally:
            self._watch.leave(caller)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "draining, reconnect")

    def set_peers(self, peers: Peers | None) -> None:
        """The other replicas (None: none): the default scope becomes cluster."""
        self._peers = peers

    def drain(self) -> None:
        """Ends every WatchDashboard stream with UNAVAILABLE and refuses new ones."""
        self._watch.drain()


def _caller(context: grpc.aio.ServicerContext) -> str:
    """Who is watching, for the per-key cap: the API key (hashed), else the peer's host."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            raw = value if isinstance(value, bytes) else value.encode()
            return "key:" + hashlib.sha256(raw).hexdigest()[:16]
    host: str = str(context.peer()).rpartition(":")[0]
    return "peer:" + host


_deferred = 0  # callers inside collections_deferred()
_resume = False  # whether collections were on when the first of them entered


@contextlib.contextmanager
def collections_deferred() -> Iterator[None]:
    """The garbage collector's automatic collections are off inside, and back on when the
    last caller inside leaves if they were on when the first entered.

    A large batch keeps its validated executions until they are recorded: up to 1000 x 1000
    tool calls, named tuples, which the collector never untracks, so every collection of the
    young generations would walk all of them (50-110 ms each, holding the event loop). They
    are freed by reference counting as they are recorded; the deferred collection then runs
    over what is left, at the first allocation after. Collections are deferred only while a
    batch is worked on, a bounded time."""
    global _deferred, _resume
    if _deferred == 0:
        _resume = gc.isenabled()
        gc.disable()
    _deferred += 1
    try:
        yield
    finally:
        _deferred -= 1
        if _deferred == 0 and _resume:
            gc.enable()


def decode_batch(data: bytes) -> pb.RecordExecutionsRequest | WireBatch:
    """A RecordExecutions body: decoded at once when small, item by item when large or when
    it does not decode (the walk then names the item at fault)."""
    if len(data) <= WIRE_THRESHOLD:
        try:
            return pb.RecordExecutionsRequest.FromString(data)
        except DecodeError:
            pass
    return WireBatch(data)


def add_to_server(servicer: MetricsService, server: grpc.aio.Server) -> None:
    """Registers `servicer` as the generated code does, except that a RecordExecutions body
    larger than WIRE_THRESHOLD becomes a `WireBatch` whose items the servicer decodes one at a
    time."""
    handlers = {
        "RecordExecution": grpc.unary_unary_rpc_method_handler(
            servicer.RecordExecution,
            request_deserializer=pb.RecordExecutionRequest.FromString,
            response_serializer=pb.RecordExecutionResponse.SerializeToString,
        ),
        "RecordExecutions": grpc.unary_unary_rpc_method_handler(
            servicer.RecordExecutions,
            request_deserializer=decode_batch,
            response_serializer=pb.RecordExecutionsResponse.SerializeToString,
        ),
        "GetDashboard": grpc.unary_unary_rpc_method_handler(
            servicer.GetDashboard,
            request_deserializer=pb.GetDashboardRequest.FromString,
            response_serializer=pb.GetDashboardResponse.SerializeToString,
        ),
        "WatchDashboard": grpc.unary_stream_rpc_method_handler(
            servicer.WatchDashboard,
            request_deserializer=pb.WatchDashboardRequest.FromString,
            response_serializer=pb.GetDashboardResponse.SerializeToString,
        ),
    }
    service = pb.DESCRIPTOR.services_by_name["MetricsService"]
    assert set(handlers) == set(service.methods_by_name), "a method is not registered"
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    server.add_registered_method_handlers(service.full_name, handlers)


def _rejected(
    index: int, execution_id: str, violations: list[validation.Violation]
) -> pb.RejectedExecution:
    """One rejected item of a batch; its id is echoed cut to MAX_ECHOED_ID characters."""
    truncated = len(execution_id) > MAX_ECHOED_ID
    return pb.RejectedExecution(
        index=index,
        execution_id=execution_id[:MAX_ECHOED_ID] if truncated else execution_id,
        execution_id_truncated=truncated,
        field_violations=[
            pb.FieldViolation(field=v.field, description=v.description, reason=v.reason)
            for v in violations
        ],
    )


def _duration(seconds: float | None) -> duration_pb2.Duration | None:
    if seconds is None:
        return None
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def _timestamp(seconds: float | None) -> timestamp_pb2.Timestamp | None:
    if seconds is None:
        return None
    t = timestamp_pb2.Timestamp()
    t.FromNanoseconds(round(seconds * 1e9))
    return t


def dashboard_to_proto(d: Dashboard, replica: str) -> pb.GetDashboardResponse:
    golden = pb.GoldenSignals(
        success_rate=d.success_rate,
        error_rate=d.error_rate,
        tool_error_rate=d.tool_error_rate,
        budget_utilization=d.budget_utilization,
        latency_p50=_duration(d.latency_p50),
        latency_p95=_duration(d.latency_p95),
        latency_p99=_duration(d.latency_p99),
        latency_mean=_duration(d.latency_mean),
        mean_steps=d.mean_steps,
        approval_wait_p50=_duration(d.approval_wait_p50),
        approval_wait_p95=_duration(d.approval_wait_p95),
        throughput_per_second=d.throughput,
        tokens_per_execution=d.tokens_per_execution,
        cost_per_execution=d.cost_per_execution,
        model_error_rate=d.model_error_rate,
        tokens_per_second=d.tokens_per_second,
    )
    return pb.GetDashboardResponse(
        window=_duration(d.window_end - d.window_start),
        window_start_time=_timestamp(d.window_start),
        window_end_time=_timestamp(d.window_end),
        scope=pb.DASHBOARD_SCOPE_REPLICA,
        replica=replica,
        replicas=[replica],
        executions=pb.ExecutionCounts(
            total=d.total, succeeded=d.succeeded, failed=d.failed, total_steps=d.total_steps
        ),
        golden_signals=golden,
        profiles=[
            pb.ProfileStats(
                profile=p.profile,
                total=p.total,
                succeeded=p.succeeded,
                failed=p.failed,
                success_rate=p.success_rate,
                latency_p95=_duration(p.latency_p95),
                budget_spent=p.budget_spent,
                budget_exceeded_count=p.budget_exceeded,
            )
            for p in d.profiles
        ],
        domains=[
            pb.DomainStats(
                domain=r.domain,
                calls=r.calls,
                errors=r.errors,
                skipped=r.skipped,
                error_rate=r.error_rate,
                latency_p95=_duration(r.latency_p95),
            )
            for r in d.domains
        ],
        tools=[
            pb.ToolStats(
                domain=r.domain,
                tool=r.tool,
                calls=r.calls,
                errors=r.errors,
                skipped=r.skipped,
                error_rate=r.error_rate,
                latency_p95=_duration(r.latency_p95),
            )
            for r in d.tools
        ],
        error_types=[pb.ErrorTypeCount(error_type=e, count=n) for e, n in d.error_types],
        models=[
            pb.ModelStats(
                provider=r.provider,
                model=r.model,
                calls=r.calls,
                errors=r.errors,
                rate_limited=r.rate_limited,
                input_tokens=r.input_tokens,
                output_tokens=r.output_tokens,
                cached_input_tokens=r.cached_input_tokens,
                reasoning_tokens=r.reasoning_tokens,
                cost=r.cost,
                latency_p50=_duration(r.latency_p50),
                latency_p95=_duration(r.latency_p95),
                time_to_first_token_p95=_duration(r.ttft_p95),
            )
            for r in d.models
        ],
        budget=pb.BudgetStats(
            spent=d.budget_spent,
            mean_spent_per_execution=d.budget_mean_spent,
            exceeded_count=d.budget_exceeded,
            executions_with_budget=d.budget_executions,
        ),
        approvals=pb.ApprovalStats(
            total=d.approvals_total,
            by_decision=[
                pb.ApprovalDecisionStats(
                    decision=_DECISION[r.decision], count=r.count, wait_p95=_duration(r.wait_p95)
                )
                for r in d.approvals
            ],
        ),
        first_execution_time=_timestamp(d.first_execution),
        last_execution_time=_timestamp(d.last_execution),
        ingest=pb.IngestStats(**d.ingest),
    )


__all__ = [
    "CHECKPOINT_SECONDS",
    "MAX_BATCH",
    "MAX_WINDOW_SECONDS",
    "MIN_WINDOW_SECONDS",
    "MetricsService",
    "add_to_server",
    "dashboard_to_proto",
]
