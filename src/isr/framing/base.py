"""What every framer gives the segmenter.

A framer is pure and push-based: ``feed(data)`` returns the whole frames completed
so far, ``flush()`` the rest at end of stream. Every input byte ends up in exactly
one emitted frame or in ``dropped_bytes`` (junk, tags, cut-off frames), so the
output can be checked byte for byte against the input.

Each file is written through a ``FileWriter`` that the framer makes when the file
opens: it adds what a decoder needs at the start (Ogg and FLAC headers, an MP3
Xing frame), rewrites what must start from zero (Ogg granules and sequence
numbers, FLAC frame numbers), and patches totals in place at close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class Frame:
    """One unit the segmenter may cut before: a codec frame or an Ogg page.

    A value: never changed once made (``dataclasses.replace`` makes another). Not
    declared frozen because a thousand streams make tens of thousands a second,
    and a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``, at several times the cost.
    """

    data: bytes
    samples: int
    """PCM samples per channel the frame decodes to (0 for headers)."""
    sample_rate: int
    cut: bool = True
    """A file may start before this frame (an Ogg page that continues a packet may not)."""
    new_link: bool = False
    """The stream changed codec setup here (a chained Ogg link that cannot be
    de-chained): a new file must start before this frame."""
    title: str | None = None
    """A title the stream itself carries from here on (Ogg comments of a new link)."""


class FileWriter(Protocol):
    """Turns the frames of one file into its bytes."""

    extension: str | None
    """The file's extension as its first frame tells it (an Ogg link's codec: set
    by ``begin``), which wins over the framer's current one; None to leave it so."""

    def begin(self, first: Frame) -> bytes:
        """Bytes a new file starts with, before ``first`` (headers; may be empty)."""
        ...

    def write(self, frames: Sequence[Frame]) -> bytes:
        """Bytes for ``frames``; may hold some back until ``end``."""
        ...

    def end(self) -> bytes:
        """Whatever was held back, finished (e.g. the last Ogg page with EOS)."""
        ...

    def patches(self) -> list[tuple[int, bytes]]:
        """(offset, bytes) to overwrite once the file is complete (totals, counts)."""
        ...


class PassThrough:
    """The writer of formats whose frames stand alone as they are (ADTS, CBR MP3)."""

    extension: str | None = None

    def begin(self, first: Frame) -> bytes:
        return b""

    def write(self, frames: Sequence[Frame]) -> bytes:
        return b"".join(f.data for f in frames)

    def end(self) -> bytes:
        return b""

    def patches(self) -> list[tuple[int, bytes]]:
        return []


class Framer(Protocol):
    """The interface shared by the MP3, ADTS, Ogg and FLAC framers."""

    format: str
    """Short name: ``mp3``, ``aac``, ``ogg``, ``flac``."""
    extension: str
    """File extension including the dot, for the current stream."""
    dropped_bytes: int
    """Bytes thrown away since creation: junk, tags, partial frames."""
    header_frames: list[Frame]
    """The current link's headers (empty for MP3 and ADTS)."""

    def feed(self, data: bytes) -> list[Frame]: ...

    def flush(self) -> list[Frame]: ...

    def file_writer(self) -> FileWriter:
        """A writer for a file that opens now (it takes the current headers)."""
        ...


class FramerBase:
    """Buffering and byte accounting that every framer shares.

    A subclass implements ``_run(eof)``: it consumes ``self._buf`` as far as it can
    decide, returns the frames found, and reports every byte it throws away through
    ``_drop``, so ``emitted + dropped == fed`` holds for every framer alike.
    """

    format: str = ""
    extension: str = ""

    def __init__(self) -> None:
        self.dropped_bytes = 0
        self.drops: dict[str, int] = {}
        """Dropped bytes by reason (junk, tags, truncated, ...)."""
        self.header_frames: list[Frame] = []
        self._buf = bytearray()
        self._skip = 0
        """Bytes still to drop as ``_skip_reason`` (a tag or metadata block that
        may run on into later chunks)."""
        self._skip_reason = ""

    def _skip_ahead(self, p: int, end: int) -> int:
        """Drop what is left of the block being skipped, up to ``end``; the new ``p``."""
        n = min(self._skip, end - p)
        self._skip -= n
        self._drop(n, self._skip_reason)
        return p + n

    def _drop(self, n: int, reason: str) -> None:
        if n > 0:
            self.dropped_bytes += n
            self.drops[reason] = self.drops.get(reason, 0) + n

    def feed(self, data: bytes) -> list[Frame]:
        """Take more stream bytes; return the frames they complete."""
        if not data:
            return []
        self._buf += data
        return self._run(eof=False)

    def _run(self, eof: bool) -> list[Frame]:
        raise NotImplementedError
