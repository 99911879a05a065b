"""Labels an operator controls, applied at the edge to executions that passed validation.

`--labels-file` (YAML) lists, for `profile`, `domain`, `tool` and `model`, the allowed values
as shell-style patterns (`fnmatch`, case-sensitive), and what happens to a value outside them:

    profile:
      allow: ["support-*", "billing"]
      outside: reject      # the execution is refused: field violation NOT_ALLOWED
    tool:
      allow: ["search_*", "lookup"]
      outside: fold        # the value becomes `_other`

A label the file does not name is not restricted. `--max-values-per-agent N` lets each agent
(the caller's key name, with authentication on) introduce at most N distinct values of each
of `profile`, `domain` and `tool`; its further new values become `_overflow`, so one key
cannot take every slot of the global caps. Both kinds of fold are counted in
`cugar_label_folds_total{label, reason}` (reason `not_allowed` or `agent_cap`).

The policy applies to every execution the server records: RecordExecution(s), and the
executions assembled from OTLP spans (the agent is the key of the Export call that brought
the agent span); model calls recorded alone from OTLP meet the `model` rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Final, Literal

import yaml
from prometheus_client import CollectorRegistry, Counter

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.model import OVERFLOW, Execution, ModelCall
from cugar_metrics.validation import Limits, Violation, validate_execution, validate_model_call

#: The value a label outside its allow-list becomes when its action is `fold`.
OTHER: Final = "_other"
#: The labels a labels file may restrict.
LABELS: Final = ("profile", "domain", "tool", "model")
#: The labels capped per agent by --max-values-per-agent.
AGENT_CAPPED: Final = ("profile", "domain", "tool")
FOLD_REASONS: Final = ("not_allowed", "agent_cap")

Action = Literal["reject", "fold"]


class LabelsFileError(ValueError):
    """A labels file that cannot be used; the message says what and where."""


@dataclass(frozen=True)
class Rule:
    patterns: tuple[str, ...]
    action: Action

    def allows(self, value: str) -> bool:
        return any(fnmatchcase(value, p) for p in self.patterns)


def load_rules(path: str) -> dict[str, Rule]:
    """The rules of a labels file; raises LabelsFileError naming the problem."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise LabelsFileError(f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise LabelsFileError(f"{path} is not valid YAML: {e}".replace("\n", " ")) from None
    if not isinstance(doc, dict) or not doc:
        raise LabelsFileError(f"{path}: expected a mapping of {', '.join(LABELS)}")
    rules: dict[str, Rule] = {}
    for label, spec in doc.items():
        if label not in LABELS:
            raise LabelsFileError(f"{path}: {label!r} is not one of {', '.join(LABELS)}")
        if not isinstance(spec, dict) or set(spec) != {"allow", "outside"}:
            raise LabelsFileError(f"{path}: {label}: expected exactly the keys allow and outside")
        allow = spec["allow"]
        if (
            not isinstance(allow, list)
            or not allow
            or not all(isinstance(p, str) and p for p in allow)
        ):
            raise LabelsFileError(f"{path}: {label}.allow: expected a non-empty list of patterns")
        action = spec["outside"]
        if action not in ("reject", "fold"):
            raise LabelsFileError(f"{path}: {label}.outside: {action!r} is not reject or fold")
        rules[label] = Rule(tuple(allow), action)
    return rules


@dataclass
class LabelPolicy:
    """The labels file's rules and the per-agent caps, with their fold counter."""

    rules: dict[str, Rule]
    max_values_per_agent: int  # 0: off
    registry: CollectorRegistry | None = None
    #: agent -> label -> the values it introduced (at most max_values_per_agent each)
    _seen: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._folds = Counter(
            "cugar_label_folds_total",
            "Label values folded at the edge: into _other (not_allowed, --labels-file) or "
            "_overflow (agent_cap, --max-values-per-agent).",
            ("label", "reason"),
            registry=self.registry,
        )
        for label in LABELS:
            for reason in FOLD_REASONS:
                if reason == "not_allowed" or label in AGENT_CAPPED:
                    self._folds.labels(label, reason)

    def export(self) -> dict[str, dict[str, frozenset[str]]]:
        """The values each agent introduced, to be saved (safe from another thread: each copy
        is one C-level operation)."""
        return {
            agent: {label: frozenset(values) for label, values in list(labels.items())}
            for agent, labels in list(self._seen.items())
        }

    def restore(self, saved: Mapping[str, Mapping[str, frozenset[str]]]) -> None:
        """Continues from saved values: an agent at its cap before a restart still is."""
        self._seen = {
            agent: {label: set(values) for label, values in labels.items()}
            for agent, labels in saved.items()
        }

    @property
    def active(self) -> bool:
        return bool(self.rules) or self.max_values_per_agent > 0

    def apply(
        self, e: Execution, where: str, agent: str | None
    ) -> tuple[Execution | None, Violation | None]:
        """`e` with its labels allowed, folded or capped, or the violation refusing it.
        Nothing is counted for a refused execution."""
        folds: list[tuple[str, str]] = []
        caps = None
        if self.max_values_per_agent > 0 and agent is not None:
            caps = self._seen.setdefault(agent, {})
        claimed: list[tuple[str, str]] = []

        def check(label: str, value: str, path: str) -> str | Violation:
            rule = self.rules.get(label)
            if rule is not None and not rule.allows(value):
                return _outside(rule, label, value, path, folds)
            if caps is not None and label in AGENT_CAPPED and value != OTHER:
                values = caps.setdefault(label, set())
                if value not in values and (label, value) not in claimed:
                    if len(values) + sum(1 for c in claimed if c[0] == label) >= (
                        self.max_values_per_agent
                    ):
                        folds.append((label, "agent_cap"))
                        return OVERFLOW
                    claimed.append((label, value))
            return value

        profile = check("profile", e.profile, f"{where}.profile")
        if isinstance(profile, Violation):
            return None, profile
        calls = []
        for i, c in enumerate(e.tool_calls):
            domain = check("domain", c.domain, f"{where}.tool_calls[{i}].domain")
            if isinstance(domain, Violation):
                return None, domain
            tool = check("tool", c.tool, f"{where}.tool_calls[{i}].tool")
            if isinstance(tool, Violation):
                return None, tool
            calls.append(
                c if (domain, tool) == (c.domain, c.tool) else c._replace(domain=domain, tool=tool)
            )
        models = []
        for i, m in enumerate(e.model_calls):
            model = check("model", m.model, f"{where}.model_calls[{i}].model")
            if isinstance(model, Violation):
                return None, model
            models.append(m if model == m.model else m._replace(model=model))
        for label, value in claimed:
            assert caps is not None
            caps.setdefault(label, set()).add(value)
        self._count(folds)
        return (
            e._replace(profile=profile, tool_calls=tuple(calls), model_calls=tuple(models)),
            None,
        )

    def apply_model_call(
        self, call: ModelCall, where: str
    ) -> tuple[ModelCall | None, Violation | None]:
        """A model call recorded alone (no execution around it) under the labels file's
        `model` rule, as in `apply`: itself, folded, or the violation refusing it."""
        rule = self.rules.get("model")
        if rule is None or rule.allows(call.model):
            return call, None
        folds: list[tuple[str, str]] = []
        model = _outside(rule, "model", call.model, f"{where}.model", folds)
        if isinstance(model, Violation):
            return None, model
        self._count(folds)
        return call._replace(model=model), None

    def _count(self, folds: list[tuple[str, str]]) -> None:
        for label, reason in folds:
            self._folds.labels(label, reason).inc()


def _outside(
    rule: Rule, label: str, value: str, path: str, folds: list[tuple[str, str]]
) -> str | Violation:
    """A value outside `rule`: the violation refusing it, or OTHER (noted in `folds`)."""
    if rule.action == "reject":
        return Violation(
            path,
            f"{value!r} is not allowed by --labels-file (allowed: {', '.join(rule.patterns)})",
            "NOT_ALLOWED",
        )
    folds.append((label, "not_allowed"))
    return OTHER


def admit(
    message: pb.Execution,
    where: str,
    limits: Limits,
    now: float,
    labels: LabelPolicy | None,
    agent: str | None,
) -> tuple[Execution | None, list[Violation]]:
    """One execution message validated, then (when `labels` is given) under the label policy
    for `agent`: the execution to record, or None and the violations refusing it. What
    RecordExecution and the executions assembled from OTLP spans go through."""
    execution, violations = validate_execution(message, where, limits, now)
    if execution is not None and labels is not None:
        execution, refusal = labels.apply(execution, where, agent)
        if refusal is not None:
            violations = [refusal]
    return execution, violations


def admit_model_call(
    message: pb.ModelCall, where: str, limits: Limits, now: float, labels: LabelPolicy | None
) -> tuple[ModelCall | None, list[Violation]]:
    """A model call that belongs to no execution (an OTLP model span with no agent above
    it) validated, then under the labels file's `model` rule (no per-agent cap applies to
    models)."""
    call, violations = validate_model_call(message, where, limits, now)
    if call is not None and labels is not None:
        call, refusal = labels.apply_model_call(call, where)
        if refusal is not None:
            violations = [refusal]
    return call, violations
