"""GenAI spans from the real OpenTelemetry SDK become executions, whatever the export order."""

from __future__ import annotations

from opentelemetry.trace import Status, StatusCode

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics.otlp import Assembler, execution_id
from cugar_metrics.validation import Limits, validate_execution
from tests.server.otlp.spans import Agent, fail

NOW = 1_800_000_000.0


def one_execution(out_executions: list[tuple[pb.Execution, list[bytes]]]) -> pb.Execution:
    assert len(out_executions) == 1, out_executions
    return out_executions[0][0]


def test_children_exported_before_their_agent_make_one_execution() -> None:
    """Tool and model spans of an earlier Export wait for the agent span of a later one."""
    agent = Agent()
    assembler = Assembler()
    with agent.agent("sales_rep") as root:
        with agent.span("langgraph node"):  # a framework span between agent and children
            with agent.chat("gpt-4o", (1200, 300), gen_ai__usage__cache_read__input_tokens=200):
                pass
            with agent.tool("search_accounts", cugar__domain="territory"):
                pass
        first = agent.take()  # exported while the agent still runs
        with agent.tool("score_lead") as t:
            fail(t, "timeout")
        with agent.chat("gpt-4o-mini", (50, 5)):
            pass
        root.set_attribute("cugar.budget.spent", 3.5)
        root.set_attribute("cugar.budget.limit", 10.0)
    out1 = assembler.add(first, NOW)
    assert out1.executions == [] and assembler.held == 3
    assert dict(out1.counts) == {"ignored": 1}
    out2 = assembler.add(agent.take(), NOW + 1)
    e = one_execution(out2.executions)
    assert dict(out2.counts) == {"execution": 1, "tool_call": 2, "model_call": 2}
    ctx = root.get_span_context()
    assert e.execution_id == execution_id(
        ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big")
    )
    assert e.trace_id == format(ctx.trace_id, "032x")
    assert (e.profile, e.outcome, e.steps) == ("sales_rep", pb.OUTCOME_SUCCESS, 2)
    assert [(t.tool, t.domain, t.status, t.error_type) for t in e.tool_calls] == [
        ("search_accounts", "territory", pb.TOOL_CALL_STATUS_SUCCESS, ""),
        ("score_lead", "unknown", pb.TOOL_CALL_STATUS_ERROR, "timeout"),
    ]
    assert [
        (m.provider, m.model, m.input_tokens, m.output_tokens, m.cached_input_tokens)
        for m in e.model_calls
    ] == [("openai", "gpt-4o", 1200, 300, 200), ("openai", "gpt-4o-mini", 50, 5, 0)]
    assert (e.budget.spent, e.budget.limit) == (3.5, 10.0)
    assert validate_execution(e, "execution", Limits(), NOW)[1] == []
    assert assembler.held == 6  # every span of the trace, kept as a link for late spans


def test_a_failed_agent_span_is_a_failed_execution_with_its_error_type() -> None:
    agent = Agent()
    with agent.agent("demo") as root:
        fail(root, "ToolError")
    e = one_execution(Assembler().add(agent.take(), NOW).executions)
    assert (e.outcome, e.error_type, e.steps) == (pb.OUTCOME_FAILURE, "ToolError", 0)
    assert validate_execution(e, "execution", Limits(), NOW)[1] == []


def test_a_re_export_gives_the_same_execution_id() -> None:
    """The server's dedup then counts it once."""
    agent = Agent()
    with agent.agent():
        pass
    spans = agent.take()
    a, b = Assembler(), Assembler()
    assert (
        one_execution(a.add(spans, NOW).executions).execution_id
        == one_execution(b.add(spans, NOW).executions).execution_id
    )


def test_model_calls_without_an_agent_are_recorded_alone_and_tools_ignored() -> None:
    agent = Agent()
    with agent.span("http request"):
        with agent.chat("claude-sonnet", (10, 2), provider="anthropic"):
            pass
        with agent.tool("lookup"):
            pass
    out = Assembler().add(agent.take(), NOW)
    assert out.executions == []
    assert [(m.provider, m.model) for _, m in out.lone_model_calls] == [
        ("anthropic", "claude-sonnet")
    ]
    assert dict(out.counts) == {"model_call": 1, "ignored": 2}


def test_spans_that_come_after_their_agent_are_late() -> None:
    """They are dropped: the children of a re-exported trace arrive so, and were recorded."""
    agent = Agent()
    assembler = Assembler()
    with agent.agent() as root, agent.chat() as chat:
        with agent.tool("t1"):
            pass
        late = agent.take()
    assert [s.name for s in late] == ["execute_tool t1"]
    spans = agent.take()
    assert sorted(s.name for s in spans) == ["chat gpt-4o", "invoke_agent sales_rep"]
    out = assembler.add([s for s in spans if s.name.startswith("invoke")], NOW)
    assert one_execution(out.executions).model_calls == []
    out2 = assembler.add([s for s in spans if s.name.startswith("chat")] + late, NOW)
    assert dict(out2.counts) == {"late": 2}
    assert out2.lone_model_calls == []
    assert root is not None and chat is not None


def test_waiting_children_are_evicted_after_the_timeout() -> None:
    agent = Agent()
    assembler = Assembler(timeout=60)
    with agent.agent():
        with agent.chat():
            pass
        with agent.tool("t1"):
            pass
        children = agent.take()
    assert dict(assembler.add(children, NOW).counts) == {}
    assert assembler.held == 2
    out = assembler.add([], NOW + 59)
    assert dict(out.counts) == {}
    out = assembler.add([], NOW + 60)
    assert dict(out.counts) == {"evicted": 2}
    assert len(out.lone_model_calls) == 1 and assembler.held == 0


def test_the_count_bound_lets_the_oldest_trace_go_first() -> None:
    agent = Agent()
    assembler = Assembler(max_spans=4)
    batches = []
    for _ in range(3):
        with agent.agent():
            with agent.chat():
                pass
            with agent.tool("t"):
                pass
            batches.append(agent.take())
        agent.exporter.clear()  # the agent spans never come
    assert dict(assembler.add(batches[0], NOW).counts) == {}
    assert dict(assembler.add(batches[1], NOW + 1).counts) == {}
    out = assembler.add(batches[2], NOW + 2)
    assert dict(out.counts) == {"evicted": 2}
    assert assembler.held == 4


def test_drain_lets_everything_go() -> None:
    agent = Agent()
    assembler = Assembler()
    with agent.agent():
        with agent.chat():
            pass
        assembler.add(agent.take(), NOW)
    out = assembler.drain()
    assert dict(out.counts) == {"evicted": 1} and len(out.lone_model_calls) == 1
    assert assembler.held == 0


def test_a_rate_limited_model_call_is_told_apart_from_an_error() -> None:
    agent = Agent()
    with agent.agent():
        with agent.chat() as c1:
            fail(c1, "429")
        with agent.chat() as c2:
            fail(c2, "RateLimitError")
        with agent.chat() as c3:
            fail(c3, "APIConnectionError")
    e = one_execution(Assembler().add(agent.take(), NOW).executions)
    assert [(m.status, m.error_type) for m in e.model_calls] == [
        (pb.MODEL_CALL_STATUS_RATE_LIMITED, "e_429"),
        (pb.MODEL_CALL_STATUS_RATE_LIMITED, "RateLimitError"),
        (pb.MODEL_CALL_STATUS_ERROR, "APIConnectionError"),
    ]
    assert validate_execution(e, "execution", Limits(), NOW)[1] == []


def test_older_instrumentations_are_classified_by_their_own_attributes() -> None:
    """OpenLLMetry-style spans: traceloop.span.kind and llm.request.type."""
    agent = Agent()
    with agent.span("AgentExecutor.workflow", traceloop__span__kind="workflow"):
        with agent.span("search.tool", traceloop__span__kind="tool", gen_ai__tool__name="search"):
            pass
        with agent.span(
            "openai.chat",
            llm__request__type="chat",
            gen_ai__system="openai",
            gen_ai__request__model="gpt-4o",
            gen_ai__usage__input_tokens=7,
            gen_ai__usage__output_tokens=3,
        ):
            pass
    e = one_execution(Assembler().add(agent.take(), NOW).executions)
    assert [t.tool for t in e.tool_calls] == ["search"]
    assert [(m.provider, m.model, m.operation) for m in e.model_calls] == [
        ("openai", "gpt-4o", pb.MODEL_OPERATION_CHAT)
    ]
    assert e.profile == "unknown"


def test_an_agent_span_wrapping_the_same_run_is_not_a_second_execution() -> None:
    # OpenLLMetry's LangGraph instrumentation: `invoke_agent LangGraph` around the graph's own
    # `invoke_agent` span of the same name, which holds the calls and the error type.
    assembler = Assembler()
    agent = Agent()
    with agent.agent("LangGraph") as outer:
        with agent.agent("LangGraph") as inner:
            with agent.chat(tokens=(120, 30)):
                pass
            with agent.tool("score_lead") as t:
                fail(t, "CrmDown")
            fail(inner, "CrmDown")
        first = agent.take()  # the graph's span and its calls, exported before the wrapper
        outer.set_status(Status(StatusCode.ERROR))
    out = assembler.add(first, NOW)
    e = one_execution(out.executions)
    ctx = inner.get_span_context()
    assert e.execution_id == execution_id(
        ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big")
    )
    assert (e.outcome, e.error_type) == (pb.OUTCOME_FAILURE, "CrmDown")
    assert [(t.tool, t.status) for t in e.tool_calls] == [("score_lead", pb.TOOL_CALL_STATUS_ERROR)]
    assert [(m.input_tokens, m.output_tokens) for m in e.model_calls] == [(120, 30)]
    assert dict(out.counts) == {"execution": 1, "tool_call": 1, "model_call": 1}
    wrapper = assembler.add(agent.take(), NOW + 1)
    assert (wrapper.executions, dict(wrapper.counts)) == ([], {"ignored": 1})


def test_a_sub_agent_of_another_name_is_an_execution_of_its_own() -> None:
    assembler = Assembler()
    agent = Agent()
    with agent.agent("planner"):
        with agent.agent("researcher"), agent.chat(tokens=(10, 1)):
            pass
        with agent.chat(tokens=(20, 2)):
            pass
    out = assembler.add(agent.take(), NOW)
    assert sorted(
        (e.profile, [m.input_tokens for m in e.model_calls]) for e, _ in out.executions
    ) == [("planner", [20]), ("researcher", [10])]
    assert dict(+out.counts) == {"execution": 2, "model_call": 2}
