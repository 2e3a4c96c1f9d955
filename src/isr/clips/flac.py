"""Clips of FLAC recordings (RFC 9639): frames renumbered, one fresh STREAMINFO.

Native FLAC streams (``format = flac``) are cut between frames: the clip is ``fLaC``
and a STREAMINFO made for it, then the recordings' frames from the one that holds
FROM to the one that holds TO, each with its frame number (fixed block size) or first
sample number (variable) rewritten to count from the clip's start, and its header
CRC-8 and frame CRC-16 made right (``renumber_frame``: the CRC-16 follows from the
header's change alone, so no subframe is read twice). Nothing is decoded. Where the
frames do not keep one block size (a stream that ended with a short frame, went on
with the same setup and is in the clip after it), the clip counts samples instead
(variable blocking strategy), so every frame's number stays true.

STREAMINFO is set right: block sizes, the smallest and largest frame in bytes (of the
renumbered frames), the total samples; the MD5 is 0 (unknown: it would take a decode).

FLAC written from PCM (soundcard and tone sources, by libsndfile) is cut at the exact
sample: see ``flacpcm.py``. The two are told apart by their metadata: ISR's stream
writer puts STREAMINFO alone before the frames; libsndfile adds a VORBIS_COMMENT.

A frame's end is where the next frame's header, with the next number and the same
setup, starts (as the framer decides it); the last frame of a file that is no longer
written ends the file when its CRC-16 holds there. Of a file being written, the
frame not yet followed by another is left for the next walk.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from isr.clips.body import CHUNK, Literal, Piece
from isr.clips.cutter import Part
from isr.clips.units import EMPTY, UnitTable, join_arrays
from isr.framing.flac import (
    FrameHeader,
    StreamInfo,
    crc16,
    frame_header,
    parse_streaminfo,
    renumber_frame,
    streaminfo_block,
)
from isr.sinks.files import open_regular

__all__ = [
    "CUTTER",
    "FlacCutter",
    "FlacFrames",
    "Metadata",
    "coded_lengths",
    "frames_piece",
    "old_numbers",
    "read_metadata",
    "renumbered",
    "streaminfo_of",
]

log = logging.getLogger("isr.clips")

_SYNC = re.compile(b"\\xff[\\xf8\\xf9]")
HEADER_MAX = 16
"""Bytes a frame header can take (sync, codes, a 7-byte number, block size and rate
tails, CRC-8)."""
READ = 4 << 20


def coded_lengths(numbers: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Bytes each number takes in a frame header (FLAC's UTF-8-like coding, §9.1.5)."""
    out = np.ones(len(numbers), dtype=np.int64)
    for limit in (0x80, 0x800, 0x10000, 0x200000, 0x4000000, 0x80000000):
        out += numbers >= limit
    return out


@dataclass(frozen=True)
class Metadata:
    data_start: int
    """Where the first frame starts."""
    streaminfo: StreamInfo | None
    blocks: int
    """Metadata blocks: 1 (STREAMINFO alone) in ISR's stream files."""


def read_metadata(fd: int) -> Metadata | None:
    """``fLaC`` and the metadata blocks at the start of ``fd``; None if not FLAC."""
    if os.pread(fd, 4, 0) != b"fLaC":
        return None
    p, blocks, info = 4, 0, None
    while True:
        head = os.pread(fd, 4, p)
        if len(head) < 4:
            return None
        length = int.from_bytes(head[1:4], "big")
        if head[0] & 0x7F == 0 and blocks == 0:
            info = parse_streaminfo(os.pread(fd, 34, p + 4))
        blocks += 1
        p += 4 + length
        if head[0] & 0x80:
            return Metadata(p, info, blocks)


@dataclass
class _Setup:
    """What every frame of one file shares, and how to count on from one."""

    variable: bool
    channels: int
    rate: int
    bits: int
    streaminfo: StreamInfo

    def resolve(self, h: FrameHeader) -> tuple[int, int]:
        return h.sample_rate or self.streaminfo.sample_rate, h.bits or self.streaminfo.bits

    def continues(self, h: FrameHeader) -> bool:
        return (
            h.variable == self.variable
            and h.channels == self.channels
            and self.resolve(h) == (self.rate, self.bits)
        )

    def max_frame(self, h: FrameHeader) -> int:
        """More bytes than any frame with header ``h`` can take."""
        return h.length + 3 + h.channels * (8 + (h.block_size * (self.bits + 1) + 7) // 8)


def _next_number(h: FrameHeader) -> int:
    return h.number + (h.block_size if h.variable else 1)


@dataclass
class _Walked:
    sizes: list[int]
    samples: list[int]
    end: int
    expect: int
    odd: str | None = None


def _walk(fd: int, start: int, size: int, expect: int, setup: _Setup, *, final: bool) -> _Walked:
    sizes: list[int] = []
    samples: list[int] = []
    base, buf, p, scan = start, b"", 0, 0
    odd: str | None = None
    while True:
        n = len(buf)
        eof = base + n >= size
        if n - p < HEADER_MAX and not eof:
            buf, base, p = _more(fd, buf, base, p, size)
            continue
        if p >= n:
            break
        h = frame_header(buf, p)
        if h is None or h.number != expect or not setup.continues(h):
            if eof and n - p < HEADER_MAX:
                break  # a header not all written yet
            odd = "no frame with the next number" if h is None else "a frame out of sequence"
            break
        want = _next_number(h)
        q = _find_next(buf, p + max(scan, h.length + 2), n, want, setup, eof)
        if q is None:  # no next header in what is here
            if not eof:
                if n - p > setup.max_frame(h) + HEADER_MAX:
                    odd = "a frame with no end"
                    break
                scan = max(0, n - p - HEADER_MAX)
                buf, base, p = _more(fd, buf, base, p, size)
                continue
            if final and crc16(buf[p:n]) == 0:
                sizes.append(n - p)
                samples.append(h.block_size)
                expect, p = want, n
            break
        sizes.append(q - p)
        samples.append(h.block_size)
        expect, p, scan = want, q, 0
    return _Walked(sizes, samples, base + p, expect, odd)


def _more(fd: int, buf: bytes, base: int, p: int, size: int) -> tuple[bytes, int, int]:
    more = os.pread(fd, min(READ, size - base - len(buf)), base + len(buf))
    return buf[p:] + more, base + p, 0


def _find_next(buf: bytes, s: int, n: int, want: int, setup: _Setup, eof: bool) -> int | None:
    """Where the header of the frame numbered ``want`` starts, from ``s``; None if no
    whole one is in ``buf`` (a candidate cut off at its end waits for more bytes)."""
    for m in _SYNC.finditer(buf, s, n):
        q = m.start()
        if q + HEADER_MAX > n and not eof:
            return None
        h = frame_header(buf, q)
        if h is not None and h.number == want and setup.continues(h):
            return q
    return None


class FlacCutter:
    def walk(
        self, path: Path, previous: UnitTable | None, *, final: bool, name: str = ""
    ) -> UnitTable:
        fd = open_regular(path, os.O_RDONLY, single_link=False)
        try:
            size = os.fstat(fd).st_size
            if previous is not None and previous.count:
                facts = dict(previous.facts)
                info = parse_streaminfo(bytes.fromhex(str(facts["streaminfo"])))
                assert info is not None
                setup = _Setup(
                    bool(facts["variable"]), int(facts["channels"]), previous.rate,
                    int(facts["bits"]), info,
                )  # fmt: skip
                start, expect = previous.walked, int(facts["next"])
                data_start, key, describe = previous.data_start, previous.key, previous.describe
            else:
                previous = None
                meta = read_metadata(fd)
                empty = UnitTable("flac", "", "", 0, 0, walked=0, final=final)
                if meta is None or meta.streaminfo is None:
                    return empty
                h = frame_header(os.pread(fd, HEADER_MAX, meta.data_start))
                if h is None:
                    return empty
                info = meta.streaminfo
                rate, bits = h.sample_rate or info.sample_rate, h.bits or info.bits
                setup = _Setup(h.variable, h.channels, rate, bits, info)
                start = data_start = meta.data_start
                expect = h.number
                exact = meta.blocks > 1
                key = f"flac:{int(exact)}:{int(h.variable)}:{rate}:{h.channels}:{bits}"
                describe = f"FLAC, {rate} Hz, {h.channels} channels, {bits} bit"
                facts = {
                    "streaminfo": info.body().hex(),
                    "variable": h.variable,
                    "channels": h.channels,
                    "bits": bits,
                    "number0": h.number,
                    "exact": exact,
                }
            walked = _walk(fd, start, size, expect, setup, final=final)
        finally:
            os.close(fd)
        if walked.odd:
            log.warning(
                "%s: %s at byte %d; clips use the frames before it",
                name or path.name,
                walked.odd,
                walked.end,
            )
            facts["odd"] = walked.end
        facts["next"] = walked.expect
        return UnitTable(
            "flac",
            key,
            describe,
            setup.rate,
            data_start,
            join_arrays(previous.sizes if previous is not None else EMPTY, walked.sizes),
            join_arrays(previous.samples if previous is not None else EMPTY, walked.samples),
            exact=bool(facts["exact"]),
            walked=walked.end,
            final=final or walked.odd is not None,
            facts=facts,
        )

    def assemble(self, parts: Sequence[Part]) -> list[Piece]:
        if parts and parts[0].table.exact:
            from isr.clips.flacpcm import assemble_exact

            return assemble_exact(parts)
        runs = [(p.path, p.table, p.first, p.end) for p in parts]
        return renumbered(runs)


def old_numbers(table: UnitTable, first: int, end: int) -> npt.NDArray[np.int64]:
    """The numbers the frames ``[first, end)`` of a file carry now."""
    number0 = int(table.facts["number0"])
    if table.facts["variable"]:
        return number0 + table.starts[first:end]
    return number0 + np.arange(first, end, dtype=np.int64)


def streaminfo_of(table: UnitTable) -> StreamInfo:
    info = parse_streaminfo(bytes.fromhex(str(table.facts["streaminfo"])))
    assert info is not None
    return info


Run = tuple[Path, UnitTable, int, int]
"""Frames ``[first, end)`` of a file, copied into a clip."""


def renumbered(
    runs: Sequence[Run], *, variable: bool = False, before: Sequence[Piece] = ()
) -> list[Piece]:
    """``fLaC``, a STREAMINFO for them, and the frames of ``runs`` numbered from the
    clip's start (``variable``: by sample whatever the recordings do). Native clips."""
    blocks = np.concatenate([t.samples[a:b] for _, t, a, b in runs]).astype(np.int64)
    table = runs[0][1]
    fixed = int(blocks[0]) if len(blocks) else 0
    if variable or table.facts["variable"] or np.any(blocks[:-1] != fixed):
        variable = True
    numbers = np.arange(len(blocks), dtype=np.int64)
    if variable:
        numbers = np.concatenate([[0], np.cumsum(blocks[:-1])]).astype(np.int64)
    frames: list[FlacFrames] = []
    at = 0
    for path, t, a, b in runs:
        frames.append(frames_piece(path, t, a, b, numbers[at : at + b - a], variable=variable))
        at += b - a
    out_sizes = np.concatenate([np.diff(f.bounds) for f in frames])
    inner = blocks[:-1] if len(blocks) > 1 else blocks
    info = streaminfo_of(table)._replace(
        min_block=max(16, int(inner.min()) if variable else fixed),
        max_block=max(16, int(blocks.max()) if variable else fixed),
        min_frame=int(out_sizes.min()),
        max_frame=int(out_sizes.max()),
        total_samples=int(blocks.sum()),
        md5=bytes(16),
    )
    return [Literal(streaminfo_block(info)), *before, *frames]


def frames_piece(
    path: Path,
    table: UnitTable,
    first: int,
    end: int,
    numbers: npt.NDArray[np.int64],
    *,
    variable: bool,
) -> FlacFrames:
    """Frames ``[first, end)`` of ``path`` as a piece, numbered ``numbers`` (counting
    samples if ``variable``, frames if not)."""
    sizes = table.sizes[first:end].astype(np.int64)
    sizes += coded_lengths(numbers) - coded_lengths(old_numbers(table, first, end))
    return FlacFrames(
        path,
        table.offsets[first : end + 1],
        numbers,
        np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        variable if variable != bool(table.facts["variable"]) else None,
    )


@dataclass(eq=False)
class FlacFrames:
    """Frames of one recording, each given a new number as it is read."""

    path: Path
    offsets: npt.NDArray[np.int64]
    """Where each frame starts in the file, and where the last ends (n + 1)."""
    numbers: npt.NDArray[np.int64]
    """The number each frame gets."""
    bounds: npt.NDArray[np.int64]
    """Where each renumbered frame starts in this piece, and where the last ends."""
    variable: bool | None = None
    """The blocking strategy the frames get (None: as they are)."""

    @property
    def length(self) -> int:
        return int(self.bounds[-1])

    def describe(self) -> bytes:
        return (
            f"R{self.path}\0{int(self.offsets[0])}\0{int(self.offsets[-1])}\0"
            f"{int(self.numbers[0]) if len(self.numbers) else 0}\0{self.variable}"
        ).encode("utf-8", "surrogateescape")

    def read(self, start: int, end: int, chunk: int = CHUNK) -> Generator[bytes, None, None]:
        n = len(self.numbers)
        k = max(0, int(np.searchsorted(self.bounds, start, side="right")) - 1)
        fd = open_regular(self.path, os.O_RDONLY, single_link=False)
        try:
            while k < n and self.bounds[k] < end:
                # A batch of whole frames, about ``chunk`` bytes, in one read.
                by_chunk = int(np.searchsorted(self.offsets, self.offsets[k] + chunk, "right")) - 1
                by_end = int(np.searchsorted(self.bounds, end, side="left"))
                stop = max(k + 1, min(by_chunk, by_end, n))
                base = int(self.offsets[k])
                data = os.pread(fd, int(self.offsets[stop]) - base, base)
                offsets = (self.offsets[k : stop + 1] - base).tolist()
                numbers = self.numbers[k:stop].tolist()
                out = []
                for i, number in enumerate(numbers):
                    frame = data[offsets[i] : offsets[i + 1]]
                    h = frame_header(frame)
                    if h is None or len(frame) != offsets[i + 1] - offsets[i]:
                        raise OSError(f"{self.path}: no FLAC frame at byte {base + offsets[i]}")
                    out.append(renumber_frame(frame, h, number, variable=self.variable))
                blob = b"".join(out)
                lo, hi = int(self.bounds[k]), int(self.bounds[stop])
                if len(blob) != hi - lo:
                    raise OSError(f"{self.path} changed since the clip was planned")
                yield blob[max(start, lo) - lo : min(end, hi) - lo]
                k = stop
        finally:
            os.close(fd)


CUTTER = FlacCutter()
