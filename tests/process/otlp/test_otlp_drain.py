"""On drain, the server's final log line tells what became of the OTLP spans still waiting for
their agent: model calls recorded alone, tool calls dropped."""

from __future__ import annotations

import json
import re
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.server.otlp.spans import Agent
from tests.support.serverproc import launch


def test_the_final_log_line_counts_the_spans_still_waiting(tmp_path: Path) -> None:
    process = launch(tmp_path, "--otlp-port", "0", name="otlp")
    otlp_port = json.loads((tmp_path / "otlp.ready.json").read_text())["otlp_port"]
    agent = Agent()
    with agent.agent("sales_rep"):
        for model in ("gpt-4o", "gpt-4o-mini"):
            with agent.chat(model):
                pass
        for tool in ("search_accounts", "score_lead", "send_email"):
            with agent.tool(tool):
                pass
        children = agent.exporter.get_finished_spans()  # the agent span never comes
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{otlp_port}", insecure=True)
    try:
        assert exporter.export(children) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    assert process.stop() == 0, process.output()
    final = [line for line in process.output().splitlines() if "final counts:" in line]
    assert len(final) == 1, process.output()
    assert re.search(
        r"drained in [0-9.]+s; final counts: accepted=0 duplicate=0 rejected=0; OTLP spans still"
        r" waiting: 2 model calls recorded alone, 3 tool calls dropped$",
        final[0],
    ), final[0]
