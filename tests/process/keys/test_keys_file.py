"""`cugar-metrics keys` against the keys file of a real deployment: owner, group and mode
kept, symlinks written through, warnings when others can read the file or a running server
cannot."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.server.auth.helpers import make_keys
from tests.support.serverproc import CLI, serve_command, stop_process

OTHER_UID, OTHER_GID = 4242, 4343


def keys_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "keys", *args], capture_output=True, text=True, timeout=30, check=False
    )


def _ids(path: Path) -> list[tuple[str, bool]]:
    return [(k["name"], k["revoked"]) for k in json.loads(path.read_text())["keys"]]


def test_revoke_and_create_keep_the_owner_group_and_mode(tmp_path: Path) -> None:
    """The file belongs to the server's user; an administrator (root, as these tests run)
    revokes a key."""
    keys = make_keys(tmp_path)
    os.chown(keys.path, OTHER_UID, OTHER_GID)
    os.chmod(keys.path, 0o640)
    revoked = keys_cli("revoke", "--file", str(keys.path), "--name", "rec-agent")
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked 1 key" in revoked.stderr
    created = keys_cli("create", "--file", str(keys.path), "--name", "new", "--role", "reader")
    assert created.returncode == 0, created.stderr
    st = keys.path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (OTHER_UID, OTHER_GID, 0o640)
    assert ("rec-agent", True) in _ids(keys.path) and ("new", False) in _ids(keys.path)


def test_create_and_revoke_write_through_a_symlink(tmp_path: Path) -> None:
    """As with a Kubernetes Secret or a config-management link: the link stays a link."""
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    keys = make_keys(real_dir)
    link = tmp_path / "keys.json"
    link.symlink_to(keys.path)
    created = keys_cli("create", "--file", str(link), "--name", "via-link", "--role", "recorder")
    assert created.returncode == 0, created.stderr
    revoked = keys_cli("revoke", "--file", str(link), "--name", "read-agent")
    assert revoked.returncode == 0, revoked.stderr
    assert link.is_symlink() and os.readlink(link) == str(keys.path)
    names = _ids(keys.path)
    assert ("via-link", False) in names and ("read-agent", True) in names
    assert sorted(p.name for p in real_dir.iterdir()) == ["keys.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json", "real"]


@pytest.mark.parametrize(("mode", "who"), [(0o640, "group"), (0o604, "others")])
def test_a_file_others_can_read_is_warned_and_strict_fails(
    tmp_path: Path, mode: int, who: str
) -> None:
    keys = make_keys(tmp_path)
    os.chmod(keys.path, mode)
    result = keys_cli("create", "--file", str(keys.path), "--name", "x", "--role", "reader")
    assert result.returncode == 0
    warning = f"cugar-metrics keys: warning: keys file {keys.path} is readable by {who}"
    assert warning in result.stderr, result.stderr
    assert f"chmod 600 {keys.path}" in result.stderr
    strict = keys_cli("revoke", "--strict", "--file", str(keys.path), "--name", "x")
    assert strict.returncode == 3 and warning in strict.stderr
    assert ("x", True) in _ids(keys.path)  # written all the same
    os.chmod(keys.path, 0o600)
    quiet = keys_cli(
        "create", "--strict", "--file", str(keys.path), "--name", "y", "--role", "reader"
    )
    assert quiet.returncode == 0 and "warning" not in quiet.stderr


def _wait_ready(proc: subprocess.Popen[bytes], ready: Path, log: Path) -> None:
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def test_a_running_server_that_cannot_read_the_result_is_warned(tmp_path: Path) -> None:
    """The server runs as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so it reads the
    keys file through its owner and mode like any other user. When the file is handed to
    another owner, `keys revoke` says the server cannot read it (the revocation would not
    take effect there), and `--strict` exits 3."""
    keys = make_keys(tmp_path)
    ready, log = tmp_path / "ready.json", tmp_path / "server.log"
    drop = "-dac_override,-dac_read_search"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                "setpriv",
                f"--inh-caps={drop}",
                f"--bounding-set={drop}",
                *serve_command(ready, "--auth-keys-file", str(keys.path), "--metrics-open"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(proc, ready, log)
        readable = keys_cli(
            "create", "--strict", "--file", str(keys.path), "--name", "ok", "--role", "reader"
        )
        assert readable.returncode == 0 and "warning" not in readable.stderr, readable.stderr

        os.chown(keys.path, OTHER_UID, OTHER_GID)  # e.g. restored from another machine
        result = keys_cli("revoke", "--file", str(keys.path), "--name", "rec-agent")
        assert result.returncode == 0
        assert f"the running server (pid {proc.pid}, uid 0) cannot read {keys.path}" in (
            result.stderr
        ), result.stderr
        assert "chown 0 " in result.stderr
        strict = keys_cli("revoke", "--strict", "--file", str(keys.path), "--name", "ok")
        assert strict.returncode == 3
        assert f"the running server (pid {proc.pid}, uid 0) cannot read" in strict.stderr

        proc.send_signal(signal.SIGHUP)  # and indeed the server cannot reload it
        deadline = time.monotonic() + 10
        while "keys file not reloaded" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
    finally:
        assert stop_process(proc) == 0
