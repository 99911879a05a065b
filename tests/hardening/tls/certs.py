"""Test certificates, made fresh by the tests (never committed): CAs, and leaf certificates
for the server (localhost, 127.0.0.1) and for clients, written as PEM files."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

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
