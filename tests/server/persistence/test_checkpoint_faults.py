"""Checkpoints never write through a planted file and never replace a good state file by
one that would not restore."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cugar_metrics.aggregator import Aggregator
from cugar_metrics.aggregator.persist import decode, encode
from cugar_metrics.statefile import CheckpointCollector, Checkpointer
from tests.conftest import execution

T0 = 1_700_000_000.0


def _aggregator(n: int) -> Aggregator:
    agg = Aggregator(start_time=T0)
    agg.record([execution(f"e-{i}") for i in range(n)], T0 + 1)
    return agg


@pytest.mark.parametrize("planted", ["state.tmp", ".state.tmp"])
def test_a_planted_tmp_symlink_is_not_written_through(tmp_path: Path, planted: str) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / planted).symlink_to(victim)
    state = tmp_path / "state"
    checkpointer = Checkpointer(_aggregator(3), state, 30, clock=lambda: T0 + 2)
    assert checkpointer.checkpoint()
    assert victim.read_bytes() == b"precious"
    assert sum(decode(state.read_bytes()).snapshot.ingest.values()) == 3
    assert os.readlink(tmp_path / planted) == str(victim)  # left alone


def test_a_checkpoint_that_would_not_restore_keeps_the_previous_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    good = Checkpointer(_aggregator(5), state, 30, clock=lambda: T0 + 2)
    assert good.checkpoint()
    before = state.read_bytes()

    def damaged(saved: object) -> bytes:  # a fault in encoding: the bytes lose their tail
        return encode(saved)[:-7]  # type: ignore[arg-type]

    bad = Checkpointer(_aggregator(9), state, 30, clock=lambda: T0 + 3, encoder=damaged)
    assert bad.checkpoint() is False
    assert state.read_bytes() == before
    assert decode(state.read_bytes()).snapshot.ingest["accepted"] == 5
    assert (bad.stats.successes, bad.stats.failures) == (0, 1)
    families = {m.name: m for m in CheckpointCollector(bad).collect()}
    samples = {s.labels["result"]: s.value for s in families["cugar_state_checkpoints"].samples}
    assert samples == {"success": 0.0, "failure": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["state"]  # no temporary file left
