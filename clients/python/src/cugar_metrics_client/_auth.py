"""API keys: ``authorization: Bearer <key>`` on every call.

Over TLS the key travels as the channel's call credentials
(``grpc.access_token_call_credentials``). gRPC refuses call credentials on a plaintext
channel, so there a client interceptor adds the same metadata.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio


def check_api_key(api_key: str) -> str:
    """``api_key`` if it can be sent as a metadata value; ValueError otherwise."""
    if not api_key:
        raise ValueError("api_key must not be empty")
    if not api_key.isascii() or not api_key.isprintable() or any(c.isspace() for c in api_key):
        raise ValueError("api_key must be printable ASCII without spaces")
    return api_key


def with_call_credentials(
    credentials: grpc.ChannelCredentials, api_key: str
) -> grpc.ChannelCredentials:
    """``credentials`` composed with call credentials that send ``api_key`` as a bearer token."""
    return grpc.composite_channel_credentials(
        credentials, grpc.access_token_call_credentials(api_key)
    )


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,  # type: ignore[misc]  # grpc ships no type information
):
    """The call's details with the authorization metadata added."""


class BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]  # untyped grpc
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds ``authorization: Bearer <key>`` to every unary call, and every server stream
    (WatchDashboard), of a plaintext channel."""

    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    def intercept_unary_stream(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        return self.intercept_unary_unary(continuation, client_call_details, request)

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        details = client_call_details
        metadata = [*(details.metadata or ()), self._header]
        return continuation(
            _CallDetails(
                details.method,
                details.timeout,
                metadata,
                details.credentials,
                details.wait_for_ready,
                details.compression,
            ),
            request,
        )


class AsyncBearerInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]  # untyped
    """The asyncio form of ``BearerInterceptor``."""

    def __init__(self, api_key: str) -> None:
        self._header = ("authorization", f"Bearer {api_key}")

    async def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        details = client_call_details
        metadata = grpc.aio.Metadata(*(details.metadata or ()), self._header)
        return await continuation(
            grpc.aio.ClientCallDetails(
                details.method,
                details.timeout,
                metadata,
                details.credentials,
                details.wait_for_ready,
            ),
            request,
        )
