"""The OpenTelemetry Python SDK's own OTLP gRPC exporter, with a BatchSpanProcessor, sends the
GenAI spans of an instrumented agent to the real server process; the server counts exactly
the executions, tool calls and tokens they describe."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from prometheus_client.parser import text_string_to_metric_families

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.support.serverproc import ServerProcess, launch


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    process = launch(tmp_path, "--otlp-port", "0", name="otlp")
    otlp_port = json.loads((tmp_path / "otlp.ready.json").read_text())["otlp_port"]
    try:
        yield process, otlp_port
    finally:
        assert process.stop() == 0, process.output()


def counter(server: ServerProcess, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    with urllib.request.urlopen(f"http://{server.metrics_target}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


def test_genai_spans_from_the_sdk_exporter_become_exact_executions(
    served: tuple[ServerProcess, int],
) -> None:
    server, otlp_port = served
    exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{otlp_port}", insecure=True)
    memory = InMemorySpanExporter()  # the same spans, kept for the re-export below
    provider = TracerProvider(resource=Resource.create({"service.name": "sales-agent"}))
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
    provider.add_span_processor(processor)
    provider.add_span_processor(BatchSpanProcessor(memory, schedule_delay_millis=60_000))
    tracer = provider.get_tracer("agent")

    for run in range(3):
        with tracer.start_as_current_span(
            "invoke_agent sales_rep",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "sales_rep"},
        ):
            with tracer.start_as_current_span(
                "chat gpt-4o",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 100,
                },
            ):
                pass
            with tracer.start_as_current_span(
                "execute_tool search_accounts",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "search_accounts",
                    "cugar.domain": "territory",
                },
            ) as tool:
                if run == 2:
                    tool.set_attribute("error.type", "timeout")
                    tool.set_status(Status(StatusCode.ERROR))
            # The children leave in an Export of their own, before their agent span ends.
            assert processor.force_flush()
        assert processor.force_flush()
    assert provider.force_flush()

    with grpc.insecure_channel(server.target) as channel:
        d = pb_grpc.MetricsServiceStub(channel).GetDashboard(pb.GetDashboardRequest(), timeout=10)
    assert (d.executions.total, d.executions.succeeded, d.executions.total_steps) == (3, 3, 3)
    assert [(t.tool, t.calls, t.errors) for t in d.tools] == [("search_accounts", 3, 1)]
    assert [(m.model, m.calls, m.input_tokens, m.output_tokens) for m in d.models] == [
        ("gpt-4o", 3, 3000, 300)
    ]

    # A re-export of every span (an exporter retry) counts nothing twice.
    assert exporter.export(memory.get_finished_spans()) == SpanExportResult.SUCCESS
    with grpc.insecure_channel(server.target) as channel:
        d = pb_grpc.MetricsServiceStub(channel).GetDashboard(pb.GetDashboardRequest(), timeout=10)
    assert d.executions.total == 3 and d.ingest.duplicate == 3
    assert [(m.model, m.calls) for m in d.models] == [("gpt-4o", 3)]
    spans = counter(server, "cugar_otlp_spans_total")
    assert spans[(("result", "execution"),)] == 6  # 3, then 3 re-exported (duplicates)
    assert spans[(("result", "late"),)] == 6  # the re-exported children came after their agent
    assert spans[(("result", "tool_call"),)] == 3 and spans[(("result", "model_call"),)] == 3
    provider.shutdown()


def test_a_malformed_span_gets_partial_success_and_the_rest_is_kept(
    served: tuple[ServerProcess, int],
) -> None:
    server, _ = served
    good = trace_pb2.Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        name="invoke_agent demo",
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_002_000_000_000,
    )
    good.attributes.add(key="gen_ai.operation.name").value.string_value = "invoke_agent"
    good.attributes.add(key="gen_ai.agent.name").value.string_value = "demo"
    bad = trace_pb2.Span(trace_id=b"\x01" * 3, span_id=b"\x03" * 8, name="broken")
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.extend([good, bad])
    with grpc.insecure_channel(server.target) as channel:
        reply = trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)
        d = pb_grpc.MetricsServiceStub(channel).GetDashboard(pb.GetDashboardRequest(), timeout=10)
    assert reply.partial_success.rejected_spans == 1
    assert "span 'broken': trace_id must be 16 bytes" in reply.partial_success.error_message
    assert [(p.profile, p.total) for p in d.profiles] == [("demo", 1)]
    assert d.executions.total == 1


def test_garbage_on_the_otlp_port_is_invalid_argument(served: tuple[ServerProcess, int]) -> None:
    _, otlp_port = served
    with grpc.insecure_channel(f"127.0.0.1:{otlp_port}") as channel:
        call = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError) as caught:
            call(b"\xff\xff\xff", timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a ExportTraceServiceRequest message" in (caught.value.details() or "")
