"""Creating recording files: never overwrite, never append, locked while written.

And the rule for every file ISR creates, rewrites, repairs or appends to (see
docs/operations.md, "Files the recorder writes"): the last component of its path is
never followed when it is a symbolic link (``O_NOFOLLOW``), a file is created with
``O_EXCL``, and an existing file is only written when it is a regular file with no
other hard link. Someone who can write to the recordings directory can plant a
link or a hard link at a name ISR is about to use; it must not make a recorder
running as root write anywhere else. Directories are followed: an operator may
link a source's directory to another disk.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

MAX_SUFFIX = 10_000
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
"""Flags for every open of a file in the recordings directory."""


def open_regular(path: Path | str, flags: int, *, single_link: bool = True) -> int:
    """``os.open`` of an existing file that refuses anything but a regular file:
    no symlink in the last component (``ELOOP``), no FIFO or device (opened without
    blocking, then refused), and, with ``single_link``, no file that has another
    hard link (a link to a file outside, planted where ISR will write)."""
    try:
        fd = os.open(path, flags | NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "is a symbolic link, not followed", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "is not a regular file", str(path))
        if single_link and st.st_nlink > 1:
            raise OSError(errno.EMLINK, f"has {st.st_nlink} hard links, not written", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path | str, limit: int = 64 << 20) -> bytes:
    """The bytes of a regular file, never through a symlink nor from a FIFO (a
    planted FIFO where a sidecar should be would block a reader for ever)."""
    fd = open_regular(path, os.O_RDONLY, single_link=False)
    try:
        chunks = []
        left = limit
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def create_exclusive(directory: Path, stem: str, extension: str) -> tuple[Path, int]:
    """Create ``directory/stem + extension`` with ``O_EXCL``; a taken name gets
    ``_1``, ``_2``, … before the extension. Subfolders in ``stem`` are made.

    The new file is held with a shared ``flock`` for as long as the descriptor
    (or a ``dup`` of it) stays open: the web UI refuses to delete a file it cannot
    lock exclusively.
    """
    base = directory / stem
    base.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW
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
    """True when someone (a recorder) holds a lock on ``path``. A symlink or a FIFO
    is no recording (and is not opened: a FIFO would block the caller)."""
    try:
        fd = os.open(path, os.O_RDONLY | NOFOLLOW | os.O_NONBLOCK)
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


TMP_TRIES = 8


def replace_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` so a reader sees the old or the new file, never half of one.

    The temporary file gets an unpredictable name in the same directory and is
    created with ``O_EXCL | O_NOFOLLOW``: a link planted at a name ISR was about to
    use cannot make it write elsewhere. The rename replaces ``path`` itself, never
    what a symlink there points to.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW
    for attempt in range(TMP_TRIES):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask decides, as for open()
        except FileExistsError:
            if attempt == TMP_TRIES - 1:
                raise
            continue
        break
    try:
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


SQLITE_FILES = ("", "-wal", "-shm", "-journal")
"""A database's own name and the names SQLite creates beside it."""


def connect_sqlite(path: Path, **kwargs: Any) -> sqlite3.Connection:
    """``sqlite3.connect`` to a database in the recordings directory, by the rule
    above. SQLite follows a symlink at the database's name (and creates its -wal,
    -shm and journal files beside the target), and Python cannot pass it
    ``SQLITE_OPEN_NOFOLLOW``: so a link, a hard link or anything but a regular file
    at any of those names is refused (``OSError``) before SQLite sees it, and a new
    database is created here, ``O_EXCL | O_NOFOLLOW``, for SQLite to open. (A link
    planted in the instant between this check and SQLite's open is not caught.)"""
    for suffix in SQLITE_FILES:
        name = f"{path}{suffix}"
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, "is a symbolic link, not followed", name)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "is not a regular file", name)
        if st.st_nlink > 1:
            raise OSError(errno.EMLINK, f"has {st.st_nlink} hard links, not written", name)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644))
    conn: sqlite3.Connection = sqlite3.connect(path, **kwargs)
    return conn
