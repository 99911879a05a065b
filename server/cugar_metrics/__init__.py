"""cugar-metrics: records AI agent executions over gRPC and serves their golden signals."""

__version__ = "0.1.0"
