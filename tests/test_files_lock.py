"""The recording lock (``isr.sinks.files``): a file is share-locked from its creation
for as long as the recorder holds it, and ``is_locked`` tells the web UI and the
keeper so, without opening what is not a recording."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from isr.sinks.files import create_exclusive, is_locked


def test_file_is_share_locked_while_open(tmp_path: Path) -> None:
    path, fd = create_exclusive(tmp_path, "a/b", ".wav")
    assert path == tmp_path / "a" / "b.wav"
    assert is_locked(path)
    os.close(fd)
    assert not is_locked(path)


def test_a_new_file_is_locked_even_when_a_lock_probe_meets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``is_locked`` elsewhere holds the exclusive lock for an instant: the shared
    lock of a file just created must wait it out, not give up."""

    real_flock = fcntl.flock
    refused: list[int] = []

    def flock(fd: int, op: int) -> None:
        if op & fcntl.LOCK_SH and len(refused) < 2:
            refused.append(fd)  # a probe holds it, twice in a row
            raise BlockingIOError(11, "Resource temporarily unavailable")
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    path, fd = create_exclusive(tmp_path, "c", ".wav")
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert len(refused) == 2 and is_locked(path)
    os.close(fd)
