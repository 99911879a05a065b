"""opentelemetry-instrumentation-openai-v2 instruments the real `openai` client, which calls a
local OpenAI-compatible stub; the OTel SDK's OTLP gRPC exporter sends the spans to the real
server process, which counts each chat call as a model call with the exact tokens the stub
returned."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.process.otlp.test_otlp_export import counter
from tests.support.serverproc import ServerProcess, launch

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "3 accounts in emea"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 321, "completion_tokens": 47, "total_tokens": 368},
}


class Stub(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # http.server's name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps(COMPLETION).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    process = launch(tmp_path, "--otlp-port", "0", name="otlp")
    otlp_port = json.loads((tmp_path / "otlp.ready.json").read_text())["otlp_port"]
    try:
        yield process, otlp_port
    finally:
        assert process.stop() == 0, process.output()


def test_instrumented_openai_chat_calls_are_model_calls(
    served: tuple[ServerProcess, int], stub: str
) -> None:
    server, otlp_port = served
    provider = TracerProvider(resource=Resource.create({"service.name": "sales-agent"}))
    processor = BatchSpanProcessor(
        OTLPSpanExporter(endpoint=f"http://127.0.0.1:{otlp_port}", insecure=True)
    )
    provider.add_span_processor(processor)
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        client = OpenAI(base_url=stub, api_key="test-key", max_retries=0)
        tracer = provider.get_tracer("agent")
        for _ in range(2):
            with tracer.start_as_current_span(
                "invoke_agent sales_rep",
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "sales_rep",
                },
            ):
                for _ in range(2):
                    answer = client.chat.completions.create(
                        model="gpt-4o", messages=[{"role": "user", "content": "emea?"}]
                    )
                    assert answer.usage is not None and answer.usage.prompt_tokens == 321
        assert processor.force_flush(timeout_millis=10_000)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    calls = counter(server, "cugar_model_calls_total")
    tokens = counter(server, "cugar_model_tokens_total")
    ok = (
        ("model", "gpt-4o"),
        ("operation", "chat"),
        ("provider", "openai"),
        ("status", "success"),
    )
    assert calls[ok] == 4
    assert sum(calls.values()) == 4
    base = (("model", "gpt-4o"), ("provider", "openai"))
    assert tokens[(*base, ("type", "input"))] == 4 * 321
    assert tokens[(*base, ("type", "output"))] == 4 * 47
    executions = counter(server, "cugar_executions_total")
    assert sum(executions.values()) == 2
