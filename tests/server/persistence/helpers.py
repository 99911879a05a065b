"""Executions over the demo's label set, for the persistence tests."""

from __future__ import annotations

import random

from cugar_metrics.demo import PROFILES, TOOLS
from cugar_metrics.model import Approval, Budget, Execution, ToolCall

ERROR_TYPES = ("timeout", "rate_limited", "upstream_5xx", "invalid_response")
DECISIONS = ("approved", "denied", "timeout", "cancelled")
STATUSES = ("success", "success", "success", "error", "skipped")


def demo_execution(rng: random.Random, execution_id: str) -> Execution:
    """A random execution of a demo profile and tools (every kind of series gets data)."""
    profile = rng.choice(PROFILES)
    workflow = rng.choice(profile.workflows)
    failed = rng.random() < 0.15
    calls = tuple(
        ToolCall(
            name,
            TOOLS[name].domain,
            rng.choice(STATUSES),
            0.0 if rng.random() < 0.01 else rng.lognormvariate(-1, 1),
        )
        for name in workflow
    )
    approvals = tuple(
        Approval(rng.choice(DECISIONS), rng.uniform(0, 600), "execute")
        for _ in range(rng.choice((0, 0, 1, 2)))
    )
    spent = rng.uniform(0, profile.budget_limit * 1.2)
    return Execution(
        execution_id=execution_id,
        profile=profile.name,
        outcome="failure" if failed else "success",
        error_type=rng.choice(ERROR_TYPES) if failed else "",
        duration=rng.lognormvariate(1, 1),
        steps=len(calls),
        budget=Budget(spent, profile.budget_limit, spent > profile.budget_limit),
        approvals=approvals,
        tool_calls=calls,
    )
