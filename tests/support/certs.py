"""Test certificates, made fresh by the tests (never committed): CAs, and leaf certificates
for the server (localhost, 127.0.0.1) and for clients, written as PEM files; the session's
`pki` and each test's `server_cert` fixtures (a conftest imports them to use them), and TLS
probes of a running server."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_KEY_PEM = serialization.PrivateFormat.PKCS8


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, _KEY_PEM, serialization.NoEncryption())


@dataclass(frozen=True)
class Leaf:
    """A certificate and key on disk, with the certificate's serial number."""

    cert: Path
    key: Path
    serial: int

    @property
    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    @property
    def key_pem(self) -> bytes:
        return self.key.read_bytes()


class CA:
    """A self-signed certificate authority that signs leaf certificates into `directory`."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.cert = directory / f"{name}.crt"
        self.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    @property
    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def issue(
        self,
        file_name: str,
        common_name: str,
        *,
        server: bool,
        directory: Path | None = None,
        names: tuple[str, ...] = ("localhost", "127.0.0.1"),
    ) -> Leaf:
        """A leaf certificate: for a server (subject alternative `names`, DNS names or IP
        addresses) or a client, written as `file_name`.crt and `file_name`.key in `directory`
        (default: the CA's)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(name) for name in names]),
                critical=False,
            )
        cert = builder.sign(self._key, hashes.SHA256())
        out = directory or self.directory
        cert_path = out / f"{file_name}.crt"
        key_path = out / f"{file_name}.key"
        write_atomically(key_path, _pem_key(key), mode=0o600)
        write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return Leaf(cert_path, key_path, serial)


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Writes beside `path` and renames over it, as certificate managers do."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    os.replace(tmp, tmp.with_name(path.name))


def serial_of(der: bytes) -> int:
    """The serial number of a DER certificate (as `ssl.SSLSocket.getpeercert(True)` gives)."""
    return x509.load_der_x509_certificate(der).serial_number


@dataclass(frozen=True)
class Pki:
    server_ca: CA  # signs server certificates
    client_ca: CA  # signs client certificates; the server's --tls-client-ca
    other_ca: CA  # trusted by nobody
    client: Leaf  # signed by client_ca
    stranger: Leaf  # a client certificate signed by other_ca


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    server_ca = CA(directory, "server-ca")
    client_ca = CA(directory, "client-ca")
    other_ca = CA(directory, "other-ca")
    return Pki(
        server_ca,
        client_ca,
        other_ca,
        client_ca.issue("agent", "agent-1", server=False),
        other_ca.issue("stranger", "agent-2", server=False),
    )


@pytest.fixture
def server_cert(pki: Pki, tmp_path: Path) -> Leaf:
    """A server certificate of this test alone (rotation tests replace its files)."""
    return pki.server_ca.issue("server", "localhost", server=True, directory=tmp_path)


def peer_serial(port: int, ca: CA, client: Leaf | None = None, alpn: str | None = "h2") -> int:
    """Completes a TLS handshake with 127.0.0.1:`port` and returns the serial number of the
    certificate the server presented."""
    context = ssl.create_default_context(cafile=str(ca.cert))
    if alpn:
        context.set_alpn_protocols([alpn])
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return serial_of(der)


def https_get(
    port: int, ca: CA, path: str = "/metrics", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cafile=str(ca.cert))
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()
