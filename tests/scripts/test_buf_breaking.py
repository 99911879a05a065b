"""scripts/buf-breaking.sh in fresh clones: what it compares the contract with, and that it
fails when there is nothing to compare with (it used to pass without a main branch)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.serverproc import ROOT

SCRIPT = ROOT / "scripts" / "buf-breaking.sh"
BUF = ROOT / "tools" / "node_modules" / ".bin" / "buf"
PROTO = Path("protos/cugar/metrics/v1/metrics_service.proto")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def clone(tmp_path: Path, *options: str) -> Path:
    """A clone of this repository's checked-out branch, named main as in CI's clone, with the
    script of this work tree."""
    dest = tmp_path / "clone"
    git(tmp_path, "clone", "-q", *options, ROOT.as_uri(), str(dest))
    git(dest, "checkout", "-q", "-B", "main")
    git(dest, "update-ref", "refs/remotes/origin/main", "HEAD")  # as in a fresh clone of main
    git(dest, "config", "user.email", "test@example.invalid")
    git(dest, "config", "user.name", "test")
    shutil.copy(SCRIPT, dest / "scripts" / "buf-breaking.sh")
    return dest


def run(repo: Path) -> subprocess.CompletedProcess[str]:
    assert BUF.exists(), "buf is not installed: run scripts/install-tools.sh"
    return subprocess.run(
        ["bash", "scripts/buf-breaking.sh"],
        cwd=repo,
        env={"PATH": "/usr/bin:/bin", "BUF": str(BUF), "HOME": str(repo)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def break_the_contract(repo: Path) -> None:
    proto = repo / PROTO
    text = proto.read_text()
    assert "  string execution_id = 1;\n" in text
    proto.write_text(text.replace("  string execution_id = 1;\n", "  string run_id = 1;\n", 1))


@pytest.fixture(scope="module")
def full_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clone(tmp_path_factory.mktemp("full"))


def test_on_main_it_compares_with_the_previous_commit_and_catches_a_break(
    full_clone: Path,
) -> None:
    previous = git(full_clone, "rev-parse", "HEAD~1")
    result = run(full_clone)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"--against the previous commit ({previous[:12]})" in result.stdout
    break_the_contract(full_clone)
    try:
        result = run(full_clone)
        assert result.returncode != 0
        assert 'changed name from "execution_id" to "run_id"' in result.stdout
    finally:
        git(full_clone, "checkout", "--", str(PROTO))


def test_a_release_tag_comes_first_and_a_tag_on_head_is_skipped(full_clone: Path) -> None:
    old = git(full_clone, "rev-parse", "HEAD~2")
    git(full_clone, "tag", "v0.0.1", old)
    git(full_clone, "tag", "v0.0.2", "HEAD")  # this very commit: comparing proves nothing
    try:
        result = run(full_clone)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"--against the last release v0.0.1 ({old[:12]})" in result.stdout
    finally:
        git(full_clone, "tag", "-d", "v0.0.1", "v0.0.2")


def test_on_a_branch_it_compares_with_where_the_branch_left_main(full_clone: Path) -> None:
    base = git(full_clone, "rev-parse", "HEAD")
    git(full_clone, "checkout", "-q", "-b", "feature")
    try:
        git(full_clone, "commit", "-q", "--allow-empty", "-m", "a commit on the branch")
        result = run(full_clone)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"--against the merge base with origin/main ({base[:12]})" in result.stdout
    finally:
        git(full_clone, "checkout", "-q", "main")


def test_a_single_commit_clone_fails_loudly(tmp_path: Path) -> None:
    shallow = clone(tmp_path, "--depth", "1")
    result = run(shallow)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nothing to compare the contract with" in result.stderr
