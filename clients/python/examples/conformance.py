"""The cross-language conformance scenario, run through the Python client library.

Usage: conformance.py --target HOST:PORT --profile P

Each step checks the server's answer and exits 1 with a message on the first mismatch;
exit 0 means every step matched.
"""

from __future__ import annotations

import argparse
import sys

from cugar_metrics_client import (
    Approval,
    Budget,
    Client,
    Execution,
    InvalidExecutionError,
    RecordResult,
    ToolCall,
)


class Mismatch(Exception):
    """A step got an answer other than the scenario expects."""


def expect(what: str, got: object, want: object) -> None:
    if got != want:
        raise Mismatch(f"{what}: got {got!r}, want {want!r}")


def scenario(client: Client, profile: str) -> None:
    a = Execution(
        execution_id=f"{profile}-a",
        profile=profile,
        outcome="success",
        duration=1.5,
        steps=3,
        budget=Budget(spent=2, limit=10),
        tool_calls=[
            ToolCall("search_accounts", "territory", "success", 0.2),
            ToolCall("score_lead", "qualification", "error", 0.1, error_type="timeout"),
        ],
        approvals=[Approval("approved", wait=30, operation="execute")],
    )
    expect("step 1: record A", client.record(a), RecordResult.ACCEPTED)
    print("step 1: A accepted")
    expect("step 2: record A again", client.record(a), RecordResult.DUPLICATE)
    print("step 2: A again is a duplicate")

    bad = Execution(
        execution_id=f"{profile}-bad", profile=profile, outcome="success", duration=1700000000
    )
    try:
        result = client.record(bad)
    except InvalidExecutionError as error:
        fields = [v.field for v in error.violations]
        if "execution.duration" not in fields:
            raise Mismatch(f"step 3: violations on {fields}, want execution.duration") from None
        for violation in error.violations:
            if violation.field == "execution.duration":
                print(f"field violation: execution.duration: {violation.description}")
    else:
        raise Mismatch(f"step 3: epoch duration answered {result}, want INVALID_ARGUMENT")

    batch = client.record_batch(
        [
            Execution(
                execution_id=f"{profile}-b1",
                profile=profile,
                outcome="failure",
                error_type="ToolError",
                duration=2,
                tool_calls=[ToolCall("send_email", "engagement", "success", 0.3)],
            ),
            Execution(execution_id=f"{profile}-b2", profile="", outcome="success", duration=1),
            Execution(
                execution_id=f"{profile}-b3", profile=profile, outcome="success", duration=0.5
            ),
        ]
    )
    expect(
        "step 4: accepted/duplicate/rejected",
        (batch.accepted, batch.duplicate, batch.rejected),
        (2, 0, 1),
    )
    expect("step 4: rejected items", len(batch.rejected_items), 1)
    rejected = batch.rejected_items[0]
    expect("step 4: rejected index", rejected.index, 1)
    expect("step 4: rejected execution_id", rejected.execution_id, f"{profile}-b2")
    fields = [v.field for v in rejected.violations]
    if "executions[1].profile" not in fields:
        raise Mismatch(f"step 4: violations on {fields}, want executions[1].profile")
    print("step 4: batch accepted 2, duplicate 0, rejected 1 (executions[1].profile)")

    dashboard = client.get_dashboard(profile=profile)
    counts = dashboard.executions
    expect(
        "step 5: total/succeeded/failed",
        (counts.total, counts.succeeded, counts.failed),
        (3, 2, 1),
    )
    print(
        f"step 5: dashboard for {profile}: {counts.total} executions, "
        f"{counts.succeeded} succeeded, {counts.failed} failed (replica {dashboard.replica})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", required=True, help="HOST:PORT of the server")
    parser.add_argument("--profile", required=True, help="the profile P of the scenario")
    args = parser.parse_args(argv)
    with Client(args.target, timeout=10.0) as client:
        try:
            scenario(client, args.profile)
        except Mismatch as mismatch:
            print(f"conformance FAILED: {mismatch}", file=sys.stderr)
            return 1
        except Exception as error:  # any other failure is a failed run, reported plainly
            print(f"conformance FAILED: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
    print("conformance OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
