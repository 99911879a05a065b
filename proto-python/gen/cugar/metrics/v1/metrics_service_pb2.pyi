import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_SUCCESS: _ClassVar[Outcome]
    OUTCOME_FAILURE: _ClassVar[Outcome]

class ApprovalDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_DECISION_UNSPECIFIED: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_APPROVED: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_DENIED: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_TIMEOUT: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_CANCELLED: _ClassVar[ApprovalDecision]

class ApprovalOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_OPERATION_UNSPECIFIED: _ClassVar[ApprovalOperation]
    APPROVAL_OPERATION_PROPOSE: _ClassVar[ApprovalOperation]
    APPROVAL_OPERATION_EXECUTE: _ClassVar[ApprovalOperation]

class ToolCallStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOOL_CALL_STATUS_UNSPECIFIED: _ClassVar[ToolCallStatus]
    TOOL_CALL_STATUS_SUCCESS: _ClassVar[ToolCallStatus]
    TOOL_CALL_STATUS_ERROR: _ClassVar[ToolCallStatus]
    TOOL_CALL_STATUS_SKIPPED: _ClassVar[ToolCallStatus]

class RecordResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECORD_RESULT_UNSPECIFIED: _ClassVar[RecordResult]
    RECORD_RESULT_ACCEPTED: _ClassVar[RecordResult]
    RECORD_RESULT_DUPLICATE: _ClassVar[RecordResult]
    RECORD_RESULT_REJECTED: _ClassVar[RecordResult]

class ModelOperation(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_OPERATION_UNSPECIFIED: _ClassVar[ModelOperation]
    MODEL_OPERATION_CHAT: _ClassVar[ModelOperation]
    MODEL_OPERATION_TEXT_COMPLETION: _ClassVar[ModelOperation]
    MODEL_OPERATION_EMBEDDINGS: _ClassVar[ModelOperation]
    MODEL_OPERATION_GENERATE_CONTENT: _ClassVar[ModelOperation]
    MODEL_OPERATION_OTHER: _ClassVar[ModelOperation]

class ModelCallStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_CALL_STATUS_UNSPECIFIED: _ClassVar[ModelCallStatus]
    MODEL_CALL_STATUS_SUCCESS: _ClassVar[ModelCallStatus]
    MODEL_CALL_STATUS_ERROR: _ClassVar[ModelCallStatus]
    MODEL_CALL_STATUS_RATE_LIMITED: _ClassVar[ModelCallStatus]

class DashboardScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DASHBOARD_SCOPE_UNSPECIFIED: _ClassVar[DashboardScope]
    DASHBOARD_SCOPE_REPLICA: _ClassVar[DashboardScope]
    DASHBOARD_SCOPE_CLUSTER: _ClassVar[DashboardScope]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_SUCCESS: Outcome
OUTCOME_FAILURE: Outcome
APPROVAL_DECISION_UNSPECIFIED: ApprovalDecision
APPROVAL_DECISION_APPROVED: ApprovalDecision
APPROVAL_DECISION_DENIED: ApprovalDecision
APPROVAL_DECISION_TIMEOUT: ApprovalDecision
APPROVAL_DECISION_CANCELLED: ApprovalDecision
APPROVAL_OPERATION_UNSPECIFIED: ApprovalOperation
APPROVAL_OPERATION_PROPOSE: ApprovalOperation
APPROVAL_OPERATION_EXECUTE: ApprovalOperation
TOOL_CALL_STATUS_UNSPECIFIED: ToolCallStatus
TOOL_CALL_STATUS_SUCCESS: ToolCallStatus
TOOL_CALL_STATUS_ERROR: ToolCallStatus
TOOL_CALL_STATUS_SKIPPED: ToolCallStatus
RECORD_RESULT_UNSPECIFIED: RecordResult
RECORD_RESULT_ACCEPTED: RecordResult
RECORD_RESULT_DUPLICATE: RecordResult
RECORD_RESULT_REJECTED: RecordResult
MODEL_OPERATION_UNSPECIFIED: ModelOperation
MODEL_OPERATION_CHAT: ModelOperation
MODEL_OPERATION_TEXT_COMPLETION: ModelOperation
MODEL_OPERATION_EMBEDDINGS: ModelOperation
MODEL_OPERATION_GENERATE_CONTENT: ModelOperation
MODEL_OPERATION_OTHER: ModelOperation
MODEL_CALL_STATUS_UNSPECIFIED: ModelCallStatus
MODEL_CALL_STATUS_SUCCESS: ModelCallStatus
MODEL_CALL_STATUS_ERROR: ModelCallStatus
MODEL_CALL_STATUS_RATE_LIMITED: ModelCallStatus
DASHBOARD_SCOPE_UNSPECIFIED: DashboardScope
DASHBOARD_SCOPE_REPLICA: DashboardScope
DASHBOARD_SCOPE_CLUSTER: DashboardScope

class Execution(_message.Message):
    __slots__ = ("execution_id", "trace_id", "profile", "outcome", "error_type", "start_time", "duration", "steps", "budget", "approvals", "tool_calls", "model_calls")
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    MODEL_CALLS_FIELD_NUMBER: _ClassVar[int]
    execution_id: str
    trace_id: str
    profile: str
    outcome: Outcome
    error_type: str
    start_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    steps: int
    budget: Budget
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    tool_calls: _containers.RepeatedCompositeFieldContainer[ToolCall]
    model_calls: _containers.RepeatedCompositeFieldContainer[ModelCall]
    def __init__(self, execution_id: _Optional[str] = ..., trace_id: _Optional[str] = ..., profile: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., error_type: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., steps: _Optional[int] = ..., budget: _Optional[_Union[Budget, _Mapping]] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., tool_calls: _Optional[_Iterable[_Union[ToolCall, _Mapping]]] = ..., model_calls: _Optional[_Iterable[_Union[ModelCall, _Mapping]]] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("spent", "limit", "exceeded")
    SPENT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    spent: float
    limit: float
    exceeded: bool
    def __init__(self, spent: _Optional[float] = ..., limit: _Optional[float] = ..., exceeded: _Optional[bool] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("decision", "wait", "operation")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    decision: ApprovalDecision
    wait: _duration_pb2.Duration
    operation: ApprovalOperation
    def __init__(self, decision: _Optional[_Union[ApprovalDecision, str]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., operation: _Optional[_Union[ApprovalOperation, str]] = ...) -> None: ...

class ToolCall(_message.Message):
    __slots__ = ("tool", "domain", "status", "duration", "error_type")
    TOOL_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    tool: str
    domain: str
    status: ToolCallStatus
    duration: _duration_pb2.Duration
    error_type: str
    def __init__(self, tool: _Optional[str] = ..., domain: _Optional[str] = ..., status: _Optional[_Union[ToolCallStatus, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error_type: _Optional[str] = ...) -> None: ...

class ModelCall(_message.Message):
    __slots__ = ("provider", "model", "response_model", "operation", "status", "error_type", "duration", "time_to_first_token", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cost")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_MODEL_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    response_model: str
    operation: ModelOperation
    status: ModelCallStatus
    error_type: str
    duration: _duration_pb2.Duration
    time_to_first_token: _duration_pb2.Duration
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    reasoning_tokens: int
    cost: float
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., response_model: _Optional[str] = ..., operation: _Optional[_Union[ModelOperation, str]] = ..., status: _Optional[_Union[ModelCallStatus, str]] = ..., error_type: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cached_input_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., cost: _Optional[float] = ...) -> None: ...

class RecordExecutionRequest(_message.Message):
    __slots__ = ("execution",)
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    execution: Execution
    def __init__(self, execution: _Optional[_Union[Execution, _Mapping]] = ...) -> None: ...

class RecordExecutionResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: RecordResult
    def __init__(self, result: _Optional[_Union[RecordResult, str]] = ...) -> None: ...

class RecordExecutionsRequest(_message.Message):
    __slots__ = ("executions",)
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    executions: _containers.RepeatedCompositeFieldContainer[Execution]
    def __init__(self, executions: _Optional[_Iterable[_Union[Execution, _Mapping]]] = ...) -> None: ...

class FieldViolation(_message.Message):
    __slots__ = ("field", "description", "reason")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    field: str
    description: str
    reason: str
    def __init__(self, field: _Optional[str] = ..., description: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RejectedExecution(_message.Message):
    __slots__ = ("index", "execution_id", "field_violations", "execution_id_truncated")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    FIELD_VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    index: int
    execution_id: str
    field_violations: _containers.RepeatedCompositeFieldContainer[FieldViolation]
    execution_id_truncated: bool
    def __init__(self, index: _Optional[int] = ..., execution_id: _Optional[str] = ..., field_violations: _Optional[_Iterable[_Union[FieldViolation, _Mapping]]] = ..., execution_id_truncated: _Optional[bool] = ...) -> None: ...

class RecordExecutionsResponse(_message.Message):
    __slots__ = ("accepted_count", "duplicate_count", "rejected_count", "results", "rejected_executions")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    duplicate_count: int
    rejected_count: int
    results: _containers.RepeatedScalarFieldContainer[RecordResult]
    rejected_executions: _containers.RepeatedCompositeFieldContainer[RejectedExecution]
    def __init__(self, accepted_count: _Optional[int] = ..., duplicate_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., results: _Optional[_Iterable[_Union[RecordResult, str]]] = ..., rejected_executions: _Optional[_Iterable[_Union[RejectedExecution, _Mapping]]] = ...) -> None: ...

class GetDashboardRequest(_message.Message):
    __slots__ = ("window", "profile", "domain", "model", "scope")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    window: _duration_pb2.Duration
    profile: str
    domain: str
    model: str
    scope: DashboardScope
    def __init__(self, window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., profile: _Optional[str] = ..., domain: _Optional[str] = ..., model: _Optional[str] = ..., scope: _Optional[_Union[DashboardScope, str]] = ...) -> None: ...

class WatchDashboardRequest(_message.Message):
    __slots__ = ("dashboard", "interval")
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    dashboard: GetDashboardRequest
    interval: _duration_pb2.Duration
    def __init__(self, dashboard: _Optional[_Union[GetDashboardRequest, _Mapping]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GoldenSignals(_message.Message):
    __slots__ = ("success_rate", "error_rate", "tool_error_rate", "budget_utilization", "latency_p50", "latency_p95", "latency_p99", "latency_mean", "mean_steps", "approval_wait_p50", "approval_wait_p95", "throughput_per_second", "tokens_per_execution", "cost_per_execution", "model_error_rate", "tokens_per_second")
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    TOOL_ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MEAN_FIELD_NUMBER: _ClassVar[int]
    MEAN_STEPS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_WAIT_P50_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_WAIT_P95_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    COST_PER_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    success_rate: float
    error_rate: float
    tool_error_rate: float
    budget_utilization: float
    latency_p50: _duration_pb2.Duration
    latency_p95: _duration_pb2.Duration
    latency_p99: _duration_pb2.Duration
    latency_mean: _duration_pb2.Duration
    mean_steps: float
    approval_wait_p50: _duration_pb2.Duration
    approval_wait_p95: _duration_pb2.Duration
    throughput_per_second: float
    tokens_per_execution: float
    cost_per_execution: float
    model_error_rate: float
    tokens_per_second: float
    def __init__(self, success_rate: _Optional[float] = ..., error_rate: _Optional[float] = ..., tool_error_rate: _Optional[float] = ..., budget_utilization: _Optional[float] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_mean: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., mean_steps: _Optional[float] = ..., approval_wait_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., approval_wait_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., throughput_per_second: _Optional[float] = ..., tokens_per_execution: _Optional[float] = ..., cost_per_execution: _Optional[float] = ..., model_error_rate: _Optional[float] = ..., tokens_per_second: _Optional[float] = ...) -> None: ...

class ExecutionCounts(_message.Message):
    __slots__ = ("total", "succeeded", "failed", "total_steps")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    total: int
    succeeded: int
    failed: int
    total_steps: int
    def __init__(self, total: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., total_steps: _Optional[int] = ...) -> None: ...

class ProfileStats(_message.Message):
    __slots__ = ("profile", "total", "succeeded", "failed", "success_rate", "latency_p95", "budget_spent", "budget_exceeded_count")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    BUDGET_SPENT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_EXCEEDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    profile: str
    total: int
    succeeded: int
    failed: int
    success_rate: float
    latency_p95: _duration_pb2.Duration
    budget_spent: float
    budget_exceeded_count: int
    def __init__(self, profile: _Optional[str] = ..., total: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., success_rate: _Optional[float] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., budget_spent: _Optional[float] = ..., budget_exceeded_count: _Optional[int] = ...) -> None: ...

class DomainStats(_message.Message):
    __slots__ = ("domain", "calls", "errors", "skipped", "error_rate", "latency_p95")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    domain: str
    calls: int
    errors: int
    skipped: int
    error_rate: float
    latency_p95: _duration_pb2.Duration
    def __init__(self, domain: _Optional[str] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ..., skipped: _Optional[int] = ..., error_rate: _Optional[float] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ToolStats(_message.Message):
    __slots__ = ("domain", "tool", "calls", "errors", "skipped", "error_rate", "latency_p95")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    domain: str
    tool: str
    calls: int
    errors: int
    skipped: int
    error_rate: float
    latency_p95: _duration_pb2.Duration
    def __init__(self, domain: _Optional[str] = ..., tool: _Optional[str] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ..., skipped: _Optional[int] = ..., error_rate: _Optional[float] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ErrorTypeCount(_message.Message):
    __slots__ = ("error_type", "count")
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    error_type: str
    count: int
    def __init__(self, error_type: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class BudgetStats(_message.Message):
    __slots__ = ("spent", "mean_spent_per_execution", "exceeded_count", "executions_with_budget")
    SPENT_FIELD_NUMBER: _ClassVar[int]
    MEAN_SPENT_PER_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    EXCEEDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_WITH_BUDGET_FIELD_NUMBER: _ClassVar[int]
    spent: float
    mean_spent_per_execution: float
    exceeded_count: int
    executions_with_budget: int
    def __init__(self, spent: _Optional[float] = ..., mean_spent_per_execution: _Optional[float] = ..., exceeded_count: _Optional[int] = ..., executions_with_budget: _Optional[int] = ...) -> None: ...

class ApprovalDecisionStats(_message.Message):
    __slots__ = ("decision", "count", "wait_p95")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WAIT_P95_FIELD_NUMBER: _ClassVar[int]
    decision: ApprovalDecision
    count: int
    wait_p95: _duration_pb2.Duration
    def __init__(self, decision: _Optional[_Union[ApprovalDecision, str]] = ..., count: _Optional[int] = ..., wait_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ApprovalStats(_message.Message):
    __slots__ = ("total", "by_decision")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    BY_DECISION_FIELD_NUMBER: _ClassVar[int]
    total: int
    by_decision: _containers.RepeatedCompositeFieldContainer[ApprovalDecisionStats]
    def __init__(self, total: _Optional[int] = ..., by_decision: _Optional[_Iterable[_Union[ApprovalDecisionStats, _Mapping]]] = ...) -> None: ...

class IngestStats(_message.Message):
    __slots__ = ("accepted", "duplicate", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    duplicate: int
    rejected: int
    def __init__(self, accepted: _Optional[int] = ..., duplicate: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class ModelStats(_message.Message):
    __slots__ = ("provider", "model", "calls", "errors", "rate_limited", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cost", "latency_p50", "latency_p95", "time_to_first_token_p95")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    REASONING_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_P95_FIELD_NUMBER: _ClassVar[int]
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
    latency_p50: _duration_pb2.Duration
    latency_p95: _duration_pb2.Duration
    time_to_first_token_p95: _duration_pb2.Duration
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., calls: _Optional[int] = ..., errors: _Optional[int] = ..., rate_limited: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cached_input_tokens: _Optional[int] = ..., reasoning_tokens: _Optional[int] = ..., cost: _Optional[float] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetDashboardResponse(_message.Message):
    __slots__ = ("window", "window_start_time", "window_end_time", "scope", "replica", "executions", "golden_signals", "profiles", "domains", "tools", "error_types", "budget", "approvals", "first_execution_time", "last_execution_time", "ingest", "models", "replicas", "missing_replicas", "partial")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_TIME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_TIME_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONS_FIELD_NUMBER: _ClassVar[int]
    GOLDEN_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    PROFILES_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPES_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    FIRST_EXECUTION_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_EXECUTION_TIME_FIELD_NUMBER: _ClassVar[int]
    INGEST_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    MISSING_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    window: _duration_pb2.Duration
    window_start_time: _timestamp_pb2.Timestamp
    window_end_time: _timestamp_pb2.Timestamp
    scope: DashboardScope
    replica: str
    executions: ExecutionCounts
    golden_signals: GoldenSignals
    profiles: _containers.RepeatedCompositeFieldContainer[ProfileStats]
    domains: _containers.RepeatedCompositeFieldContainer[DomainStats]
    tools: _containers.RepeatedCompositeFieldContainer[ToolStats]
    error_types: _containers.RepeatedCompositeFieldContainer[ErrorTypeCount]
    budget: BudgetStats
    approvals: ApprovalStats
    first_execution_time: _timestamp_pb2.Timestamp
    last_execution_time: _timestamp_pb2.Timestamp
    ingest: IngestStats
    models: _containers.RepeatedCompositeFieldContainer[ModelStats]
    replicas: _containers.RepeatedScalarFieldContainer[str]
    missing_replicas: _containers.RepeatedScalarFieldContainer[str]
    partial: bool
    def __init__(self, window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., window_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scope: _Optional[_Union[DashboardScope, str]] = ..., replica: _Optional[str] = ..., executions: _Optional[_Union[ExecutionCounts, _Mapping]] = ..., golden_signals: _Optional[_Union[GoldenSignals, _Mapping]] = ..., profiles: _Optional[_Iterable[_Union[ProfileStats, _Mapping]]] = ..., domains: _Optional[_Iterable[_Union[DomainStats, _Mapping]]] = ..., tools: _Optional[_Iterable[_Union[ToolStats, _Mapping]]] = ..., error_types: _Optional[_Iterable[_Union[ErrorTypeCount, _Mapping]]] = ..., budget: _Optional[_Union[BudgetStats, _Mapping]] = ..., approvals: _Optional[_Union[ApprovalStats, _Mapping]] = ..., first_execution_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_execution_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ingest: _Optional[_Union[IngestStats, _Mapping]] = ..., models: _Optional[_Iterable[_Union[ModelStats, _Mapping]]] = ..., replicas: _Optional[_Iterable[str]] = ..., missing_replicas: _Optional[_Iterable[str]] = ..., partial: _Optional[bool] = ...) -> None: ...
