"""Real OpenTelemetry SDK spans, encoded as OTLP exactly as the SDK's OTLP exporter sends them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, Status, StatusCode


class Agent:
    """An instrumented agent: GenAI spans recorded in memory, taken out in export batches."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test-agent")

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Span]:
        attrs = {k.replace("__", "."): v for k, v in attributes.items()}
        with self.tracer.start_as_current_span(name, attributes=attrs) as span:
            yield span

    def agent(self, name: str = "sales_rep", **attrs: Any) -> Any:
        return self.span(
            f"invoke_agent {name}",
            gen_ai__operation__name="invoke_agent",
            gen_ai__agent__name=name,
            **attrs,
        )

    def tool(self, tool: str, **attrs: Any) -> Any:
        return self.span(
            f"execute_tool {tool}",
            gen_ai__operation__name="execute_tool",
            gen_ai__tool__name=tool,
            **attrs,
        )

    def chat(
        self,
        model: str = "gpt-4o",
        tokens: tuple[int, int] = (100, 20),
        provider: str = "openai",
        **attrs: Any,
    ) -> Any:
        return self.span(
            f"chat {model}",
            gen_ai__operation__name="chat",
            gen_ai__provider__name=provider,
            gen_ai__request__model=model,
            gen_ai__usage__input_tokens=tokens[0],
            gen_ai__usage__output_tokens=tokens[1],
            **attrs,
        )

    def take(self) -> list[trace_pb2.Span]:
        """The spans finished since the last call, as OTLP protos (one Export's worth)."""
        finished: Sequence[ReadableSpan] = self.exporter.get_finished_spans()
        self.exporter.clear()
        request = encode_spans(finished)
        return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def fail(span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, error_type))
