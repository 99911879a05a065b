"""Labels an operator controls, in the real `cugar-metrics serve` process: the labels file's
reject and fold, the per-agent caps, and a labels file that cannot be used."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from prometheus_client.parser import text_string_to_metric_families

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conftest import pb_execution
from tests.server.auth.helpers import bearer, make_keys
from tests.support.serverproc import CLI, ServerProcess, launch

pytestmark = pytest.mark.e2e

LABELS = """\
profile:
  allow: ["sales_*"]
  outside: reject
tool:
  allow: ["search_*"]
  outside: fold
"""


def samples(proc: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(proc.metrics_url, timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    bad = error_details_pb2.BadRequest()
    next(d for d in status.details if d.Is(bad.DESCRIPTOR)).Unpack(bad)
    return [(v.field, v.reason) for v in bad.field_violations]


def test_reject_and_fold_from_a_labels_file(tmp_path: Path) -> None:
    labels = tmp_path / "labels.yaml"
    labels.write_text(LABELS)
    proc = launch(tmp_path, "--labels-file", str(labels), name="labels")
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)
            # Outside the profile allow-list: refused, naming the field.
            with pytest.raises(grpc.RpcError) as caught:
                stub.RecordExecution(
                    pb.RecordExecutionRequest(execution=pb_execution("r-1", profile="intruder")),
                    timeout=5,
                )
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert violations(caught.value) == [("execution.profile", "NOT_ALLOWED")]
            # A batch: item 1 refused by its profile, items 0 and 2 kept; score_lead folds.
            reply = stub.RecordExecutions(
                pb.RecordExecutionsRequest(
                    executions=[
                        pb_execution("b-0"),
                        pb_execution("b-1", profile="other_team"),
                        pb_execution("b-2", profile="sales_lead"),
                    ]
                ),
                timeout=5,
            )
            assert (reply.accepted_count, reply.rejected_count) == (2, 1)
            (refused,) = reply.rejected_executions
            assert refused.index == 1 and refused.execution_id == "b-1"
            assert [(v.field, v.reason) for v in refused.field_violations] == [
                ("executions[1].profile", "NOT_ALLOWED")
            ]
            dashboard = stub.GetDashboard(pb.GetDashboardRequest(), timeout=5)
        assert {p.profile: p.total for p in dashboard.profiles} == {
            "sales_rep": 1,
            "sales_lead": 1,
        }
        assert {(t.domain, t.tool): t.calls for t in dashboard.tools} == {
            ("territory", "search_accounts"): 2,
            ("qualification", "_other"): 2,
        }
        assert dashboard.ingest.rejected == 2 and dashboard.ingest.accepted == 2
        s = samples(proc)
        assert s[("cugar_ingest_rejections_total", (("reason", "not_allowed"),))] == 2
        folds = (("label", "tool"), ("reason", "not_allowed"))
        assert s[("cugar_label_folds_total", folds)] == 2
        assert (
            s[("cugar_label_folds_total", (("label", "profile"), ("reason", "not_allowed")))] == 0
        )
        assert (
            "cugar_executions_total",
            (("outcome", "success"), ("profile", "intruder")),
        ) not in s
    finally:
        assert proc.stop() == 0


def test_one_key_cannot_take_every_profile_slot(tmp_path: Path) -> None:
    """Agent A sends 60 distinct profiles (more than the 50 profile slots); agent B's real
    profile is still counted as itself, and A's profiles past its 5 become _overflow."""
    keys = make_keys(tmp_path)
    a = keys.add("agent-a", "recorder")
    b = keys.add("agent-b", "recorder")
    proc = launch(
        tmp_path,
        "--auth-keys-file",
        str(keys.path),
        "--max-values-per-agent",
        "5",
        name="agentcap",
    )
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)
            reply = stub.RecordExecutions(
                pb.RecordExecutionsRequest(
                    executions=[pb_execution(f"a-{i}", profile=f"squat_{i}") for i in range(60)]
                ),
                metadata=bearer(a),
                timeout=10,
            )
            assert reply.accepted_count == 60
            stub.RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution("b-1", profile="billing")),
                metadata=bearer(b),
                timeout=5,
            )
            dashboard = stub.GetDashboard(
                pb.GetDashboardRequest(), metadata=bearer(keys.by_name["read-agent"]), timeout=5
            )
        totals = {p.profile: p.total for p in dashboard.profiles}
        assert totals == {
            **{f"squat_{i}": 1 for i in range(5)},
            "_overflow": 55,
            "billing": 1,
        }
        s = samples(proc)
        assert s[("cugar_label_folds_total", (("label", "profile"), ("reason", "agent_cap")))] == 55
        assert s[("cugar_label_overflow_total", (("label", "profile"),))] == 0
    finally:
        assert proc.stop() == 0


def test_an_agents_values_survive_a_restart(tmp_path: Path) -> None:
    """With a state file, the values each agent introduced are saved with the rest: after a
    restart the agent is still at its cap (a new profile folds), its kept profiles still
    count as themselves, and another agent's quota is its own."""
    keys = make_keys(tmp_path)
    a = keys.add("agent-a", "recorder")
    b = keys.add("agent-b", "recorder")
    args = (
        "--auth-keys-file",
        str(keys.path),
        "--max-values-per-agent",
        "3",
        "--state-file",
        str(tmp_path / "state.bin"),
    )

    def record(proc: ServerProcess, key: str, ids_profiles: list[tuple[str, str]]) -> None:
        with grpc.insecure_channel(proc.target) as channel:
            reply = pb_grpc.MetricsServiceStub(channel).RecordExecutions(
                pb.RecordExecutionsRequest(
                    executions=[pb_execution(i, profile=p) for i, p in ids_profiles]
                ),
                metadata=bearer(key),
                timeout=10,
            )
        assert reply.accepted_count == len(ids_profiles)

    first = launch(tmp_path, *args, name="before")
    try:
        record(first, a, [(f"a-{i}", f"team_{i}") for i in range(3)])
    finally:
        assert first.stop() == 0
    second = launch(tmp_path, *args, name="after")
    try:
        record(second, a, [("a-3", "team_3"), ("a-4", "team_1")])
        record(second, b, [("b-0", "billing")])
        with grpc.insecure_channel(second.target) as channel:
            dashboard = pb_grpc.MetricsServiceStub(channel).GetDashboard(
                pb.GetDashboardRequest(), metadata=bearer(keys.by_name["read-agent"]), timeout=5
            )
        totals = {p.profile: p.total for p in dashboard.profiles}
        assert totals == {"team_0": 1, "team_1": 2, "team_2": 1, "_overflow": 1, "billing": 1}
        s = samples(second)
        assert s[("cugar_label_folds_total", (("label", "profile"), ("reason", "agent_cap")))] == 1
    finally:
        assert second.stop() == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("profile: [a]\n", "profile: expected exactly the keys allow and outside"),
        ("hostname:\n  allow: [a]\n  outside: fold\n", "'hostname' is not one of"),
        ("tool:\n  allow: [a]\n  outside: drop\n", "tool.outside: 'drop' is not reject or fold"),
        ("tool: [\n", "is not valid YAML"),
    ],
)
def test_a_bad_labels_file_stops_start_up_naming_the_flag(
    tmp_path: Path, text: str, problem: str
) -> None:
    labels = tmp_path / "labels.yaml"
    labels.write_text(text)
    done = subprocess.run(
        [
            str(CLI),
            "serve",
            "--no-auth",
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
            "--labels-file",
            str(labels),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("cugar-metrics: error: --labels-file: ") and problem in line


def test_a_tool_call_domain_is_refused_by_its_index_and_models_fold(tmp_path: Path) -> None:
    labels = tmp_path / "labels.yaml"
    labels.write_text(
        "domain:\n  allow: [territory, qualification]\n  outside: reject\n"
        "model:\n  allow: ['gpt-4*']\n  outside: fold\n"
    )
    proc = launch(tmp_path, "--labels-file", str(labels), name="calls")

    def model_call(model: str) -> pb.ModelCall:
        return pb.ModelCall(
            provider="openai",
            model=model,
            operation=pb.MODEL_OPERATION_CHAT,
            status=pb.MODEL_CALL_STATUS_SUCCESS,
            duration=Duration(seconds=1),
            input_tokens=10,
            output_tokens=5,
        )

    bad_domain = pb_execution("c-2")
    bad_domain.tool_calls[1].domain = "exfiltration"
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)
            reply = stub.RecordExecutions(
                pb.RecordExecutionsRequest(
                    executions=[
                        pb_execution("c-0", model_calls=[model_call("gpt-4o")]),
                        pb_execution("c-1", model_calls=[model_call("mystery-9")]),
                        bad_domain,
                        pb_execution("c-3", model_calls=[model_call("mystery-9")]),
                    ]
                ),
                timeout=5,
            )
            assert (reply.accepted_count, reply.rejected_count) == (3, 1)
            (refused,) = reply.rejected_executions
            assert refused.index == 2
            assert [(v.field, v.reason) for v in refused.field_violations] == [
                ("executions[2].tool_calls[1].domain", "NOT_ALLOWED")
            ]
            dashboard = stub.GetDashboard(pb.GetDashboardRequest(), timeout=5)
        assert {(m.provider, m.model): m.calls for m in dashboard.models} == {
            ("openai", "gpt-4o"): 1,
            ("openai", "_other"): 2,
        }
        assert {d.domain: d.calls for d in dashboard.domains} == {
            "territory": 3,
            "qualification": 3,
        }
        s = samples(proc)
        assert s[("cugar_label_folds_total", (("label", "model"), ("reason", "not_allowed")))] == 2
        assert s[("cugar_ingest_rejections_total", (("reason", "not_allowed"),))] == 1
    finally:
        assert proc.stop() == 0


def test_without_keys_the_per_agent_cap_folds_nothing(tmp_path: Path) -> None:
    """--max-values-per-agent counts per key name: with --no-auth there is none, and every
    value is kept as itself (the global caps still apply)."""
    proc = launch(tmp_path, "--max-values-per-agent", "1", name="nokeys")
    try:
        with grpc.insecure_channel(proc.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)
            stub.RecordExecutions(
                pb.RecordExecutionsRequest(
                    executions=[pb_execution(f"n-{i}", profile=f"team_{i}") for i in range(3)]
                ),
                timeout=5,
            )
            dashboard = stub.GetDashboard(pb.GetDashboardRequest(), timeout=5)
        assert {p.profile: p.total for p in dashboard.profiles} == {
            "team_0": 1,
            "team_1": 1,
            "team_2": 1,
        }
        s = samples(proc)
        assert s[("cugar_label_folds_total", (("label", "profile"), ("reason", "agent_cap")))] == 0
    finally:
        assert proc.stop() == 0


def agent_span(n: int, profile: str) -> trace_pb2.Span:
    """An OTLP agent span: one execution of `profile`, id n."""
    end = time.time_ns()
    span = trace_pb2.Span(
        trace_id=n.to_bytes(16, "big"),
        span_id=n.to_bytes(8, "big"),
        name=f"invoke_agent {profile}",
        start_time_unix_nano=end - 2_000_000_000,
        end_time_unix_nano=end,
    )
    span.attributes.add(key="gen_ai.operation.name").value.string_value = "invoke_agent"
    span.attributes.add(key="gen_ai.agent.name").value.string_value = profile
    return span


def test_otlp_executions_go_through_the_labels_file_and_the_keys_quota(tmp_path: Path) -> None:
    """An execution assembled from OTLP spans meets the same policy as a recorded one, with
    the same per-key state: agent A's 8 profiles over OTLP fill its 5 slots (3 fold into
    _overflow), a profile outside the labels file is refused as a rejected span, and A's
    direct RecordExecutions afterwards finds its slots taken."""
    keys = make_keys(tmp_path)
    a = keys.add("agent-a", "recorder")
    labels = tmp_path / "labels.yaml"
    labels.write_text('profile:\n  allow: ["squat_*"]\n  outside: reject\n')
    proc = launch(
        tmp_path,
        "--auth-keys-file",
        str(keys.path),
        "--max-values-per-agent",
        "5",
        "--labels-file",
        str(labels),
        name="otlplabels",
    )
    try:
        request = trace_service_pb2.ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        spans.extend(agent_span(i + 1, f"squat_{i}") for i in range(8))
        spans.append(agent_span(100, "intruder"))
        with grpc.insecure_channel(proc.target) as channel:
            export = trace_service_pb2_grpc.TraceServiceStub(channel).Export
            reply = export(request, metadata=bearer(a), timeout=10)
            assert reply.partial_success.rejected_spans == 1
            assert "span.profile 'intruder' is not allowed by --labels-file" in (
                reply.partial_success.error_message
            )
            stub = pb_grpc.MetricsServiceStub(channel)
            direct = stub.RecordExecutions(
                pb.RecordExecutionsRequest(
                    executions=[
                        pb_execution("d-0", profile="squat_0"),
                        pb_execution("d-1", profile="squat_9"),
                    ]
                ),
                metadata=bearer(a),
                timeout=10,
            )
            assert (direct.accepted_count, direct.rejected_count) == (2, 0)
            dashboard = stub.GetDashboard(
                pb.GetDashboardRequest(), metadata=bearer(keys.by_name["read-agent"]), timeout=5
            )
        assert {p.profile: p.total for p in dashboard.profiles} == {
            "squat_0": 2,
            **{f"squat_{i}": 1 for i in range(1, 5)},
            "_overflow": 4,
        }
        s = samples(proc)
        assert s[("cugar_label_folds_total", (("label", "profile"), ("reason", "agent_cap")))] == 4
        assert s[("cugar_otlp_spans_total", (("result", "rejected"),))] == 1
        assert s[("cugar_otlp_spans_total", (("result", "execution"),))] == 8
    finally:
        assert proc.stop() == 0


def chat_span(n: int, model: str) -> trace_pb2.Span:
    """An OTLP chat span with no agent above it: a model call recorded alone, id n."""
    end = time.time_ns()
    span = trace_pb2.Span(
        trace_id=n.to_bytes(16, "big"),
        span_id=n.to_bytes(8, "big"),
        name=f"chat {model}",
        start_time_unix_nano=end - 1_000_000_000,
        end_time_unix_nano=end,
    )
    for key, value in (
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.request.model", model),
    ):
        span.attributes.add(key=key).value.string_value = value
    span.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 10
    return span


@pytest.mark.parametrize("outside", ["fold", "reject"])
def test_model_calls_recorded_alone_from_otlp_meet_the_labels_file(
    tmp_path: Path, outside: str
) -> None:
    """A chat span with no agent span above it is a model call recorded alone; the labels
    file's `model` rule folds it into _other or refuses it (a rejected span), as it does a
    model call of a recorded execution."""
    labels = tmp_path / "labels.yaml"
    labels.write_text(f"model:\n  allow: ['gpt-4*']\n  outside: {outside}\n")
    proc = launch(tmp_path, "--labels-file", str(labels), name=f"lone{outside}")
    try:
        request = trace_service_pb2.ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        spans.extend([chat_span(1, "gpt-4o"), chat_span(2, "mystery-9"), chat_span(3, "gpt-4o")])
        with grpc.insecure_channel(proc.target) as channel:
            reply = trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)
            dashboard = pb_grpc.MetricsServiceStub(channel).GetDashboard(
                pb.GetDashboardRequest(), timeout=5
            )
        models = {(m.provider, m.model): m.calls for m in dashboard.models}
        s = samples(proc)
        folds = s[("cugar_label_folds_total", (("label", "model"), ("reason", "not_allowed")))]
        spans_by_result = {
            r: s[("cugar_otlp_spans_total", (("result", r),))] for r in ("model_call", "rejected")
        }
        if outside == "fold":
            assert reply.partial_success.rejected_spans == 0
            assert models == {("openai", "gpt-4o"): 2, ("openai", "_other"): 1}
            assert folds == 1
            assert spans_by_result == {"model_call": 3, "rejected": 0}
        else:
            assert reply.partial_success.rejected_spans == 1
            assert "span.model 'mystery-9' is not allowed by --labels-file" in (
                reply.partial_success.error_message
            )
            assert models == {("openai", "gpt-4o"): 2}
            assert folds == 0
            assert spans_by_result == {"model_call": 2, "rejected": 1}
    finally:
        assert proc.stop() == 0
