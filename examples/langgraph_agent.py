"""A LangGraph agent measured by the cugar-metrics callback handler.

Run a server (`cugar-metrics serve`), then: python examples/langgraph_agent.py [HOST:PORT]
Needs `pip install "cugar-metrics-client[langchain]"`. The chat model here is LangChain's fake
one so the example runs offline; put your real chat model in its place.
"""

from __future__ import annotations

import sys
from typing import Annotated, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition

from cugar_metrics_client import BatchRecorder, Client
from cugar_metrics_client.adapters.langchain import CugarMetricsCallbackHandler


@tool
def search_accounts(region: str) -> str:
    """Find accounts in a region."""
    return f"3 accounts in {region}"


search_accounts.metadata = {"cugar.domain": "territory"}  # the tool's domain


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def main(target: str) -> None:
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    "",
                    tool_calls=[{"name": "search_accounts", "args": {"region": "emea"}, "id": "1"}],
                    usage_metadata={"input_tokens": 120, "output_tokens": 30, "total_tokens": 150},
                ),
                AIMessage(
                    "There are 3 accounts in EMEA.",
                    usage_metadata={"input_tokens": 180, "output_tokens": 12, "total_tokens": 192},
                ),
            ]
        )
    )
    graph = StateGraph(State)
    graph.add_node("model", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([search_accounts]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    agent = graph.compile()

    recorder = BatchRecorder(target)
    handler = CugarMetricsCallbackHandler(recorder, profile="sales_rep")
    result = agent.invoke({"messages": [("user", "accounts in emea?")]}, {"callbacks": [handler]})
    print(result["messages"][-1].content)
    recorder.close()
    with Client(target) as client:
        for row in client.get_dashboard().models:
            print(f"{row.model}: {row.calls} calls, {row.input_tokens} in, {row.output_tokens} out")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")
