"""TLS for both ports, with certificates reloaded from their files without a restart.

gRPC port: ``grpc_server_credentials`` builds ``grpc.dynamic_ssl_server_credentials`` whose
fetcher gRPC calls before each new connection; it re-reads the PEM files only when one of
them changed (see ``files.FileWatch``), so a rotated certificate is served to the
next connection while open connections keep theirs. With a client CA, clients must present a
certificate signed by it (mutual TLS).

Metrics port: ``TlsHttpServer`` wraps each accepted connection in the current
``ssl.SSLContext``, re-created when the files change; the handshake runs in the connection's
own thread, so a client that never finishes it holds up nobody else.

A change that cannot be loaded (a key that does not match the certificate, a file caught
half-written) is logged and the previous certificate stays in use; the next connection tries
again. grpc is imported only where gRPC credentials are built, so ``--check-config`` can
validate the files without loading it.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.exposition import ThreadingWSGIServer

from cugar_metrics.files import FileWatch

if TYPE_CHECKING:
    import grpc

log = logging.getLogger("cugar_metrics.tls")

#: How long a client of the metrics port has to complete the TLS handshake.
HANDSHAKE_TIMEOUT = 10.0


class TlsError(ValueError):
    """A certificate, key or CA file cannot be used; the message says which and why."""


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TlsError(f"cannot read the {what} {path}: {e.strerror}") from None


def _check_ca(ca: bytes, path: str) -> None:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cadata=ca.decode("ascii"))
    except (ssl.SSLError, UnicodeDecodeError, ValueError) as e:
        raise TlsError(f"client CA {path} holds no PEM certificate: {e}") from None


@dataclass(frozen=True)
class PemMaterial:
    """The bytes of a certificate chain, its private key and (optionally) a client CA."""

    cert: bytes
    key: bytes
    client_ca: bytes | None


def load_pem(cert_path: str, key_path: str, client_ca_path: str | None = None) -> PemMaterial:
    """Reads and checks the files: the key matches the certificate, the CA file holds
    certificates. Raises ``TlsError`` naming the file."""
    cert = _read(cert_path, "certificate")
    key = _read(key_path, "private key")
    ca = _read(client_ca_path, "client CA") if client_ca_path else None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as e:
        raise TlsError(
            f"certificate {cert_path} and key {key_path} do not load together "
            f"(is the key the certificate's, both PEM?): {e.reason or e}"
        ) from None
    except OSError as e:
        raise TlsError(f"cannot load {cert_path} / {key_path}: {e.strerror}") from None
    if ca is not None:
        _check_ca(ca, str(client_ca_path))
    # The files may have changed between the two reads; only matching bytes were checked.
    if _read(cert_path, "certificate") != cert or _read(key_path, "private key") != key:
        raise TlsError(f"{cert_path} or {key_path} changed while being read")
    return PemMaterial(cert, key, ca)


class _Watched:
    """Files re-read when their stamp changes; ``current()`` is the last good load."""

    def __init__(self, paths: tuple[str, ...], load: Callable[[], Any], name: str) -> None:
        self._paths = paths
        self._load = load
        self._name = name
        self._lock = threading.Lock()
        self._watch = FileWatch(*paths)
        self.value: Any = load()
        self.reloads = 0

    def refresh(self) -> bool:
        """Reloads if the files changed (see `files.FileWatch`); True when a new value was
        loaded. A version that fails to load is logged once and not retried until it changes."""
        with self._lock:
            if not self._watch.changed():
                return False
            try:
                value = self._load()
            except (TlsError, ssl.SSLError, OSError) as e:
                log.warning("%s: not reloaded, keeping the previous certificate: %s", self._name, e)
                return False
            self.value = value
            self.reloads += 1
            log.info("%s: certificate reloaded from %s", self._name, ", ".join(self._paths))
            return True


def grpc_server_credentials(
    cert_path: str, key_path: str, client_ca_path: str | None = None
) -> grpc.ServerCredentials:
    """Server credentials for ``add_secure_port`` that follow the files: gRPC asks before
    every new connection, and gets a new configuration only when a file changed."""
    import grpc

    def load() -> PemMaterial:
        return load_pem(cert_path, key_path, client_ca_path)

    paths = (cert_path, key_path, *((client_ca_path,) if client_ca_path else ()))
    watched = _Watched(paths, load, "gRPC TLS")

    def config(m: PemMaterial) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration([(m.key, m.cert)], m.client_ca)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC on its own thread; an exception here would fail the handshake.
        try:
            return config(watched.value) if watched.refresh() else None
        except Exception:
            log.exception("gRPC TLS: certificate fetch failed; keeping the previous one")
            return None

    return grpc.dynamic_ssl_server_credentials(
        config(watched.value), fetch, require_client_authentication=client_ca_path is not None
    )


def check_ca_file(path: str) -> None:
    """Reads the client CA file and checks that it holds certificates (start-up and
    ``--check-config``, see ``config.preflight``). Raises ``TlsError`` naming the file."""
    _check_ca(_read(path, "client CA"), path)


class ServerContext:
    """An ``ssl.SSLContext`` for a server socket, re-created when its files change."""

    def __init__(self, cert_path: str, key_path: str, name: str = "metrics TLS") -> None:
        def load() -> ssl.SSLContext:
            load_pem(cert_path, key_path)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cert_path, key_path)
            return context

        self._watched = _Watched((cert_path, key_path), load, name)

    @property
    def reloads(self) -> int:
        return self._watched.reloads

    def current(self) -> ssl.SSLContext:
        """The context for the next connection (reloaded first if the files changed)."""
        self._watched.refresh()
        context: ssl.SSLContext = self._watched.value
        return context


class TlsHttpServer(ThreadingWSGIServer):
    """The metrics HTTP server, serving HTTPS with a ``ServerContext`` set as ``tls``.

    Accepting stays on the server thread and never waits for a client; the handshake runs,
    with a timeout, in the thread that then serves the connection."""

    tls: ServerContext

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        try:
            wrapped = self.tls.current().wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        except (ssl.SSLError, OSError):
            sock.close()
            raise
        return wrapped, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            request.do_handshake()
            request.settimeout(None)
        except (ssl.SSLError, OSError) as e:
            log.debug("metrics TLS handshake with %s failed: %s", client_address, e)
            return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics connection from %s ended with an error", client_address, exc_info=True)


def metrics_server_class(cert_path: str | None, key_path: str | None) -> type[ThreadingWSGIServer]:
    """The HTTP server class of the metrics port: plain, or HTTPS with these files."""
    if cert_path is None or key_path is None:
        return ThreadingWSGIServer
    context = ServerContext(cert_path, key_path)

    class _Server(TlsHttpServer):
        tls = context

    return _Server


__all__ = [
    "HANDSHAKE_TIMEOUT",
    "PemMaterial",
    "ServerContext",
    "TlsError",
    "TlsHttpServer",
    "check_ca_file",
    "grpc_server_credentials",
    "load_pem",
    "metrics_server_class",
]
