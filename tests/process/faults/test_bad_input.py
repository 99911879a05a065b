"""No client input produces UNKNOWN, INTERNAL or a traceback (a real `cugar-metrics serve`).

Garbage bodies from an authorised caller, a dashboard window of 2^62 s, and Duration and
Timestamp extremes anywhere a request carries one: each is a clear INVALID_ARGUMENT naming
what is wrong, counted, and nothing recorded is lost.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics_client._errors import violations_of
from tests.conftest import pb_execution
from tests.process.faults.helpers import accepted, raw_call, record, scrape, value
from tests.server.auth.helpers import bearer, make_keys
from tests.support.serverproc import launch

GARBAGE = bytes(range(256)) * 64
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


def fields(error: grpc.RpcError) -> list[str]:
    return [v.field for v in violations_of(error)]


def test_bad_input_is_invalid_argument_never_unknown(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    writer = keys.by_name["admin-agent"]  # may record and read
    process = launch(tmp_path, "--auth-keys-file", str(keys.path), name="bad-input")
    try:
        with grpc.insecure_channel(process.target) as channel:
            assert record(channel, "kept-1", writer) == pb.RECORD_RESULT_ACCEPTED
            stub = pb_grpc.MetricsServiceStub(channel)

            # Garbage bodies from an authorised caller: INVALID_ARGUMENT naming the request.
            for method in ("RecordExecution", "RecordExecutions", "GetDashboard"):
                error = raw_call(channel, method, GARBAGE, writer)
                assert isinstance(error, grpc.RpcError)
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
                assert f"request is not a {method}Request message" in (error.details() or "")
                assert fields(error) == ["request"]

            # A batch whose second item does not parse: nothing of it is recorded.
            good = pb.RecordExecutionsRequest(executions=[pb_execution("never-1")])
            body = good.SerializeToString() + b"\x0a\x03\xff\xff\xff"
            error = raw_call(channel, "RecordExecutions", body, writer)
            assert isinstance(error, grpc.RpcError)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
            assert fields(error) == ["executions[1]"]
            # Millions of tiny fields are refused after a bounded walk.
            error = raw_call(channel, "RecordExecutions", b"\x10\x01" * 4_000_000, writer)
            assert isinstance(error, grpc.RpcError)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
            assert fields(error) == ["request"]

            # A window of 2^62 s (and the Duration extremes): INVALID_ARGUMENT on `window`.
            for seconds, nanos in ((2**62, 0), (2**63 - 1, 999_999_999), (-(2**63), 0), (1, -5)):
                try:
                    stub.GetDashboard(
                        pb.GetDashboardRequest(
                            window=duration_pb2.Duration(seconds=seconds, nanos=nanos)
                        ),
                        metadata=bearer(writer),
                        timeout=10,
                    )
                    raise AssertionError(f"window {seconds}s {nanos}ns was accepted")
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (seconds, e)
                    assert fields(e) == ["window"]

            codes: dict[str, int] = {}

            @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
            @given(
                window=st.tuples(INT64, INT32),
                duration=st.tuples(INT64, INT32),
                start=st.tuples(INT64, INT32),
                wait=st.tuples(INT64, INT32),
                call=st.tuples(INT64, INT32),
                spent=st.floats(allow_nan=True, allow_infinity=True),
            )
            def extremes(
                window: tuple[int, int],
                duration: tuple[int, int],
                start: tuple[int, int],
                wait: tuple[int, int],
                call: tuple[int, int],
                spent: float,
            ) -> None:
                try:
                    stub.GetDashboard(
                        pb.GetDashboardRequest(
                            window=duration_pb2.Duration(seconds=window[0], nanos=window[1])
                        ),
                        metadata=bearer(writer),
                        timeout=10,
                    )
                    codes["OK"] = codes.get("OK", 0) + 1
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
                    assert fields(e) == ["window"]
                execution = pb_execution(
                    "never-recorded",
                    duration=duration_pb2.Duration(seconds=duration[0], nanos=duration[1]),
                    start_time=timestamp_pb2.Timestamp(seconds=start[0], nanos=start[1]),
                    budget=pb.Budget(spent=spent, limit=10),
                )
                execution.approvals[0].wait.CopyFrom(
                    duration_pb2.Duration(seconds=wait[0], nanos=wait[1])
                )
                execution.tool_calls[0].duration.CopyFrom(
                    duration_pb2.Duration(seconds=call[0], nanos=call[1])
                )
                # Each execution here has at least one extreme value: validation answers,
                # and any that is accepted is a duplicate of the first.
                try:
                    stub.RecordExecution(
                        pb.RecordExecutionRequest(execution=execution),
                        metadata=bearer(writer),
                        timeout=10,
                    )
                    codes["RECORDED"] = codes.get("RECORDED", 0) + 1
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
                    assert fields(e)

            extremes()
            assert record(channel, "kept-2", writer) == pb.RECORD_RESULT_ACCEPTED
        text = scrape(process)
        assert value(text, 'cugar_rpc_refusals_total{reason="undecodable"}') == 5
        assert (
            value(
                text,
                'grpc_server_handled_total{grpc_code="INVALID_ARGUMENT",grpc_method="GetDashboard",'
                'grpc_service="cugar.metrics.v1.MetricsService",grpc_type="unary"}',
            )
            >= 5
        )
        assert accepted(process) == 2 + min(1, codes.get("RECORDED", 0))
    finally:
        assert process.stop() == 0
    log = process.output()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
