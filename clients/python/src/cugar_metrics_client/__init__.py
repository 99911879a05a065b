"""Python client for cugar-metrics: record AI agent executions, read the golden signals.

    from cugar_metrics_client import BatchRecorder

    with BatchRecorder("127.0.0.1:50051") as recorder:
        with recorder.run("sales_rep") as run:
            with run.tool("search_accounts", "territory"):
                ...

``Client`` and ``AsyncClient`` make one call per method; ``BatchRecorder`` buffers and sends in
the background without ever blocking the agent. The generated protobuf messages are in
``cugar.metrics.v1.metrics_service_pb2``; these classes accept them as well as the dataclasses
below.
"""

from ._batch import BatchRecorder, RecorderStats
from ._client import MAX_BATCH, AsyncClient, Client, Scope
from ._errors import (
    CugarMetricsError,
    FieldViolation,
    InvalidExecutionError,
    InvalidRequestError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from ._model import (
    Approval,
    BatchResult,
    Budget,
    Decision,
    DurationLike,
    Execution,
    ExecutionLike,
    ModelCall,
    ModelOperation,
    ModelStatus,
    Operation,
    Outcome,
    RecordResult,
    RejectedItem,
    ToolCall,
    ToolStatus,
    new_execution_id,
)
from ._run import AsyncRun, ModelCallTimer, Run, RunState, current_run, error_type_of
from ._tls import TlsConfig

__version__ = "0.1.0"

__all__ = [
    "MAX_BATCH",
    "Approval",
    "AsyncClient",
    "AsyncRun",
    "BatchRecorder",
    "BatchResult",
    "Budget",
    "Client",
    "CugarMetricsError",
    "Decision",
    "DurationLike",
    "Execution",
    "ExecutionLike",
    "FieldViolation",
    "InvalidExecutionError",
    "InvalidRequestError",
    "ModelCall",
    "ModelCallTimer",
    "ModelOperation",
    "ModelStatus",
    "Operation",
    "Outcome",
    "PermissionDeniedError",
    "RecordResult",
    "RecorderStats",
    "RejectedItem",
    "ResourceExhaustedError",
    "Run",
    "RunState",
    "Scope",
    "TlsConfig",
    "ToolCall",
    "ToolStatus",
    "UnauthenticatedError",
    "__version__",
    "current_run",
    "error_type_of",
    "new_execution_id",
]
