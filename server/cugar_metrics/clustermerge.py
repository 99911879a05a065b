"""The cluster's window: the windows of several replicas merged, with the label caps applied
after the merge.

Each replica caps its labels on its own (`--max-profiles` and the others), so replicas each
under a cap can together hold more distinct values than it. After the merge, a label past
its cap (the asking replica's caps) keeps the values with the most occurrences in the window,
ties broken by name (code point order; domain then tool for a pair, provider then model for
a model), and folds the others into `_overflow`, as a replica does past its cap:

- `profile`: executions; a folded profile's series (executions, durations, steps, budget,
  approvals, first and last execution times) become `_overflow`'s.
- `error_type`: failed executions with that error type.
- `domain`: tool calls in the domain; a folded domain keeps its tool names, as
  (`_overflow`, tool) pairs.
- `tool` (domain/tool pairs, after the domains were folded): tool calls of the pair; a
  folded pair becomes (domain, `_overflow`).
- `model` (provider/model pairs): model calls; a folded pair becomes (`_overflow`,
  `_overflow`).

`_overflow` itself is never folded and does not count against a cap. Counts are added up, so
every total stays exact; distributions merge by adding sketch keys, so the quantiles of a
folded row are those of the union of what it holds. The `overflow` counter of the merged
window adds what was folded here (executions or calls), and `label_values` holds the distinct
values kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from cugar_metrics.aggregator import Caps, Snapshot, WindowState, merge_windows
from cugar_metrics.aggregator.series import SERIES
from cugar_metrics.aggregator.sketch import FrozenDistribution, merge
from cugar_metrics.model import CAPPED_LABELS, OVERFLOW

K = TypeVar("K", bound=Hashable)

#: Snapshot fields keyed by profile first, by (domain, tool) first, by (provider, model)
#: first: the windowed series of the table by their first labels.
_WINDOWED = [s for s in SERIES if s.window == "sum"]
_PROFILE_FIELDS = tuple(s.field for s in _WINDOWED if s.labels[:1] == ("profile",))
_TOOL_FIELDS = tuple(s.field for s in _WINDOWED if s.labels[:2] == ("domain", "tool"))
_MODEL_FIELDS = tuple(s.field for s in _WINDOWED if s.labels[:2] == ("provider", "model"))


def merge_cluster(windows: Sequence[WindowState], caps: Caps) -> WindowState:
    """The windows of several replicas as one (aggregator.merge_windows), within `caps`."""
    return cap_window(merge_windows(windows), caps)


class ClusterMerger:
    """merge_cluster with the last results kept: a dashboard asked again (polled, or watched
    with other filters or intervals) while neither this replica's window nor any peer's
    state changed reuses the merged window instead of merging again. This replica's window
    is the same while its start, its 10-s tick and its ingest and model-call counts are (every
    record adds to them); a peer's is the same while its state body is (windowwire.BodyCache
    then hands back the same decoded series).

    At most `size` merged windows are kept, only those of the current tick: each holds every
    series of the cluster (at the caps, a few MiB of sketch counts)."""

    def __init__(self, caps: Caps, size: int = 8) -> None:
        self.caps = caps
        self._size = size
        self._kept: dict[tuple[Any, ...], tuple[WindowState, list[WindowState]]] = {}
        #: merges done and reused since start (for tests and the benchmark)
        self.merged = 0
        self.reused = 0

    def merge(self, own: WindowState, tick: int, peers: Sequence[WindowState]) -> WindowState:
        s = own.current
        key = (
            own.start,
            tick,
            sum(s.ingest.values()),
            sum(s.model_calls.values()),
            *((w.start, id(w.current.executions)) for w in peers),
        )
        kept = self._kept.get(key)
        if kept is not None and all(
            a.current.executions is b.current.executions
            for a, b in zip(kept[1], peers, strict=True)
        ):
            self.reused += 1
            state = kept[0]
            end = max(own.end, *(w.end for w in peers))
            return dataclasses.replace(
                state,
                end=end,
                current=Snapshot(peers[-1].current.time, **state.current.values),
            )
        state = merge_cluster([own, *peers], self.caps)
        self.merged += 1
        self._kept = {k: v for k, v in self._kept.items() if k[1] == tick}
        if len(self._kept) >= self._size:
            self._kept.clear()
        # The peers' states are kept with it, so that the ids in the key stay theirs.
        self._kept[key] = (state, list(peers))
        return state


def _kept(counts: dict[K, int], values: Iterable[K], cap: int) -> set[K] | None:
    """The values kept under `cap` (None: all of them), by count then name."""
    distinct = {v for v in values if v != OVERFLOW and v != (OVERFLOW, OVERFLOW)}
    if len(distinct) <= cap:
        return None
    ranked = sorted(distinct, key=lambda v: (-counts.get(v, 0), v))
    return set(ranked[:cap])


def _first(key: object) -> Any:
    return key if isinstance(key, str) else key[0]  # type: ignore[index]


def _remap(series: dict[Any, Any], new_key: Callable[[Any], Any]) -> dict[Any, Any]:
    """`series` with its keys replaced, the values of keys made equal added up (counters) or
    merged (distributions)."""
    out: dict[Any, Any] = {}
    groups: dict[Any, list[FrozenDistribution]] = {}
    for k, v in series.items():
        nk = new_key(k)
        if isinstance(v, FrozenDistribution):
            groups.setdefault(nk, []).append(v)
        elif nk in out:
            out[nk] += v
        else:
            out[nk] = v
    for nk, group in groups.items():
        out[nk] = merge(group)
    return out


def cap_window(state: WindowState, caps: Caps) -> WindowState:
    """`state` (a merged window) with every label past its cap folded into `_overflow` (see
    the module docstring); `state` itself when no label is past its cap."""
    cur = state.current
    fields: dict[str, Any] = {}
    folded = dict.fromkeys(CAPPED_LABELS, 0)
    kept_count: dict[str, int] = {}

    # Profiles, then error types: ranked by executions.
    per_profile: dict[str, int] = {}
    per_error: dict[str, int] = {}
    for (p, outcome, et), n in cur.executions.items():
        per_profile[p] = per_profile.get(p, 0) + n
        if outcome == "failure" and et:
            per_error[et] = per_error.get(et, 0) + n
    profiles = {_first(k) for name in _PROFILE_FIELDS for k in getattr(cur, name)}
    keep_p = _kept(per_profile, profiles, caps.profile)
    keep_e = _kept(per_error, per_error, caps.error_type)
    kept_count["profile"] = len(profiles - {OVERFLOW}) if keep_p is None else caps.profile
    kept_count["error_type"] = (
        len(set(per_error) - {OVERFLOW}) if keep_e is None else caps.error_type
    )

    def prof(p: str) -> str:
        return p if keep_p is None or p in keep_p or p == OVERFLOW else OVERFLOW

    def err(e: str) -> str:
        return e if keep_e is None or not e or e in keep_e or e == OVERFLOW else OVERFLOW

    if keep_p is not None or keep_e is not None:
        if keep_p is not None:
            folded["profile"] = sum(n for p, n in per_profile.items() if prof(p) != p)
        if keep_e is not None:
            folded["error_type"] = sum(n for e, n in per_error.items() if err(e) != e)
        fields["executions"] = _remap(cur.executions, lambda k: (prof(k[0]), k[1], err(k[2])))
    if keep_p is not None:
        for name in _PROFILE_FIELDS[1:]:
            fields[name] = _remap(
                getattr(cur, name),
                (lambda k: prof(k))
                if name in _BY_PROFILE_ONLY
                else (lambda k: (prof(k[0]), *k[1:])),
            )
        last: dict[str, float] = {}
        for p, at in cur.last_execution.items():
            q = prof(p)
            last[q] = max(at, last.get(q, at))
        fields["last_execution"] = last

    # Domains, then domain/tool pairs: ranked by tool calls.
    per_pair: dict[tuple[str, str], int] = {}
    for (d, t, _), n in cur.tool_calls.items():
        per_pair[(d, t)] = per_pair.get((d, t), 0) + n
    pairs = set(per_pair) | set(cur.tool_durations)
    per_domain: dict[str, int] = {}
    for (d, _), n in per_pair.items():
        per_domain[d] = per_domain.get(d, 0) + n
    domains = {d for d, _ in pairs}
    keep_d = _kept(per_domain, domains, caps.domain)
    kept_count["domain"] = len(domains - {OVERFLOW}) if keep_d is None else caps.domain

    def dom(d: str) -> str:
        return d if keep_d is None or d in keep_d or d == OVERFLOW else OVERFLOW

    per_pair2: dict[tuple[str, str], int] = {}
    for (d, t), n in per_pair.items():
        per_pair2[(dom(d), t)] = per_pair2.get((dom(d), t), 0) + n
    pairs2 = {(dom(d), t) for d, t in pairs if t != OVERFLOW}
    keep_t = _kept(per_pair2, pairs2, caps.tool)
    kept_count["tool"] = len(pairs2) if keep_t is None else caps.tool

    def pair(k: tuple[str, ...]) -> tuple[str, str]:
        d, t = dom(k[0]), k[1]
        if keep_t is not None and t != OVERFLOW and (d, t) not in keep_t:
            t = OVERFLOW
        return d, t

    if keep_d is not None or keep_t is not None:
        if keep_d is not None:
            folded["domain"] = sum(n for d, n in per_domain.items() if dom(d) != d)
        if keep_t is not None:
            folded["tool"] = sum(
                n for (d, t), n in per_pair2.items() if t != OVERFLOW and (d, t) not in keep_t
            )
        fields["tool_calls"] = _remap(cur.tool_calls, lambda k: (*pair(k), k[2]))
        fields["tool_durations"] = _remap(cur.tool_durations, pair)

    # Models: ranked by model calls.
    per_model: dict[tuple[str, str], int] = {}
    for (pv, m, _, _), n in cur.model_calls.items():
        per_model[(pv, m)] = per_model.get((pv, m), 0) + n
    models = {(k[0], k[1]) for name in _MODEL_FIELDS for k in getattr(cur, name)}
    keep_m = _kept(per_model, models, caps.model)
    kept_count["model"] = len(models - {(OVERFLOW, OVERFLOW)}) if keep_m is None else caps.model
    if keep_m is not None:
        gone = (OVERFLOW, OVERFLOW)
        folded["model"] = sum(n for k, n in per_model.items() if k not in keep_m and k != gone)

        kept_models: set[tuple[str, ...]] = set(keep_m)

        def mod(k: tuple[str, ...]) -> tuple[str, ...]:
            return k if k[:2] in kept_models else (OVERFLOW, OVERFLOW, *k[2:])

        for name in _MODEL_FIELDS:
            fields[name] = _remap(getattr(cur, name), mod)

    if not fields:
        return state
    overflow = dict(cur.overflow)
    for label, n in folded.items():
        if n:
            overflow[label] = overflow.get(label, 0) + n
    fields["overflow"] = overflow
    fields["label_values"] = {**cur.label_values, **kept_count}
    first_by_profile = state.first_by_profile
    if keep_p is not None:
        first_by_profile = {}
        for p, at in state.first_by_profile.items():
            q = prof(p)
            first_by_profile[q] = min(at, first_by_profile.get(q, at))
    return dataclasses.replace(
        state,
        current=cur.replace(**fields),
        first_by_profile=first_by_profile,
    )


#: Profile fields keyed by the profile alone.
_BY_PROFILE_ONLY = frozenset({"steps", "budget_spent", "budget_utilization", "budget_exceeded"})


__all__ = ["ClusterMerger", "cap_window", "merge_cluster"]
