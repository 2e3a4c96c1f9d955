"""What every framer gives the segmenter.

A framer is pure and push-based: ``feed(data)`` returns the whole frames completed
so far, ``flush()`` the rest at end of stream. Every input byte ends up in exactly
one emitted frame or in ``dropped_bytes`` (junk, tags, cut-off frames), so the
output can be checked byte for byte against the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Frame:
    """One unit the segmenter may cut before: a codec frame or an Ogg page."""

    data: bytes
    samples: int
    """PCM samples per channel the frame decodes to (0 for headers)."""
    sample_rate: int


class Framer(Protocol):
    """The interface shared by the MP3, ADTS, Ogg and FLAC framers."""

    format: str
    """Short name: ``mp3``, ``aac``, ``ogg``, ``flac``."""
    extension: str
    """File extension including the dot, for the current stream."""
    dropped_bytes: int
    """Bytes thrown away since creation: junk, tags, partial frames."""
    header_frames: list[Frame]
    """What every new file must start with (empty for MP3 and ADTS)."""

    def feed(self, data: bytes) -> list[Frame]: ...

    def flush(self) -> list[Frame]: ...
