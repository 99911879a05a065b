"""An OpenAI Agents SDK agent measured by the cugar-metrics trace processor.

Run a server (`cugar-metrics serve`), then: python examples/openai_agents_agent.py [HOST:PORT]
Needs `pip install "cugar-metrics-client[openai-agents]"`. The model here answers from a
script inside a generation span, as the SDK's own models do, so the example runs offline;
with an OpenAI key, drop `model=` and the SDK's model reports the real usage.
"""

from __future__ import annotations

import sys
from typing import Any

from agents import Agent, Runner, function_tool, set_trace_processors
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.testing import assistant_message, function_call
from agents.tracing import generation_span
from agents.usage import Usage

from cugar_metrics_client import BatchRecorder, Client
from cugar_metrics_client.adapters.openai_agents import CugarMetricsProcessor


class ScriptModel(Model):
    """Asks for one tool, then answers; each turn reports its token usage."""

    def __init__(self) -> None:
        self.turns = iter(
            [
                ([function_call("search_accounts", {"region": "emea"}, call_id="1")], 150, 20),
                ([assistant_message("There are 3 accounts in EMEA.")], 220, 35),
            ]
        )

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        output, inp, out = next(self.turns)
        with generation_span(model="gpt-4o") as span:
            span.span_data.usage = {"input_tokens": inp, "output_tokens": out}
        usage = Usage(requests=1, input_tokens=inp, output_tokens=out, total_tokens=inp + out)
        return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@function_tool
def search_accounts(region: str) -> str:
    """Find accounts in a region."""
    return f"3 accounts in {region}"


def main(target: str) -> None:
    recorder = BatchRecorder(target)
    # set_trace_processors replaces the SDK's own exporter; add_trace_processor keeps it.
    set_trace_processors(
        [CugarMetricsProcessor(recorder, "sales_rep", domains={"search_accounts": "territory"})]
    )
    agent = Agent(name="rep", model=ScriptModel(), tools=[search_accounts])
    print(Runner.run_sync(agent, "accounts in emea?").final_output)
    recorder.close()
    with Client(target) as client:
        for row in client.get_dashboard().models:
            print(f"{row.model}: {row.calls} calls, {row.input_tokens} in, {row.output_tokens} out")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
