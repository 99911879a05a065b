"""The two ways the server touches files it does not own the format of: replacing one
atomically, and noticing that one changed.

`write_atomically` is used for every file the program writes (state file, keys file, ready
file). `FileWatch` is used for every file it follows (keys file, TLS certificates and keys,
the metrics port's users file).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import threading
from pathlib import Path

#: What identifies one version of a file: modification time, size, inode and change time
#: (a chmod or chown changes only the last), or None when it cannot be looked at.
Stamp = tuple[int, int, int, int] | None


def write_atomically(path: str | Path, data: bytes, mode: int = 0o600) -> Path:
    """Replaces the file at `path` by `data`, so that a crash leaves the old or the new
    content, never a mix; returns the path written (the symlink's target, see below).

    - The data goes to a temporary file in the same directory, created with
      O_CREAT|O_EXCL|O_NOFOLLOW under a random name (a planted file or symlink there is never
      written through), fsynced, renamed over the file, and the directory is fsynced.
    - When the file exists, the new one keeps its owner, group and mode; otherwise it is
      created with `mode`. Changing the owner needs the right to (root, usually); without it
      the write fails instead of leaving a file the owner may not be able to read.
    - When `path` is a symlink, its target is replaced and the link is kept.
    """
    target = Path(os.path.realpath(path))
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        raise OSError(f"{target} is not a regular file; refusing to replace it")
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            if existing is not None:
                if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
                    os.fchown(fd, existing.st_uid, existing.st_gid)
                os.fchmod(fd, stat.S_IMODE(existing.st_mode))
            else:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def stamp_of(path: str) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


class FileWatch:
    """Whether any of some files changed since the last look: a new version is one with
    another modification time, size, inode or change time, or a file that appeared or
    disappeared. Thread-safe.

    `changed()` takes the new stamps as seen before the caller re-reads the files: a file
    that changes again while being read is seen as changed at the next look, and a version
    that fails to load is not retried (nor logged again) until it changes."""

    def __init__(self, *paths: str) -> None:
        self.paths = paths
        self._lock = threading.Lock()
        self._seen = self.stamps()

    def stamps(self) -> tuple[Stamp, ...]:
        return tuple(stamp_of(p) for p in self.paths)

    def changed(self) -> bool:
        """True (once) when the files differ from the last look."""
        current = self.stamps()
        with self._lock:
            if current == self._seen:
                return False
            self._seen = current
            return True

    def mark(self) -> None:
        """Takes the current versions as seen (before a forced re-read)."""
        current = self.stamps()
        with self._lock:
            self._seen = current


__all__ = ["FileWatch", "Stamp", "stamp_of", "write_atomically"]
