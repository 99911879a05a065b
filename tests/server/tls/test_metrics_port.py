"""The metrics port over HTTPS (with certificate reload) and with HTTP basic auth."""

from __future__ import annotations

import base64
import hashlib
import http.client
import socket
import ssl
from pathlib import Path

import pytest

from cugar_metrics.config import Config, ConfigError, preflight
from cugar_metrics.http_auth import AuthFileError, parse_users
from tests.server.tls.conftest import tls_server
from tests.support.certs import Leaf, Pki, https_get, peer_serial

CHALLENGE = 'Basic realm="cugar-metrics", charset="UTF-8"'


def http_get(
    port: int, path: str = "/metrics", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def users_file(path: Path, **users: str) -> Path:
    lines = ["# scrapers of this replica", ""]
    lines += [f"{u}:{hashlib.sha256(p.encode()).hexdigest()}" for u, p in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_metrics_over_tls_with_the_right_ca(pki: Pki, server_cert: Leaf) -> None:
    with tls_server(
        metrics_tls_cert=str(server_cert.cert), metrics_tls_key=str(server_cert.key)
    ) as running:
        status, headers, body = https_get(running.metrics_port, pki.server_ca)
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=")
        assert b"# TYPE cugar_executions_total counter" in body
        status, _, body = https_get(running.metrics_port, pki.server_ca, "/")
        assert (status, b"<h1>cugar-metrics" in body) == (200, True)
        assert https_get(running.metrics_port, pki.server_ca, "/nope")[0] == 404


def test_metrics_over_tls_refuses_a_client_with_a_wrong_ca(pki: Pki, server_cert: Leaf) -> None:
    with tls_server(
        metrics_tls_cert=str(server_cert.cert), metrics_tls_key=str(server_cert.key)
    ) as running:
        with pytest.raises(ssl.SSLCertVerificationError):
            https_get(running.metrics_port, pki.other_ca)
        # Plain HTTP to the HTTPS port gets no HTTP answer ...
        with socket.create_connection(("127.0.0.1", running.metrics_port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not s.recv(4096).startswith(b"HTTP/")
        # ... and neither failure costs the next client anything.
        assert https_get(running.metrics_port, pki.server_ca)[0] == 200


def test_a_rotated_metrics_certificate_is_served_without_restart(
    pki: Pki, server_cert: Leaf
) -> None:
    with tls_server(
        metrics_tls_cert=str(server_cert.cert), metrics_tls_key=str(server_cert.key)
    ) as running:
        assert peer_serial(running.metrics_port, pki.server_ca, alpn=None) == server_cert.serial
        rotated = pki.server_ca.issue(
            "server", "localhost", server=True, directory=server_cert.cert.parent
        )
        assert peer_serial(running.metrics_port, pki.server_ca, alpn=None) == rotated.serial
        assert https_get(running.metrics_port, pki.server_ca)[0] == 200


def test_basic_auth_answers_401_with_a_challenge_unless_the_password_is_right(
    tmp_path: Path,
) -> None:
    path = users_file(tmp_path / "users", prometheus="s3cret-token", other="x" * 40)
    with tls_server(metrics_basic_auth_file=str(path)) as running:
        port = running.metrics_port
        for headers in (
            {},
            basic("prometheus", "wrong"),
            basic("nobody", "s3cret-token"),
            basic("other", "s3cret-token"),
            {"Authorization": "Bearer s3cret-token"},
            {"Authorization": "Basic !!!not-base64"},
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        ):
            status, got, body = http_get(port, headers=headers)
            assert (status, got["WWW-Authenticate"]) == (401, CHALLENGE), headers
            assert b"cugar_" not in body
        status, _, body = http_get(port, headers=basic("prometheus", "s3cret-token"))
        assert status == 200
        assert b"# TYPE cugar_executions_total counter" in body
        assert http_get(port, "/", basic("other", "x" * 40))[0] == 200
        assert http_get(port, "/")[0] == 401  # the landing page is behind it too


def test_the_users_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = users_file(tmp_path / "users", prometheus="first-password")
    with tls_server(metrics_basic_auth_file=str(path)) as running:
        port = running.metrics_port
        assert http_get(port, headers=basic("prometheus", "first-password"))[0] == 200
        users_file(tmp_path / "users.new", prometheus="second-password").replace(path)
        assert http_get(port, headers=basic("prometheus", "first-password"))[0] == 401
        assert http_get(port, headers=basic("prometheus", "second-password"))[0] == 200
        path.write_text("garbage\n")  # unparsable: the previous users stay
        assert http_get(port, headers=basic("prometheus", "second-password"))[0] == 200


def test_basic_auth_and_tls_together(pki: Pki, server_cert: Leaf, tmp_path: Path) -> None:
    path = users_file(tmp_path / "users", prometheus="p" * 32)
    with tls_server(
        metrics_tls_cert=str(server_cert.cert),
        metrics_tls_key=str(server_cert.key),
        metrics_basic_auth_file=str(path),
    ) as running:
        assert https_get(running.metrics_port, pki.server_ca)[0] == 401
        ok = https_get(running.metrics_port, pki.server_ca, headers=basic("prometheus", "p" * 32))
        assert ok[0] == 200


def test_users_file_syntax_errors_name_the_line() -> None:
    with pytest.raises(AuthFileError, match=r"^users:2: expected user:sha256hex"):
        parse_users("a:" + "0" * 64 + "\nb:plaintext\n", "users")
    with pytest.raises(AuthFileError, match="no user:sha256hex line"):
        parse_users("# only a comment\n", "users")
    assert parse_users(" a:" + "AB" * 32 + " \n", "users") == ((b"a", bytes([0xAB] * 32)),)


def test_config_refuses_incomplete_or_broken_tls_options(
    pki: Pki, server_cert: Leaf, tmp_path: Path
) -> None:
    cert, key = str(server_cert.cert), str(server_cert.key)
    cases: list[tuple[dict[str, str], str]] = [
        ({"tls_cert": cert}, "--tls-cert needs --tls-key too"),
        ({"tls_key": key}, "--tls-key needs --tls-cert too"),
        ({"metrics_tls_cert": cert}, "--metrics-tls-cert needs --metrics-tls-key too"),
        ({"tls_client_ca": str(pki.client_ca.cert)}, "--tls-client-ca needs --tls-cert"),
        ({"tls_cert": cert, "tls_key": str(pki.client.key)}, "--tls-cert/--tls-key: certificate"),
        (
            {"tls_cert": cert, "tls_key": str(tmp_path / "missing.key")},
            "--tls-cert/--tls-key: cannot read the private key",
        ),
        (
            {"tls_cert": cert, "tls_key": key, "tls_client_ca": key},
            "--tls-client-ca: client CA",
        ),
        ({"metrics_basic_auth_file": str(tmp_path / "none")}, "--metrics-basic-auth-file: cannot"),
    ]
    for options, message in cases:
        # Pairs and dependencies are checked when the Config is built; files at start-up.
        try:
            problems = preflight(Config(**options))  # type: ignore[arg-type]
        except ConfigError as e:
            problems = [str(e)]
        assert len(problems) == 1 and problems[0].startswith(message), (options, problems)
