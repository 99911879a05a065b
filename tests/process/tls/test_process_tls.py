"""The real `cugar-metrics serve` process with TLS flags, probed by the real grpc_health_probe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.certs import Leaf, Pki, https_get, peer_serial
from tests.support.serverproc import CLI, launch, tool

pytestmark = pytest.mark.e2e


def probe(*args: str, wait: str = "3s") -> subprocess.CompletedProcess[str]:
    """grpc_health_probe; exit 0 SERVING, 2 connection failure, 3 RPC failure."""
    return subprocess.run(
        [tool("grpc_health_probe"), f"-connect-timeout={wait}", f"-rpc-timeout={wait}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_grpc_health_probe_over_tls(pki: Pki, server_cert: Leaf, tmp_path: Path) -> None:
    p = launch(
        tmp_path,
        "--tls-cert",
        str(server_cert.cert),
        "--tls-key",
        str(server_cert.key),
        "--metrics-tls-cert",
        str(server_cert.cert),
        "--metrics-tls-key",
        str(server_cert.key),
        name="tls",
    )
    try:
        addr = f"-addr=localhost:{p.grpc_port}"
        ok = probe(addr, "-tls", f"-tls-ca-cert={pki.server_ca.cert}")
        assert (ok.returncode, ok.stderr.strip()) == (0, "status: SERVING"), ok.stdout
        wrong = probe(addr, "-tls", f"-tls-ca-cert={pki.other_ca.cert}", wait="1s")
        assert wrong.returncode == 2, wrong.stdout + wrong.stderr
        plain = probe(addr, wait="1s")
        assert plain.returncode == 2, plain.stdout + plain.stderr
        assert https_get(p.metrics_port, pki.server_ca)[0] == 200
        out = p.output()
        assert f"gRPC 127.0.0.1:{p.grpc_port} (TLS, reflection on)" in out
        assert f"metrics https://127.0.0.1:{p.metrics_port}/metrics" in out
    finally:
        assert p.stop() == 0


def test_grpc_health_probe_over_mtls(pki: Pki, server_cert: Leaf, tmp_path: Path) -> None:
    p = launch(
        tmp_path,
        "--tls-cert",
        str(server_cert.cert),
        "--tls-key",
        str(server_cert.key),
        "--tls-client-ca",
        str(pki.client_ca.cert),
        name="mtls",
    )
    try:
        addr = f"-addr=localhost:{p.grpc_port}"
        ca = f"-tls-ca-cert={pki.server_ca.cert}"
        ok = probe(
            addr,
            "-tls",
            ca,
            f"-tls-client-cert={pki.client.cert}",
            f"-tls-client-key={pki.client.key}",
        )
        assert (ok.returncode, ok.stderr.strip()) == (0, "status: SERVING"), ok.stdout
        assert f"gRPC 127.0.0.1:{p.grpc_port} (mutual TLS, reflection on)" in p.output()
        anonymous = probe(addr, "-tls", ca, wait="1s")
        assert anonymous.returncode == 2, anonymous.stdout + anonymous.stderr
        stranger = probe(
            addr,
            "-tls",
            ca,
            f"-tls-client-cert={pki.stranger.cert}",
            f"-tls-client-key={pki.stranger.key}",
            wait="1s",
        )
        assert stranger.returncode == 2, stranger.stdout + stranger.stderr
        # Rotation in the running process: the next handshake presents the new certificate.
        rotated = pki.server_ca.issue(
            "server", "localhost", server=True, directory=server_cert.cert.parent
        )
        assert peer_serial(p.grpc_port, pki.server_ca, pki.client) == rotated.serial
        again = probe(
            addr,
            "-tls",
            ca,
            f"-tls-client-cert={pki.client.cert}",
            f"-tls-client-key={pki.client.key}",
        )
        assert again.returncode == 0, again.stderr
        assert "certificate reloaded" in p.output()
    finally:
        assert p.stop() == 0


def test_check_config_rejects_a_key_that_is_not_the_certificates(
    pki: Pki, server_cert: Leaf
) -> None:
    result = subprocess.run(
        [
            str(CLI),
            "serve",
            "--check-config",
            "--tls-cert",
            str(server_cert.cert),
            "--tls-key",
            str(pki.client.key),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"cugar-metrics: error: --tls-cert/--tls-key: certificate {server_cert.cert} and key "
        f"{pki.client.key} do not load together"
    ), result.stderr
