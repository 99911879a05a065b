"""GenAI spans from the OpenTelemetry SDK, exported over OTLP/gRPC to the server's receiver.

Run a server with its receiver (`cugar-metrics serve --otlp-port 4317`), then:
python examples/otlp_sdk.py [HOST:OTLP_PORT]
An instrumentation library (for example opentelemetry-instrumentation-openai-v2) makes the
chat spans for you; here they are written by hand so the example runs offline.
"""

from __future__ import annotations

import sys

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def main(endpoint: str) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "sales-agent"}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://{endpoint}", insecure=True))
    )
    tracer = provider.get_tracer("agent")
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
            },
        ):
            pass
    provider.shutdown()  # flushes the spans
    print("sent one execution with a chat call and a tool call")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:4317")
