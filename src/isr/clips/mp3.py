"""Clips of MP3 recordings: whole frames, byte for byte, after a fresh Xing/Info frame.

Every MP3 file ISR writes starts with its own Xing/Info frame (``isr.framing.xing``),
then holds the stream's frames as received. A clip is the same: a Xing/Info frame
made for the clip (its frame count, byte count and seek table; ``Info`` when every
frame has the same bitrate), then the recordings' frames from the one that holds
FROM to the one that holds TO, byte for byte. Layer I/II streams get no tag, as in
their recordings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from isr.clips.body import Literal, Piece
from isr.clips.cutter import Part
from isr.clips.frames import frame_ranges, skip_id3v2, walk_frames, walked_table
from isr.clips.units import UnitTable
from isr.framing.base import Frame
from isr.framing.mp3 import Mp3Framer
from isr.framing.xing import TAG_SIZE, XingWriter, leading_tag_length
from isr.sinks.files import open_regular

__all__ = ["CUTTER", "Mp3Cutter", "xing_frame"]

_parse = Mp3Framer()._parse
"""The framer's own header parser (one table lookup): the walk and the recorder read
headers alike."""

_VERSIONS = {3: "MPEG-1", 2: "MPEG-2", 0: "MPEG-2.5"}


class Mp3Cutter:
    def walk(
        self, path: Path, previous: UnitTable | None, *, final: bool, name: str = ""
    ) -> UnitTable:
        fd = open_regular(path, os.O_RDONLY, single_link=False)
        try:
            size = os.fstat(fd).st_size
            if previous is not None and previous.count:
                start, key, head = previous.walked, int(previous.key), previous.facts["head"]
                rate, describe = previous.rate, previous.describe
            else:
                previous = None
                start = _audio_start(fd)
                first = os.pread(fd, 4, start)
                h = _parse(bytearray(first), 0) if len(first) == 4 else None
                if h is None:  # no frame yet (a file just opened), or not MPEG audio
                    return UnitTable("mp3", "", "", 0, start, walked=start, final=final)
                key, head, rate = h.key, first.hex(), h.sample_rate
                layer = 4 - ((first[1] >> 1) & 3)
                version = _VERSIONS.get((first[1] >> 3) & 3, "MPEG")
                describe = f"{version} Layer {'I' * layer}, {rate} Hz"
            walk = walk_frames(fd, start, size, _parse, key, 4, name=name)
        finally:
            os.close(fd)
        return walked_table(
            "mp3", key, describe, rate, start, previous, walk, final=final, facts={"head": head}
        )

    def assemble(self, parts: Sequence[Part]) -> list[Piece]:
        pieces: list[Piece] = []
        tag = xing_frame(parts)
        if tag:
            pieces.append(Literal(tag))
        pieces.extend(frame_ranges(parts))
        return pieces


def _audio_start(fd: int) -> int:
    """Where the audio frames start: after an ID3v2 tag and a Xing/Info frame."""
    head = os.pread(fd, 10, 0)
    start = skip_id3v2(head)
    return start + leading_tag_length(os.pread(fd, 4096, start))


def xing_frame(parts: Sequence[Part]) -> bytes:
    """A Xing/Info frame for the frames of ``parts`` (b"" for layer I/II, or none)."""
    if not parts:
        return b""
    first = parts[0].table
    head = bytes.fromhex(str(first.facts["head"]))
    writer = XingWriter()
    frame = bytearray(writer.begin(Frame(head, 0, first.rate)))
    if not frame:
        return b""
    counts = [p.end - p.first for p in parts]
    n = sum(counts)
    sizes = [p.table.offset(p.end) - p.table.offset(p.first) for p in parts]
    audio = sum(sizes)
    used = [p.table.sizes[p.first : p.end] for p in parts if p.end > p.first]
    lo = min((int(s.min()) for s in used), default=0)
    hi = max((int(s.max()) for s in used), default=0)
    kind = b"Info" if hi - lo <= 1 else b"Xing"  # one bitrate: frames differ by padding
    toc = bytearray()
    before = np.cumsum([0, *counts])
    bytes_before = np.cumsum([0, *sizes])
    for i in range(100):
        f = i * n // 100
        k = int(np.searchsorted(before, f, side="right")) - 1
        p = parts[k]
        local = f - int(before[k])
        pos = int(bytes_before[k]) + p.table.offset(p.first + local) - p.table.offset(p.first)
        toc.append(min(255, pos * 256 // audio) if audio else i * 2)
    tag = (
        kind
        + (0x1 | 0x2 | 0x4).to_bytes(4, "big")
        + n.to_bytes(4, "big")
        + (len(frame) + audio).to_bytes(4, "big")
        + bytes(toc)
    )
    assert len(tag) == TAG_SIZE
    frame[writer.tag_at : writer.tag_at + TAG_SIZE] = tag
    return bytes(frame)


CUTTER = Mp3Cutter()
