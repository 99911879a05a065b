"""The exceptions the clients raise, built from a gRPC error and its rich status details."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class StatusDetails:
    """What the ``google.rpc.Status`` details of a failed call say."""

    violations: tuple[FieldViolation, ...] = ()
    """The field violations of a ``google.rpc.BadRequest``."""
    reason: str = ""
    """The ``google.rpc.ErrorInfo`` reason, e.g. ``UNKNOWN_KEY``; empty without one."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """The ``google.rpc.ErrorInfo`` metadata, e.g. ``{"role": "reader", ...}``."""
    retry_delay: float | None = None
    """Seconds to wait before retrying, from a ``google.rpc.RetryInfo``; None without one."""


class CugarMetricsError(Exception):
    """A call to cugar-metrics failed; ``code`` is the gRPC status code.

    ``reason`` is the ``google.rpc.ErrorInfo`` reason the server gave (``""`` if none),
    ``metadata`` that ErrorInfo's metadata, and ``retry_delay`` the seconds a
    ``google.rpc.RetryInfo`` asked the caller to wait (``None`` if none).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_delay: float | None = None,
    ) -> None:
        head = f"{code.name} ({reason})" if reason and reason not in message else code.name
        super().__init__(f"{head}: {message}" if message else head)
        self.code: grpc.StatusCode = code
        self.message: str = message
        self.reason: str = reason
        self.metadata: Mapping[str, str] = dict(metadata or {})
        self.retry_delay: float | None = retry_delay


class UnauthenticatedError(CugarMetricsError):
    """UNAUTHENTICATED: no API key, or a malformed, unknown or revoked one.

    ``reason`` is ``MISSING_CREDENTIALS``, ``MALFORMED_CREDENTIALS``, ``UNKNOWN_KEY`` or
    ``REVOKED_KEY``.
    """


class PermissionDeniedError(CugarMetricsError):
    """PERMISSION_DENIED: the API key is valid but its role may not call the method.

    ``reason`` is ``ROLE_NOT_ALLOWED``; ``metadata`` names the ``role`` and the ``method``.
    """


class ResourceExhaustedError(CugarMetricsError):
    """RESOURCE_EXHAUSTED: a rate limit (``reason`` ``RATE_LIMITED``, with ``retry_delay``)
    still refused the call after the client's retries, or a message was too large."""


class InvalidRequestError(CugarMetricsError):
    """The server rejected the request as invalid (INVALID_ARGUMENT).

    ``violations`` lists every offending field, read from the ``google.rpc.BadRequest``
    detail of the status.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        violations: tuple[FieldViolation, ...],
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code, message, reason=reason, metadata=metadata)
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


def status_details(error: grpc.RpcError) -> StatusDetails:
    """The BadRequest, ErrorInfo and RetryInfo details of ``error``, where present."""
    status = _rich_status(error)
    if status is None:
        return StatusDetails()
    violations: list[FieldViolation] = []
    reason = ""
    metadata: dict[str, str] = {}
    retry_delay: float | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(field=v.field, description=v.description, reason=v.reason)
                for v in bad_request.field_violations
            )
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_delay = max(0.0, retry.retry_delay.ToNanoseconds() / 1e9)
    return StatusDetails(tuple(violations), reason, metadata, retry_delay)


def violations_of(error: grpc.RpcError) -> tuple[FieldViolation, ...]:
    """The field violations of the ``google.rpc.BadRequest`` detail of ``error``, if any."""
    return status_details(error).violations


def code_of(error: grpc.RpcError) -> grpc.StatusCode:
    """The status code of a failed call (UNKNOWN for an error that carries none)."""
    call: Any = error
    try:
        code: grpc.StatusCode = call.code()
    except AttributeError:
        return grpc.StatusCode.UNKNOWN
    return code


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
    details = status_details(error)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return invalid(
            code, message, details.violations, reason=details.reason, metadata=details.metadata
        )
    kind = _KINDS.get(code, CugarMetricsError)
    return kind(
        code,
        message,
        reason=details.reason,
        metadata=details.metadata,
        retry_delay=details.retry_delay,
    )


_KINDS: dict[grpc.StatusCode, type[CugarMetricsError]] = {
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}
