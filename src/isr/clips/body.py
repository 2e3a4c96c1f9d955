"""A clip's bytes: a list of pieces whose total length is known before the first byte.

A piece is literal bytes (the headers a clip starts with, a re-encoded edge frame),
a range of one recording (:class:`FileRange`: the frames or samples used, as they
are), or a range whose bytes a cutter makes from a recording as they are read (FLAC
frames with new numbers: :class:`Piece` implementations elsewhere). Any byte range
of the whole is served by walking the pieces, so Range requests cost no more than
the bytes they ask for; recordings are read in chunks, never loaded whole.

Reading blocks (``pread``): the web layer runs it in a worker thread, or hands a
:class:`FileRange` to ``loop.sendfile``.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from isr.sinks.files import open_regular

__all__ = ["CHUNK", "Body", "FileRange", "Literal", "Piece", "Span"]

CHUNK = 1 << 20
"""Bytes read at a time."""


class Piece(Protocol):
    """Bytes of known length, readable in any sub-range."""

    @property
    def length(self) -> int: ...

    def read(self, start: int, end: int, chunk: int = CHUNK) -> Generator[bytes, None, None]:
        """Bytes ``[start, end)`` of this piece, in chunks of at most about ``chunk``."""
        ...

    def describe(self) -> bytes:
        """What identifies these bytes (for the clip's entity tag)."""
        ...


@dataclass(frozen=True, slots=True)
class Literal:
    data: bytes

    @property
    def length(self) -> int:
        return len(self.data)

    def read(self, start: int, end: int, chunk: int = CHUNK) -> Generator[bytes, None, None]:
        for a in range(start, end, chunk):
            yield self.data[a : min(end, a + chunk)]

    def describe(self) -> bytes:
        return b"L" + hashlib.sha1(self.data).digest()


@dataclass(frozen=True, slots=True)
class FileRange:
    """``length`` bytes of ``path`` from ``offset``, as they are."""

    path: Path
    offset: int
    length: int

    def read(self, start: int, end: int, chunk: int = CHUNK) -> Generator[bytes, None, None]:
        fd = open_regular(self.path, os.O_RDONLY, single_link=False)
        try:
            pos = self.offset + start
            stop = self.offset + end
            while pos < stop:
                data = os.pread(fd, min(chunk, stop - pos), pos)
                if not data:
                    raise OSError(f"{self.path} ends at byte {pos}, before {stop}")
                pos += len(data)
                yield data
        finally:
            os.close(fd)

    def describe(self) -> bytes:
        return f"F{self.path}\0{self.offset}\0{self.length}".encode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class Span:
    """Bytes ``[start, end)`` of ``piece``."""

    piece: Piece
    start: int
    end: int


class Body:
    """The pieces of one clip, end to end."""

    def __init__(self, pieces: Sequence[Piece]) -> None:
        self.pieces = [p for p in pieces if p.length > 0]
        self._bounds = [0]
        for p in self.pieces:
            self._bounds.append(self._bounds[-1] + p.length)

    @property
    def length(self) -> int:
        return self._bounds[-1]

    def spans(self, start: int, end: int) -> Iterator[Span]:
        """The pieces that bytes ``[start, end)`` of the whole fall in, each with its
        own range."""
        start, end = max(0, start), min(end, self.length)
        if start >= end:
            return
        i = bisect.bisect_right(self._bounds, start) - 1
        while i < len(self.pieces) and self._bounds[i] < end:
            lo = self._bounds[i]
            yield Span(self.pieces[i], max(start, lo) - lo, min(end, self._bounds[i + 1]) - lo)
            i += 1

    def read(
        self, start: int = 0, end: int | None = None, chunk: int = CHUNK
    ) -> Generator[bytes, None, None]:
        """Bytes ``[start, end)`` of the whole (default: all), in chunks."""
        for span in self.spans(start, self.length if end is None else end):
            yield from span.piece.read(span.start, span.end, chunk)

    def etag(self) -> str:
        """A strong entity tag: it changes whenever a byte of the clip could."""
        h = hashlib.sha1()
        for p in self.pieces:
            h.update(p.describe())
            h.update(b"\n")
        return f'"clip-{h.hexdigest()[:32]}"'
