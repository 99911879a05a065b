"""Keys: the CLI round trip, the file's contents and mode, reload on change (SIGHUP and the
warning of a server without keys: tests/process/auth)."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from cugar_metrics import auth
from tests.server.auth.helpers import Keys, auth_server, bearer, error_info, make_keys, sample
from tests.server.auth.test_matrix import record_execution
from tests.support.serverproc import CLI


def keys_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "keys", *args], capture_output=True, text=True, timeout=30, check=False
    )


def eventually(check: Callable[[], object], timeout: float = 30.0) -> None:
    """Retries `check` (which raises AssertionError or RpcError) until it passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except (AssertionError, grpc.RpcError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def refusal(channel: grpc.Channel, key: str) -> str | None:
    """None if `key` may record, else the ErrorInfo reason of the refusal."""
    try:
        record_execution(channel, bearer(key))
    except grpc.RpcError as e:
        return error_info(e).reason
    return None


def test_keys_cli_create_list_revoke_round_trip(tmp_path: Path) -> None:
    """The printed key works, the file holds only its hash (mode 0600), list never shows a
    key, revoke --name turns the key away."""
    path = tmp_path / "keys.json"
    created = keys_cli("create", "--file", str(path), "--name", "sales-agent", "--role", "recorder")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("cgm_") and len(key) == 4 + 43
    assert "not shown again" in created.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert key not in text and key[4:] not in text
    (entry,) = json.loads(text)["keys"]
    assert entry["sha256"] == auth.hash_key(key)
    assert (entry["name"], entry["role"], entry["revoked"]) == ("sales-agent", "recorder", False)
    assert entry["id"] == entry["sha256"][:12]

    second = keys_cli("create", "--file", str(path), "--name", "dash", "--role", "reader")
    assert second.returncode == 0
    listed = keys_cli("list", "--file", str(path))
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ROLE", "STATE", "CREATED", "LIMIT"]
    assert [line.split()[1:4] for line in lines[1:]] == [
        ["sales-agent", "recorder", "active"],
        ["dash", "reader", "active"],
    ]
    assert key not in listed.stdout and entry["sha256"] not in listed.stdout
    as_json = json.loads(keys_cli("list", "--file", str(path), "--json").stdout)
    assert [e["name"] for e in as_json] == ["sales-agent", "dash"]
    assert all("sha256" not in e for e in as_json)

    with auth_server(auth_keys_file=str(path), auth_reload_interval=0.05) as h:
        assert refusal(h.channel, key) is None
        revoked = keys_cli("revoke", "--file", str(path), "--name", "sales-agent")
        assert revoked.returncode == 0, revoked.stderr
        eventually(lambda: _expect(refusal(h.channel, key), "REVOKED_KEY"))
    assert [
        line.split()[3] for line in keys_cli("list", "--file", str(path)).stdout.splitlines()[1:]
    ] == ["revoked", "active"]
    again = keys_cli("revoke", "--file", str(path), "--name", "sales-agent")
    assert again.returncode == 1
    assert "no active key with agent 'sales-agent'" in again.stderr


def _expect(actual: object, wanted: object) -> None:
    assert actual == wanted


def _at_least(actual: float | None, wanted: float) -> None:
    assert actual is not None and actual >= wanted


def test_rotation_two_keys_for_one_agent_then_revoke_the_old_one_by_id(tmp_path: Path) -> None:
    keys = Keys(tmp_path / "keys.json")
    old = keys.add("agent", "recorder")
    new = keys.add("agent", "recorder")
    old_id = auth.hash_key(old)[:12]
    result = keys_cli("revoke", "--file", str(keys.path), "--id", old_id)
    assert result.returncode == 0, result.stderr
    loaded = auth.load_keys(str(keys.path))
    assert [(e.name, e.revoked) for e in loaded.entries] == [("agent", True), ("agent", False)]
    assert isinstance(loaded.authenticate(f"Bearer {new}"), auth.Identity)
    assert getattr(loaded.authenticate(f"Bearer {old}"), "reason", None) == "REVOKED_KEY"


def test_keys_file_change_is_picked_up_and_a_broken_file_keeps_the_previous_keys(
    tmp_path: Path,
) -> None:
    keys = make_keys(tmp_path)
    with auth_server(auth_keys_file=str(keys.path), auth_reload_interval=0.05) as h:
        late = "cgm_" + "z" * 43
        assert refusal(h.channel, late) == "UNKNOWN_KEY"
        late = keys.add("late-agent", "recorder")
        eventually(lambda: _expect(refusal(h.channel, late), None))

        keys.path.write_text('{"version": 1, "keys": [')  # caught half-written
        eventually(
            lambda: _at_least(
                sample(h.metrics(), "cugar_auth_keys_reloads_total", result="failure"), 1.0
            )
        )
        assert refusal(h.channel, late) is None
        assert refusal(h.channel, keys.by_name["gone-agent"]) == "REVOKED_KEY"

        auth.save_keys(str(keys.path), [])  # every key removed
        eventually(lambda: _expect(refusal(h.channel, late), "UNKNOWN_KEY"))
        assert sample(h.metrics(), "cugar_auth_keys", state="active") == 0


def test_check_config_rejects_a_broken_keys_file(tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text('{"version": 1, "keys": [{"name": "x"}]}')
    result = subprocess.run(
        [str(CLI), "serve", "--auth-keys-file", str(bad), "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--auth-keys-file:" in result.stderr and "field 'id' is missing" in result.stderr
