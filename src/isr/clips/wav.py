"""Clips of WAV recordings: a fresh header, then the samples, cut at the exact sample.

A WAV file is a header and sample frames of ``block_align`` bytes each, so no walk is
needed: the units are the sample frames, found by arithmetic from the ``data``
chunk's offset and the file's size (a file being recorded has its header's sizes
updated only once a second, so its size is what counts). The clip gets the header
ISR writes (``sinks/wav.py``: RIFF, or RF64 past 4 GiB) with its own sizes, then the
samples ``[first, end)`` of each file, byte for byte.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

from isr.clips.body import FileRange, Literal, Piece
from isr.clips.cutter import Part
from isr.clips.units import UnitTable
from isr.sinks.files import open_regular
from isr.sinks.wav import wav_header

__all__ = ["CUTTER", "WavCutter", "read_wav_layout"]

_FFFF = 0xFFFFFFFF


def read_wav_layout(head: bytes) -> tuple[int, int, int, int, int] | None:
    """``(rate, channels, bits, data_offset, declared_data_bytes)`` of a PCM WAV head
    (RIFF or RF64); None if it is not one. The declared size is -1 when unknown."""
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    p = 12
    fmt: tuple[int, int, int] | None = None
    ds64_data = -1
    while p + 8 <= len(head):
        cid, size = head[p : p + 4], int.from_bytes(head[p + 4 : p + 8], "little")
        body = p + 8
        if cid == b"fmt " and size >= 16 and body + 16 <= len(head):
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, body)
            if tag not in (1, 0xFFFE) or channels < 1 or rate < 1 or bits % 8:
                return None
            fmt = (rate, channels, bits)
        elif cid == b"ds64" and body + 16 <= len(head):
            ds64_data = int.from_bytes(head[body + 8 : body + 16], "little")
        elif cid == b"data":
            if fmt is None:
                return None
            declared = ds64_data if size == _FFFF else size
            return (*fmt, body, declared)
        p = body + size + (size & 1)
    return None


class WavCutter:
    def walk(
        self, path: Path, previous: UnitTable | None, *, final: bool, name: str = ""
    ) -> UnitTable:
        fd = open_regular(path, os.O_RDONLY, single_link=False)
        try:
            size = os.fstat(fd).st_size
            layout = read_wav_layout(os.pread(fd, 4096, 0))
        finally:
            os.close(fd)
        if layout is None:
            return UnitTable("wav", "", "", 0, 0, walked=0, final=final)
        rate, channels, bits, offset, declared = layout
        block = channels * bits // 8
        data = max(0, size - offset)
        if final and 0 <= declared < data:
            data = declared
        return UnitTable(
            "wav",
            f"wav:{rate}:{channels}:{bits}",
            f"WAV PCM, {rate} Hz, {channels} channels, {bits} bit",
            rate,
            offset,
            unit_bytes=block,
            uniform_count=data // block,
            exact=True,
            walked=offset + data - data % block,
            final=final,
            facts={"channels": channels, "bits": bits},
        )

    def assemble(self, parts: Sequence[Part]) -> list[Piece]:
        t = parts[0].table
        ranges = [(p.path, *p.byte_range) for p in parts]
        total = sum(b - a for _, a, b in ranges)
        head = wav_header(t.rate, int(t.facts["channels"]), total, int(t.facts["bits"]))
        return [Literal(head), *(FileRange(path, a, b - a) for path, a, b in ranges)]


CUTTER = WavCutter()
