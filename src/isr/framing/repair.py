"""Cutting a stream file killed mid-write back to its last whole frame or page.

Only the tail of the file is read: the framer resynchronises on it and tells where
the last whole unit ends; what follows is a partial write of the crash.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from isr.framing.base import Framer

TAIL_BYTES = 1 << 20
"""How much of the end of a file is examined (many frames or pages of any format)."""

Repairer = Callable[[Path], str | None]


def last_unit_end(tail: bytes, framer: Framer) -> int | None:
    """Offset in ``tail`` just after the last whole frame the framer finds."""
    frames = framer.feed(tail) + framer.flush()
    if not frames:
        return None
    last = frames[-1].data
    at = tail.rfind(last)
    return None if at < 0 else at + len(last)


def truncate_to_frames(path: Path, make_framer: Callable[[], Framer]) -> str | None:
    """Cut ``path`` after its last whole frame; returns what was done, or None."""
    size = path.stat().st_size
    start = max(0, size - TAIL_BYTES)
    with open(path, "rb") as fh:
        fh.seek(start)
        tail = fh.read()
    end = last_unit_end(tail, make_framer())
    if end is None or start + end >= size:
        return None
    cut = size - (start + end)
    with open(path, "r+b") as fh:
        fh.truncate(start + end)
        os.fsync(fh.fileno())
    return f"cut {cut} bytes of a partial frame at the end"


def repairer_for(path: Path) -> Repairer | None:
    """The repair for a stream file, by its extension; None if it needs none."""
    ext = path.suffix.lower()
    if ext == ".mp3":
        from isr.framing.mp3 import Mp3Framer

        return lambda p: truncate_to_frames(p, Mp3Framer)
    if ext == ".aac":
        from isr.framing.adts import AdtsFramer

        return lambda p: truncate_to_frames(p, AdtsFramer)
    return None
