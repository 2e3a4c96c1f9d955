"""A sink is one open recording file."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from isr.evidence.digest import WriteHash
from isr.sinks.files import create_exclusive, write_all


class Sink:
    """Writes bytes as they come to a file created with ``create_exclusive``.

    Writes go straight to the kernel (no user-space buffer to lose in a crash);
    ``sync_fd`` is a ``dup`` that the recorder's syncer fsyncs off the event loop and
    closes after the file is closed, so a close never races an fsync.

    Every byte goes through ``digest`` as it is written (``isr.evidence.digest``):
    the file's SHA-256 is computed on its way to the disk, never by reading it back.
    """

    def __init__(self, directory: Path, stem: str, extension: str) -> None:
        self.path, self.fd = create_exclusive(directory, stem, extension)
        self.sync_fd: int | None = os.dup(self.fd)
        self.bytes_written = 0
        self.closed = False
        self.digest = WriteHash()

    def write(self, data: bytes | memoryview) -> None:
        """All of ``data`` or nothing: a write that fails part-way (a full disk) is cut
        back, so the file ends on the last whole write, never inside a frame."""
        try:
            write_all(self.fd, data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.bytes_written)
            raise
        self.bytes_written += len(data)
        self.digest.update(data)

    def pwrite(self, data: bytes, offset: int) -> None:
        """Overwrite in place (a header's totals); never extends the file."""
        if offset + len(data) > self.bytes_written:
            raise ValueError("pwrite past the end of the file")
        os.pwrite(self.fd, data, offset)
        self.digest.patch(offset, data)

    def discard(self) -> None:
        """Close and remove a file that never received audio (its creation or first
        write failed, e.g. on a full disk): an empty file helps no one."""
        if not self.closed:
            self.closed = True
            os.close(self.fd)
        if self.sync_fd is not None:
            os.close(self.sync_fd)
            self.sync_fd = None
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def close(self) -> None:
        """Close the file; ``sync_fd`` stays open for a last fsync by the syncer."""
        if self.closed:
            return
        self.closed = True
        os.close(self.fd)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path} {self.bytes_written} B>"
