"""Creating recording files: never overwrite, never append, locked while written."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

MAX_SUFFIX = 10_000


def create_exclusive(directory: Path, stem: str, extension: str) -> tuple[Path, int]:
    """Create ``directory/stem + extension`` with ``O_EXCL``; a taken name gets
    ``_1``, ``_2``, … before the extension. Subfolders in ``stem`` are made.

    The new file is held with a shared ``flock`` for as long as the descriptor
    (or a ``dup`` of it) stays open: the web UI refuses to delete a file it cannot
    lock exclusively.
    """
    base = directory / stem
    base.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for n in range(MAX_SUFFIX):
        path = Path(f"{base}{'' if n == 0 else f'_{n}'}{extension}")
        try:
            fd = os.open(path, flags, 0o644)
        except FileExistsError:
            continue
        _lock_shared(fd)
        return path, fd
    raise OSError(errno.EEXIST, f"no free name for {base}{extension} after {MAX_SUFFIX} tries")


LOCK_TRIES = 5
LOCK_RETRY_SECONDS = 0.002


def _lock_shared(fd: int) -> None:
    """Take the shared lock, waiting out a lock probe (``is_locked`` holds the
    exclusive lock for an instant): a file left unlocked could be deleted by the
    web UI before the status file names it. A filesystem without flock still
    records; the status file is then the only witness."""
    for _ in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            time.sleep(LOCK_RETRY_SECONDS)  # a few ms at most, and only in that race
        except OSError:
            return


def is_locked(path: Path) -> bool:
    """True when someone (a recorder) holds a lock on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until everything is written (a regular file may write short)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "write returned 0")
        view = view[n:]
