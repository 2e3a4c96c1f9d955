"""Clips of ADTS AAC recordings: whole frames, byte for byte, nothing before them.

An ADTS frame stands alone (its 7- or 9-byte header says all a decoder needs), so a
clip is the recordings' frames from the one that holds FROM to the one that holds
TO, as they are. A frame decodes to 1024 samples per raw data block it carries.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from isr.clips.body import Piece
from isr.clips.cutter import Part
from isr.clips.frames import frame_ranges, skip_id3v2, walk_frames, walked_table
from isr.clips.units import UnitTable
from isr.framing.adts import AdtsFramer
from isr.sinks.files import open_regular

__all__ = ["CUTTER", "AdtsCutter"]

_parse = AdtsFramer()._parse
"""The framer's own header parser: the walk and the recorder read headers alike."""

_PROFILES = ("Main", "LC", "SSR", "LTP")


class AdtsCutter:
    def walk(
        self, path: Path, previous: UnitTable | None, *, final: bool, name: str = ""
    ) -> UnitTable:
        fd = open_regular(path, os.O_RDONLY, single_link=False)
        try:
            size = os.fstat(fd).st_size
            if previous is not None and previous.count:
                start, key = previous.walked, int(previous.key)
                rate, describe = previous.rate, previous.describe
            else:
                previous = None
                start = skip_id3v2(os.pread(fd, 10, 0))
                first = os.pread(fd, 7, start)
                h = _parse(bytearray(first), 0) if len(first) == 7 else None
                if h is None:
                    return UnitTable("aac", "", "", 0, start, walked=start, final=final)
                key, rate = h.key, h.sample_rate
                profile = _PROFILES[first[2] >> 6]
                channels = (first[2] & 1) << 2 | first[3] >> 6
                describe = f"AAC {profile} (ADTS), {rate} Hz, channel configuration {channels}"
            walk = walk_frames(fd, start, size, _parse, key, 7, name=name)
        finally:
            os.close(fd)
        return walked_table(
            "aac", key, describe, rate, start, previous, walk, final=final, facts={}
        )

    def assemble(self, parts: Sequence[Part]) -> list[Piece]:
        return frame_ranges(parts)


CUTTER = AdtsCutter()
