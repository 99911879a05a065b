"""A state file that is not a regular file is refused at start-up, without hanging."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.serverproc import CLI


def test_a_fifo_as_state_file_is_refused_at_once_with_exit_2(tmp_path: Path) -> None:
    fifo = tmp_path / "state"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [
            str(CLI),
            "serve",
            "--no-auth",
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
            "--state-file",
            str(fifo),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # a hung start-up must at least obey SIGTERM
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError("start-up hung on the FIFO and ignored SIGTERM") from None
        raise AssertionError("start-up hung on the FIFO (SIGTERM stopped it)") from None
    assert proc.returncode == 2, err
    assert err.strip() == (
        f"cugar-metrics: error: --state-file: {str(fifo)!r} is not a regular file (a FIFO, "
        "socket or device cannot hold the state); give the path of a regular file"
    )
    assert os.path.exists(fifo)  # left where it is


def test_a_directory_or_a_fifo_behind_a_symlink_is_refused_the_same_way(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "state"
    link.symlink_to(fifo)
    result = subprocess.run(
        [str(CLI), "serve", "--no-auth", "--check-config", "--state-file", str(link)],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert "--state-file:" in result.stderr and "is not a regular file" in result.stderr


@pytest.mark.parametrize(
    "flags",
    [
        ["--metrics-basic-auth-file", "{fifo}"],
        ["--auth-keys-file", "{fifo}", "--metrics-open"],
        ["--tls-cert", "{fifo}", "--tls-key", "{fifo}"],
    ],
)
def test_a_fifo_as_any_file_option_is_refused_without_blocking(
    tmp_path: Path, flags: list[str]
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    args = [a.format(fifo=fifo) for a in flags]
    result = subprocess.run(
        [str(CLI), "serve", "--check-config", *args],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 2
    assert f"{flags[0]}: {str(fifo)!r} is not a regular file" in result.stderr, result.stderr
