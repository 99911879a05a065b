"""Every language's client records model calls through its model-call helper (the `models`
scenario of clients/CONFORMANCE.md); the server then shows exactly those calls, tokens and
costs through /metrics and GetDashboard. `-k python` (or go, typescript, java) selects one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conformance.test_faults import LANGUAGES, Program, scrape
from tests.support.serverproc import ServerProcess, launch

pytestmark = pytest.mark.conformance

CALLS = {
    ("openai", "gpt-4o", "chat", "success"): 1,
    ("openai", "gpt-4o", "chat", "error"): 1,
    ("openai", "gpt-4o", "chat", "rate_limited"): 0,
    ("openai", "gpt-4o", "embeddings", "success"): 1,
    ("openai", "gpt-4o", "embeddings", "error"): 0,
    ("openai", "gpt-4o", "embeddings", "rate_limited"): 0,
    ("openai", "gpt-4o-mini", "chat", "success"): 1,
    ("openai", "gpt-4o-mini", "chat", "error"): 0,
    ("openai", "gpt-4o-mini", "chat", "rate_limited"): 0,
    ("anthropic", "claude-sonnet", "chat", "success"): 1,
    ("anthropic", "claude-sonnet", "chat", "error"): 0,
    ("anthropic", "claude-sonnet", "chat", "rate_limited"): 1,
}
TOKENS = {
    ("openai", "gpt-4o"): {"input": 1750, "output": 300, "cached_input": 200, "reasoning": 0},
    ("openai", "gpt-4o-mini"): {"input": 100, "output": 20, "cached_input": 0, "reasoning": 0},
    ("anthropic", "claude-sonnet"): {
        "input": 800,
        "output": 150,
        "cached_input": 0,
        "reasoning": 40,
    },
}
COST = {
    ("openai", "gpt-4o"): 0.0121,
    ("openai", "gpt-4o-mini"): 0.0,
    ("anthropic", "claude-sonnet"): 0.009,
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = launch(tmp_path, name="models")
    try:
        yield process
    finally:
        code = process.stop()
    assert code == 0, process.output()


def samples(server: ServerProcess, name: str) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for family in scrape(server):
        for s in family.samples:
            if s.name == name:
                out[tuple(s.labels[k] for k in sorted(s.labels))] = s.value
    return out


@pytest.mark.parametrize("language", LANGUAGES)
def test_model_calls_through_each_client(language: str, server: ServerProcess) -> None:
    profile = f"models_{language}"
    program = Program(language, server.target, profile, "models")
    try:
        account = program.finish()
    finally:
        program.kill()
    assert (account["recorded"], account["rejected"]) == (4, 0), program.output()

    ingest = samples(server, "cugar_ingest_executions_total")
    assert (ingest[("accepted",)], ingest[("duplicate",)], ingest[("rejected",)]) == (3, 1, 0)
    # Labels sorted by name: model, operation, provider, status.
    calls = {
        (provider, model, operation, status): v
        for (model, operation, provider, status), v in samples(
            server, "cugar_model_calls_total"
        ).items()
    }
    assert calls == CALLS
    tokens: dict[tuple[str, str], dict[str, float]] = {}
    for (model, provider, token_type), v in samples(server, "cugar_model_tokens_total").items():
        tokens.setdefault((provider, model), {})[token_type] = v
    assert tokens == TOKENS
    cost = {(p, m): v for (m, p), v in samples(server, "cugar_model_cost_total").items()}
    assert cost.keys() == COST.keys()
    for key, value in COST.items():
        assert cost[key] == pytest.approx(value, abs=1e-9), key
    ttft = samples(server, "cugar_model_time_to_first_token_seconds_count")
    assert ttft[("gpt-4o", "openai")] >= 1, "a successful chat call reports its first token"

    with grpc.insecure_channel(server.target) as channel:
        d = pb_grpc.MetricsServiceStub(channel).GetDashboard(pb.GetDashboardRequest(), timeout=10)
    rows = {(m.provider, m.model): (m.calls, m.errors, m.rate_limited) for m in d.models}
    assert rows == {
        ("anthropic", "claude-sonnet"): (2, 0, 1),
        ("openai", "gpt-4o"): (3, 1, 0),
        ("openai", "gpt-4o-mini"): (1, 0, 0),
    }
    assert d.executions.total == 3 and d.executions.failed == 1
