"""The label policy at its bounds: the per-agent cap counted within one execution, a refused
execution that claims nothing, and patterns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from cugar_metrics.labels import LabelPolicy, Rule
from cugar_metrics.model import OVERFLOW, ToolCall
from tests.conftest import execution


def call(tool: str, domain: str = "crm") -> ToolCall:
    return ToolCall(tool=tool, domain=domain, status="success", duration=0.1)


def folds(registry: CollectorRegistry, label: str, reason: str) -> float | None:
    return registry.get_sample_value("cugar_label_folds_total", {"label": label, "reason": reason})


def test_the_cap_counts_new_values_within_one_execution_once_each() -> None:
    """N=2: three distinct tools in one execution (one of them twice): the first two are
    kept, the third is _overflow; the domain is one value."""
    registry = CollectorRegistry()
    policy = LabelPolicy({}, 2, registry)
    e = execution("e-1", tool_calls=(call("a"), call("b"), call("a"), call("c")))
    applied, violation = policy.apply(e, "execution", "agent-a")
    assert violation is None and applied is not None
    assert [c.tool for c in applied.tool_calls] == ["a", "b", "a", OVERFLOW]
    assert [c.domain for c in applied.tool_calls] == ["crm"] * 4
    assert folds(registry, "tool", "agent_cap") == 1
    # Another agent has its own two; the first agent's kept values stay kept.
    applied, _ = policy.apply(e._replace(tool_calls=(call("d"), call("a"))), "x", "agent-b")
    assert applied is not None and [c.tool for c in applied.tool_calls] == ["d", "a"]
    applied, _ = policy.apply(e._replace(tool_calls=(call("b"), call("d"))), "x", "agent-a")
    assert applied is not None and [c.tool for c in applied.tool_calls] == ["b", OVERFLOW]


def test_a_refused_execution_claims_no_slot_and_counts_no_fold() -> None:
    registry = CollectorRegistry()
    policy = LabelPolicy(
        {"domain": Rule(("crm",), "reject"), "tool": Rule(("search_*",), "fold")}, 1, registry
    )
    refused = execution("e-1", profile="first", tool_calls=(call("other"), call("x", "evil")))
    applied, violation = policy.apply(refused, "executions[4]", "agent-a")
    assert applied is None and violation is not None
    assert (violation.field, violation.reason) == (
        "executions[4].tool_calls[1].domain",
        "NOT_ALLOWED",
    )
    assert folds(registry, "tool", "not_allowed") == 0
    # "first" was not claimed by the refused execution: "second" is the agent's one profile.
    applied, _ = policy.apply(execution("e-2", profile="second"), "execution", "agent-a")
    assert applied is not None and applied.profile == "second"
    applied, _ = policy.apply(
        execution("e-3", profile="first", tool_calls=(call("search_x"), call("lookup"))),
        "execution",
        "agent-a",
    )
    assert applied is not None and applied.profile == OVERFLOW
    # _other is not a new value of the agent: "lookup" folds to it past the one tool slot.
    assert [c.tool for c in applied.tool_calls] == ["search_x", "_other"]
    assert folds(registry, "tool", "not_allowed") == 1
    assert folds(registry, "profile", "agent_cap") == 1
