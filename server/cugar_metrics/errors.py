"""The one place where failures become gRPC statuses.

Bad input becomes INVALID_ARGUMENT with a `google.rpc.BadRequest` detail naming each field,
and an `ErrorInfo` whose reason is UPPER_SNAKE (grpc/grpc examples/python/errors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
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


def _with_info(
    code: int,
    message: str,
    reason: str,
    metadata: dict[str, str] | None = None,
    extra: Sequence[Message] = (),
) -> grpc.Status:
    details = []
    for detail in (
        *extra,
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {}),
    ):
        packed = any_pb2.Any()
        packed.Pack(detail)
        details.append(packed)
    return rpc_status.to_status(status_pb2.Status(code=code, message=message, details=details))


def unauthenticated(message: str, reason: str) -> grpc.Status:
    """UNAUTHENTICATED: no, a malformed, an unknown or a revoked API key."""
    return _with_info(code_pb2.UNAUTHENTICATED, message, reason)


def permission_denied(message: str, reason: str, metadata: dict[str, str]) -> grpc.Status:
    """PERMISSION_DENIED: a valid key whose role may not call the method."""
    return _with_info(code_pb2.PERMISSION_DENIED, message, reason, metadata)


def rate_limited(message: str, retry_delay: float, metadata: dict[str, str]) -> grpc.Status:
    """RESOURCE_EXHAUSTED with a `google.rpc.RetryInfo` saying when a retry can succeed."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(max(1_000_000, math.ceil(retry_delay * 1e3) * 1_000_000))
    return _with_info(
        code_pb2.RESOURCE_EXHAUSTED,
        message,
        "RATE_LIMITED",
        metadata,
        [error_details_pb2.RetryInfo(retry_delay=delay)],
    )
