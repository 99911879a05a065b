"""The dashboard: golden signals and breakdowns of one window, computed from snapshots.

Pure functions over `WindowState` (whose snapshot holds the window's counters and
distributions). A rate or mean with no data is None (absent), never 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cugar_metrics.aggregator.core import WindowState
from cugar_metrics.aggregator.series import by_field
from cugar_metrics.aggregator.sketch import FrozenDistribution, merged_quantiles
from cugar_metrics.model import DECISIONS


@dataclass(frozen=True, slots=True)
class ProfileRow:
    profile: str
    total: int
    succeeded: int
    failed: int
    success_rate: float | None
    latency_p95: float | None
    budget_spent: float
    budget_exceeded: int


@dataclass(frozen=True, slots=True)
class ToolRow:
    domain: str
    tool: str  # "" for a domain row
    calls: int
    errors: int
    skipped: int
    error_rate: float | None
    latency_p95: float | None


@dataclass(frozen=True, slots=True)
class ModelRow:
    provider: str
    model: str
    calls: int
    errors: int
    rate_limited: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost: float
    latency_p50: float | None
    latency_p95: float | None
    ttft_p95: float | None


@dataclass(frozen=True, slots=True)
class DecisionRow:
    decision: str
    count: int
    wait_p95: float | None


@dataclass(frozen=True)
class Dashboard:
    window_start: float
    window_end: float
    total: int
    succeeded: int
    failed: int
    total_steps: int
    success_rate: float | None
    error_rate: float | None
    tool_error_rate: float | None
    budget_utilization: float | None
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    latency_mean: float | None
    mean_steps: float | None
    approval_wait_p50: float | None
    approval_wait_p95: float | None
    throughput: float | None
    profiles: list[ProfileRow]
    domains: list[ToolRow]
    tools: list[ToolRow]
    error_types: list[tuple[str, int]]
    budget_spent: float
    budget_mean_spent: float | None
    budget_exceeded: int
    budget_executions: int
    approvals_total: int
    approvals: list[DecisionRow]
    first_execution: float | None
    last_execution: float | None
    ingest: dict[str, int]
    #: Model calls: one row per provider/model, and the model golden signals (all absent
    #: without model calls). They cover every profile: model series have no profile label.
    models: list[ModelRow]
    tokens_per_execution: float | None
    cost_per_execution: float | None
    model_error_rate: float | None
    tokens_per_second: float | None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _p95(dists: Iterable[FrozenDistribution]) -> float | None:
    return merged_quantiles(dists, [0.95])[0]


_SERIES = by_field()


def build_dashboard(
    state: WindowState, profile: str = "", domain: str = "", model: str = ""
) -> Dashboard:
    cur = state.current

    def by_profile(key: str | tuple[str, ...]) -> bool:
        return not profile or (key if isinstance(key, str) else key[0]) == profile

    def by_domain(key: tuple[str, ...]) -> bool:
        return not domain or key[0] == domain

    def by_model(key: tuple[str, ...]) -> bool:
        return not model or key[1] == model

    filters: dict[str, tuple[Callable[[Any], bool], str]] = {
        "profile": (by_profile, profile),
        "domain": (by_domain, domain),
        "model": (by_model, model),
    }

    def part(name: str, by: str) -> Any:
        """The window's series of one Snapshot field that pass the filter `by` (when it is
        set), without empty ones, except float counters (the caller annotates the result:
        one shape per field)."""
        keep, active = filters[by]
        items = getattr(cur, name).items()
        series = _SERIES[name]
        if series.kind == "histogram":
            if active:
                return {k: v for k, v in items if v.count and keep(k)}
            return {k: v for k, v in items if v.count}
        if series.floats:
            return {k: v for k, v in items if keep(k)} if active else dict(items)
        if active:
            return {k: v for k, v in items if v and keep(k)}
        return {k: v for k, v in items if v}

    executions: dict[tuple[str, str, str], int] = part("executions", "profile")
    durations: dict[tuple[str, str], FrozenDistribution] = part("durations", "profile")
    steps: dict[str, FrozenDistribution] = part("steps", "profile")
    utilization: dict[str, FrozenDistribution] = part("budget_utilization", "profile")
    spent: dict[str, float] = part("budget_spent", "profile")
    exceeded: dict[str, int] = part("budget_exceeded", "profile")
    approvals: dict[tuple[str, str], FrozenDistribution] = part("approvals", "profile")
    tool_calls: dict[tuple[str, str, str], int] = part("tool_calls", "domain")
    tool_durations: dict[tuple[str, str], FrozenDistribution] = part("tool_durations", "domain")
    model_calls: dict[tuple[str, str, str, str], int] = part("model_calls", "model")
    model_tokens: dict[tuple[str, str, str], int] = part("model_tokens", "model")
    model_cost: dict[tuple[str, str], float] = part("model_cost", "model")
    model_durations: dict[tuple[str, str], FrozenDistribution] = part("model_durations", "model")
    model_ttft: dict[tuple[str, str], FrozenDistribution] = part("model_ttft", "model")

    # One pass over the executions: per profile [succeeded, failed], and per error type.
    by_outcome: dict[str, list[int]] = {}
    error_counts: dict[str, int] = {}
    for (p, outcome, et), v in executions.items():
        failure = outcome == "failure"
        by_outcome.setdefault(p, [0, 0])[failure] += v
        if failure:
            error_counts[et] = error_counts.get(et, 0) + v
    succeeded = sum(ok for ok, _ in by_outcome.values())
    failed = sum(bad for _, bad in by_outcome.values())
    total = succeeded + failed
    p50, p95, p99 = merged_quantiles(durations.values(), [0.5, 0.95, 0.99])
    duration_count = sum(d.count for d in durations.values())
    duration_sum = sum(d.sum for d in durations.values())
    step_count = sum(d.count for d in steps.values())
    step_sum = sum(d.sum for d in steps.values())
    util_count = sum(d.count for d in utilization.values())
    util_sum = sum(d.sum for d in utilization.values())

    # Profiles
    profiles: list[ProfileRow] = []
    durations_of: dict[str, list[FrozenDistribution]] = {}
    for (p, _), dist in durations.items():
        durations_of.setdefault(p, []).append(dist)
    for p in sorted(by_outcome):
        ok, bad = by_outcome[p]
        profiles.append(
            ProfileRow(
                profile=p,
                total=ok + bad,
                succeeded=ok,
                failed=bad,
                success_rate=_ratio(ok, ok + bad),
                latency_p95=_p95(durations_of.get(p, [])),
                budget_spent=spent.get(p, 0.0),
                budget_exceeded=exceeded.get(p, 0),
            )
        )

    # Tools and domains
    per_tool: dict[tuple[str, str], dict[str, int]] = {}
    for (d, t, status), v in tool_calls.items():
        per_tool.setdefault((d, t), {"success": 0, "error": 0, "skipped": 0})[status] += v

    def row(
        d: str, t: str, counts: Iterable[dict[str, int]], dists: Iterable[FrozenDistribution]
    ) -> ToolRow:
        ok = err = skipped = 0
        for c in counts:
            ok, err, skipped = ok + c["success"], err + c["error"], skipped + c["skipped"]
        return ToolRow(d, t, ok + err + skipped, err, skipped, _ratio(err, ok + err), _p95(dists))

    tools = [
        row(d, t, [c], [tool_durations[(d, t)]] if (d, t) in tool_durations else [])
        for (d, t), c in sorted(per_tool.items())
    ]
    counts_of: dict[str, list[dict[str, int]]] = {}
    for (d, _), c in per_tool.items():
        counts_of.setdefault(d, []).append(c)
    dists_of: dict[str, list[FrozenDistribution]] = {}
    for (d, _), x in tool_durations.items():
        dists_of.setdefault(d, []).append(x)
    domains = [row(d, "", counts_of[d], dists_of.get(d, [])) for d in sorted(counts_of)]
    ran = sum(r.calls - r.skipped for r in domains)
    tool_errors = sum(r.errors for r in domains)

    # Errors, budget, approvals
    error_types = sorted(error_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    budget_spent = sum(spent.values())
    by_decision = []
    for decision in DECISIONS:
        ds = [x for (_, dec), x in approvals.items() if dec == decision]
        by_decision.append(DecisionRow(decision, sum(x.count for x in ds), _p95(ds)))
    wait_p50, wait_p95 = merged_quantiles(approvals.values(), [0.5, 0.95])

    # Models
    per_model: dict[tuple[str, str], dict[str, int]] = {}
    for (prov, mod, _, status), v in model_calls.items():
        per_model.setdefault((prov, mod), {"success": 0, "error": 0, "rate_limited": 0})[
            status
        ] += v
    tokens_of: dict[tuple[str, str], dict[str, int]] = {}
    for (prov, mod, token_type), v in model_tokens.items():
        tokens_of.setdefault((prov, mod), {})[token_type] = v
    models: list[ModelRow] = []
    for key, c in sorted(per_model.items()):
        toks = tokens_of.get(key, {})
        dur = [model_durations[key]] if key in model_durations else []
        lat50, lat95 = merged_quantiles(dur, [0.5, 0.95])
        models.append(
            ModelRow(
                provider=key[0],
                model=key[1],
                calls=sum(c.values()),
                errors=c["error"],
                rate_limited=c["rate_limited"],
                input_tokens=toks.get("input", 0),
                output_tokens=toks.get("output", 0),
                cached_input_tokens=toks.get("cached_input", 0),
                reasoning_tokens=toks.get("reasoning", 0),
                cost=model_cost.get(key, 0.0),
                latency_p50=lat50,
                latency_p95=lat95,
                ttft_p95=_p95([model_ttft[key]] if key in model_ttft else []),
            )
        )
    model_call_count = sum(r.calls for r in models)
    tokens = sum(r.input_tokens + r.output_tokens for r in models)
    cost = sum(model_cost.values())
    # Model figures are not split by profile: per execution means per execution of the window.
    all_executions = sum(cur.executions.values())

    # Times
    if profile:
        first = state.first_by_profile.get(profile)
        last = cur.last_execution.get(profile)
    else:
        first = state.first_execution
        last = max(cur.last_execution.values(), default=None)
    if total == 0:
        first = last = None
    seconds = state.end - state.start
    ingest = cur.ingest

    return Dashboard(
        window_start=state.start,
        window_end=state.end,
        total=total,
        succeeded=succeeded,
        failed=failed,
        total_steps=int(step_sum),
        success_rate=_ratio(succeeded, total),
        error_rate=_ratio(failed, total),
        tool_error_rate=_ratio(tool_errors, ran),
        budget_utilization=_ratio(util_sum, util_count),
        latency_p50=p50,
        latency_p95=p95,
        latency_p99=p99,
        latency_mean=_ratio(duration_sum, duration_count),
        mean_steps=_ratio(step_sum, step_count),
        approval_wait_p50=wait_p50,
        approval_wait_p95=wait_p95,
        throughput=_ratio(total, seconds) if total else None,
        profiles=profiles,
        domains=domains,
        tools=tools,
        error_types=error_types,
        budget_spent=budget_spent,
        budget_mean_spent=_ratio(budget_spent, util_count),
        budget_exceeded=sum(exceeded.values()),
        budget_executions=util_count,
        approvals_total=sum(r.count for r in by_decision),
        approvals=by_decision,
        first_execution=first,
        last_execution=last,
        ingest={r: ingest.get(r, 0) for r in ("accepted", "duplicate", "rejected")},
        models=models,
        tokens_per_execution=_ratio(tokens, all_executions) if model_call_count else None,
        cost_per_execution=_ratio(cost, all_executions) if model_cost else None,
        model_error_rate=_ratio(sum(r.errors for r in models), model_call_count),
        tokens_per_second=_ratio(tokens, seconds) if model_call_count else None,
    )
