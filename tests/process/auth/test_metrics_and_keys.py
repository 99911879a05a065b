"""With API keys, /metrics is guarded or explicitly open; a keys file others can read is
warned about at start-up."""

from __future__ import annotations

import hashlib
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.server.auth.helpers import make_keys
from tests.support.serverproc import CLI, launch


def test_keys_without_a_metrics_choice_refuse_to_start(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    result = subprocess.run(
        [
            str(CLI),
            "serve",
            "--auth-keys-file",
            str(keys.path),
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("cugar-metrics: error: --auth-keys-file guards the gRPC port, but")
    assert "--metrics-basic-auth-file FILE" in line and "--metrics-open" in line


def test_metrics_open_starts_with_a_warning(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    p = launch(tmp_path, "--auth-keys-file", str(keys.path), "--metrics-open", name="open")
    try:
        with urllib.request.urlopen(p.metrics_url, timeout=5) as r:
            assert r.status == 200
        out = p.output()
    finally:
        assert p.stop() == 0
    assert "WARNING cugar_metrics: --metrics-open: /metrics serves profiles, tools and agent" in out


def test_basic_auth_on_metrics_starts_without_that_warning(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    users = tmp_path / "users"
    users.write_text(f"prom:{hashlib.sha256(b'long-random-secret').hexdigest()}\n")
    p = launch(
        tmp_path, "--auth-keys-file", str(keys.path), "--metrics-basic-auth-file", str(users)
    )
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(p.metrics_url, timeout=5)
        assert caught.value.code == 401
        out = p.output()
    finally:
        assert p.stop() == 0
    assert "--metrics-open" not in out


def test_a_keys_file_others_can_read_is_a_start_up_warning(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    os.chmod(keys.path, 0o644)
    p = launch(tmp_path, "--auth-keys-file", str(keys.path), name="exposed")
    try:
        out = p.output()
    finally:
        assert p.stop() == 0
    assert (
        f"WARNING cugar_metrics: keys file {keys.path} is readable by group and others "
        f"(mode 0644): run 'chmod 600 {keys.path}'"
    ) in out
    os.chmod(keys.path, 0o600)
    p = launch(tmp_path, "--auth-keys-file", str(keys.path), name="private")
    try:
        out = p.output()
    finally:
        assert p.stop() == 0
    assert "is readable by" not in out
