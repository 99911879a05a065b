"""The LangChain/LangGraph callback handler on a real LangGraph agent, offline: a fake chat
model that asks for tools, real tool runs, executions read back from a real server."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.tools import tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition

from cugar_metrics_client import BatchRecorder, Client
from cugar_metrics_client.adapters.langchain import CugarMetricsCallbackHandler


class CrmDown(Exception):
    """The CRM did not answer."""


@tool
def search_accounts(region: str) -> str:
    """Find accounts in a region."""
    return f"3 accounts in {region}"


@tool
def score_lead(account: str) -> str:
    """Score one account."""
    raise CrmDown(account)


search_accounts.metadata = {"cugar.domain": "territory"}


def usage(i: int, o: int, cached: int = 0) -> Any:
    return {
        "input_tokens": i,
        "output_tokens": o,
        "total_tokens": i + o,
        "input_token_details": {"cache_read": cached},
    }


def turns() -> list[AIMessage]:
    """One agent run: search, then score (which fails), then the answer."""
    return [
        AIMessage(
            "",
            tool_calls=[{"name": "search_accounts", "args": {"region": "emea"}, "id": "c1"}],
            usage_metadata=usage(120, 30, cached=20),
        ),
        AIMessage(
            "",
            tool_calls=[{"name": "score_lead", "args": {"account": "acme"}, "id": "c2"}],
            usage_metadata=usage(200, 25),
        ),
        AIMessage("acme is not scored yet", usage_metadata=usage(260, 40)),
    ]


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def agent(messages: list[AIMessage], *, handle_tool_errors: bool = True) -> Any:
    model = GenericFakeChatModel(messages=iter(messages))
    graph = StateGraph(State)
    graph.add_node("model", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node(
        "tools", ToolNode([search_accounts, score_lead], handle_tool_errors=handle_tool_errors)
    )
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    return graph.compile()


def test_langgraph_agent_runs_become_executions(server: Any) -> None:
    recorder = BatchRecorder(server.target, flush_interval=0.05)
    handler = CugarMetricsCallbackHandler(recorder, profile="sales_rep")
    for _ in range(2):
        result = agent(turns()).invoke(
            {"messages": [("user", "score emea")]}, config={"callbacks": [handler]}
        )
        assert result["messages"][-1].content == "acme is not scored yet"
    # A run that fails: the tool's error is not handed to the model but ends the run.
    with pytest.raises(CrmDown):
        agent(turns(), handle_tool_errors=False).invoke(
            {"messages": [("user", "score emea")]}, config={"callbacks": [handler]}
        )
    recorder.close()
    with Client(server.target) as client:
        d = client.get_dashboard()
    assert (recorder.stats().accepted, handler.failures.count) == (3, 0)
    assert (d.executions.total, d.executions.failed) == (3, 1)
    assert [(e.error_type, e.count) for e in d.error_types] == [("CrmDown", 1)]
    assert [(t.domain, t.tool, t.calls, t.errors) for t in d.tools] == [
        ("territory", "search_accounts", 3, 0),
        ("unknown", "score_lead", 3, 3),
    ]
    rows = [
        (
            m.provider,
            m.model,
            m.calls,
            m.errors,
            m.input_tokens,
            m.output_tokens,
            m.cached_input_tokens,
        )
        for m in d.models
    ]
    # 3 calls per successful run, 2 in the failed one (it ended at the second tool).
    # The provider and model as LangChain names them (ls_provider, the model's name).
    assert rows == [
        ("genericfakechatmodel", "GenericFakeChatModel", 8, 0, 2 * 580 + 320, 2 * 95 + 55, 3 * 20)
    ]


class BrokenRecorder:
    def record(self, execution: Any) -> bool:
        raise RuntimeError("broken")


def test_a_failing_handler_never_breaks_the_agent() -> None:
    handler = CugarMetricsCallbackHandler(BrokenRecorder(), "sales_rep")  # type: ignore[arg-type]
    result = agent(turns()).invoke(
        {"messages": [("user", "score emea")]}, config={"callbacks": [handler]}
    )
    assert result["messages"][-1].content == "acme is not scored yet"
    assert handler.failures.count == 1
