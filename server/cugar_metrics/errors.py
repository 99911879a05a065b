"""The one place where failures become gRPC statuses.

Bad input becomes INVALID_ARGUMENT with a `google.rpc.BadRequest` detail naming each field,
and an `ErrorInfo` whose reason is UPPER_SNAKE (grpc/grpc examples/python/errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from cugar_metrics.validation import Violation

ERROR_DOMAIN: Final = "cugar.metrics.v1"


def invalid_argument(summary: str, violations: Sequence[Violation], reason: str) -> grpc.Status:
    """INVALID_ARGUMENT whose message lists the violations and whose details carry them."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=v.field, description=v.description, reason=v.reason
            )
            for v in violations
        ]
    )
    info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN)
    details = []
    for detail in (bad_request, info):
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    listed = "; ".join(f"{v.field} {v.description}" for v in violations[:5])
    more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
    return rpc_status.to_status(
        status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=f"{summary}: {listed}{more}", details=details
        )
    )
