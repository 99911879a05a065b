"""The exceptions the clients raise, built from a gRPC error and its rich status details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field: its path from the request root, what is wrong, a stable reason."""

    field: str
    """For example ``execution.duration`` or ``executions[1].profile``."""
    description: str
    """What is wrong and what a valid value looks like."""
    reason: str
    """A stable UPPER_SNAKE code such as ``REQUIRED`` or ``OUT_OF_RANGE``."""

    def __str__(self) -> str:
        return f"{self.field}: {self.description}"


class CugarMetricsError(Exception):
    """A call to cugar-metrics failed; ``code`` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code: grpc.StatusCode = code
        self.message: str = message


class InvalidRequestError(CugarMetricsError):
    """The server rejected the request as invalid (INVALID_ARGUMENT).

    ``violations`` lists every offending field, read from the ``google.rpc.BadRequest``
    detail of the status.
    """

    def __init__(
        self, code: grpc.StatusCode, message: str, violations: tuple[FieldViolation, ...]
    ) -> None:
        super().__init__(code, message)
        self.violations: tuple[FieldViolation, ...] = violations

    def __str__(self) -> str:
        base = super().__str__()
        missing = [str(v) for v in self.violations if v.field not in self.message]
        return "; ".join([base, *missing])


class InvalidExecutionError(InvalidRequestError):
    """An execution failed validation; nothing of it was recorded."""


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    try:
        status: status_pb2.Status | None = rpc_status.from_call(error)
    except (ValueError, AttributeError, TypeError):
        # A trailer that does not match the status (or an error raised before any call)
        # carries no usable detail; the code and message still do.
        return None
    return status


def violations_of(error: grpc.RpcError) -> tuple[FieldViolation, ...]:
    """The field violations of the ``google.rpc.BadRequest`` detail of ``error``, if any."""
    status = _rich_status(error)
    if status is None:
        return ()
    found: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.extend(
                FieldViolation(field=v.field, description=v.description, reason=v.reason)
                for v in bad_request.field_violations
            )
    return tuple(found)


def from_rpc_error(
    error: grpc.RpcError, *, invalid: type[InvalidRequestError] = InvalidRequestError
) -> CugarMetricsError:
    """The library exception for a failed call; ``invalid`` is the INVALID_ARGUMENT class."""
    call: Any = error
    try:
        code: grpc.StatusCode = call.code()
        message: str = call.details() or ""
    except AttributeError:
        code, message = grpc.StatusCode.UNKNOWN, str(error)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return invalid(code, message, violations_of(error))
    return CugarMetricsError(code, message)
