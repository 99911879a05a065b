"""With authentication on, execution ids are remembered per agent: an id one agent used never
turns another agent's execution into a duplicate (a caller that guesses another's ids cannot
shadow them), while each agent's own retries still count once."""

from __future__ import annotations

from pathlib import Path

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from tests.conftest import pb_execution
from tests.server.auth.helpers import auth_server, bearer, make_keys


def test_ids_are_remembered_per_agent(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    other = keys.add("other-agent", "recorder")
    mine = keys.by_name["rec-agent"]
    with auth_server(auth_keys_file=str(keys.path), metrics_open=True) as h:
        stub = pb_grpc.MetricsServiceStub(h.channel)

        def record(key: str, execution_id: str) -> int:
            response = stub.RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution(execution_id)),
                metadata=bearer(key),
                timeout=10,
            )
            return int(response.result)

        assert record(other, "order-1") == pb.RECORD_RESULT_ACCEPTED
        # The same id from another agent is that agent's own execution.
        assert record(mine, "order-1") == pb.RECORD_RESULT_ACCEPTED
        # Each agent's retry is a duplicate, in a batch as in a single call.
        assert record(mine, "order-1") == pb.RECORD_RESULT_DUPLICATE
        batch = stub.RecordExecutions(
            pb.RecordExecutionsRequest(executions=[pb_execution("order-1"), pb_execution("x-2")]),
            metadata=bearer(other),
            timeout=10,
        )
        assert list(batch.results) == [pb.RECORD_RESULT_DUPLICATE, pb.RECORD_RESULT_ACCEPTED]
        d = stub.GetDashboard(
            pb.GetDashboardRequest(), metadata=bearer(keys.by_name["read-agent"]), timeout=10
        )
        assert (d.executions.total, d.ingest.accepted, d.ingest.duplicate) == (3, 3, 2)
