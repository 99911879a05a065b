"""The gRPC service in-process on port 0: every RPC, every error path, batch partial success."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar_metrics_client._errors import violations_of
from tests.conftest import ServerHandle, dur, pb_execution


def bad_request(error: grpc.RpcError) -> list[tuple[str, str]]:
    return [(v.field, v.reason) for v in violations_of(error)]


def samples(server: ServerHandle) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def test_record_then_resend_is_a_duplicate_counted_once(server: ServerHandle) -> None:
    stub = server.stub
    first = stub.RecordExecution(pb.RecordExecutionRequest(execution=pb_execution("r-1")))
    again = stub.RecordExecution(pb.RecordExecutionRequest(execution=pb_execution("r-1")))
    assert first.result == pb.RECORD_RESULT_ACCEPTED
    assert again.result == pb.RECORD_RESULT_DUPLICATE
    d = stub.GetDashboard(pb.GetDashboardRequest())
    assert (d.executions.total, d.ingest.accepted, d.ingest.duplicate) == (1, 1, 1)
    m = samples(server)
    assert (
        m[
            (
                "cugar_executions_total",
                (("error_type", ""), ("outcome", "success"), ("profile", "sales_rep")),
            )
        ]
        == 1
    )
    assert m[("cugar_ingest_executions_total", (("result", "duplicate"),))] == 1


@pytest.mark.parametrize(
    ("execution", "field"),
    [
        (pb_execution("", profile="demo"), "execution.execution_id"),
        (pb_execution("b-1", duration=dur(1.7e9)), "execution.duration"),
        (pb_execution("b-2", profile='we"ird'), "execution.profile"),
        (pb_execution("b-3", outcome=pb.OUTCOME_FAILURE), "execution.error_type"),
        (
            pb_execution("b-4", tool_calls=[pb.ToolCall(tool="t", domain="d", duration=dur(1))]),
            "execution.tool_calls[0].status",
        ),
    ],
)
def test_invalid_execution_is_rejected_with_the_field_named_and_nothing_recorded(
    server: ServerHandle, execution: pb.Execution, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.RecordExecution(pb.RecordExecutionRequest(execution=execution))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in bad_request(caught.value)]
    assert field in caught.value.details()
    d = server.stub.GetDashboard(pb.GetDashboardRequest())
    assert (d.executions.total, d.ingest.accepted, d.ingest.rejected) == (0, 0, 1)
    assert not d.golden_signals.HasField("success_rate")
    assert (
        sum(
            v for (name, _), v in samples(server).items() if name == "cugar_ingest_rejections_total"
        )
        == 1
    )


def test_missing_execution_message_names_the_field(server: ServerHandle) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.RecordExecution(pb.RecordExecutionRequest())
    assert bad_request(caught.value) == [("execution", "REQUIRED")]


def test_a_bad_item_in_a_batch_never_drops_the_good_ones(server: ServerHandle) -> None:
    response = server.stub.RecordExecutions(
        pb.RecordExecutionsRequest(
            executions=[
                pb_execution("k-1"),
                pb_execution("k-2", profile=""),
                pb_execution("k-1"),
                pb_execution("k-3", duration=dur(-1)),
                pb_execution("k-4", outcome=pb.OUTCOME_FAILURE, error_type="ToolError"),
            ]
        )
    )
    assert (response.accepted_count, response.duplicate_count, response.rejected_count) == (2, 1, 2)
    assert list(response.results) == [
        pb.RECORD_RESULT_ACCEPTED,
        pb.RECORD_RESULT_REJECTED,
        pb.RECORD_RESULT_DUPLICATE,
        pb.RECORD_RESULT_REJECTED,
        pb.RECORD_RESULT_ACCEPTED,
    ]
    assert [
        (r.index, r.execution_id, [v.field for v in r.field_violations])
        for r in response.rejected_executions
    ] == [(1, "k-2", ["executions[1].profile"]), (3, "k-3", ["executions[3].duration"])]
    d = server.stub.GetDashboard(pb.GetDashboardRequest())
    assert (d.executions.total, d.executions.succeeded, d.executions.failed) == (2, 1, 1)
    assert (d.ingest.accepted, d.ingest.duplicate, d.ingest.rejected) == (2, 1, 2)


@pytest.mark.parametrize("size", [0, 1001])
def test_batch_size_is_enforced_and_nothing_recorded(server: ServerHandle, size: int) -> None:
    batch = [pb_execution(f"s-{i}") for i in range(size)]
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.RecordExecutions(pb.RecordExecutionsRequest(executions=batch))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request(caught.value) == [("executions", "BATCH_SIZE")]
    d = server.stub.GetDashboard(pb.GetDashboardRequest())
    assert (d.executions.total, d.ingest.rejected) == (0, size)


def test_a_batch_of_1000_is_accepted(server: ServerHandle) -> None:
    batch = [pb_execution(f"m-{i}") for i in range(1000)]
    response = server.stub.RecordExecutions(pb.RecordExecutionsRequest(executions=batch))
    assert response.accepted_count == 1000


def test_dashboard_fields_and_replica_scope(server: ServerHandle) -> None:
    server.stub.RecordExecution(pb.RecordExecutionRequest(execution=pb_execution("d-1")))
    d = server.stub.GetDashboard(pb.GetDashboardRequest(window=dur(300)))
    assert d.scope == pb.DASHBOARD_SCOPE_REPLICA
    assert d.replica == "test-replica"
    # The server is younger than the window: the effective window is its whole life.
    window = d.window.ToTimedelta().total_seconds()
    assert 0 < window < 300
    assert d.window_end_time.ToNanoseconds() - d.window_start_time.ToNanoseconds() == pytest.approx(
        window * 1e9, abs=1000
    )
    g = d.golden_signals
    assert (g.success_rate, g.error_rate, g.tool_error_rate) == (1.0, 0.0, 0.5)
    assert g.budget_utilization == pytest.approx(0.2)
    assert abs(g.latency_p50.ToTimedelta().total_seconds() - 1.5) <= 0.015
    assert [(t.domain, t.tool, t.calls, t.errors) for t in d.tools] == [
        ("qualification", "score_lead", 1, 1),
        ("territory", "search_accounts", 1, 0),
    ]
    assert [(p.profile, p.total) for p in d.profiles] == [("sales_rep", 1)]
    assert [(a.decision, a.count) for a in d.approvals.by_decision] == [
        (pb.APPROVAL_DECISION_APPROVED, 1),
        (pb.APPROVAL_DECISION_DENIED, 0),
        (pb.APPROVAL_DECISION_TIMEOUT, 0),
        (pb.APPROVAL_DECISION_CANCELLED, 0),
    ]
    assert d.HasField("first_execution_time") and d.HasField("last_execution_time")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetDashboardRequest(window=dur(30)), "window"),
        (pb.GetDashboardRequest(window=dur(7200)), "window"),
        (pb.GetDashboardRequest(profile="bad name"), "profile"),
        (pb.GetDashboardRequest(domain="9x"), "domain"),
    ],
)
def test_dashboard_rejects_bad_windows_and_filters(
    server: ServerHandle, request_: pb.GetDashboardRequest, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.GetDashboard(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in bad_request(caught.value)] == [field]


def test_idle_dashboard_has_absent_rates(server: ServerHandle) -> None:
    g = server.stub.GetDashboard(pb.GetDashboardRequest(window=dur(60))).golden_signals
    for name in (
        "success_rate",
        "error_rate",
        "tool_error_rate",
        "budget_utilization",
        "latency_p50",
        "latency_p95",
        "latency_p99",
        "mean_steps",
        "throughput_per_second",
        "approval_wait_p95",
    ):
        assert not g.HasField(name), name


def test_metrics_and_dashboard_agree_on_counts_under_concurrent_load(server: ServerHandle) -> None:
    def worker(n: int) -> None:
        for i in range(100):
            outcome = {"outcome": pb.OUTCOME_FAILURE, "error_type": "timeout"} if i % 4 == 0 else {}
            server.stub.RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution(f"c-{n}-{i}", **outcome))
            )
            server.stub.RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution(f"c-{n}-{i}", **outcome))
            )

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    d = server.stub.GetDashboard(pb.GetDashboardRequest())
    m = samples(server)
    assert (d.executions.total, d.executions.failed) == (800, 200)
    assert (
        m[
            (
                "cugar_executions_total",
                (("error_type", "timeout"), ("outcome", "failure"), ("profile", "sales_rep")),
            )
        ]
        == d.executions.failed
    )
    assert (
        m[
            (
                "cugar_executions_total",
                (("error_type", ""), ("outcome", "success"), ("profile", "sales_rep")),
            )
        ]
        == d.executions.succeeded
    )
    assert m[("cugar_ingest_executions_total", (("result", "duplicate"),))] == 800
    assert (
        sum(t.calls for t in d.tools)
        == m[
            (
                "cugar_tool_calls_total",
                (("domain", "territory"), ("status", "success"), ("tool", "search_accounts")),
            )
        ]
        + m[
            (
                "cugar_tool_calls_total",
                (("domain", "qualification"), ("status", "error"), ("tool", "score_lead")),
            )
        ]
        == 1600
    )


def test_grpc_server_metrics_count_calls_by_code(server: ServerHandle) -> None:
    server.stub.RecordExecution(pb.RecordExecutionRequest(execution=pb_execution("g-1")))
    with pytest.raises(grpc.RpcError):
        server.stub.RecordExecution(pb.RecordExecutionRequest())
    base = (
        ("grpc_method", "RecordExecution"),
        ("grpc_service", "cugar.metrics.v1.MetricsService"),
        ("grpc_type", "unary"),
    )
    # An aborted RPC's status reaches the client before the interceptor's bookkeeping after
    # the abort has run: wait (briefly) for it.
    deadline = time.monotonic() + 30
    while True:
        m = samples(server)
        if m[("grpc_server_handling_seconds_count", base)] == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert m[("grpc_server_started_total", base)] == 2
    assert m[("grpc_server_handled_total", tuple(sorted((*base, ("grpc_code", "OK")))))] == 1
    assert (
        m[("grpc_server_handled_total", tuple(sorted((*base, ("grpc_code", "INVALID_ARGUMENT")))))]
        == 1
    )
    assert m[("grpc_server_handling_seconds_count", base)] == 2
    # Every method is created at zero for every code at start-up.
    assert (
        m[
            (
                "grpc_server_handled_total",
                tuple(
                    sorted(
                        (
                            ("grpc_method", "GetDashboard"),
                            ("grpc_service", "cugar.metrics.v1.MetricsService"),
                            ("grpc_type", "unary"),
                            ("grpc_code", "UNAVAILABLE"),
                        )
                    )
                ),
            )
        ]
        == 0
    )


def test_health_serving_for_overall_and_the_service(server: ServerHandle) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    for service in ("", "cugar.metrics.v1.MetricsService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_services(server: ServerHandle) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel)
    responses = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert names == {
        "cugar.metrics.v1.MetricsService",
        "opentelemetry.proto.collector.trace.v1.TraceService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


def test_http_landing_page_links_to_metrics_and_unknown_paths_are_404(server: ServerHandle) -> None:
    root = server.metrics_url.removesuffix("/metrics")
    with urllib.request.urlopen(root + "/", timeout=5) as r:
        assert r.status == 200
        assert 'href="/metrics"' in r.read().decode()
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(root + "/nope", timeout=5)
    assert caught.value.code == 404
    with urllib.request.urlopen(server.metrics_url, timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain")


def test_metrics_endpoint_fails_loudly_when_a_collector_fails(server: ServerHandle) -> None:
    """Predecessor defect 8: /metrics answered 200 with an error comment when it failed."""

    class Broken(Collector):
        def collect(self) -> Iterator[Metric]:
            raise RuntimeError("snapshot unavailable")

    server.running.registry.register(Broken())
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(server.metrics_url, timeout=5)
    assert caught.value.code == 500
    # The gRPC side is unaffected.
    response = server.stub.RecordExecution(pb.RecordExecutionRequest(execution=pb_execution("z")))
    assert response.result == pb.RECORD_RESULT_ACCEPTED
