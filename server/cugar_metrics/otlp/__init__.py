"""OpenTelemetry in: GenAI spans sent with OTLP become executions, tool calls and model calls."""

from cugar_metrics.otlp.assembly import RESULTS, Assembler, Output
from cugar_metrics.otlp.mapping import Kind, classify, execution_id
from cugar_metrics.otlp.service import SERVICE_NAME, OtlpMetrics, TraceIngest, add_to_server

__all__ = [
    "RESULTS",
    "SERVICE_NAME",
    "Assembler",
    "Kind",
    "OtlpMetrics",
    "Output",
    "TraceIngest",
    "add_to_server",
    "classify",
    "execution_id",
]
