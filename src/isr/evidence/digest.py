"""The SHA-256 of a recording, computed as its bytes are written.

Most recordings are written front to back, but some formats patch their first
bytes when the file closes: an MP3's Xing/Info frame gets its counts, a FLAC
STREAMINFO its length, a WAV header its sizes, an Ogg FLAC file its first page.
SHA-256 takes its input in order, so the hash of such a file cannot be finished
before its head is final, and the body that follows the head cannot be held in
memory (an hour of a 128 kbps stream is 57 MB, times a thousand streams).

So a ``WriteHash`` splits each file at ``reserve`` bytes, the region a close may
still patch (the headers the file began with):

- bytes below ``reserve`` are kept in memory (a few hundred bytes to a few KiB)
  and patched there as the file is patched;
- bytes from ``reserve`` on are hashed in order as they are written (``rest``):
  the hot path costs one ``sha256.update`` per write and never reads the disk.

A file with no reserved head (ADTS AAC; a file whose writer began it with no
header) is hashed whole in the write path: its SHA-256 is final when it closes.
For the others, the write path's account of the file is its final head and the
SHA-256 of the rest; the one re-read that checks every closed file
(``isr.evidence.check``) hashes the file from the disk, and the file's SHA-256 is
taken only when the head on the disk equals the one in memory and the rest hashes
to the write path's digest: the disk then holds exactly what was written, and the
file's hash is the hash of what was written. No second read is needed.

A write that lands below ``reserve`` after the body began, or a patch past it,
would break that account: the hash is then marked ``broken`` and the file is
hashed from the disk alone by its check (logged; no writer of ISR does that).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Written:
    """What the write path knows of a closed file."""

    size: int
    reserve: int
    """Bytes at the start that were kept (and patched) in memory."""
    head: bytes
    """The file's first ``reserve`` bytes, as finally written."""
    rest_sha256: str
    """SHA-256 of the bytes from ``reserve`` to the end, as written."""
    broken: bool = False
    """A write or patch fell outside the account: hash the file from the disk."""

    @property
    def sha256(self) -> str | None:
        """The whole file's SHA-256 when the write path alone knows it."""
        return self.rest_sha256 if self.reserve == 0 and not self.broken else None


class WriteHash:
    """Follows every byte written to one file (see the module's docstring)."""

    __slots__ = ("_head", "_rest", "broken", "reserve", "size")

    def __init__(self, reserve: int = 0) -> None:
        self.reserve = reserve
        self.size = 0
        self.broken = False
        self._head = bytearray()
        self._rest = hashlib.sha256()

    def set_reserve(self, reserve: int) -> None:
        """Keep the first ``reserve`` bytes in memory: only before anything is hashed."""
        if self.size > self.reserve or self.size > reserve:
            self.broken = True
            return
        self.reserve = reserve

    def update(self, data: bytes | memoryview) -> None:
        """``data`` was appended at the end of the file."""
        n = len(data)
        if self.size >= self.reserve:
            self._rest.update(data)
        else:
            take = min(n, self.reserve - self.size)
            self._head += data[:take]
            if take < n:
                self._rest.update(data[take:])
        self.size += n

    def patch(self, offset: int, data: bytes | memoryview) -> None:
        """``data`` overwrote the file at ``offset`` (never past its end)."""
        end = offset + len(data)
        if end > min(self.reserve, self.size):
            self.broken = True
            return
        self._head[offset:end] = data

    def result(self) -> Written:
        return Written(
            size=self.size,
            reserve=self.reserve,
            head=bytes(self._head),
            rest_sha256=self._rest.hexdigest(),
            broken=self.broken,
        )
