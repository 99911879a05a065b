"""The cross-language conformance scenarios (clients/CONFORMANCE.md), run through the Python
client library.

Usage: conformance.py --target HOST:PORT --profile P [--scenario NAME] [options]

The basic scenario checks each answer of the server and exits 1 with a message on the first
mismatch. The fault scenarios go through the BatchRecorder (or direct calls where the
contract says so) and end with one JSON line: the client's own account of the run.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable

from cugar_metrics_client import (
    Approval,
    BatchRecorder,
    Budget,
    Client,
    Execution,
    InvalidExecutionError,
    RecordResult,
    ResourceExhaustedError,
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


class Options(argparse.Namespace):
    target: str
    profile: str
    scenario: str
    attempt_deadline: float | None
    retry_info_cap: float | None
    buffer_size: int | None
    close_timeout: float | None
    api_key: str | None


def account(scenario: str, **fields: float) -> dict[str, object]:
    """The JSON account of a run; fields not given are 0."""
    names = ("recorded", "delivered", "dropped", "rejected", "rate_limited", "waited_seconds")
    return {"scenario": scenario, **{name: fields.get(name, 0) for name in names}}


def numbered(profile: str, n: int, outcome: str = "success") -> Execution:
    """Execution ``<profile>-<n>``: re-sent with the same id by every retry."""
    return Execution(
        execution_id=f"{profile}-{n}",
        profile=profile,
        outcome=outcome,
        error_type="ToolError" if outcome == "failure" else "",
        duration=0.5,
        steps=1,
    )


def recorder_kwargs(options: Options) -> dict[str, object]:
    kwargs: dict[str, object] = {"api_key": options.api_key}
    if options.attempt_deadline is not None:
        kwargs["timeout"] = options.attempt_deadline
    if options.buffer_size is not None:
        kwargs["max_buffer"] = options.buffer_size
        kwargs["max_batch"] = min(options.buffer_size, 500)
    return kwargs


def through_recorder(
    options: Options, executions: list[Execution], *, pace: float = 0.0, ready: bool = False
) -> dict[str, object]:
    """Records ``executions`` (``pace`` seconds apart), closes, and accounts for them."""
    recorder = BatchRecorder(options.target, **recorder_kwargs(options))  # type: ignore[arg-type]
    if ready:
        print("ready", flush=True)
    for execution in executions:
        recorder.record(execution)
        if pace:
            time.sleep(pace)
    if options.close_timeout is None:
        dropped = recorder.close()
    else:
        dropped = recorder.close(timeout=options.close_timeout)
    stats = recorder.stats()
    if stats.dropped != dropped:
        raise Mismatch(f"close() returned {dropped} dropped, stats say {stats.dropped}")
    return account(
        options.scenario,
        recorded=len(executions),
        delivered=stats.accepted + stats.duplicate,
        dropped=dropped,
        rejected=stats.rejected,
    )


def late_server(options: Options) -> dict[str, object]:
    outcomes = ["success"] * 7 + ["failure"] * 4
    batch = [numbered(options.profile, n, o) for n, o in enumerate(outcomes, 1)]
    return through_recorder(options, batch)


def restart(options: Options) -> dict[str, object]:
    batch = [numbered(options.profile, n) for n in range(1, 41)]
    return through_recorder(options, batch, pace=0.05)


def short_deadline(options: Options) -> dict[str, object]:
    batch = [numbered(options.profile, n) for n in range(1, 21)]
    return through_recorder(options, batch, ready=True)


class Captured(logging.Handler):
    """Keeps the client's log records, to compare its log line with its count."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def overflow(options: Options) -> dict[str, object]:
    captured = Captured()
    logging.getLogger("cugar_metrics_client").addHandler(captured)
    result = through_recorder(options, [numbered(options.profile, n) for n in range(1, 9)])
    closing = [r for r in captured.records if getattr(r, "cugar_dropped_total", None) is not None]
    if not closing:
        raise Mismatch("close() logged no line with the dropped total")
    logged = closing[-1].cugar_dropped_total  # type: ignore[attr-defined]
    if logged != result["dropped"]:
        raise Mismatch(f"the log line says {logged} dropped, close() {result['dropped']}")
    print(closing[-1].getMessage())
    return result


def client(options: Options) -> Client:
    kwargs: dict[str, object] = {"api_key": options.api_key}
    if options.retry_info_cap is not None:
        kwargs["retry_info_cap"] = options.retry_info_cap
    return Client(options.target, **kwargs)  # type: ignore[arg-type]


def retry_info_over_cap(options: Options) -> dict[str, object]:
    with client(options) as direct:
        expect("first call", direct.record(numbered(options.profile, 1)), RecordResult.ACCEPTED)
        started = time.monotonic()
        try:
            result = direct.record(numbered(options.profile, 2))
        except ResourceExhaustedError as error:
            waited = time.monotonic() - started
            print(f"second call: {error.code.name} after {waited:.2f} s")
        else:
            raise Mismatch(f"second call answered {result}, want the rate-limit error")
    return account(options.scenario, recorded=2, delivered=1, rate_limited=1, waited_seconds=waited)


def two_replicas(options: Options) -> dict[str, object]:
    delivered = 0
    with client(options) as direct:
        for n in range(1, 21):
            expect(f"call {n}", direct.record(numbered(options.profile, n)), RecordResult.ACCEPTED)
            delivered += 1
    return account(options.scenario, recorded=20, delivered=delivered)


class Timeout(Exception):  # named as the scenario's error_type
    """A model call that took too long."""


def models(options: Options) -> dict[str, object]:
    """The model-call table of clients/CONFORMANCE.md, through run.model_call()."""
    p = options.profile
    recorded = 0
    with client(options) as direct:
        with direct.run(p, execution_id=f"{p}-1") as first:
            with first.model_call("openai", "gpt-4o") as call:
                call.first_token()
                call.usage(1200, 300, cached_input_tokens=200, cost=0.012)
            with first.model_call("openai", "gpt-4o-mini") as call:
                call.first_token()
                call.usage(100, 20)
        expect(f"{p}-1", first.result, RecordResult.ACCEPTED)
        recorded += 1
        with direct.run(p, execution_id=f"{p}-2") as second:
            with second.model_call("anthropic", "claude-sonnet") as call:
                call.rate_limited(error_type="RateLimitError")
            with second.model_call("anthropic", "claude-sonnet") as call:
                call.first_token()
                call.usage(800, 150, reasoning_tokens=40, cost=0.009)
        expect(f"{p}-2", second.result, RecordResult.ACCEPTED)
        recorded += 1
        with direct.run(p, execution_id=f"{p}-3") as third:
            with third.model_call("openai", "gpt-4o", "embeddings") as call:
                call.usage(500, 0, cost=0.0001)
            try:
                with third.model_call("openai", "gpt-4o") as call:
                    call.input_tokens = 50
                    raise Timeout("no answer")
            except Timeout:
                pass
            third.fail("ModelError")
        expect(f"{p}-3", third.result, RecordResult.ACCEPTED)
        recorded += 1
        assert first.execution is not None
        expect(f"{p}-1 again", direct.record(first.execution), RecordResult.DUPLICATE)
        recorded += 1
    return account(options.scenario, recorded=recorded, delivered=3)


def basic(options: Options) -> dict[str, object] | None:
    with client(options) as direct:
        scenario(direct, options.profile)
    print("conformance OK")
    return None


SCENARIOS: dict[str, Callable[[Options], dict[str, object] | None]] = {
    "basic": basic,
    "late-server": late_server,
    "models": models,
    "restart": restart,
    "retry-info-over-cap": retry_info_over_cap,
    "short-deadline": short_deadline,
    "two-replicas": two_replicas,
    "overflow": overflow,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", required=True, help="HOST:PORT of the server")
    parser.add_argument("--profile", required=True, help="the profile P of the scenario")
    parser.add_argument("--scenario", default="basic", choices=sorted(SCENARIOS))
    parser.add_argument("--attempt-deadline", type=float, help="seconds per attempt")
    parser.add_argument("--retry-info-cap", type=float, help="longest RetryInfo wait (s)")
    parser.add_argument("--buffer-size", type=int, help="the recorder's buffer size")
    parser.add_argument("--close-timeout", type=float, help="seconds close() keeps retrying")
    parser.add_argument("--api-key", help="sent as authorization: Bearer KEY")
    options = parser.parse_args(argv, namespace=Options())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        result = SCENARIOS[options.scenario](options)
    except Mismatch as mismatch:
        print(f"conformance FAILED: {mismatch}", file=sys.stderr)
        return 1
    except Exception as error:  # any other failure is a failed run, reported plainly
        print(f"conformance FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
