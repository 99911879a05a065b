"""The pure aggregator: dedup, caps, counters and windowed sketches. No I/O, no gRPC."""

from cugar_metrics.aggregator.core import (
    CHECKPOINT_SECONDS,
    MAX_WINDOW_SECONDS,
    Aggregator,
    Caps,
    Snapshot,
    WindowState,
    merge_windows,
)
from cugar_metrics.aggregator.dashboard import Dashboard, build_dashboard
from cugar_metrics.aggregator.series import (
    APPROVAL_BUCKETS,
    EXECUTION_BUCKETS,
    MODEL_BUCKETS,
    STEP_BUCKETS,
    TOOL_BUCKETS,
    TTFT_BUCKETS,
    UTILIZATION_BUCKETS,
)

__all__ = [
    "APPROVAL_BUCKETS",
    "CHECKPOINT_SECONDS",
    "EXECUTION_BUCKETS",
    "MAX_WINDOW_SECONDS",
    "MODEL_BUCKETS",
    "STEP_BUCKETS",
    "TOOL_BUCKETS",
    "TTFT_BUCKETS",
    "UTILIZATION_BUCKETS",
    "Aggregator",
    "Caps",
    "Dashboard",
    "Snapshot",
    "WindowState",
    "build_dashboard",
    "merge_windows",
]
