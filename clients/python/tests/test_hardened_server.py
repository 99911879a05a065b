"""The client's api_key over mutual TLS (call credentials on the secure channel), and
`cugar-metrics demo` / `cugar-metrics dashboard` with --api-key and --tls-* against a
`cugar-metrics serve` process with --auth-keys-file, --tls-cert/--tls-key and --tls-client-ca.
TLS handshakes themselves are tested in tests/server/tls."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import AuthServer, auth_process

from cugar_metrics import dashboard_view, demo
from cugar_metrics_client import Client, Execution, RecordResult, TlsConfig, UnauthenticatedError
from tests.support.certs import CA, Leaf

KEYS: dict[str, tuple[str, str | None]] = {"rec": ("recorder", None), "read": ("reader", None)}


@dataclass
class Hardened:
    server: AuthServer
    server_ca: CA
    client: Leaf  # signed by the server's --tls-client-ca

    @property
    def tls(self) -> TlsConfig:
        return TlsConfig(self.server_ca.cert, self.client.cert, self.client.key)

    @property
    def tls_flags(self) -> list[str]:
        return [
            *("--tls-ca", str(self.server_ca.cert)),
            *("--tls-cert", str(self.client.cert)),
            *("--tls-key", str(self.client.key)),
        ]


@pytest.fixture
def hardened(tmp_path: Path) -> Iterator[Hardened]:
    """A fresh server per test, so each test's counts are its own."""
    directory = tmp_path
    server_ca, client_ca = CA(directory, "server-ca"), CA(directory, "client-ca")
    cert = server_ca.issue("server", "localhost", server=True)
    flags = ("--tls-cert", str(cert.cert), "--tls-key", str(cert.key))
    flags += ("--tls-client-ca", str(client_ca.cert))
    with auth_process(directory, KEYS, *flags, name="hardened") as server:
        yield Hardened(server, server_ca, client_ca.issue("agent", "agent-1", server=False))


def parse(module: Any, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


def test_api_key_over_mutual_tls(hardened: Hardened) -> None:
    """The key travels as call credentials of the TLS channel; without it, the same TLS
    connection is UNAUTHENTICATED."""
    target, keys = hardened.server.target, hardened.server.keys
    with Client(target, tls=hardened.tls, api_key=keys["rec"]) as client:
        assert client.record(Execution("tls_key", "success", 1.0)) is RecordResult.ACCEPTED
    with Client(target, tls=hardened.tls) as client, pytest.raises(UnauthenticatedError) as e:
        client.record(Execution("tls_key", "success", 1.0))
    assert e.value.reason == "MISSING_CREDENTIALS"
    with Client(target, tls=hardened.tls, api_key=keys["read"]) as client:
        assert client.get_dashboard(profile="tls_key").executions.total == 1


def test_demo_and_dashboard_against_auth_and_mtls(
    hardened: Hardened, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """demo with a recorder --api-key sends 20 executions (it may not read the dashboard, so
    the replica shows as "?"); dashboard reads them with a reader key from the environment."""
    target, keys = hardened.server.target, hardened.server.keys
    argv = ["--target", target, "--rate", "5000", "--count", "20", "--seed", "3"]
    assert demo.run(parse(demo, [*argv, "--api-key", keys["rec"], *hardened.tls_flags])) == 0
    out = capsys.readouterr().out
    assert f"to {target} (replica ?)" in out
    assert "server:     accepted 20, duplicate 0" in out
    assert "dropped:    0" in out

    monkeypatch.setenv("CUGAR_METRICS_API_KEY", keys["read"])
    args = parse(dashboard_view, ["--target", target, "--json", *hardened.tls_flags])
    assert args.api_key == keys["read"]
    assert dashboard_view.run(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ingest"] == {"accepted": 20, "duplicate": 0, "rejected": 0}
    assert data["replica"] == "hardened"


def test_dashboard_without_a_key_says_how_to_give_one(
    hardened: Hardened, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUGAR_METRICS_API_KEY", raising=False)
    args = parse(dashboard_view, ["--target", hardened.server.target, *hardened.tls_flags])
    assert dashboard_view.run(args) == 1
    err = capsys.readouterr().err
    assert "UNAUTHENTICATED (MISSING_CREDENTIALS)" in err
    assert "pass --api-key or set CUGAR_METRICS_API_KEY with a reader key" in err


def test_demo_with_a_wrong_key_exits_1_with_the_reason(hardened: Hardened, capsys: Any) -> None:
    argv = ["--target", hardened.server.target, "--count", "1", "--api-key", "cgm_nope"]
    assert demo.run(parse(demo, [*argv, *hardened.tls_flags])) == 1
    err = capsys.readouterr().err
    assert f"the server at {hardened.server.target} refused the API key (UNKNOWN_KEY)" in err


def test_tls_flags_are_checked_before_connecting(tmp_path: Path, capsys: Any) -> None:
    assert dashboard_view.run(parse(dashboard_view, ["--tls-cert", "a.crt"])) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err
    missing = str(tmp_path / "ca.crt")
    assert demo.run(parse(demo, ["--count", "1", "--tls-ca", missing])) == 2
    assert f"--tls-ca: no such file: {missing}" in capsys.readouterr().err
