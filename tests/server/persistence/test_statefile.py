"""The state file's I/O in-process: atomic checkpoints, failures counted, flags validated."""

from __future__ import annotations

import asyncio
import os
import stat
import urllib.request
from pathlib import Path

import grpc
import pytest

from cugar.metrics.v1 import metrics_service_pb2 as pb
from cugar.metrics.v1 import metrics_service_pb2_grpc as pb_grpc
from cugar_metrics.aggregator import Aggregator
from cugar_metrics.aggregator.persist import decode
from cugar_metrics.cli import build_parser, config_from_args
from cugar_metrics.config import Config, ConfigError, preflight
from cugar_metrics.statefile import Checkpointer, load, move_aside, write_atomically
from tests.conftest import execution, pb_execution, start_server

T0 = 1_000_000.0


def test_write_atomically_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state"
    write_atomically(path, b"one")
    write_atomically(path, b"two")
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_move_aside_never_overwrites_an_earlier_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_bytes(b"first")
    a = move_aside(path, T0)
    path.write_bytes(b"second")
    b = move_aside(path, T0)
    assert (a.name, b.name) == (
        "state.corrupt-19700112T134640Z",
        "state.corrupt-19700112T134640Z-2",
    )
    assert (a.read_bytes(), b.read_bytes(), path.exists()) == (b"first", b"second", False)


def test_missing_file_is_a_fresh_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    assert load(tmp_path / "absent", T0) is None
    assert "no state file at" in caplog.text and list(tmp_path.iterdir()) == []


def test_a_failed_checkpoint_is_counted_and_logged_and_the_next_one_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agg = Aggregator(start_time=T0)
    agg.record([execution("a")], T0 + 1)
    directory = tmp_path / "gone"
    checkpointer = Checkpointer(agg, directory / "state", 30, clock=lambda: T0 + 2)
    assert checkpointer.checkpoint() is False
    assert (checkpointer.stats.successes, checkpointer.stats.failures) == (0, 1)
    assert "checkpoint to" in caplog.text and "failed" in caplog.text
    directory.mkdir()
    assert checkpointer.checkpoint() is True
    assert (checkpointer.stats.successes, checkpointer.stats.last_success) == (1, T0 + 2)
    assert decode((directory / "state").read_bytes()).snapshot.ingest["accepted"] == 1


def test_in_process_server_checkpoints_periodically_and_exports_the_counters(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    config = Config(
        host="127.0.0.1",
        grpc_port=0,
        metrics_port=0,
        replica="t",
        state_file=str(state),
        checkpoint_interval=1,
    )
    running, loop, thread = start_server(config)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            pb_grpc.MetricsServiceStub(channel).RecordExecution(
                pb.RecordExecutionRequest(execution=pb_execution("p-1")), timeout=10
            )
        assert running.checkpointer is not None
        for _ in range(40):  # the first periodic checkpoint is due after one second
            if running.checkpointer.stats.successes:
                break
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0.1), loop).result()
        assert decode(state.read_bytes()).snapshot.ingest["accepted"] == 1
        url = f"http://127.0.0.1:{running.metrics_port}/metrics"
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        successes = running.checkpointer.stats.successes
        assert f'cugar_state_checkpoints_total{{result="success"}} {float(successes)}' in text
        assert 'cugar_state_checkpoints_total{result="failure"} 0.0' in text
        assert "cugar_state_last_checkpoint_timestamp_seconds " in text
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(0, 0), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
    assert running.checkpointer.stats.successes == successes + 1  # the final one


def test_without_a_state_file_nothing_is_written_and_no_state_metrics(tmp_path: Path) -> None:
    config = Config(host="127.0.0.1", grpc_port=0, metrics_port=0, replica="t")
    running, loop, thread = start_server(config)
    try:
        url = f"http://127.0.0.1:{running.metrics_port}/metrics"
        assert "cugar_state_" not in urllib.request.urlopen(url, timeout=5).read().decode()
        assert running.checkpointer is None
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(0, 0), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


def _config(*args: str) -> Config:
    return config_from_args(build_parser().parse_args(["serve", *args]))


def test_flags_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c = _config("--state-file", str(tmp_path / "s"), "--checkpoint-interval", "2m")
    assert (c.state_file, c.checkpoint_interval) == (str(tmp_path / "s"), 120.0)
    default = _config()
    assert (default.state_file, default.checkpoint_interval) == (None, 30.0)
    monkeypatch.setenv("CUGAR_METRICS_STATE_FILE", str(tmp_path / "env"))
    monkeypatch.setenv("CUGAR_METRICS_CHECKPOINT_INTERVAL", "5s")
    c = _config()
    assert (c.state_file, c.checkpoint_interval) == (str(tmp_path / "env"), 5.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--checkpoint-interval", "0.5s"], "--checkpoint-interval: must be between 1s and 1h"),
        (["--checkpoint-interval", "2h"], "--checkpoint-interval: must be between 1s and 1h"),
        (["--checkpoint-interval", "soon"], "--checkpoint-interval: 'soon' is not a duration"),
    ],
)
def test_bad_values_name_the_flag(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        _config(*args)
    assert str(e.value).startswith(message)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--state-file", "/nonexistent-dir/state"], "--state-file: directory '/nonexistent-dir'"),
        (["--state-file", "/"], "--state-file: give the path of a file"),
    ],
)
def test_bad_state_files_are_start_up_problems_naming_the_flag(
    args: list[str], message: str
) -> None:
    problems = preflight(_config(*args))
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_state_directory_must_exist_even_when_given_by_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUGAR_METRICS_STATE_FILE", os.path.join("/nonexistent-dir", "s"))
    (problem,) = preflight(_config())
    assert problem.startswith("--state-file: directory")
