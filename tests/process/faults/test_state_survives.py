"""Nothing accepted makes the saved state unrestorable (a real `cugar-metrics serve`).

The attack: executions with `budget.spent = 1e308` (and a tiny `budget.limit`, whose
utilisation ratio overflows) after 100 ordinary ones. The extremes are refused with a field
violation on `budget.spent` / `budget.limit`; after SIGTERM and a restart with the same
`--state-file`, every recorded execution is restored, exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import grpc

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics.validation import MAX_BUDGET, MIN_BUDGET_LIMIT
from cugar_metrics_client._errors import violations_of
from tests.conftest import pb_execution
from tests.process.faults.helpers import scrape, value
from tests.support.serverproc import launch

ORDINARY = 100


def violation_fields(error: grpc.RpcError) -> list[str]:
    return [v.field for v in violations_of(error)]


def test_extreme_budgets_cannot_wipe_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.bin"
    first = launch(tmp_path, "--state-file", str(state), name="before")
    try:
        with grpc.insecure_channel(first.target) as channel:
            stub = pb_grpc.MetricsServiceStub(channel)
            batch = [pb_execution(f"ok-{i}") for i in range(ORDINARY)]
            response = stub.RecordExecutions(
                pb.RecordExecutionsRequest(executions=batch), timeout=30
            )
            assert response.accepted_count == ORDINARY
            # The widest accepted values are recorded ...
            widest = [
                pb_execution(
                    f"wide-{i}", budget=pb.Budget(spent=MAX_BUDGET, limit=MIN_BUDGET_LIMIT)
                )
                for i in range(3)
            ]
            response = stub.RecordExecutions(
                pb.RecordExecutionsRequest(executions=widest), timeout=30
            )
            assert response.accepted_count == 3
            # ... and one step past them is refused, naming the field.
            attacks = [
                ("budget.spent", pb.Budget(spent=1e308, limit=10)),
                ("budget.spent", pb.Budget(spent=math.nextafter(MAX_BUDGET, math.inf), limit=10)),
                ("budget.limit", pb.Budget(spent=1, limit=1e308)),
                ("budget.limit", pb.Budget(spent=1e9, limit=5e-324)),
                ("budget.limit", pb.Budget(spent=1, limit=math.nextafter(MIN_BUDGET_LIMIT, 0))),
            ]
            for i, (field, budget) in enumerate(attacks):
                try:
                    stub.RecordExecution(
                        pb.RecordExecutionRequest(
                            execution=pb_execution(f"attack-{i}", budget=budget)
                        ),
                        timeout=10,
                    )
                    raise AssertionError(f"{budget} was accepted")
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert violation_fields(e) == [f"execution.{field}"]
        text = scrape(first)
        spent_before = value(text, 'cugar_budget_spent_total{profile="sales_rep"}')
        assert spent_before == 2 * ORDINARY + 3 * MAX_BUDGET
    finally:
        assert first.stop() == 0

    second = launch(tmp_path, "--state-file", str(state), name="after")
    try:
        text = scrape(second)
        assert value(text, 'cugar_ingest_executions_total{result="accepted"}') == ORDINARY + 3
        assert value(text, 'cugar_ingest_executions_total{result="rejected"}') == len(attacks)
        assert value(text, 'cugar_budget_spent_total{profile="sales_rep"}') == spent_before
        assert value(text, 'cugar_budget_utilization_ratio_count{profile="sales_rep"}') == (
            ORDINARY + 3
        )
        assert value(text, 'cugar_state_checkpoints_total{result="failure"}') == 0
    finally:
        assert second.stop() == 0
    assert not list(tmp_path.glob("state.bin.*corrupt*")), list(tmp_path.iterdir())
    assert "Traceback" not in second.output()
