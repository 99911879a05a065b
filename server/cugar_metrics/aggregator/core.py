"""The aggregator: the one source of truth behind /metrics and GetDashboard.

Pure: no gRPC, no prometheus_client, no I/O; every method takes `now` (seconds since the
epoch) from its caller. State grows with the cardinality caps and the dedup horizon, never
with the number of executions, and holds no payload.

Windows: every 10 seconds (lazily, on the first call after a boundary) the aggregator takes
what changed in the 10 s that ended (the state now minus the state at the previous boundary)
and keeps it as a *slot*: the counters that changed and, per distribution that changed, its
count, sum and sketch keys (at most `sketch.SLOT_BINS` of them). Slots grow coarser with age:
10-s slots for the last 5 minutes, 1-minute slots up to 15 minutes back, 5-minute slots up to
65 minutes back. Memory is bounded by the caps (series x slots x bins), whatever the traffic.
A window is the sum of the slots from its start, plus what changed since the last boundary;
its start is rounded down to a slot boundary (10 s within the last 5 minutes, 1 minute up to
15 minutes, 5 minutes beyond). Counts are exact; quantiles keep the sketch's 1 % accuracy
(see sketch.py for collapsed keys).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cugar_metrics.aggregator.dedup import DedupIndex, DedupState, id_hash
from cugar_metrics.aggregator.series import (
    APPROVAL_BUCKETS,
    EXECUTION_BUCKETS,
    MODEL_BUCKETS,
    SERIES,
    STEP_BUCKETS,
    TOOL_BUCKETS,
    TTFT_BUCKETS,
    UTILIZATION_BUCKETS,
    Series,
    by_field,
    empty_value,
    windowed,
)
from cugar_metrics.aggregator.sketch import (
    SLOT_BINS,
    Distribution,
    FrozenDistribution,
    compact,
    merge,
    shrink,
)
from cugar_metrics.model import (
    CAPPED_LABELS,
    DECISIONS,
    MODEL_STATUSES,
    OVERFLOW,
    TOKEN_TYPES,
    Execution,
    ModelCall,
    RecordResult,
)

#: Window granularity (seconds) and the longest window served.
CHECKPOINT_SECONDS = 10
MAX_WINDOW_SECONDS = 3600
#: Slot tiers, in 10-s ticks: a tick older than FINE_TICKS goes into its 1-minute slot, a
#: 1-minute slot older than MINUTE_UNTIL into its 5-minute slot; 5-minute slots are dropped
#: once no window of MAX_WINDOW_SECONDS can reach them.
FINE_TICKS = 30
MINUTE = 6
MINUTE_UNTIL = 90
FIVE_MINUTES = 30
_KEEP_TICKS = MAX_WINDOW_SECONDS // CHECKPOINT_SECONDS + FIVE_MINUTES


@dataclass(frozen=True, slots=True)
class Caps:
    """Maximum distinct values kept per label-bound name (tool caps domain/tool pairs)."""

    profile: int = 50
    domain: int = 20
    tool: int = 200
    error_type: int = 100
    #: provider/model pairs
    model: int = 50


class Snapshot:
    """The aggregator's cumulative state at one instant: its `time`, and one value per series
    of `series.SERIES`, read by the series' field (`snapshot.executions`). Immutable.

    A series with labels is a dict from its key (the label value, or a tuple of them) to a
    number (counters, gauges) or a FrozenDistribution (histograms); one without labels is a
    number. The annotations below type the fields the code reads by name; every series of
    the table is there whether annotated or not.
    """

    __slots__ = ("time", "values")

    if TYPE_CHECKING:
        #: (profile, outcome, error_type) -> executions
        executions: dict[tuple[str, str, str], int]
        #: (profile, outcome) -> execution duration (seconds)
        durations: dict[tuple[str, str], FrozenDistribution]
        #: profile -> steps per execution
        steps: dict[str, FrozenDistribution]
        #: (domain, tool, status) -> tool calls
        tool_calls: dict[tuple[str, str, str], int]
        #: (domain, tool) -> duration of the calls that ran (seconds)
        tool_durations: dict[tuple[str, str], FrozenDistribution]
        #: profile -> cost units spent
        budget_spent: dict[str, float]
        #: profile -> spent / limit per execution that reported a budget
        budget_utilization: dict[str, FrozenDistribution]
        #: profile -> executions that exceeded their budget
        budget_exceeded: dict[str, int]
        #: (profile, decision) -> approval wait (seconds)
        approvals: dict[tuple[str, str], FrozenDistribution]
        #: (provider, model, operation, status) -> model calls
        model_calls: dict[tuple[str, str, str, str], int]
        #: (provider, model, token type) -> tokens
        model_tokens: dict[tuple[str, str, str], int]
        #: (provider, model) -> call duration (seconds)
        model_durations: dict[tuple[str, str], FrozenDistribution]
        #: (provider, model) -> time to first token (seconds), over the calls that reported one
        model_ttft: dict[tuple[str, str], FrozenDistribution]
        #: (provider, model) -> cost, over the calls that reported one
        model_cost: dict[tuple[str, str], float]
        #: accepted / duplicate / rejected -> executions
        ingest: dict[str, int]
        #: rejection reason -> executions
        rejections: dict[str, int]
        #: label -> values folded into `_overflow`
        overflow: dict[str, int]
        #: label -> distinct values kept
        label_values: dict[str, int]
        #: profile -> time of its last execution
        last_execution: dict[str, float]
        dedup_entries: int
        dedup_evicted: int

    time: float
    values: Mapping[str, Any]

    def __init__(self, time: float, **values: Any) -> None:
        if values.keys() != _FIELDS.keys():
            missing = sorted(_FIELDS.keys() - values.keys())
            unknown = sorted(values.keys() - _FIELDS.keys())
            raise TypeError(f"Snapshot: missing series {missing}, unknown {unknown}")
        object.__setattr__(self, "time", time)
        object.__setattr__(self, "values", {f: values[f] for f in _FIELDS})

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"Snapshot has no series {name!r}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Snapshot is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        return self.time == other.time and self.values == other.values

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        series = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"Snapshot(time={self.time!r}, {series})"

    def replace(self, **values: Any) -> Snapshot:
        """This snapshot with some series replaced."""
        return Snapshot(self.time, **{**self.values, **values})


#: Every series by its field, in the table's order.
_FIELDS: dict[str, Series] = by_field()


class _ProfileSeries:
    """The per-profile series an execution updates, found with one lookup."""

    __slots__ = ("durations", "profile", "steps")

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.durations = {o: Distribution(EXECUTION_BUCKETS) for o in ("success", "failure")}
        self.steps = Distribution(STEP_BUCKETS, sketch=False)


#: The Snapshot fields that windows keep, by kind: counters (what changed is added up) and
#: distributions (count, sum and sketch keys added up). The other fields are gauges, read at
#: the end of the window.
WINDOWED_COUNTERS = windowed("counter")
WINDOWED_DISTRIBUTIONS = windowed("histogram")
_GAUGES = tuple(s.field for s in SERIES if s.window != "sum")


def _empty_part(time: float) -> dict[str, Any]:
    fields: dict[str, Any] = {f: empty_value(_FIELDS[f]) for f in _GAUGES}
    fields["time"] = time
    return fields


def delta(current: Snapshot, earlier: Snapshot) -> Snapshot:
    """What changed from `earlier` to `current` (two states of one aggregator) in the windowed
    fields, in the small form a slot keeps (only what changed; sketches compacted). Gauges are
    left empty."""
    fields = _empty_part(current.time)
    for name in WINDOWED_COUNTERS:
        cur: dict[Any, float] = getattr(current, name)
        old: dict[Any, float] = getattr(earlier, name)
        fields[name] = {k: v - old.get(k, 0) for k, v in cur.items() if v != old.get(k, 0)}
    for name in WINDOWED_DISTRIBUTIONS:
        curd: dict[Any, FrozenDistribution] = getattr(current, name)
        oldd: dict[Any, FrozenDistribution] = getattr(earlier, name)
        out = {}
        for k, d in curd.items():
            o = oldd.get(k)
            if d is not o and (o is None or d.count != o.count):
                out[k] = compact(d.minus(o), SLOT_BINS)
        fields[name] = out
    return Snapshot(**fields)


def subtract_parts(total: Snapshot, part: Snapshot) -> Snapshot:
    """`total` without `part` (a part that was added to it): the inverse of merge_parts on
    the windowed fields; series left empty are dropped, sketches trimmed to their keys."""
    fields = _empty_part(total.time)
    for name in WINDOWED_COUNTERS:
        acc: dict[Any, float] = dict(getattr(total, name))
        for k, v in getattr(part, name).items():
            left = acc[k] - v
            if left:
                acc[k] = left
            else:
                del acc[k]
        fields[name] = acc
    for name in WINDOWED_DISTRIBUTIONS:
        dists: dict[Any, FrozenDistribution] = dict(getattr(total, name))
        for k, d in getattr(part, name).items():
            left = dists[k].minus(d)
            if left.count:
                dists[k] = shrink(left)
            else:
                del dists[k]
        fields[name] = dists
    return Snapshot(**fields)


def _shrunk(part: Snapshot) -> Snapshot:
    """`part` with each distribution's counts in the smallest integer type (a running sum)."""
    fields: dict[str, Any] = {
        n: {k: shrink(d) for k, d in getattr(part, n).items()} for n in WINDOWED_DISTRIBUTIONS
    }
    return part.replace(**fields)


def merge_gauges(parts: Sequence[Snapshot]) -> dict[str, Any]:
    """The time and gauges of the sum of `parts`, as each series' table entry says: the
    last part's values (`last`), or the latest value per key of all parts (`latest`)."""
    last = parts[-1]
    fields: dict[str, Any] = {"time": last.time}
    for name in _GAUGES:
        if _FIELDS[name].window == "latest":
            latest: dict[Any, float] = {}
            for p in parts:
                for k, t in getattr(p, name).items():
                    latest[k] = max(t, latest.get(k, t))
            fields[name] = latest
        else:
            fields[name] = getattr(last, name)
    return fields


def merge_parts(parts: Sequence[Snapshot], limit: int | None = SLOT_BINS) -> Snapshot:
    """The sum of window parts (slots, windows, or the windows of several replicas with the
    same mapping): counters added, distributions merged (sketch keys added, collapsed to
    `limit` keys if given). Gauges are taken from the last part, the last execution times
    are the latest of all parts."""
    fields = merge_gauges(parts)
    first, rest = parts[0], parts[1:]
    for name in WINDOWED_COUNTERS:
        acc: dict[Any, float] = dict(getattr(first, name))
        for p in rest:
            get = acc.get
            for k, v in getattr(p, name).items():
                acc[k] = get(k, 0) + v
        fields[name] = acc
    for name in WINDOWED_DISTRIBUTIONS:
        groups: dict[Any, list[FrozenDistribution]] = {
            k: [d] for k, d in getattr(first, name).items()
        }
        for p in rest:
            for k, d in getattr(p, name).items():
                g = groups.get(k)
                if g is None:
                    groups[k] = [d]
                else:
                    g.append(d)
        fields[name] = {k: merge(g, limit) for k, g in groups.items()}
    return Snapshot(**fields)


@dataclass(frozen=True)
class _Slot:
    """What changed in ticks [start, start + span) of 10 s, and when the first executions in
    them were recorded, overall and per profile."""

    start: int
    part: Snapshot
    first_execution: float | None
    first_by_profile: dict[str, float]

    def absorb(self, later: _Slot, start: int) -> _Slot:
        first_by_profile = dict(later.first_by_profile)
        first_by_profile.update(self.first_by_profile)  # the earlier time wins
        return _Slot(
            start,
            merge_parts([self.part, later.part]),
            self.first_execution if self.first_execution is not None else later.first_execution,
            first_by_profile,
        )


@dataclass(frozen=True)
class SavedState:
    """Everything the aggregator needs to continue after a restart (see aggregator.persist).

    The window slots are not part of it: after a restore, windows start at the restore.
    """

    #: When the state was taken; the snapshot's time.
    saved_at: float
    #: The original start of the aggregator (the "since start" window keeps it).
    start_time: float
    snapshot: Snapshot
    #: label -> distinct values kept (the values, not only their number)
    label_values: dict[str, frozenset[str]]
    first_execution: float | None
    first_by_profile: dict[str, float]
    dedup: DedupState
    #: agent -> label -> the values it introduced, under --max-values-per-agent (kept by the
    #: server's label policy, not the aggregator; saved with the rest)
    agent_values: Mapping[str, Mapping[str, frozenset[str]]] = dataclasses.field(
        default_factory=dict
    )


@dataclass(frozen=True)
class WindowState:
    """What happened between `start` and `end`.

    `current` holds the window's counters and distributions (since start: the cumulative
    state) and the gauges at `end`. Its windowed fields are plain counts and sketch keys, so
    the windows of several replicas merge with `merge_windows`.
    """

    start: float
    end: float
    current: Snapshot
    first_execution: float | None
    first_by_profile: dict[str, float]


class Aggregator:
    def __init__(
        self,
        *,
        start_time: float,
        caps: Caps | None = None,
        dedup_horizon: float = 600.0,
        dedup_max_entries: int = 5_000_000,
    ) -> None:
        self.start_time = start_time
        self.caps = caps or Caps()
        self._lock = threading.Lock()
        self._dedup = DedupIndex(dedup_horizon, dedup_max_entries)
        self._values: dict[str, set[str]] = {label: set() for label in CAPPED_LABELS}
        self._limits = {label: getattr(self.caps, label) for label in CAPPED_LABELS}
        #: The live value of every `sum`-windowed series, by field: a dict from key to a
        #: number or a Distribution (see series.py). The hot path keeps its own references
        #: to the dicts it updates; they are never replaced, only cleared and refilled.
        self._data: dict[str, dict[Any, Any]] = {
            s.field: empty_value(s) for s in SERIES if s.window == "sum"
        }
        self._observed = [s for s in SERIES if s.observe is not None]
        self._executions: dict[tuple[str, str, str], int] = self._data["executions"]
        self._durations: dict[tuple[str, str], Distribution] = self._data["durations"]
        self._steps: dict[str, Distribution] = self._data["steps"]
        self._tool_calls: dict[tuple[str, str, str], int] = self._data["tool_calls"]
        self._tool_durations: dict[tuple[str, str], Distribution] = self._data["tool_durations"]
        self._budget_spent: dict[str, float] = self._data["budget_spent"]
        self._budget_util: dict[str, Distribution] = self._data["budget_utilization"]
        self._budget_exceeded: dict[str, int] = self._data["budget_exceeded"]
        self._approvals: dict[tuple[str, str], Distribution] = self._data["approvals"]
        self._model_calls: dict[tuple[str, str, str, str], int] = self._data["model_calls"]
        self._model_tokens: dict[tuple[str, str, str], int] = self._data["model_tokens"]
        self._model_cost: dict[tuple[str, str], float] = self._data["model_cost"]
        self._model_durations: dict[tuple[str, str], Distribution] = self._data["model_durations"]
        self._model_ttft: dict[tuple[str, str], Distribution] = self._data["model_ttft"]
        self._ingest: dict[str, int] = self._data["ingest"]
        self._rejections: dict[str, int] = self._data["rejections"]
        self._overflow: dict[str, int] = self._data["overflow"]
        self._models: dict[tuple[str, str], tuple[str, str]] = {}
        self._last_execution: dict[str, float] = {}
        #: Slots by the tick they start at: 10-s, 1-minute and 5-minute ones.
        self._fine: dict[int, _Slot] = {}
        self._minutes: dict[int, _Slot] = {}
        self._fives: dict[int, _Slot] = {}
        #: Ticks below _fine_from are in 1-minute slots, below _minutes_from in 5-minute ones.
        self._fine_from = 0
        self._minutes_from = 0
        #: The state at the last boundary, and the first executions since it.
        self._prev: Snapshot | None = None
        self._cur_first: float | None = None
        self._cur_first_by_profile: dict[str, float] = {}
        self._last_index = int(start_time // CHECKPOINT_SECONDS)
        #: Sums of the closed slots from a window start, valid until the next boundary (a
        #: dashboard polled many times per 10 s merges its slots once).
        self._sums: dict[int, _Slot] = {}
        #: The running sum of each tier's slots (None: no slot), so that a window covering
        #: most of a tier subtracts the few slots it leaves out instead of adding the others.
        self._totals: dict[str, Snapshot | None] = {"fine": None, "minutes": None, "fives": None}
        self._tools: dict[tuple[str, str], tuple[str, str]] = {}
        self._profiles: dict[str, _ProfileSeries] = {}
        self._first_ever: float | None = None
        self._first_ever_by_profile: dict[str, float] = {}
        #: When the state was restored from a saved one (None: never); windows start there.
        self.restored_at: float | None = None
        self._restored_index: int | None = None

    # --- writes -------------------------------------------------------------------------

    def record(
        self, executions: Sequence[Execution], now: float, agent: str | None = None
    ) -> list[RecordResult]:
        """Records valid executions; returns accepted/duplicate for each, in order. With
        `agent` (the authenticated caller), ids are remembered per agent: one agent's id never
        makes another's execution a duplicate."""
        if agent:
            hashes = [id_hash(f"{agent}\x00{e.execution_id}") for e in executions]
        else:
            hashes = [id_hash(e.execution_id) for e in executions]
        with self._lock:
            self._advance(now)
            seen = self._dedup.check_and_add(hashes, now)
            results: list[RecordResult] = []
            for execution, duplicate in zip(executions, seen, strict=True):
                if duplicate:
                    self._ingest["duplicate"] += 1
                    results.append("duplicate")
                else:
                    self._apply(execution, now)
                    self._ingest["accepted"] += 1
                    results.append("accepted")
            return results

    def reject(self, reasons: Sequence[str], now: float) -> None:
        """Counts rejected executions, one reason each (see model.REJECTION_REASONS)."""
        if not reasons:
            return
        with self._lock:
            self._advance(now)
            self._ingest["rejected"] += len(reasons)
            for reason in reasons:
                self._rejections[reason] += 1

    def record_model_calls(self, calls: Sequence[tuple[str, ModelCall]], now: float) -> int:
        """Records valid model calls that belong to no execution (an OpenTelemetry model span
        with no agent span above it), each with an id: they count in the model series only,
        and an id seen within the dedup horizon counts once. Returns how many were new."""
        if not calls:
            return 0
        hashes = [id_hash(call_id) for call_id, _ in calls]
        with self._lock:
            self._advance(now)
            seen = self._dedup.check_and_add(hashes, now)
            new = 0
            for (_, call), duplicate in zip(calls, seen, strict=True):
                if not duplicate:
                    self._apply_model_call(call)
                    new += 1
            return new

    def _fold(self, label: str, value: str) -> str:
        values = self._values[label]
        if value in values:
            return value
        if len(values) < self._limits[label]:
            values.add(value)
            return value
        self._overflow[label] += 1
        return OVERFLOW

    def _tool_series(self, domain: str, tool: str) -> tuple[str, str]:
        """The folded (domain, tool) of a call, cached per pair."""
        cached = self._tools.get((domain, tool))
        if cached is not None:
            return cached
        folded_domain = self._fold("domain", domain)
        pair = f"{folded_domain}\x00{tool}"
        folded_tool = tool if self._fold("tool", pair) != OVERFLOW else OVERFLOW
        series = (folded_domain, folded_tool)
        if folded_domain != OVERFLOW and folded_tool != OVERFLOW:
            self._tools[(domain, tool)] = series  # bounded by the caps
        return series

    def _model_series(self, provider: str, model: str) -> tuple[str, str]:
        """The folded (provider, model) of a call: past the cap, both are `_overflow`."""
        cached = self._models.get((provider, model))
        if cached is not None:
            return cached
        if self._fold("model", f"{provider}\x00{model}") == OVERFLOW:
            return (OVERFLOW, OVERFLOW)
        series = self._models[(provider, model)] = (provider, model)  # bounded by the cap
        return series

    def _apply_model_call(self, c: ModelCall) -> None:
        series = self._model_series(c.provider, c.model)
        provider, model = series
        key = (provider, model, c.operation, c.status)
        calls = self._model_calls
        if key not in calls:  # every status of an operation from zero, so rate() sees the first
            for status in MODEL_STATUSES:
                calls.setdefault((provider, model, c.operation, status), 0)
        calls[key] += 1
        tokens = self._model_tokens
        for token_type, n in zip(
            TOKEN_TYPES,
            (c.input_tokens, c.output_tokens, c.cached_input_tokens, c.reasoning_tokens),
            strict=True,
        ):
            tkey = (provider, model, token_type)
            if n or tkey not in tokens:
                tokens[tkey] = tokens.get(tkey, 0) + n
        if c.cost is not None:
            self._model_cost[series] = self._model_cost.get(series, 0.0) + c.cost
        durations = self._model_durations.get(series)
        if durations is None:
            durations = self._model_durations[series] = Distribution(MODEL_BUCKETS)
            self._model_ttft[series] = Distribution(TTFT_BUCKETS)
            self._model_cost.setdefault(series, 0.0)
        durations.observe(c.duration)
        if c.time_to_first_token is not None:
            self._model_ttft[series].observe(c.time_to_first_token)

    def _profile_series(self, profile: str) -> _ProfileSeries:
        cached = self._profiles.get(profile)
        if cached is not None:
            return cached
        folded = self._fold("profile", profile)
        series = self._profiles.get(folded)
        if series is None:
            series = _ProfileSeries(folded)
            self._steps[folded] = series.steps
            self._durations[(folded, "success")] = series.durations["success"]
            self._durations[(folded, "failure")] = series.durations["failure"]
            # Keyed by the folded name: at most the cap plus one entry.
            self._profiles[folded] = series
        return series

    def _apply(self, e: Execution, now: float) -> None:
        ps = self._profile_series(e.profile)
        profile = ps.profile
        error_type = e.error_type
        if error_type and error_type not in self._values["error_type"]:
            error_type = self._fold("error_type", error_type)
        key = (profile, e.outcome, error_type)
        executions = self._executions
        executions[key] = executions.get(key, 0) + 1
        ps.durations[e.outcome].observe(e.duration)
        ps.steps.observe(e.steps)
        b = e.budget
        if b is not None:
            self._budget_spent[profile] = self._budget_spent.get(profile, 0.0) + b.spent
            util = self._budget_util.get(profile)
            if util is None:
                util = self._budget_util[profile] = Distribution(UTILIZATION_BUCKETS, sketch=False)
            util.observe(b.spent / b.limit)
            if b.exceeded:
                self._budget_exceeded[profile] = self._budget_exceeded.get(profile, 0) + 1
        for a in e.approvals:
            akey = (profile, a.decision)
            adist = self._approvals.get(akey)
            if adist is None:
                adist = self._approvals[akey] = Distribution(APPROVAL_BUCKETS)
            adist.observe(a.wait)
        tool_calls = self._tool_calls
        tool_durations = self._tool_durations
        for t in e.tool_calls:
            series = self._tool_series(t.domain, t.tool)
            tkey = (*series, t.status)
            tool_calls[tkey] = tool_calls.get(tkey, 0) + 1
            if t.status != "skipped":
                tdist = tool_durations.get(series)
                if tdist is None:
                    tdist = tool_durations[series] = Distribution(TOOL_BUCKETS)
                tdist.observe(t.duration)
        for c in e.model_calls:
            self._apply_model_call(c)
        for observed in self._observed:
            self._observe(observed, e, profile)
        self._last_execution[profile] = now
        if self._first_ever is None:
            self._first_ever = now
        if profile not in self._first_ever_by_profile:
            self._first_ever_by_profile[profile] = now
        if self._cur_first is None:
            self._cur_first = now
        if profile not in self._cur_first_by_profile:
            self._cur_first_by_profile[profile] = now

    def _observe(self, series: Series, e: Execution, profile: str) -> None:
        """A series mapped by its table entry's `observe` (series.py)."""
        assert series.observe is not None
        values = self._data[series.field]
        for key, value in series.observe(e, profile):
            if series.kind == "histogram":
                d = values.get(key)
                if d is None:
                    d = values[key] = Distribution(series.buckets, sketch=series.sketch)
                d.observe(value)
            else:
                values[key] = values.get(key, 0) + value

    # --- window slots -------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        index = int(now // CHECKPOINT_SECONDS)
        if self._prev is not None and index <= self._last_index:
            return
        # This is the first call since the boundary `index * 10 s`, so the state now is the
        # state at that boundary (and at every boundary since the previous call): what
        # changed since the previous boundary happened in tick `_last_index`.
        snap = self._snapshot(now)
        if self._prev is not None:
            slot = self._live_slot(snap)
            if slot is not None:
                self._put("fine", slot.start, slot)
        self._prev = snap
        self._cur_first = None
        self._cur_first_by_profile = {}
        self._last_index = index
        self._sums = {}
        self._coarsen(index)

    def _live_slot(self, snap: Snapshot) -> _Slot | None:
        """What changed since the last boundary (None: nothing)."""
        assert self._prev is not None
        part = delta(snap, self._prev)
        if not any(getattr(part, n) for n in WINDOWED_COUNTERS + WINDOWED_DISTRIBUTIONS):
            return None
        return _Slot(self._last_index, part, self._cur_first, dict(self._cur_first_by_profile))

    def _coarsen(self, index: int) -> None:
        """Moves aged 10-s slots into 1-minute ones, aged 1-minute slots into 5-minute ones,
        and drops 5-minute slots no window reaches."""
        self._fine_from = index - FINE_TICKS
        for tick in sorted(t for t in self._fine if t < self._fine_from):
            self._put("minutes", tick - tick % MINUTE, self._take("fine", tick))
        self._minutes_from = max(self._minutes_from, (index - MINUTE_UNTIL) // MINUTE * MINUTE)
        for tick in sorted(t for t in self._minutes if t < self._minutes_from):
            self._put("fives", tick - tick % FIVE_MINUTES, self._take("minutes", tick))
        for tick in [t for t in self._fives if t + FIVE_MINUTES <= index - _KEEP_TICKS]:
            self._take("fives", tick)

    def _tier(self, name: str) -> dict[int, _Slot]:
        return {"fine": self._fine, "minutes": self._minutes, "fives": self._fives}[name]

    def _put(self, name: str, start: int, slot: _Slot) -> None:
        """Adds `slot` to the tier's slot at `start` (absorbed if there is one)."""
        tier = self._tier(name)
        held = tier.get(start)
        if held is None:
            new = _Slot(start, slot.part, slot.first_execution, slot.first_by_profile)
        else:
            new = held.absorb(slot, start)  # may collapse keys: the total follows the slot
            self._totals[name] = self._without(name, held)
        tier[start] = new
        total = self._totals[name]
        self._totals[name] = (
            new.part if total is None else _shrunk(merge_parts([total, new.part], limit=None))
        )

    def _take(self, name: str, start: int) -> _Slot:
        slot = self._tier(name).pop(start)
        self._totals[name] = self._without(name, slot)
        return slot

    def _without(self, name: str, slot: _Slot) -> Snapshot | None:
        total = self._totals[name]
        assert total is not None
        return subtract_parts(total, slot.part) if self._tier(name) else None

    def _closed_sum(self, boundary: int) -> _Slot:
        """The sum of the slots that start at or after `boundary`. Per tier: its running sum
        when every slot is in, the slots in when they are fewer than the slots out, else the
        running sum minus the slots out."""
        pieces: list[Snapshot] = []
        first: float | None = None
        first_by_profile: dict[str, float] = {}
        for name in ("fives", "minutes", "fine"):
            tier = self._tier(name)
            inside = [tier[t] for t in sorted(tier) if t >= boundary]
            for slot in inside:
                if first is None:
                    first = slot.first_execution
                for profile, t in slot.first_by_profile.items():
                    first_by_profile.setdefault(profile, t)
            outside = [tier[t] for t in tier if t < boundary]
            total = self._totals[name]
            if not inside or total is None:
                continue
            if not outside:
                pieces.append(total)
            elif len(inside) <= len(outside):
                pieces.extend(slot.part for slot in inside)
            else:
                for slot in outside:
                    total = subtract_parts(total, slot.part)
                pieces.append(total)
        assert self._prev is not None
        parts = pieces or [_gauges(self._prev)]
        return _Slot(boundary, merge_parts(parts, limit=None), first, first_by_profile)

    def _slot_boundary(self, tick: int) -> int:
        """The start of the slot that holds `tick` (a window's start is rounded down to it)."""
        if tick >= self._fine_from:
            return tick
        if tick >= self._minutes_from:
            return tick - tick % MINUTE
        return tick - tick % FIVE_MINUTES

    def slot_count(self) -> int:
        """Slots held (10-s, 1-minute and 5-minute): bounded, see the module docstring."""
        with self._lock:
            return len(self._fine) + len(self._minutes) + len(self._fives)

    # --- save and restore ---------------------------------------------------------------

    def export_state(self, now: float) -> SavedState:
        """The state to save (cheap: frozen distributions are shared, ids copied once)."""
        with self._lock:
            return SavedState(
                saved_at=now,
                start_time=self.start_time,
                snapshot=self._snapshot(now),
                label_values={label: frozenset(v) for label, v in self._values.items()},
                first_execution=self._first_ever,
                first_by_profile=dict(self._first_ever_by_profile),
                dedup=self._dedup.export(),
            )

    def restore(self, state: SavedState, now: float) -> None:
        """Continues from a saved state: every counter, distribution, label value and
        remembered id, and the original start time. Windows start at `now`."""
        s = state.snapshot
        with self._lock:
            self.start_time = state.start_time
            self._values = {
                label: set(state.label_values.get(label, ())) for label in CAPPED_LABELS
            }
            for series in SERIES:
                if series.window != "sum":
                    continue
                live = self._data[series.field]
                live.clear()
                saved = getattr(s, series.field)
                if series.kind == "histogram":
                    live.update(
                        (k, Distribution.thaw(series.buckets, d, sketch=series.sketch))
                        for k, d in saved.items()
                    )
                elif series.fixed:
                    live.update((k, saved.get(k, 0)) for k in series.fixed)
                else:
                    live.update(saved)
            # The hot path's caches, and the series it keeps together: a profile's durations
            # and steps (one lookup per execution), a model's durations and time to first
            # token.
            self._profiles = {}
            for profile in dict.fromkeys([p for p, _ in s.durations] + list(s.steps)):
                series_ = _ProfileSeries(profile)
                for outcome in ("success", "failure"):
                    thawed = self._durations.get((profile, outcome))
                    if thawed is not None:
                        series_.durations[outcome] = thawed
                    self._durations[(profile, outcome)] = series_.durations[outcome]
                thawed_steps = self._steps.get(profile)
                if thawed_steps is not None:
                    series_.steps = thawed_steps
                self._steps[profile] = series_.steps
                self._profiles[profile] = series_
            for k in self._model_durations:
                self._model_ttft.setdefault(k, Distribution(TTFT_BUCKETS))
            self._models = {}
            self._last_execution = dict(s.last_execution)
            self._tools = {}
            self._first_ever = state.first_execution
            self._first_ever_by_profile = dict(state.first_by_profile)
            self._dedup.restore(state.dedup, now)
            self.restored_at = now
            self._restored_index = int(now // CHECKPOINT_SECONDS)
            # Windows start afresh, from the restored state.
            self._fine.clear()
            self._minutes.clear()
            self._fives.clear()
            self._totals = dict.fromkeys(self._totals)
            self._prev = None
            self._advance(now)

    # --- reads --------------------------------------------------------------------------

    def snapshot(self, now: float) -> Snapshot:
        """The cumulative state now (for /metrics)."""
        with self._lock:
            return self._snapshot(now)

    def window(self, now: float, seconds: float | None) -> WindowState:
        """The state of the last `seconds` (its start rounded down to a slot boundary: 10 s
        within the last 5 minutes, 1 minute up to 15 minutes back, 5 minutes beyond), or since
        start. `seconds` is at most MAX_WINDOW_SECONDS."""
        if seconds is not None and seconds > MAX_WINDOW_SECONDS:
            raise ValueError(f"window of {seconds}s: at most {MAX_WINDOW_SECONDS}s")
        with self._lock:
            self._advance(now)
            current = self._snapshot(now)
            boundary = (
                None
                if seconds is None
                else self._slot_boundary(int((now - seconds) // CHECKPOINT_SECONDS))
            )
            if boundary is None or boundary * CHECKPOINT_SECONDS <= self.start_time:
                return WindowState(
                    self.start_time,
                    now,
                    current,
                    self._first_ever,
                    dict(self._first_ever_by_profile),
                )
            closed = self._sums.get(boundary)
            if closed is None:
                closed = self._closed_sum(boundary)
                if len(self._sums) >= 4:
                    self._sums.clear()
                self._sums[boundary] = closed
            slots = [closed]
            live = self._live_slot(current)
            if live is not None:
                slots.append(live)
            first: float | None = None
            first_by_profile: dict[str, float] = {}
            for slot in slots:
                if first is None:
                    first = slot.first_execution
                for profile, t in slot.first_by_profile.items():
                    first_by_profile.setdefault(profile, t)
            part = merge_parts([s.part for s in slots] + [_gauges(current)], limit=None)
            start: float = boundary * CHECKPOINT_SECONDS
            if (
                self.restored_at is not None
                and self._restored_index is not None
                and boundary <= self._restored_index
            ):
                # The window reaches back before a restore, whose window slots were not
                # saved: it starts at the restore (what happened since then is exact).
                start = max(start, self.restored_at)
            return WindowState(start, now, part, first, first_by_profile)

    def _snapshot(self, now: float) -> Snapshot:
        fields: dict[str, Any] = {}
        for series in SERIES:
            if series.window != "sum":
                continue
            live = self._data[series.field]
            if series.kind == "histogram":
                fields[series.field] = {k: d.freeze() for k, d in live.items()}
            else:
                fields[series.field] = dict(live)
        return Snapshot(
            now,
            **fields,
            last_execution=dict(self._last_execution),
            label_values={label: len(v) for label, v in self._values.items()},
            dedup_entries=len(self._dedup),
            dedup_evicted=self._dedup.evicted,
        )


def _gauges(s: Snapshot) -> Snapshot:
    """`s` with its gauges only (the last part of a window)."""
    fields: dict[str, Any] = {n: {} for n in WINDOWED_COUNTERS + WINDOWED_DISTRIBUTIONS}
    return Snapshot(s.time, **fields, **{n: getattr(s, n) for n in _GAUGES})


def merge_windows(windows: Iterable[WindowState]) -> WindowState:
    """One window from the windows of several replicas over the same interval: counters
    summed, distributions merged by adding sketch keys, the earliest first executions."""
    ws = list(windows)
    first_by_profile: dict[str, float] = {}
    for w in ws:
        for p, t in w.first_by_profile.items():
            first_by_profile[p] = min(t, first_by_profile.get(p, t))
    firsts = [w.first_execution for w in ws if w.first_execution is not None]
    return WindowState(
        min(w.start for w in ws),
        max(w.end for w in ws),
        merge_parts([w.current for w in ws], limit=None),
        min(firsts) if firsts else None,
        first_by_profile,
    )


__all__ = [
    "DECISIONS",
    "Aggregator",
    "Caps",
    "SavedState",
    "Snapshot",
    "WindowState",
    "delta",
    "merge_parts",
    "merge_windows",
]
