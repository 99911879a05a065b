"""Deterministic traffic for the monitoring end-to-end tests.

Drives cugar-metrics replicas over the generated Python stubs and keeps an exact tally of
what it sent, so the tests can compare Prometheus' sums across replicas with it. Every label
combination of the second phase already exists after the first, so `rate()` sees the
second phase's increases (a counter's first sample only sets its baseline).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import grpc
from google.protobuf import duration_pb2

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc

PROFILES = ("demo", "sales_rep")
#: Executions per phase; the label patterns below all repeat with a period dividing it.
PHASE = 40
DECISIONS = (
    (pb.APPROVAL_DECISION_APPROVED, "approved", 30_000, pb.APPROVAL_OPERATION_EXECUTE),
    (pb.APPROVAL_DECISION_DENIED, "denied", 10_000, pb.APPROVAL_OPERATION_PROPOSE),
    (pb.APPROVAL_DECISION_TIMEOUT, "timeout", 3_600_000, pb.APPROVAL_OPERATION_EXECUTE),
    (pb.APPROVAL_DECISION_CANCELLED, "cancelled", 5_000, pb.APPROVAL_OPERATION_PROPOSE),
)
MODEL_STATUS = {
    pb.MODEL_CALL_STATUS_SUCCESS: "success",
    pb.MODEL_CALL_STATUS_ERROR: "error",
    pb.MODEL_CALL_STATUS_RATE_LIMITED: "rate_limited",
}
STATUS = {
    pb.TOOL_CALL_STATUS_SUCCESS: "success",
    pb.TOOL_CALL_STATUS_ERROR: "error",
    pb.TOOL_CALL_STATUS_SKIPPED: "skipped",
}


def ms(milliseconds: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(milliseconds)
    return d


@dataclass
class Tally:
    """What the traffic sent, summed over every replica."""

    executions: Counter[str] = field(default_factory=Counter)  # outcome -> n
    tool_calls: Counter[tuple[str, str]] = field(default_factory=Counter)  # (domain, status)
    approvals: Counter[str] = field(default_factory=Counter)  # decision -> n
    budget_exceeded: int = 0
    ingest: Counter[str] = field(default_factory=Counter)  # result -> n
    rejections: Counter[str] = field(default_factory=Counter)  # reason -> n
    per_replica: Counter[int] = field(default_factory=Counter)  # replica -> accepted
    model_calls: Counter[str] = field(default_factory=Counter)  # status -> n
    model_tokens: Counter[str] = field(default_factory=Counter)  # type -> n


def execution(i: int, prefix: str = "e2e") -> tuple[pb.Execution, dict[str, object]]:
    """Execution number i, and the facts about it the tally needs."""
    k = i % PHASE
    failed = k in (6, 7)
    calls = [("search_accounts", "territory", pb.TOOL_CALL_STATUS_SUCCESS, 200)]
    if k % 10 == 3:
        calls.append(("score_lead", "qualification", pb.TOOL_CALL_STATUS_ERROR, 100))
    else:
        calls.append(("score_lead", "qualification", pb.TOOL_CALL_STATUS_SUCCESS, 150))
    if k % 10 == 5:
        calls.append(("send_email", "engagement", pb.TOOL_CALL_STATUS_SKIPPED, 0))
    elif k % 10 == 6:
        calls.append(("send_email", "engagement", pb.TOOL_CALL_STATUS_SUCCESS, 300))
    if k % 4 == 0:
        calls.append(("lookup", "knowledge", pb.TOOL_CALL_STATUS_SUCCESS, 50))
    approvals = []
    if k % 8 < 4:
        decision, _, wait_ms, operation = DECISIONS[k % 8]
        approvals.append(pb.Approval(decision=decision, wait=ms(wait_ms), operation=operation))
    exceeded = k % 10 == 9
    # One chat call each: an error when k % 10 == 4, rate-limited when k % 10 == 8.
    model_status = {4: pb.MODEL_CALL_STATUS_ERROR, 8: pb.MODEL_CALL_STATUS_RATE_LIMITED}.get(
        k % 10, pb.MODEL_CALL_STATUS_SUCCESS
    )
    model_call = pb.ModelCall(
        provider="openai",
        model="gpt-4o",
        operation=pb.MODEL_OPERATION_CHAT,
        status=model_status,
        error_type="" if model_status == pb.MODEL_CALL_STATUS_SUCCESS else "Timeout",
        duration=ms(800 + (k % 4) * 100),
        time_to_first_token=ms(200),
        input_tokens=100 + k,
        output_tokens=20,
        cost=0.001,
    )
    ex = pb.Execution(
        execution_id=f"{prefix}-{i}",
        profile=PROFILES[(k // 2) % 2],
        outcome=pb.OUTCOME_FAILURE if failed else pb.OUTCOME_SUCCESS,
        error_type="ToolError" if failed else "",
        duration=ms(500 + (k % 5) * 250),
        steps=1 + k % 4,
        budget=pb.Budget(spent=10.0 if exceeded else 1.0 + k % 3, limit=10.0, exceeded=exceeded),
        approvals=approvals,
        tool_calls=[
            pb.ToolCall(
                tool=t,
                domain=d,
                status=s,
                duration=ms(m),
                error_type="timeout" if s == pb.TOOL_CALL_STATUS_ERROR else "",
            )
            for t, d, s, m in calls
        ],
        model_calls=[model_call],
    )
    return ex, {
        "failed": failed,
        "calls": calls,
        "approvals": approvals,
        "exceeded": exceeded,
        "model_call": model_call,
    }


class Driver:
    """Sends executions to replicas (execution i goes to replica i % len(targets))."""

    def __init__(self, targets: list[str]) -> None:
        self.channels = [grpc.insecure_channel(t) for t in targets]
        self.stubs = [pb_grpc.MetricsServiceStub(c) for c in self.channels]
        self.tally = Tally()
        #: Every accepted execution, in order, with the replica that recorded it.
        self.accepted: list[tuple[int, pb.Execution]] = []
        #: `accepted[baseline:phase_end]` is what `rate()` sees (see the module's docstring).
        self.baseline = 0
        self.phase_end = 0

    def close(self) -> None:
        for c in self.channels:
            c.close()

    def _count(self, ex: pb.Execution, facts: dict[str, object], replica: int) -> None:
        self.accepted.append((replica, ex))
        t = self.tally
        t.executions["failure" if facts["failed"] else "success"] += 1
        for _, domain, status, _ in facts["calls"]:  # type: ignore[attr-defined]
            t.tool_calls[(domain, STATUS[status])] += 1
        for a in facts["approvals"]:  # type: ignore[attr-defined]
            t.approvals[DECISIONS[a.decision - 1][1]] += 1
        t.budget_exceeded += int(bool(facts["exceeded"]))
        call = facts["model_call"]
        assert isinstance(call, pb.ModelCall)
        t.model_calls[MODEL_STATUS[call.status]] += 1
        t.model_tokens["input"] += call.input_tokens
        t.model_tokens["output"] += call.output_tokens
        t.ingest["accepted"] += 1
        t.per_replica[replica] += 1

    def send_phase(self, first: int, count: int, prefix: str = "e2e") -> None:
        """Executions first..first+count-1, one RecordExecutions batch per replica."""
        batches: dict[int, list[tuple[pb.Execution, dict[str, object]]]] = {}
        for i in range(first, first + count):
            batches.setdefault(i % len(self.stubs), []).append(execution(i, prefix))
        for replica, items in sorted(batches.items()):
            resp = self.stubs[replica].RecordExecutions(
                pb.RecordExecutionsRequest(executions=[ex for ex, _ in items]), timeout=10
            )
            assert (resp.accepted_count, resp.duplicate_count, resp.rejected_count) == (
                len(items),
                0,
                0,
            ), resp
            for ex, facts in items:
                self._count(ex, facts, replica)

    def send_duplicates(self, ids: list[int], prefix: str = "e2e") -> None:
        """Re-sends executions to the replica that recorded them: each is a duplicate."""
        for i in ids:
            ex, _ = execution(i, prefix)
            resp = self.stubs[i % len(self.stubs)].RecordExecution(
                pb.RecordExecutionRequest(execution=ex), timeout=10
            )
            assert resp.result == pb.RECORD_RESULT_DUPLICATE, resp
            self.tally.ingest["duplicate"] += 1

    def send_invalid(self, replica: int, tag: str) -> None:
        """One batch item without a profile and one single call with an epoch duration."""
        bad_profile, _ = execution(0, f"bad-{tag}")
        bad_profile.profile = ""
        good, facts = execution(1, f"ok-{tag}")
        resp = self.stubs[replica].RecordExecutions(
            pb.RecordExecutionsRequest(executions=[bad_profile, good]), timeout=10
        )
        assert (resp.accepted_count, resp.rejected_count) == (1, 1), resp
        assert resp.rejected_executions[0].field_violations[0].field == "executions[0].profile"
        self._count(good, facts, replica)
        self.tally.ingest["rejected"] += 1
        self.tally.rejections["required"] += 1

        epoch, _ = execution(2, f"epoch-{tag}")
        epoch.duration.CopyFrom(duration_pb2.Duration(seconds=1_700_000_000))
        try:
            self.stubs[replica].RecordExecution(
                pb.RecordExecutionRequest(execution=epoch), timeout=10
            )
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        else:  # pragma: no cover - the assertion below explains the failure
            raise AssertionError("an epoch timestamp sent as a duration was accepted")
        self.tally.ingest["rejected"] += 1
        self.tally.rejections["out_of_range"] += 1

    def send_failures(self, count: int, prefix: str = "burst") -> None:
        """A burst of failed executions, with labels every replica already exported."""
        batches: dict[int, list[pb.Execution]] = {}
        for i in range(count):
            # Failures 6 and 7 of a phase: profile sales_rep, replicas 0 and 1.
            ex, facts = execution(6 + i % 2, f"{prefix}-{i}")
            assert facts["failed"]
            ex.ClearField("approvals")
            ex.ClearField("tool_calls")
            ex.ClearField("model_calls")
            ex.budget.exceeded = False
            batches.setdefault(i % len(self.stubs), []).append(ex)
        for replica, items in sorted(batches.items()):
            resp = self.stubs[replica].RecordExecutions(
                pb.RecordExecutionsRequest(executions=items), timeout=10
            )
            assert resp.accepted_count == len(items), resp
            self.accepted += [(replica, ex) for ex in items]
            self.tally.executions["failure"] += len(items)
            self.tally.ingest["accepted"] += len(items)
            self.tally.per_replica[replica] += len(items)
