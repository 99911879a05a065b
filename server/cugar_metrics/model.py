"""The domain model: what the service keeps of an execution once it passed validation.

Plain immutable values (named tuples: cheap to build on the ingest path) with no protobuf or
gRPC in them. Durations are seconds (floats); enumerations are the lowercase words used as
Prometheus label values.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

Outcome = Literal["success", "failure"]
ToolStatus = Literal["success", "error", "skipped"]
Decision = Literal["approved", "denied", "timeout", "cancelled"]
Operation = Literal["propose", "execute"]
ModelOperation = Literal["chat", "text_completion", "embeddings", "generate_content", "other"]
ModelStatus = Literal["success", "error", "rate_limited"]

OUTCOMES: Final[tuple[Outcome, ...]] = ("success", "failure")
TOOL_STATUSES: Final[tuple[ToolStatus, ...]] = ("success", "error", "skipped")
DECISIONS: Final[tuple[Decision, ...]] = ("approved", "denied", "timeout", "cancelled")
MODEL_OPERATIONS: Final[tuple[ModelOperation, ...]] = (
    "chat",
    "text_completion",
    "embeddings",
    "generate_content",
    "other",
)
MODEL_STATUSES: Final[tuple[ModelStatus, ...]] = ("success", "error", "rate_limited")

#: The value that stands for every label value past its cardinality cap. It cannot collide
#: with a real name, which must start with a letter.
OVERFLOW: Final = "_overflow"

#: The label-bound names whose distinct values are capped (`model` caps provider/model pairs).
CAPPED_LABELS: Final = ("profile", "domain", "tool", "error_type", "model")
#: The `type` label of cugar_model_tokens_total, in the order of ModelCall's token fields.
TOKEN_TYPES: Final = ("input", "output", "cached_input", "reasoning")


class Budget(NamedTuple):
    spent: float
    limit: float
    exceeded: bool


class Approval(NamedTuple):
    decision: Decision
    wait: float
    operation: Operation


class ToolCall(NamedTuple):
    tool: str
    domain: str
    status: ToolStatus
    duration: float


class ModelCall(NamedTuple):
    provider: str
    model: str
    operation: ModelOperation
    status: ModelStatus
    #: Seconds.
    duration: float
    #: Seconds; None when not reported.
    time_to_first_token: float | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    #: In the deployment's currency; None when not reported.
    cost: float | None


class Execution(NamedTuple):
    execution_id: str
    profile: str
    outcome: Outcome
    error_type: str
    duration: float
    steps: int
    budget: Budget | None
    approvals: tuple[Approval, ...]
    tool_calls: tuple[ToolCall, ...]
    model_calls: tuple[ModelCall, ...] = ()


RecordResult = Literal["accepted", "duplicate"]
INGEST_RESULTS: Final = ("accepted", "duplicate", "rejected")

#: Why an execution was rejected: the bounded `reason` label of cugar_ingest_rejections_total.
#: An execution with several violations is counted once, under the reason of its first one.
REJECTION_REASONS: Final = (
    "required",  # a required field is missing or empty
    "invalid_name",  # an id or label-bound name does not match its pattern
    "invalid_enum",  # an enum is UNSPECIFIED or unknown
    "out_of_range",  # a duration, count or number outside its bounds
    "inconsistent",  # fields that contradict each other (error_type on success, ...)
    "too_many",  # more tool calls, approvals or model calls than allowed in one execution
    "batch_size",  # a RecordExecutions batch that is empty or too large (all its items)
    "not_allowed",  # a label value outside the allow-list of --labels-file (`reject`)
)
