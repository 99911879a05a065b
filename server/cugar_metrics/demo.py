"""Simulate sales agents recording executions into a running server.

Agents of the three profiles (demo, sales_rep, sales_manager) run workflows over tools of the
six canonical domains (territory, intelligence, knowledge, engagement, qualification,
governance), calling models between the tools: each profile has its own model mix, with log-
normal token counts and latencies, prompt caching, reasoning tokens, a cost per call, a time to
first token, rate-limited calls (retried) and the odd timeout. Durations are drawn from log-
normal distributions (tool calls from tens of milliseconds to seconds, executions from seconds
to minutes); tools fail with typed errors, steps are skipped when the budget runs out or an
approval is denied, and human approvals are approved, denied, time out or are cancelled after
realistic waits. A few executions are sent twice (a client retry, acknowledged as a duplicate)
and a few carry a clock reading instead of a measured duration (a buggy agent, rejected by the
server), so every metric has data.

Executions go through the client's BatchRecorder at --rate per second; a progress line goes to
stderr and a summary to stdout. The simulated durations are values, not waits: a run of 30 s
records 30 s x rate executions. --seed makes the simulated content repeatable; execution ids
are always fresh. Against a server with authentication, give a recorder (or admin) key with
--api-key or CUGAR_METRICS_API_KEY; against TLS, --tls-ca (and --tls-cert/--tls-key for
mutual TLS).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from cugar_metrics import client_options
from cugar_metrics.config import ConfigError, parse_duration
from cugar_metrics_client import (
    Approval,
    BatchRecorder,
    Budget,
    Client,
    CugarMetricsError,
    Decision,
    Execution,
    ModelCall,
    ModelStatus,
    Operation,
    PermissionDeniedError,
    RecorderStats,
    ToolCall,
    ToolStatus,
    UnauthenticatedError,
)

DEFAULT_TARGET = "127.0.0.1:50051"


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    domain: str
    median_seconds: float
    failure_rate: float
    cost: float
    approval: Operation | None = None


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("search_accounts", "territory", 0.35, 0.02, 0.2),
        Tool("assign_territory", "territory", 0.6, 0.03, 0.3, Operation.EXECUTE),
        Tool("map_coverage", "territory", 0.9, 0.02, 0.4),
        Tool("enrich_company", "intelligence", 1.2, 0.06, 1.0),
        Tool("news_signals", "intelligence", 0.8, 0.04, 0.6),
        Tool("competitor_watch", "intelligence", 1.5, 0.05, 0.8),
        Tool("search_playbooks", "knowledge", 0.25, 0.01, 0.2),
        Tool("retrieve_case_studies", "knowledge", 0.45, 0.02, 0.3),
        Tool("product_faq", "knowledge", 0.2, 0.01, 0.1),
        Tool("draft_email", "engagement", 2.0, 0.03, 1.5, Operation.PROPOSE),
        Tool("send_email", "engagement", 0.4, 0.02, 0.2, Operation.EXECUTE),
        Tool("schedule_meeting", "engagement", 0.7, 0.04, 0.3, Operation.EXECUTE),
        Tool("score_lead", "qualification", 0.3, 0.03, 0.4),
        Tool("bant_check", "qualification", 0.9, 0.02, 0.7),
        Tool("route_lead", "qualification", 0.2, 0.02, 0.1),
        Tool("policy_check", "governance", 0.15, 0.01, 0.1),
        Tool("pii_scan", "governance", 0.3, 0.02, 0.2),
        Tool("audit_log", "governance", 0.05, 0.005, 0.05),
    )
}


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    weight: float
    budget_limit: float
    workflows: tuple[tuple[str, ...], ...]


PROFILES = (
    Profile(
        "demo",
        0.2,
        2.5,
        (
            ("search_playbooks", "product_faq"),
            ("search_accounts", "news_signals", "retrieve_case_studies"),
            ("enrich_company", "competitor_watch", "search_playbooks"),
        ),
    ),
    Profile(
        "sales_rep",
        0.55,
        6.0,
        (
            ("search_accounts", "enrich_company", "score_lead", "draft_email", "send_email"),
            ("news_signals", "bant_check", "score_lead", "route_lead"),
            ("retrieve_case_studies", "draft_email", "pii_scan", "send_email", "schedule_meeting"),
            (
                "search_accounts",
                "map_coverage",
                "enrich_company",
                "competitor_watch",
                "draft_email",
            ),
        ),
    ),
    Profile(
        "sales_manager",
        0.25,
        9.0,
        (
            ("map_coverage", "assign_territory", "policy_check", "audit_log"),
            ("competitor_watch", "news_signals", "bant_check", "route_lead", "audit_log"),
            (
                "search_accounts",
                "enrich_company",
                "pii_scan",
                "policy_check",
                "schedule_meeting",
                "audit_log",
            ),
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Model:
    provider: str
    name: str
    #: Median prompt and answer tokens of one call.
    input_tokens: float
    output_tokens: float
    #: Median seconds per call and the share of it until the first token.
    median_seconds: float
    #: Price per million input, cached input and output tokens.
    input_price: float
    cached_price: float
    output_price: float
    #: Share of the answer spent reasoning (0 for a model that does not reason).
    reasoning_share: float = 0.0


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("openai", "gpt-4o", 2400, 350, 3.2, 2.5, 1.25, 10.0),
        Model("openai", "gpt-4o-mini", 1500, 200, 1.4, 0.15, 0.075, 0.6),
        Model("anthropic", "claude-sonnet", 3000, 450, 4.5, 3.0, 0.3, 15.0, 0.3),
    )
}
#: Which models each profile's agent calls, with weights.
PROFILE_MODELS: dict[str, tuple[tuple[str, float], ...]] = {
    "demo": (("gpt-4o-mini", 1.0),),
    "sales_rep": (("gpt-4o", 0.6), ("gpt-4o-mini", 0.4)),
    "sales_manager": (("claude-sonnet", 0.7), ("gpt-4o", 0.3)),
}
#: Share of model calls refused for a rate limit (then retried), and of calls timing out.
MODEL_RATE_LIMITED = 0.03
MODEL_TIMEOUT = 0.004
MODEL_TIMEOUT_SECONDS = 60.0
TOOL_ERRORS = ("timeout", "rate_limited", "upstream_5xx", "invalid_response")
#: An approval that nobody answers times out after 15 minutes.
APPROVAL_TIMEOUT_SECONDS = 900.0
#: One execution in this many is sent twice (a client retry), from the 25th on.
DUPLICATE_EVERY = 250
#: One execution in this many carries a clock reading as its duration, from the 50th on.
BUGGY_EVERY = 500


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _seconds(calls: list[ModelCall]) -> float:
    """The time ``calls`` took one after another (the simulator gives seconds as floats)."""
    total = 0.0
    for call in calls:
        duration = call.duration
        total += duration.total_seconds() if isinstance(duration, timedelta) else duration
    return total


class Simulator:
    """Draws realistic executions; pure apart from its random generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._weights = [p.weight for p in PROFILES]

    def model_calls(self, profile: str, context: float) -> list[ModelCall]:
        """One model turn: a call (after any rate-limited attempts) with ``context`` times the
        model's usual prompt."""
        rng = self.rng
        names, weights = zip(*PROFILE_MODELS[profile], strict=True)
        model = MODELS[rng.choices(names, weights)[0]]
        calls: list[ModelCall] = []
        while rng.random() < MODEL_RATE_LIMITED and len(calls) < 3:
            calls.append(
                ModelCall(
                    model.provider,
                    model.name,
                    status=ModelStatus.RATE_LIMITED,
                    duration=lognormal(rng, 0.08, 0.5),
                    error_type="RateLimitError",
                )
            )
        input_tokens = max(1, round(lognormal(rng, model.input_tokens * context, 0.4)))
        if rng.random() < MODEL_TIMEOUT:
            calls.append(
                ModelCall(
                    model.provider,
                    model.name,
                    status=ModelStatus.ERROR,
                    duration=MODEL_TIMEOUT_SECONDS,
                    input_tokens=input_tokens,
                    error_type="Timeout",
                )
            )
            return calls
        output_tokens = max(1, round(lognormal(rng, model.output_tokens, 0.6)))
        cached = round(input_tokens * rng.uniform(0.0, 0.7)) if model.provider == "openai" else 0
        reasoning = round(output_tokens * model.reasoning_share * rng.uniform(0.5, 1.5))
        reasoning = min(reasoning, output_tokens)
        duration = lognormal(rng, model.median_seconds * (output_tokens / model.output_tokens), 0.3)
        cost = (
            (input_tokens - cached) * model.input_price
            + cached * model.cached_price
            + output_tokens * model.output_price
        ) / 1e6
        calls.append(
            ModelCall(
                model.provider,
                model.name,
                duration=duration,
                time_to_first_token=duration * rng.uniform(0.05, 0.3),
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                cached_input_tokens=cached if model.provider == "openai" else None,
                reasoning_tokens=reasoning if model.reasoning_share else None,
                cost=round(cost, 6),
            )
        )
        return calls

    def execution(self) -> Execution:
        rng = self.rng
        profile = rng.choices(PROFILES, self._weights)[0]
        workflow = rng.choice(profile.workflows)
        limit = profile.budget_limit
        spent = 0.0
        exceeded = False
        blocked: str | None = None  # why the remaining tools are skipped
        error_type = ""
        calls: list[ToolCall] = []
        approvals: list[Approval] = []
        model_calls = self.model_calls(profile.name, 1.0)  # planning before the first tool
        elapsed: float = _seconds(model_calls)
        steps = 1 + rng.randint(0, 2)
        for name in workflow:
            tool = TOOLS[name]
            if blocked is not None:
                calls.append(ToolCall(name, tool.domain, ToolStatus.SKIPPED, 0.0, blocked))
                continue
            cost = tool.cost * lognormal(rng, 1.0, 0.6)
            if spent + cost > limit:
                # The tool would overrun the budget: the agent stops at the limit.
                exceeded = True
                spent = limit
                blocked = "budget_exhausted"
                calls.append(ToolCall(name, tool.domain, ToolStatus.SKIPPED, 0.0, blocked))
                if rng.random() < 0.25:
                    error_type = "BudgetExceeded"
                continue
            if tool.approval is not None and (
                tool.approval is Operation.EXECUTE or rng.random() < 0.5
            ):
                decision = rng.choices(
                    (Decision.APPROVED, Decision.DENIED, Decision.TIMEOUT, Decision.CANCELLED),
                    (0.82, 0.09, 0.06, 0.03),
                )[0]
                if decision is Decision.TIMEOUT:
                    wait = APPROVAL_TIMEOUT_SECONDS
                else:
                    wait = min(lognormal(rng, 40.0, 1.1), APPROVAL_TIMEOUT_SECONDS)
                approvals.append(Approval(decision, wait, tool.approval))
                elapsed += wait
                if decision is not Decision.APPROVED:
                    blocked = f"approval_{decision.value}"
                    calls.append(ToolCall(name, tool.domain, ToolStatus.SKIPPED, 0.0, blocked))
                    if decision is Decision.TIMEOUT and rng.random() < 0.3:
                        error_type = "ApprovalTimeout"
                    continue
            duration = lognormal(rng, tool.median_seconds, 0.7)
            spent += cost
            steps += 1
            if rng.random() < tool.failure_rate:
                kind = rng.choice(TOOL_ERRORS)
                if kind == "timeout":
                    duration = 30.0
                calls.append(ToolCall(name, tool.domain, ToolStatus.ERROR, duration, kind))
                elapsed += duration
                if rng.random() < 0.35:
                    error_type = "TimeoutError" if kind == "timeout" else "ToolError"
                    blocked = "aborted"
                continue
            calls.append(ToolCall(name, tool.domain, ToolStatus.SUCCESS, duration))
            elapsed += duration
            # The model reads the tool's result and decides the next step.
            turn = self.model_calls(profile.name, 1.0 + 0.5 * len(calls))
            model_calls += turn
            elapsed += _seconds(turn)
        if not error_type and rng.random() < 0.005:
            error_type = "ModelOutputError"  # the model's answer could not be parsed
        if not error_type and model_calls[-1].status == ModelStatus.ERROR:
            error_type = "ModelError"  # the last model call timed out: no answer
        turn = self.model_calls(profile.name, 1.0 + 0.5 * len(calls))  # the final answer
        model_calls += turn
        elapsed += _seconds(turn)
        return Execution(
            profile=profile.name,
            outcome="failure" if error_type else "success",
            error_type=error_type,
            duration=elapsed,
            steps=steps,
            budget=Budget(spent=round(spent, 3), limit=limit, exceeded=exceeded),
            tool_calls=calls,
            approvals=approvals,
            model_calls=model_calls,
        )


def _duration_arg(text: str) -> float:
    try:
        return parse_duration(text, "--duration")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rate: {text!r} is not a number") from None
    if not 0 < value <= 1_000_000:
        raise argparse.ArgumentTypeError("--rate: must be more than 0 and at most 1000000")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `cugar-metrics demo`."""
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"HOST:PORT of the server (default: {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--rate", type=_positive_rate, default=20.0, help="executions per second (default: 20)"
    )
    parser.add_argument(
        "--duration",
        type=_duration_arg,
        default=None,
        help="how long to send, e.g. 30s, 5m (default: 30s, or until --count)",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="stop after this many executions (with --duration: whichever comes first)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed of the simulation, for repeatable content"
    )
    client_options.add_arguments(parser, "recorder")


@dataclass(slots=True)
class _Progress:
    started: float
    last: float = 0.0

    def line(self, sent: int, stats: RecorderStats) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"sent {sent}  accepted {stats.accepted}  duplicate {stats.duplicate}  "
            f"rejected {stats.rejected}  dropped {stats.dropped}  "
            f"rate {sent / elapsed:.1f}/s"
        )


def run(args: argparse.Namespace) -> int:
    """Run the simulation; 0 when every execution reached the server."""
    duration: float | None = args.duration
    count: int | None = args.count
    if count is not None and count < 1:
        print("cugar-metrics demo: error: --count must be at least 1", file=sys.stderr)
        return 2
    if duration is None and count is None:
        duration = 30.0
    try:
        connection = client_options.client_kwargs(args)
    except (ValueError, OSError) as error:
        print(f"cugar-metrics demo: error: {error}", file=sys.stderr)
        return 2
    try:
        with Client(args.target, timeout=5.0, **connection) as probe:
            replica = probe.get_dashboard().replica
    except PermissionDeniedError:
        replica = "?"  # a recorder key may record but not read the dashboard: reachable
    except UnauthenticatedError as error:
        print(
            f"cugar-metrics demo: error: the server at {args.target} refused the API key "
            f"({error.reason}): {client_options.API_KEY_HINT} with a recorder key",
            file=sys.stderr,
        )
        return 1
    except CugarMetricsError as error:
        print(
            f"cugar-metrics demo: error: cannot reach the server at {args.target}: {error}",
            file=sys.stderr,
        )
        return 1
    print(
        f"cugar-metrics demo: sending {args.rate:g} executions/s to {args.target} "
        f"(replica {replica})",
        file=sys.stderr,
    )

    rng = random.Random(args.seed)
    simulator = Simulator(rng)
    sent = 0
    profiles: Counter[str] = Counter()
    error_types: Counter[str] = Counter()
    interrupted = False
    tty = sys.stderr.isatty()
    recorder = BatchRecorder(args.target, max_batch=500, flush_interval=0.5, **connection)
    started = time.monotonic()
    progress = _Progress(started, started)
    try:
        while True:
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                break
            if count is not None and sent >= count:
                break
            due = started + sent / args.rate
            if due > now:
                time.sleep(min(due - now, 0.25))
                continue
            execution = simulator.execution()
            if sent % BUGGY_EVERY == BUGGY_EVERY // 10:
                # A buggy agent sends the wall clock instead of the measured duration.
                execution.duration = 1_700_000_000.0 + rng.random() * 1e8
            recorder.record(execution)
            if sent % DUPLICATE_EVERY == DUPLICATE_EVERY // 10:
                recorder.record(execution)  # a retry of the same execution_id
            sent += 1
            profiles[execution.profile] += 1
            if execution.error_type:
                error_types[execution.error_type] += 1
            if now - progress.last >= (1.0 if tty else 5.0):
                progress.last = now
                line = progress.line(sent, recorder.stats())
                print(
                    f"\r{line}\x1b[K" if tty else line,
                    end="" if tty else "\n",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        interrupted = True
    finally:
        recorder.close(timeout=10.0)
    stats = recorder.stats()
    elapsed = time.monotonic() - started
    if tty:
        print(file=sys.stderr)
    print(progress.line(sent, stats), file=sys.stderr)

    print(
        f"demo: {sent} executions in {elapsed:.1f} s ({sent / max(elapsed, 1e-9):.1f}/s) "
        f"to {args.target} (replica {replica})"
    )
    print("  by profile: " + ", ".join(f"{p} {n}" for p, n in sorted(profiles.items())))
    print(
        "  failures:   " + (", ".join(f"{e} {n}" for e, n in error_types.most_common()) or "none")
    )
    print(
        f"  server:     accepted {stats.accepted}, duplicate {stats.duplicate} (simulated "
        f"retries), rejected {stats.rejected} (simulated clock-as-duration bug)"
    )
    print(
        f"  dropped:    {stats.dropped} (buffer full {stats.dropped_full}, send failed "
        f"{stats.dropped_failed})"
    )
    print(f"  see:        cugar-metrics dashboard --target {args.target}")
    if interrupted:
        return 130
    return 0 if stats.dropped == 0 else 1
