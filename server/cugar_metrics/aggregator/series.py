"""Every series the aggregator keeps, declared once.

`SERIES` gives each one its snapshot field, Prometheus name and help, kind, labels, buckets
and sketch, the values a label may take, and how windows combine it. The aggregator's
storage, its snapshots, window slots and their merge, the state file (aggregator.persist),
the peer window state (aggregator.windowwire) and `/metrics` (exposition) are all derived
from this table; `GetDashboard` reads the snapshot fields by name.

Adding a series is one entry here and its mapping from the execution: either a line in
`Aggregator._apply` (the hot path, for series every execution touches), or an `observe`
function in the entry, which the aggregator calls for each accepted execution. Its tests
then say what it counts. The Prometheus names are a contract (../DESIGN.md): a series is
renamed only with a CHANGELOG entry that says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any, Final, Literal

from cugar_metrics.model import (
    CAPPED_LABELS,
    DECISIONS,
    INGEST_RESULTS,
    MODEL_OPERATIONS,
    MODEL_STATUSES,
    OUTCOMES,
    REJECTION_REASONS,
    TOKEN_TYPES,
    TOOL_STATUSES,
    Execution,
)

# Histogram buckets (upper bounds, seconds or plain numbers), chosen for agent work.
EXECUTION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
APPROVAL_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
STEP_BUCKETS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377)
UTILIZATION_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.5, 2.0)
MODEL_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

Kind = Literal["counter", "histogram", "gauge"]
#: How the windows of a series combine: `sum` (what changed in each slot is added up; a
#: window holds what happened in it), `latest` (the latest value per key: a timestamp) or
#: `last` (the value at the window's end).
Window = Literal["sum", "latest", "last"]


@dataclass(frozen=True, slots=True)
class Series:
    #: The snapshot field, and the member of the state file and of the peer window state.
    field: str
    #: The Prometheus family name and help text.
    metric: str
    help: str
    kind: Kind
    #: Label names; a key is the value itself for one label, a tuple for several, and
    #: nothing for none (the series is one number).
    labels: tuple[str, ...]
    #: Histogram bucket upper bounds (+Inf implied), and the name under which a state file
    #: records them (a file with other bounds is not restored).
    buckets: tuple[float, ...] = ()
    layout: str = ""
    #: A histogram also keeps a DDSketch for quantiles (windowed, mergeable, 1 % accurate).
    sketch: bool = False
    #: Counter values are floats (cost, budget), not integers.
    floats: bool = False
    #: Labels that take only these values (a state file or a peer with another is refused).
    closed: Mapping[str, tuple[str, ...]] = _field(default_factory=dict)
    #: A one-label counter whose keys are exactly these, from zero, in this order.
    fixed: tuple[str, ...] = ()
    #: Keys of `fixed` that a state file written before they existed may lack.
    fixed_added: tuple[str, ...] = ()
    window: Window = "sum"
    #: In the state file: `section`, its own section (one that cannot be restored is dropped
    #: alone and reported); `core`, with the file (a bad value refuses the file); `no`,
    #: derived from the rest of the state.
    saved: Literal["section", "core", "no"] = "section"
    #: The state-file feature that brought the series ("": the first format); a file
    #: written before it restores the series empty.
    since: str = ""
    #: On /metrics, summed over every label but these (None: all labels), every value of
    #: `closed` present; and a counter of the observations named here, before it.
    exposed_by: tuple[str, ...] | None = None
    count_metric: tuple[str, str] | None = None
    #: The mapping from an accepted execution, for a series `Aggregator._apply` does not
    #: update itself: called with the execution and its profile after the profile cap, it
    #: gives (key, value) pairs to add (a number for a counter, an observation for a
    #: histogram). Keys must be bounded: the capped profile, or closed values.
    observe: Callable[[Execution, str], Iterable[tuple[Any, float]]] | None = None

    @property
    def arity(self) -> int:
        return len(self.labels)


SERIES: Final[list[Series]] = [
    Series(
        "executions",
        "cugar_executions_total",
        "Finished executions recorded, by profile and outcome.",
        "counter",
        ("profile", "outcome", "error_type"),
        closed={"outcome": OUTCOMES},
    ),
    Series(
        "durations",
        "cugar_execution_duration_seconds",
        "Measured duration of finished executions.",
        "histogram",
        ("profile", "outcome"),
        EXECUTION_BUCKETS,
        "execution_buckets",
        sketch=True,
        closed={"outcome": OUTCOMES},
    ),
    Series(
        "steps",
        "cugar_execution_steps",
        "Steps per finished execution.",
        "histogram",
        ("profile",),
        STEP_BUCKETS,
        "step_buckets",
    ),
    Series(
        "tool_calls",
        "cugar_tool_calls_total",
        "Tool calls made by executions, by status.",
        "counter",
        ("domain", "tool", "status"),
        closed={"status": TOOL_STATUSES},
    ),
    Series(
        "tool_durations",
        "cugar_tool_call_duration_seconds",
        "Duration of tool calls that ran (skipped calls excluded).",
        "histogram",
        ("domain", "tool"),
        TOOL_BUCKETS,
        "tool_buckets",
        sketch=True,
    ),
    Series(
        "budget_spent",
        "cugar_budget_spent_total",
        "Budget cost units spent by executions.",
        "counter",
        ("profile",),
        floats=True,
    ),
    Series(
        "budget_utilization",
        "cugar_budget_utilization_ratio",
        "Budget spent / limit per execution that reported a budget.",
        "histogram",
        ("profile",),
        UTILIZATION_BUCKETS,
        "utilization_buckets",
    ),
    Series(
        "budget_exceeded",
        "cugar_budget_exceeded_total",
        "Executions that exceeded their budget.",
        "counter",
        ("profile",),
    ),
    Series(
        "approvals",
        "cugar_approval_wait_seconds",
        "Wait from an approval request to its decision.",
        "histogram",
        ("profile", "decision"),
        APPROVAL_BUCKETS,
        "approval_buckets",
        sketch=True,
        closed={"decision": DECISIONS},
        exposed_by=("decision",),
        count_metric=("cugar_approvals_total", "Human approval decisions, by decision."),
    ),
    # Model calls: provider/model pairs under the `model` cap, from zero once seen.
    Series(
        "model_calls",
        "cugar_model_calls_total",
        "Model calls made by executions, by operation and status.",
        "counter",
        ("provider", "model", "operation", "status"),
        closed={"operation": MODEL_OPERATIONS, "status": MODEL_STATUSES},
        since="model",
    ),
    Series(
        "model_tokens",
        "cugar_model_tokens_total",
        "Model tokens, by type (cached_input is part of input, reasoning part of output).",
        "counter",
        ("provider", "model", "type"),
        closed={"type": TOKEN_TYPES},
        since="model",
    ),
    Series(
        "model_durations",
        "cugar_model_call_duration_seconds",
        "Duration of model calls.",
        "histogram",
        ("provider", "model"),
        MODEL_BUCKETS,
        "model_buckets",
        sketch=True,
        since="model",
    ),
    Series(
        "model_ttft",
        "cugar_model_time_to_first_token_seconds",
        "Time to the first token of model calls that reported it.",
        "histogram",
        ("provider", "model"),
        TTFT_BUCKETS,
        "ttft_buckets",
        sketch=True,
        since="model",
    ),
    Series(
        "model_cost",
        "cugar_model_cost_total",
        "Cost of model calls that reported one, in the deployment's currency.",
        "counter",
        ("provider", "model"),
        floats=True,
        since="model",
    ),
    # Bounded label sets, in their declared order (created at zero at start-up).
    Series(
        "ingest",
        "cugar_ingest_executions_total",
        "Executions received by the Record RPCs, by result.",
        "counter",
        ("result",),
        fixed=INGEST_RESULTS,
        saved="core",
    ),
    Series(
        "rejections",
        "cugar_ingest_rejections_total",
        "Executions rejected by validation, by the reason of their first violation.",
        "counter",
        ("reason",),
        fixed=REJECTION_REASONS,
        fixed_added=("not_allowed",),
        saved="core",
    ),
    Series(
        "overflow",
        "cugar_label_overflow_total",
        "Label values folded into _overflow because their cardinality cap was reached.",
        "counter",
        ("label",),
        fixed=CAPPED_LABELS,
        fixed_added=("model",),
        saved="core",
    ),
    # Gauges: read at the end of a window.
    Series(
        "label_values",
        "cugar_label_values",
        "Distinct values kept per capped label.",
        "gauge",
        ("label",),
        fixed=CAPPED_LABELS,
        window="last",
        saved="no",
    ),
    Series(
        "last_execution",
        "cugar_last_execution_timestamp_seconds",
        "When the last execution of a profile was recorded.",
        "gauge",
        ("profile",),
        floats=True,
        window="latest",
    ),
    Series(
        "dedup_entries",
        "cugar_dedup_entries",
        "Execution ids remembered for deduplication.",
        "gauge",
        (),
        window="last",
        saved="no",
    ),
    Series(
        "dedup_evicted",
        "cugar_dedup_evictions_total",
        "Execution ids forgotten before the dedup horizon because of the entry cap.",
        "counter",
        (),
        window="last",
        saved="no",
    ),
]


def by_field() -> dict[str, Series]:
    return {s.field: s for s in SERIES}


def windowed(kind: Kind) -> tuple[str, ...]:
    """The fields of the `sum`-windowed series of one kind (counter or histogram)."""
    return tuple(s.field for s in SERIES if s.window == "sum" and s.kind == kind)


def empty_value(s: Series) -> Any:
    """A series' value with nothing recorded: 0 for one number, zeros for fixed keys."""
    if not s.labels:
        return 0
    return dict.fromkeys(s.fixed, 0)


__all__ = [
    "APPROVAL_BUCKETS",
    "EXECUTION_BUCKETS",
    "MODEL_BUCKETS",
    "SERIES",
    "STEP_BUCKETS",
    "TOOL_BUCKETS",
    "TTFT_BUCKETS",
    "UTILIZATION_BUCKETS",
    "Series",
    "by_field",
    "empty_value",
    "windowed",
]
