"""TLS settings for the client's channel."""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc

PemSource = str | os.PathLike[str] | bytes


def _pem(source: PemSource | None) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    with open(source, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class TlsConfig:
    """Connect over TLS, optionally presenting a client certificate (mutual TLS).

    Each field is a path to a PEM file or the PEM bytes themselves; files are read when the
    client is created.

    - ``root_ca``: the CA certificates that signed the server's certificate; ``None`` trusts
      the system's roots.
    - ``client_cert`` and ``client_key``: this client's certificate chain and private key, for
      a server started with ``--tls-client-ca``. Give both or neither.
    - ``server_name``: the name to check the server's certificate against, when it differs
      from the target's host (connecting by IP address to a certificate for a DNS name).

    ``Client(target, tls=TlsConfig(root_ca="ca.crt"))``; the same ``tls=`` works for
    ``AsyncClient`` and ``BatchRecorder``.
    """

    root_ca: PemSource | None = None
    client_cert: PemSource | None = None
    client_key: PemSource | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("TlsConfig: give client_cert and client_key together (mutual TLS)")

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """``grpc.ssl_channel_credentials`` from these settings."""
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.root_ca),
            private_key=_pem(self.client_key),
            certificate_chain=_pem(self.client_cert),
        )

    def channel_options(self) -> dict[str, int | str]:
        """Channel options these settings need (the server-name override, if any)."""
        if self.server_name is None:
            return {}
        return {"grpc.ssl_target_name_override": self.server_name}
