"""The same LangGraph agent, offline, recorded two ways into two fresh server processes: through
the callback handler, and through OpenLLMetry's LangChain instrumentation
(`opentelemetry-instrumentation-langchain`) exporting with the OTel SDK's OTLP gRPC exporter to
the server's OTLP port. Both servers count the same executions, tool calls and tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.langchain import LangchainInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from test_adapter_langchain import CrmDown, agent, turns

from cugar_metrics_client import BatchRecorder, Client
from cugar_metrics_client.adapters.langchain import CugarMetricsCallbackHandler
from tests.support.serverproc import ServerProcess, launch


def run_scenario(config: dict[str, Any]) -> None:
    """Two runs that end with an answer, one that fails when a tool raises."""
    for _ in range(2):
        result = agent(turns()).invoke({"messages": [("user", "score emea")]}, config=config)
        assert result["messages"][-1].content == "acme is not scored yet"
    with pytest.raises(CrmDown):
        agent(turns(), handle_tool_errors=False).invoke(
            {"messages": [("user", "score emea")]}, config=config
        )


def counts(server: ServerProcess) -> dict[str, Any]:
    with Client(server.target) as client:
        d = client.get_dashboard()
    return {
        "executions": (d.executions.total, d.executions.failed),
        "error_types": sorted((e.error_type, e.count) for e in d.error_types),
        "tools": sorted((t.tool, t.calls, t.errors) for t in d.tools),
        "model_calls": sum(m.calls for m in d.models),
        "input_tokens": sum(m.input_tokens for m in d.models),
        "output_tokens": sum(m.output_tokens for m in d.models),
        "cached_input_tokens": sum(m.cached_input_tokens for m in d.models),
    }


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess, int]]:
    handler_side = launch(tmp_path, name="handler")
    otlp_side = launch(tmp_path, "--otlp-port", "0", name="otlp")
    otlp_port = json.loads((tmp_path / "otlp.ready.json").read_text())["otlp_port"]
    try:
        yield handler_side, otlp_side, otlp_port
    finally:
        assert handler_side.stop() == 0, handler_side.output()
        assert otlp_side.stop() == 0, otlp_side.output()


def test_callback_handler_and_otel_instrumentation_count_the_same(
    servers: tuple[ServerProcess, ServerProcess, int],
) -> None:
    handler_side, otlp_side, otlp_port = servers

    recorder = BatchRecorder(handler_side.target, flush_interval=0.05)
    handler = CugarMetricsCallbackHandler(recorder, profile="sales_rep")
    run_scenario({"callbacks": [handler]})
    recorder.close()
    assert (recorder.stats().accepted, handler.failures.count) == (3, 0)

    provider = TracerProvider(resource=Resource.create({"service.name": "sales-agent"}))
    processor = BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"http://127.0.0.1:{otlp_port}", insecure=True)
    )
    provider.add_span_processor(processor)
    instrumentor = LangchainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        run_scenario({})
        assert processor.force_flush(timeout_millis=10_000)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()

    by_handler, by_otel = counts(handler_side), counts(otlp_side)
    assert by_otel == by_handler
    # 3 model calls per successful run, 2 in the failed one (it ended at the second tool).
    assert by_handler == {
        "executions": (3, 1),
        "error_types": [("CrmDown", 1)],
        "tools": [("score_lead", 3, 3), ("search_accounts", 3, 0)],
        "model_calls": 8,
        "input_tokens": 2 * 580 + 320,
        "output_tokens": 2 * 95 + 55,
        "cached_input_tokens": 3 * 20,
    }
