"""A batch costs what it carries (a real `cugar-metrics serve`).

Rate limits count executions, not RPCs: with a burst of 600, a batch of 500 leaves 100
tokens, so a second batch of 500 is refused and 100 single executions then fit. The reply to
a batch of rejected items stays under the message limit: echoed ids are cut to 128
characters and flagged.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics.server import MAX_MESSAGE_BYTES
from tests.conftest import pb_execution
from tests.process.faults.helpers import record, scrape, value
from tests.server.auth.helpers import bearer, make_keys
from tests.support.serverproc import launch


def test_rate_limits_count_executions_not_rpcs(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    key = keys.by_name["rec-agent"]
    process = launch(
        tmp_path,
        "--auth-keys-file",
        str(keys.path),
        "--rate-limit-recorder",
        "1/h:600",  # a burst of 600 executions, then one more an hour
        name="fair",
    )
    try:
        with grpc.insecure_channel(process.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)

            def batch(prefix: str) -> pb.RecordExecutionsResponse:
                executions = [pb_execution(f"{prefix}-{i}") for i in range(500)]
                response: pb.RecordExecutionsResponse = stub.RecordExecutions(
                    pb.RecordExecutionsRequest(executions=executions),
                    metadata=bearer(key),
                    timeout=30,
                )
                return response

            assert batch("a").accepted_count == 500
            with pytest.raises(grpc.RpcError) as caught:
                batch("b")  # 500 executions, 100 tokens left
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "500 executions" in (caught.value.details() or "")
            singles = [record(channel, f"c-{i}", key) for i in range(100)]
            assert singles == [pb.RECORD_RESULT_ACCEPTED] * 100
            with pytest.raises(grpc.RpcError) as last:
                record(channel, "c-100", key)
            assert last.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        text = scrape(process)
        assert value(text, 'cugar_ingest_executions_total{result="accepted"}') == 600
        assert value(text, 'cugar_rate_limited_total{role="recorder"}') == 2
    finally:
        assert process.stop() == 0


def test_the_reply_to_a_batch_of_rejected_items_stays_under_the_message_limit(
    tmp_path: Path,
) -> None:
    process = launch(tmp_path, name="echo")
    long_id = "x" * 14_700  # valid characters, far past the 128 allowed
    try:
        with grpc.insecure_channel(
            process.target,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ],
        ) as channel:
            executions = [pb_execution(f"{long_id}{i:04d}") for i in range(1000)]
            request = pb.RecordExecutionsRequest(executions=executions)
            assert request.ByteSize() > 14 * 1024 * 1024
            response = pb_grpc.MetricsServiceStub(channel).RecordExecutions(request, timeout=60)
            assert response.ByteSize() < 1024 * 1024
            assert response.rejected_count == 1000
            assert [r.index for r in response.rejected_executions] == list(range(1000))
            assert {r.execution_id for r in response.rejected_executions} == {long_id[:128]}
            assert all(r.execution_id_truncated for r in response.rejected_executions)
            assert all(
                [v.field for v in r.field_violations] == [f"executions[{r.index}].execution_id"]
                for r in response.rejected_executions
            )
            assert record(channel, "after") == pb.RECORD_RESULT_ACCEPTED
        text = scrape(process)
        assert value(text, 'cugar_ingest_executions_total{result="rejected"}') == 1000
        assert value(text, 'cugar_ingest_executions_total{result="accepted"}') == 1
    finally:
        assert process.stop() == 0
