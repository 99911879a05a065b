"""Each series is declared once (aggregator/series.py): storage, windows, the state file, the
peer window state and /metrics follow the table.

The last test adds a series the way a developer would, one table entry with its mapping,
in a fresh interpreter (the table is read when the modules are imported), and finds it in
every place without another edit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from cugar_metrics.aggregator import Aggregator
from cugar_metrics.aggregator.persist import LAYOUT, MODEL_LAYOUT, SECTIONS
from cugar_metrics.aggregator.series import SERIES
from cugar_metrics.exposition import families

ROOT = Path(__file__).resolve().parents[3]


def test_the_table_names_every_series_once() -> None:
    fields = [s.field for s in SERIES]
    metrics = [s.metric for s in SERIES]
    assert len(set(fields)) == len(fields)
    assert len(set(metrics)) == len(metrics)
    snapshot = Aggregator(start_time=0.0).snapshot(1.0)
    assert list(snapshot.values) == fields
    # /metrics: one family per series (two for the approvals: the count and the wait), then
    # the build information.
    names = [f.name for f in families(snapshot)]
    assert names == [
        "cugar_executions_total",
        "cugar_execution_duration_seconds",
        "cugar_execution_steps",
        "cugar_tool_calls_total",
        "cugar_tool_call_duration_seconds",
        "cugar_budget_spent_total",
        "cugar_budget_utilization_ratio",
        "cugar_budget_exceeded_total",
        "cugar_approvals_total",
        "cugar_approval_wait_seconds",
        "cugar_model_calls_total",
        "cugar_model_tokens_total",
        "cugar_model_call_duration_seconds",
        "cugar_model_time_to_first_token_seconds",
        "cugar_model_cost_total",
        "cugar_ingest_executions_total",
        "cugar_ingest_rejections_total",
        "cugar_label_overflow_total",
        "cugar_label_values",
        "cugar_last_execution_timestamp_seconds",
        "cugar_dedup_entries",
        "cugar_dedup_evictions_total",
        "cugar_build_info",
    ]


def test_state_file_sections_and_layouts_come_from_the_table() -> None:
    assert SECTIONS == (
        "executions",
        "durations",
        "steps",
        "tool_calls",
        "tool_durations",
        "budget_spent",
        "budget_utilization",
        "budget_exceeded",
        "approvals",
        "model_calls",
        "model_tokens",
        "model_durations",
        "model_ttft",
        "model_cost",
        "last_execution",
    )
    # The bucket layouts a state file is checked against: the names a version-1 file
    # already holds, so files written before the table restore.
    assert sorted(LAYOUT) == [
        "approval_buckets",
        "checkpoint_seconds",
        "execution_buckets",
        "sketch",
        "step_buckets",
        "tool_buckets",
        "utilization_buckets",
    ]
    assert sorted(MODEL_LAYOUT) == ["model_buckets", "ttft_buckets"]


#: The one edit: an entry, with its mapping from the execution, at the end of SERIES.
NEW_ENTRY = """
    Series(
        "tool_calls_per_execution",
        "cugar_execution_tool_calls",
        "Tool calls per finished execution.",
        "histogram",
        ("profile",),
        (1, 2, 5, 10),
        "tool_calls_per_execution_buckets",
        sketch=True,
        observe=lambda e, profile: [(profile, len(e.tool_calls))],
    ),
"""

#: Drives the edited copy: record, window, state file, peer window state, /metrics.
DRIVER = textwrap.dedent(
    """
    import json
    from cugar_metrics.aggregator import Aggregator, Caps
    from cugar_metrics.aggregator.persist import decode, encode
    from cugar_metrics.aggregator.windowwire import decode_window, encode_window
    from cugar_metrics.exposition import families, render
    from cugar_metrics.model import Execution, ToolCall

    T0 = 1_700_000_000.0
    agg = Aggregator(start_time=T0, caps=Caps(profile=2))
    # 3 profiles under a cap of 2: the third is folded into _overflow, as for every series.
    for i, (profile, tools) in enumerate([("a", 0), ("a", 3), ("b", 7), ("c", 12), ("a", 1)]):
        calls = tuple(ToolCall("crm", "lookup", "success", 0.1) for _ in range(tools))
        e = Execution(f"x-{i}", profile, "success", "", 1.0, 1, None, (), calls)
        agg.record([e], T0 + i)
    now = T0 + 30
    snap = agg.snapshot(now)
    window = agg.window(now, 300)
    restored = Aggregator(start_time=T0)
    restored.restore(decode(encode(agg.export_state(now))), now)
    wire = decode_window(encode_window(window))

    def counts(values):
        return {k: [d.count, d.sum, list(d.buckets)] for k, d in sorted(values.items())}

    text = render(families(snap))
    print(json.dumps({
        "snapshot": counts(snap.tool_calls_per_execution),
        "window": counts(window.current.tool_calls_per_execution),
        "window_p50_a": window.current.tool_calls_per_execution["a"].quantile(0.5),
        "restored": counts(restored.snapshot(now).tool_calls_per_execution),
        "wire": counts(wire.current.tool_calls_per_execution),
        "metrics": [l for l in text.splitlines() if "cugar_execution_tool_calls" in l],
    }))
    """
)


def test_adding_a_series_is_one_table_entry(tmp_path: Path) -> None:
    """A copy of the server package with one entry added to the table, and nothing else."""
    package = tmp_path / "cugar_metrics"
    shutil.copytree(ROOT / "server" / "cugar_metrics", package)
    table = package / "aggregator" / "series.py"
    text = table.read_text()
    end = "\n]\n\n\ndef by_field()"
    assert text.count(end) == 1
    table.write_text(text.replace(end, NEW_ENTRY.rstrip() + end))
    out = subprocess.run(
        [sys.executable, "-c", DRIVER],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    # a: 0, 3 and 1 tool calls; b: 7; c over the cap of 2 profiles: _overflow, 12.
    expected = {
        "_overflow": [1, 12.0, [0, 0, 0, 0, 1]],
        "a": [3, 4.0, [2, 0, 1, 0, 0]],
        "b": [1, 7.0, [0, 0, 0, 1, 0]],
    }
    assert got["snapshot"] == expected
    assert got["window"] == expected
    assert got["restored"] == expected
    assert got["wire"] == expected
    assert abs(got["window_p50_a"] - 1.0) <= 0.01
    assert got["metrics"] == [
        "# HELP cugar_execution_tool_calls Tool calls per finished execution.",
        "# TYPE cugar_execution_tool_calls histogram",
        'cugar_execution_tool_calls_bucket{le="1.0",profile="_overflow"} 0.0',
        'cugar_execution_tool_calls_bucket{le="2.0",profile="_overflow"} 0.0',
        'cugar_execution_tool_calls_bucket{le="5.0",profile="_overflow"} 0.0',
        'cugar_execution_tool_calls_bucket{le="10.0",profile="_overflow"} 0.0',
        'cugar_execution_tool_calls_bucket{le="+Inf",profile="_overflow"} 1.0',
        'cugar_execution_tool_calls_count{profile="_overflow"} 1.0',
        'cugar_execution_tool_calls_sum{profile="_overflow"} 12.0',
        'cugar_execution_tool_calls_bucket{le="1.0",profile="a"} 2.0',
        'cugar_execution_tool_calls_bucket{le="2.0",profile="a"} 2.0',
        'cugar_execution_tool_calls_bucket{le="5.0",profile="a"} 3.0',
        'cugar_execution_tool_calls_bucket{le="10.0",profile="a"} 3.0',
        'cugar_execution_tool_calls_bucket{le="+Inf",profile="a"} 3.0',
        'cugar_execution_tool_calls_count{profile="a"} 3.0',
        'cugar_execution_tool_calls_sum{profile="a"} 4.0',
        'cugar_execution_tool_calls_bucket{le="1.0",profile="b"} 0.0',
        'cugar_execution_tool_calls_bucket{le="2.0",profile="b"} 0.0',
        'cugar_execution_tool_calls_bucket{le="5.0",profile="b"} 0.0',
        'cugar_execution_tool_calls_bucket{le="10.0",profile="b"} 1.0',
        'cugar_execution_tool_calls_bucket{le="+Inf",profile="b"} 1.0',
        'cugar_execution_tool_calls_count{profile="b"} 1.0',
        'cugar_execution_tool_calls_sum{profile="b"} 7.0',
    ]
