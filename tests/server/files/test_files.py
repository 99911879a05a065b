"""The atomic write and file watch helpers every file the server writes or follows goes
through."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from cugar_metrics.files import FileWatch, write_atomically


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_a_new_file_gets_the_given_mode_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    path = tmp_path / "state"
    assert write_atomically(path, b"one") == path
    assert path.read_bytes() == b"one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    write_atomically(tmp_path / "ready", b"{}", mode=0o644)
    assert stat.S_IMODE((tmp_path / "ready").stat().st_mode) == 0o644
    assert _leftovers(tmp_path) == []


def test_an_existing_file_keeps_its_owner_group_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    if os.geteuid() == 0:
        os.chown(path, 4242, 4343)
    before = path.stat()
    write_atomically(path, b"new")
    after = path.stat()
    assert path.read_bytes() == b"new"
    assert after.st_ino != before.st_ino  # replaced, not rewritten in place
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid) == (
        0o640,
        before.st_uid,
        before.st_gid,
    )


def test_a_symlink_is_written_through_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "real" / "keys.json"
    real.parent.mkdir()
    real.write_bytes(b"old")
    os.chmod(real, 0o600)
    link = tmp_path / "keys.json"
    link.symlink_to(real)
    assert write_atomically(link, b"new") == real
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new"
    assert _leftovers(tmp_path) == [] and _leftovers(real.parent) == []


def test_a_planted_temporary_symlink_is_not_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    for name in ("state.tmp", ".state.tmp"):
        (tmp_path / name).symlink_to(victim)
    write_atomically(tmp_path / "state", b"checkpoint")
    assert victim.read_bytes() == b"precious"
    assert (tmp_path / "state").read_bytes() == b"checkpoint"


def test_a_non_regular_target_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "state"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        write_atomically(fifo, b"x")
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert _leftovers(tmp_path) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):  # fails after the temporary file was created
        write_atomically(path, 12345)  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_file_watch_sees_content_replacement_mode_and_disappearance(tmp_path: Path) -> None:
    path = tmp_path / "watched"
    path.write_bytes(b"a")
    watch = FileWatch(str(path))
    assert not watch.changed()
    write_atomically(path, b"b")  # a new inode
    assert watch.changed() and not watch.changed()  # once per version
    st = path.stat()
    with path.open("r+b") as f:  # same size, in place, same mtime forced back
        f.write(b"c")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert watch.changed()  # the change time moved
    os.chmod(path, 0o644)
    assert watch.changed()
    path.unlink()
    assert watch.changed() and not watch.changed()
    path.write_bytes(b"back")
    assert watch.changed()


def test_nothing_in_the_server_writes_files_its_own_way() -> None:
    root = Path(__file__).resolve().parents[3] / "server" / "cugar_metrics"
    result = subprocess.run(
        ["grep", "-rlE", r"os\.replace|os\.rename|fsync|mkstemp", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    writers = sorted(Path(p).relative_to(root).as_posix() for p in result.stdout.split())
    # files.py is the helper; statefile moves an unrestorable file aside with os.replace.
    assert writers == ["files.py", "statefile.py"], writers
