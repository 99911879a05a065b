"""OpenTelemetry in: GenAI spans sent with OTLP become executions, tool calls and model calls."""

from cugar_metrics.otlp.assembly import RESULTS, Assembler, Output
from cugar_metrics.otlp.mapping import Kind, classify, execution_id

__all__ = ["RESULTS", "Assembler", "Kind", "Output", "classify", "execution_id"]
