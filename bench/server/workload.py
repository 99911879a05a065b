"""What the benchmark sends: realistic executions, label sets that fill the cardinality caps,
and batches of unique executions encoded fast enough that the client never limits the server.

A batch is built from a few template executions serialized once with the generated stubs;
only the `execution_id` bytes change from one execution to the next (ids have a fixed width,
so every length prefix stays valid). `check_batch` parses a batch back with the stubs.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from google.protobuf import json_format

from cugar.metrics.v1 import metrics_service_pb2 as pb

#: Width of every generated execution_id (a UUID is 36 characters).
ID_WIDTH = 32

# The default caps of the server: 50 profiles, 20 domains, 200 domain/tool pairs, 100 error types.
CAP_PROFILES = ["demo", "sales_rep", "sales_manager"] + [f"profile_{i:02d}" for i in range(3, 50)]
CANONICAL_DOMAINS = [
    "territory",
    "intelligence",
    "knowledge",
    "engagement",
    "qualification",
    "governance",
]
CAP_DOMAINS = CANONICAL_DOMAINS + [f"domain_{i:02d}" for i in range(6, 20)]
_FIRST_TOOLS = {
    "territory": ["search_accounts", "map_territory"],
    "intelligence": ["enrich_company", "find_signals"],
    "knowledge": ["search_docs", "summarize"],
    "engagement": ["send_email", "draft_message"],
    "qualification": ["score_lead", "check_fit"],
    "governance": ["check_policy", "audit_log"],
}
#: 10 tools per domain: 200 domain/tool pairs.
CAP_TOOLS = [
    (d, t)
    for d in CAP_DOMAINS
    for t in (_FIRST_TOOLS.get(d, []) + [f"tool_{k}" for k in range(10)])[:10]
]
CAP_ERROR_TYPES = ["timeout", "ToolError", "RateLimited"] + [
    f"error_{i:02d}" for i in range(3, 100)
]
assert len(CAP_PROFILES) == 50 and len(CAP_DOMAINS) == 20
assert len(set(CAP_TOOLS)) == 200 and len(set(CAP_ERROR_TYPES)) == 100

DECISIONS = [
    pb.APPROVAL_DECISION_APPROVED,
    pb.APPROVAL_DECISION_DENIED,
    pb.APPROVAL_DECISION_TIMEOUT,
    pb.APPROVAL_DECISION_CANCELLED,
]


def unary_json(id_prefix: str) -> str:
    """ghz call data for RecordExecution: one realistic execution with 3 tool calls and an
    approval; `{{.RequestNumber}}` makes each request's execution_id unique within a run and
    `id_prefix` across runs."""
    return json.dumps(
        {
            "execution": {
                "execution_id": f"{id_prefix}-{{{{.RequestNumber}}}}",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "profile": "sales_rep",
                "outcome": "OUTCOME_SUCCESS",
                "start_time": "2026-01-01T00:00:00Z",
                "duration": "12.5s",
                "steps": 7,
                "budget": {"spent": 2.5, "limit": 10},
                "tool_calls": [
                    {
                        "tool": "search_accounts",
                        "domain": "territory",
                        "status": "TOOL_CALL_STATUS_SUCCESS",
                        "duration": "0.210s",
                    },
                    {
                        "tool": "score_lead",
                        "domain": "qualification",
                        "status": "TOOL_CALL_STATUS_ERROR",
                        "duration": "0.105s",
                        "error_type": "timeout",
                    },
                    {
                        "tool": "send_email",
                        "domain": "engagement",
                        "status": "TOOL_CALL_STATUS_SUCCESS",
                        "duration": "0.320s",
                    },
                ],
                "approvals": [
                    {
                        "decision": "APPROVAL_DECISION_APPROVED",
                        "wait": "30s",
                        "operation": "APPROVAL_OPERATION_EXECUTE",
                    }
                ],
            }
        }
    )


def unary_request_example() -> pb.RecordExecutionRequest:
    """The ghz call data parsed with the stubs (checks that the JSON is a valid request)."""
    text = unary_json("check").replace("{{.RequestNumber}}", "0")
    return json_format.Parse(text, pb.RecordExecutionRequest())


def _duration(seconds: float) -> dict[str, int]:
    nanos = round(seconds * 1e9)
    return {"seconds": nanos // 1_000_000_000, "nanos": nanos % 1_000_000_000}


def _execution(
    rng: random.Random,
    execution_id: str,
    profile: str,
    failure: bool,
    error_type: str,
    calls: list[tuple[str, str]],
    decision: int,
) -> pb.Execution:
    e = pb.Execution(
        execution_id=execution_id,
        profile=profile,
        outcome=pb.OUTCOME_FAILURE if failure else pb.OUTCOME_SUCCESS,
        error_type=error_type if failure else "",
        steps=rng.randint(1, 40),
    )
    e.duration.FromNanoseconds(round(rng.lognormvariate(1.5, 1.0) * 1e9))
    spent = rng.uniform(0.1, 12.0)
    e.budget.spent, e.budget.limit, e.budget.exceeded = spent, 10.0, spent >= 10.0
    for domain, tool in calls:
        status = rng.choices(
            [pb.TOOL_CALL_STATUS_SUCCESS, pb.TOOL_CALL_STATUS_ERROR, pb.TOOL_CALL_STATUS_SKIPPED],
            [90, 8, 2],
        )[0]
        t = e.tool_calls.add(tool=tool, domain=domain, status=status)
        if status == pb.TOOL_CALL_STATUS_ERROR:
            t.error_type = "timeout"
        if status != pb.TOOL_CALL_STATUS_SKIPPED:
            t.duration.FromNanoseconds(round(rng.lognormvariate(-1.5, 1.0) * 1e9))
        else:
            t.duration.FromNanoseconds(0)
    a = e.approvals.add(decision=decision, operation=pb.APPROVAL_OPERATION_EXECUTE)
    a.wait.FromNanoseconds(round(rng.lognormvariate(3.5, 1.2) * 1e9))
    return e


def realistic_templates(n: int = 16, seed: int = 1) -> list[pb.Execution]:
    """Executions of a steady production mix: 3 profiles, the 6 canonical domains, 3 tool
    calls and an approval each, 10 % failures. Their ids are placeholders."""
    rng = random.Random(seed)
    tools = [(d, t) for d, t in CAP_TOOLS if d in CANONICAL_DOMAINS and not t.startswith("tool_")]
    out = []
    for i in range(n):
        failure = rng.random() < 0.1
        out.append(
            _execution(
                rng,
                "X" * ID_WIDTH,
                CAP_PROFILES[i % 3],
                failure,
                CAP_ERROR_TYPES[i % 3],
                rng.sample(tools, 3),
                DECISIONS[0] if rng.random() < 0.85 else DECISIONS[i % 4],
            )
        )
    return out


def cap_filling_templates(seed: int = 2) -> list[pb.Execution]:
    """200 executions that together touch every capped label value and every series at the
    default caps: 50 profiles x {success, failure} x 4 approval decisions, all 100 error
    types, every one of the 200 domain/tool pairs (3 times)."""
    rng = random.Random(seed)
    out = []
    for a in range(4):
        for p, profile in enumerate(CAP_PROFILES):
            i = a * 50 + p
            failure = a % 2 == 1
            calls = [CAP_TOOLS[(3 * i + k) % 200] for k in range(3)]
            out.append(
                _execution(
                    rng,
                    "X" * ID_WIDTH,
                    profile,
                    failure,
                    CAP_ERROR_TYPES[(a // 2) * 50 + p],
                    calls,
                    DECISIONS[a],
                )
            )
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class BatchEncoder:
    """Serialized RecordExecutionsRequest bytes with fresh fixed-width ids, from templates."""

    def __init__(self, templates: list[pb.Execution], id_prefix: str) -> None:
        if len(id_prefix) >= ID_WIDTH - 8:
            raise ValueError("id prefix too long")
        self._prefix = id_prefix.encode()
        self._digits = ID_WIDTH - len(id_prefix)
        self._parts: list[tuple[bytes, bytes]] = []
        for template in templates:
            assert len(template.execution_id) == ID_WIDTH
            body = template.SerializeToString()
            field1 = b"\x0a" + _varint(ID_WIDTH)
            # The encoder writes fields in number order: execution_id (1) comes first.
            assert body.startswith(field1 + template.execution_id.encode()), "unexpected layout"
            head = b"\x0a" + _varint(len(body)) + field1
            self._parts.append((head, body[len(field1) + ID_WIDTH :]))
        self.seq = 0

    def next_ids(self, n: int) -> list[bytes]:
        start, self.seq = self.seq, self.seq + n
        return [self._prefix + str(s).zfill(self._digits).encode() for s in range(start, start + n)]

    def batch(self, n: int) -> bytes:
        parts = self._parts
        k = len(parts)
        base = self.seq
        chunks = []
        for j, ident in enumerate(self.next_ids(n)):
            head, tail = parts[(base + j) % k]
            chunks += (head, ident, tail)
        return b"".join(chunks)


def check_batch(data: bytes, n: int, id_prefix: str) -> list[str]:
    """Parses a batch with the stubs; returns its ids after checking count and prefix."""
    request = pb.RecordExecutionsRequest.FromString(data)
    ids = [e.execution_id for e in request.executions]
    assert len(ids) == n and len(set(ids)) == n, "batch ids are not unique"
    assert all(len(i) == ID_WIDTH and i.startswith(id_prefix) for i in ids), ids[:3]
    return ids


def unique_ids(prefix: str) -> Iterator[str]:
    n = 0
    while True:
        yield f"{prefix}{n:0{ID_WIDTH - len(prefix)}d}"
        n += 1


def routine_templates(n: int = 16, seed: int = 3) -> list[pb.Execution]:
    """Routine executions: one tool call each, no approval, 10 % failures (the speed table's
    "batches of 500 routine executions")."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        e = _execution(
            rng,
            "X" * ID_WIDTH,
            CAP_PROFILES[i % 3],
            rng.random() < 0.1,
            CAP_ERROR_TYPES[i % 3],
            [CAP_TOOLS[i % 12]],
            DECISIONS[0],
        )
        del e.approvals[:]
        out.append(e)
    return out


def rich_templates(n: int = 16, seed: int = 4) -> list[pb.Execution]:
    """Rich executions: five tool calls and an approval each (the speed table's "rich")."""
    rng = random.Random(seed)
    return [
        _execution(
            rng,
            "X" * ID_WIDTH,
            CAP_PROFILES[i % 3],
            rng.random() < 0.1,
            CAP_ERROR_TYPES[i % 3],
            [CAP_TOOLS[(5 * i + k) % 12] for k in range(5)],
            DECISIONS[i % 4],
        )
        for i in range(n)
    ]


def model_templates(n: int = 16, seed: int = 5) -> list[pb.Execution]:
    """Rich executions with three model calls each (the speed table's model-call row)."""
    rng = random.Random(seed)
    out = rich_templates(n, seed)
    models = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet")]
    for e in out:
        for k, (provider, model) in enumerate(models):
            status = pb.MODEL_CALL_STATUS_RATE_LIMITED if rng.random() < 0.05 else 1
            call = e.model_calls.add(
                provider=provider,
                model=model,
                operation=pb.MODEL_OPERATION_CHAT,
                status=status,
                error_type="RateLimitError" if status != 1 else "",
                input_tokens=rng.randint(200, 4000),
                output_tokens=rng.randint(20, 800),
                cached_input_tokens=rng.randint(0, 200),
                cost=round(rng.uniform(0.0001, 0.05), 6),
            )
            call.duration.FromNanoseconds(round(rng.lognormvariate(0.3 + k * 0.2, 0.6) * 1e9))
            call.time_to_first_token.FromNanoseconds(call.duration.ToNanoseconds() // 4)
    return out
