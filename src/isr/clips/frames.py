"""A fast walk over a file of self-delimiting frames (MP3, ADTS): each header gives
its frame's length, so the walk hops from header to header without looking inside.

A file ISR wrote holds nothing but whole frames of one setup after its leading
Xing/Info frame (MP3): the walk checks each header's fixed fields against the first
one's (``key``) and stops at the first that does not match, or at a frame that is not
all there yet (a file being written, a crash's partial frame). What it stops at in
the middle of a file is logged: a clip then holds the frames before it. Reading is
by ``pread`` in large chunks; no frame is copied.

A clip of such frames is the parts' byte ranges as they are (``frame_ranges``),
after whatever header the format makes for it (MP3's Xing/Info frame).
"""

from __future__ import annotations

import logging
import os
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from isr.clips.body import FileRange, Piece
from isr.clips.cutter import Part
from isr.clips.units import EMPTY, UnitTable, join_arrays
from isr.framing._sync import Header, id3v2_size

__all__ = ["CHUNK", "Walk", "frame_ranges", "skip_id3v2", "walk_frames", "walked_table"]

log = logging.getLogger("isr.clips")

CHUNK = 4 << 20
"""Bytes read at a time."""

Parse = Callable[[bytearray, int], Header | None]


@dataclass
class Walk:
    """What a walk found from ``start``: the frames' sizes and samples, and where the
    last whole frame ends (``end``)."""

    sizes: array[int]
    samples: array[int]
    end: int
    odd: str | None = None
    """Why it stopped before the end of the data, when it did."""


def skip_id3v2(head: bytes) -> int:
    """Bytes of an ID3v2 tag at the start of ``head`` (0 if none)."""
    if len(head) >= 10 and head.startswith(b"ID3"):
        return id3v2_size(head, 0)
    return 0


def walk_frames(
    fd: int,
    start: int,
    size: int,
    parse: Parse,
    key: int,
    header_len: int,
    *,
    name: str = "",
) -> Walk:
    """Walk the frames of ``fd`` from ``start`` up to ``size`` bytes."""
    sizes: array[int] = array("I")
    samples: array[int] = array("I")
    add_size, add_samples = sizes.append, samples.append
    base = start
    buf = bytearray()
    p = 0
    odd: str | None = None
    while True:
        n = len(buf)
        if n - p >= header_len:
            h = parse(buf, p)
            if h is None:
                odd = "no frame header"
                break
            if h.key != key:
                odd = "a frame of another setup"
                break
            if p + h.length <= n:
                add_size(h.length)
                add_samples(h.samples)
                p += h.length
                continue
        # The next frame is not all in the buffer: read on, if the file goes on (else
        # it is a frame not all written yet, and the walk ends before it).
        left = size - (base + n)
        if left <= 0:
            break
        more = os.pread(fd, min(CHUNK, left), base + n)
        if not more:
            break
        del buf[:p]
        buf += more
        base += p
        p = 0
    end = base + p
    if odd is not None:
        log.warning(
            "%s: %s at byte %d; clips use the %d whole frames before it",
            name or "a recording",
            odd,
            end,
            len(sizes),
        )
    return Walk(sizes, samples, end, odd)


def walked_table(
    cutter: str,
    key: int,
    describe: str,
    rate: int,
    start: int,
    previous: UnitTable | None,
    walk: Walk,
    *,
    final: bool,
    facts: dict[str, Any],
) -> UnitTable:
    """The table of a walk from ``start``: ``previous``'s units (a grown file's
    earlier walk, or None) and then ``walk``'s. A walk that stopped at an odd frame
    is final, and says where (``facts["odd"]``). The ADTS and MP3 cutters make their
    tables alike, so they make them here."""
    return UnitTable(
        cutter,
        str(key),
        describe,
        rate,
        previous.data_start if previous is not None else start,
        join_arrays(previous.sizes if previous is not None else EMPTY, list(walk.sizes)),
        join_arrays(previous.samples if previous is not None else EMPTY, list(walk.samples)),
        walked=walk.end,
        final=final or walk.odd is not None,
        facts={**facts, **({"odd": walk.end} if walk.odd else {})},
    )


def frame_ranges(parts: Sequence[Part]) -> list[Piece]:
    """Each part's frames, byte for byte: one ``FileRange`` a part. Self-delimiting
    frames need nothing rewritten, so the ADTS and MP3 cutters assemble a clip from
    these alike (MP3 puts its Xing/Info frame before them)."""
    out: list[Piece] = []
    for p in parts:
        a, b = p.byte_range
        out.append(FileRange(p.path, a, b - a))
    return out
