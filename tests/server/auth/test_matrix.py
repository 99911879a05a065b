"""The auth matrix: every RPC x no key / malformed / unknown / revoked / each role -> the exact
status code and ErrorInfo reason; health always open; reflection follows its flag."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conftest import pb_execution
from tests.server.auth.helpers import (
    Handle,
    Keys,
    auth_server,
    bearer,
    error_info,
    make_keys,
    sample,
)

_ids = itertools.count()

Call = Callable[[grpc.Channel, Any], object]


def record_execution(channel: grpc.Channel, md: Any) -> object:
    stub = pb_grpc.MetricsServiceStub(channel)
    request = pb.RecordExecutionRequest(execution=pb_execution(f"m-{next(_ids)}"))
    return stub.RecordExecution(request, metadata=md, timeout=5)


def record_executions(channel: grpc.Channel, md: Any) -> object:
    stub = pb_grpc.MetricsServiceStub(channel)
    request = pb.RecordExecutionsRequest(executions=[pb_execution(f"b-{next(_ids)}")])
    return stub.RecordExecutions(request, metadata=md, timeout=5)


def get_dashboard(channel: grpc.Channel, md: Any) -> object:
    return pb_grpc.MetricsServiceStub(channel).GetDashboard(
        pb.GetDashboardRequest(), metadata=md, timeout=5
    )


def health_check(channel: grpc.Channel, md: Any) -> object:
    return health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="cugar.metrics.v1.MetricsService"),
        metadata=md,
        timeout=5,
    )


def reflection_list(channel: grpc.Channel, md: Any) -> object:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = list(stub.ServerReflectionInfo(iter([request]), metadata=md, timeout=5))
    services = {s.name for s in responses[0].list_services_response.service}
    assert "cugar.metrics.v1.MetricsService" in services
    return responses


CALLS: dict[str, Call] = {
    "RecordExecution": record_execution,
    "RecordExecutions": record_executions,
    "GetDashboard": get_dashboard,
    "health.Check": health_check,
    "reflection.list": reflection_list,
}

CREDENTIALS = ["none", "malformed", "unknown", "revoked", "recorder", "reader", "admin"]

OK = None
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
# credential -> refusal of a call that needs a key
_NEEDS_KEY = {
    "none": (UNAUTH, "MISSING_CREDENTIALS"),
    "malformed": (UNAUTH, "MALFORMED_CREDENTIALS"),
    "unknown": (UNAUTH, "UNKNOWN_KEY"),
    "revoked": (UNAUTH, "REVOKED_KEY"),
}
_ROLE_DENIED = (DENIED, "ROLE_NOT_ALLOWED")


def expected(call: str, credential: str, reflection_requires_auth: bool) -> Any:
    if call == "health.Check":
        return OK
    if call == "reflection.list" and not reflection_requires_auth:
        return OK
    if credential in _NEEDS_KEY:
        return _NEEDS_KEY[credential]
    if call == "reflection.list":
        return OK  # any valid key
    allowed = {
        "RecordExecution": {"recorder", "admin"},
        "RecordExecutions": {"recorder", "admin"},
        "GetDashboard": {"reader", "admin"},
    }[call]
    return OK if credential in allowed else _ROLE_DENIED


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module", params=[False, True], ids=["reflection-open", "reflection-auth"])
def server(request: pytest.FixtureRequest, keys: Keys) -> Iterator[tuple[Handle, bool]]:
    with auth_server(auth_keys_file=str(keys.path), reflection_requires_auth=request.param) as h:
        yield h, request.param


def metadata(keys: Keys, credential: str) -> Any:
    return {
        "none": (),
        "malformed": (("authorization", f"Basic {keys.by_name['rec-agent']}"),),
        "unknown": bearer("cgm_" + "x" * 43),
        "revoked": bearer(keys.by_name["gone-agent"]),
        "recorder": bearer(keys.by_name["rec-agent"]),
        "reader": bearer(keys.by_name["read-agent"]),
        "admin": bearer(keys.by_name["admin-agent"]),
    }[credential]


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("call", list(CALLS))
def test_auth_matrix(server: tuple[Handle, bool], keys: Keys, call: str, credential: str) -> None:
    """Each RPC with each kind of credential gets exactly the expected code and reason."""
    handle, reflection_requires_auth = server
    want = expected(call, credential, reflection_requires_auth)
    md = metadata(keys, credential)
    if want is OK:
        CALLS[call](handle.channel, md)
        return
    with pytest.raises(grpc.RpcError) as caught:
        CALLS[call](handle.channel, md)
    code, reason = want
    assert caught.value.code() == code
    info = error_info(caught.value)
    assert info.reason == reason
    assert info.domain == "cugar.metrics.v1"
    if reason == "ROLE_NOT_ALLOWED":
        assert info.metadata["role"] == credential
        assert info.metadata["method"] == f"cugar.metrics.v1.MetricsService/{call}"


def test_failures_are_counted_by_reason_and_refused_calls_by_code(tmp_path: Path) -> None:
    """cugar_auth_failures_total{reason} counts each refusal once; every reason exists at
    zero from start-up; grpc_server_handled_total sees the refused codes."""
    keys = make_keys(tmp_path)
    with auth_server(auth_keys_file=str(keys.path)) as h:
        before = h.metrics()
        for reason in (
            "missing_credentials",
            "malformed_credentials",
            "unknown_key",
            "revoked_key",
            "role_not_allowed",
        ):
            assert sample(before, "cugar_auth_failures_total", reason=reason) == 0
        for credential, times in (("none", 3), ("unknown", 2), ("revoked", 1), ("reader", 4)):
            for _ in range(times):
                with pytest.raises(grpc.RpcError):
                    record_execution(h.channel, metadata(keys, credential))
        record_execution(h.channel, metadata(keys, "recorder"))
        health_check(h.channel, ())
        text = h.metrics()
    assert sample(text, "cugar_auth_failures_total", reason="missing_credentials") == 3
    assert sample(text, "cugar_auth_failures_total", reason="malformed_credentials") == 0
    assert sample(text, "cugar_auth_failures_total", reason="unknown_key") == 2
    assert sample(text, "cugar_auth_failures_total", reason="revoked_key") == 1
    assert sample(text, "cugar_auth_failures_total", reason="role_not_allowed") == 4
    handled = {
        code: sample(
            text,
            "grpc_server_handled_total",
            grpc_type="unary",
            grpc_service="cugar.metrics.v1.MetricsService",
            grpc_method="RecordExecution",
            grpc_code=code,
        )
        for code in ("OK", "UNAUTHENTICATED", "PERMISSION_DENIED")
    }
    assert handled == {"OK": 1, "UNAUTHENTICATED": 6, "PERMISSION_DENIED": 4}
    assert sample(text, "cugar_ingest_executions_total", result="accepted") == 1
    assert sample(text, "cugar_auth_keys", state="active") == 3
    assert sample(text, "cugar_auth_keys", state="revoked") == 1


def test_last_seen_per_agent_is_exported_only_for_agents_that_recorded(tmp_path: Path) -> None:
    """The agent label comes from the keys file; readers and refused callers leave no series."""
    keys = make_keys(tmp_path)
    with auth_server(clock=lambda: 1_700_000_000.0, auth_keys_file=str(keys.path)) as h:
        record_execution(h.channel, metadata(keys, "recorder"))
        record_executions(h.channel, metadata(keys, "admin"))
        get_dashboard(h.channel, metadata(keys, "reader"))
        with pytest.raises(grpc.RpcError):
            record_execution(h.channel, metadata(keys, "revoked"))
        text = h.metrics()
    series = [
        line
        for line in text.splitlines()
        if line.startswith("cugar_agent_last_seen_timestamp_seconds{")
    ]
    assert series == [
        'cugar_agent_last_seen_timestamp_seconds{agent="admin-agent"} 1.7e+09',
        'cugar_agent_last_seen_timestamp_seconds{agent="rec-agent"} 1.7e+09',
    ]


def test_with_auth_off_everything_is_open_and_a_warning_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No --auth-keys-file: the default stays open, says so at WARNING, exports no auth series."""
    with caplog.at_level("WARNING", logger="cugar_metrics.auth"), auth_server() as h:
        record_execution(h.channel, ())
        get_dashboard(h.channel, ())
        text = h.metrics()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("authentication is off: anyone" in m and "--auth-keys-file" in m for m in warnings)
    assert "cugar_auth_failures_total" not in text
    assert "cugar_agent_last_seen_timestamp_seconds" not in text
