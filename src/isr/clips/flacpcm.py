"""Clips of FLAC written from PCM (soundcard and tone sources): cut at the exact sample.

A FLAC frame holds a block of samples (4096 from libsndfile), and FROM and TO fall
anywhere inside one; the clip must hold exactly the samples from FROM to TO. So the
whole frames between them are copied as they are (renumbered, like a native clip's),
and only the samples at the two edges are re-encoded: the frame that holds each edge
is decoded (libFLAC, through python-soundfile, from just that frame) and its samples
inside the span are written as a new frame of VERBATIM subframes (RFC 9639 §9.2.5:
the samples as they are, so lossless by construction). A file's short last frame
(fewer than 16 samples, which RFC 9639 allows only at a stream's end) is re-encoded
with its neighbour in the same way, so that every frame but the clip's last holds at
least 16 samples; a whole clip shorter than that is one frame.

Frames then differ in size, so the clip counts samples (variable blocking strategy):
each frame's header carries its first sample's number in the clip.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

from isr.clips.body import Literal, Piece
from isr.clips.cutter import Part
from isr.clips.flac import frames_piece, streaminfo_of
from isr.clips.units import UnitTable
from isr.framing.flac import (
    coded_number,
    crc8,
    crc16,
    frame_header,
    renumber_frame,
    streaminfo_block,
)
from isr.sinks.files import open_regular

__all__ = ["MIN_BLOCK", "assemble_exact", "decode_samples", "verbatim_frame"]

MIN_BLOCK = 16
"""The fewest samples a frame may hold but a stream's last (RFC 9639 §8.2)."""
MAX_VERBATIM = 4096
"""Samples per re-encoded frame at most (a longer edge is split evenly)."""

_RATES = (88200, 176400, 192000, 8000, 16000, 22050, 24000, 32000, 44100, 48000, 96000)
_BITS = {8: 1, 12: 2, 16: 4, 20: 5, 24: 6, 32: 7}


def _rate_code(rate: int) -> tuple[int, bytes]:
    if rate in _RATES:
        return _RATES.index(rate) + 1, b""
    if rate % 1000 == 0 and rate // 1000 < 256:
        return 12, bytes((rate // 1000,))
    if rate < 65536:
        return 13, rate.to_bytes(2, "big")
    if rate % 10 == 0 and rate // 10 < 65536:
        return 14, (rate // 10).to_bytes(2, "big")
    return 0, b""


def verbatim_frame(pcm: npt.NDArray[np.int32], number: int, rate: int, bits: int) -> bytes:
    """One frame of VERBATIM subframes holding ``pcm`` (samples x channels, integers
    of ``bits`` bits), numbered ``number`` (its first sample, variable blocking)."""
    n, channels = pcm.shape
    if not 1 <= n <= 65536 or bits not in (8, 16, 24, 32):
        raise ValueError(f"cannot write a verbatim frame of {n} samples of {bits} bits")
    rate_code, rate_tail = _rate_code(rate)
    head = bytearray((0xFF, 0xF9, 0x70 | rate_code, (channels - 1) << 4 | _BITS[bits] << 1))
    head += coded_number(number)
    head += (n - 1).to_bytes(2, "big")
    head += rate_tail
    head.append(crc8(head))
    frame = bytearray(head)
    width = bits // 8
    for c in range(channels):
        frame.append(0x02)  # subframe header: VERBATIM, no wasted bits
        column = np.ascontiguousarray(pcm[:, c], dtype=">i4").view(np.uint8).reshape(n, 4)
        frame += column[:, 4 - width :].tobytes()
    frame += crc16(bytes(frame)).to_bytes(2, "big")
    return bytes(frame)


def decode_samples(path: Path, table: UnitTable, first: int, end: int) -> npt.NDArray[np.int32]:
    """Samples ``[first, end)`` of a FLAC recording, from the frames that hold them
    only (decoded by libFLAC as a little stream of their own)."""
    j0, j1 = table.unit_at(first), table.unit_end(end)
    info = streaminfo_of(table)
    bits = int(table.facts["bits"])
    base = table.offset(j0)
    fd = open_regular(path, os.O_RDONLY, single_link=False)
    try:
        data = os.pread(fd, table.offset(j1) - base, base)
    finally:
        os.close(fd)
    offsets = (table.offsets[j0 : j1 + 1] - base).tolist()
    variable = bool(table.facts["variable"])
    total = table.sample(j1) - table.sample(j0)
    stream = [streaminfo_block(info._replace(min_frame=0, max_frame=0, total_samples=total))]
    for i in range(j1 - j0):
        frame = data[offsets[i] : offsets[i + 1]]
        h = frame_header(frame)
        if h is None:
            raise OSError(f"{path}: no FLAC frame at byte {base + offsets[i]}")
        number = table.sample(j0 + i) - table.sample(j0) if variable else i
        stream.append(renumber_frame(frame, h, number))
    raw, _ = soundfile.read(io.BytesIO(b"".join(stream)), dtype="int32", always_2d=True)
    pcm = np.asarray(raw, dtype=np.int32) >> (32 - bits)
    skip = first - table.sample(j0)
    out = pcm[skip : skip + end - first]
    if len(out) != end - first:
        raise OSError(f"{path}: decoded {len(out)} samples, not {end - first}")
    return out


@dataclass
class _Pcm:
    """Samples to re-encode: ``[first, end)`` of each file, in order."""

    ranges: list[tuple[Path, UnitTable, int, int]] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(b - a for _, _, a, b in self.ranges)


@dataclass
class _Copy:
    """Whole frames ``[first, end)`` of one file, copied."""

    path: Path
    table: UnitTable
    first: int
    end: int


def _segments(parts: Sequence[Part]) -> list[_Pcm | _Copy]:
    """The clip as runs of frames to copy and samples to re-encode, in order."""
    out: list[_Pcm | _Copy] = []

    def pcm(path: Path, t: UnitTable, a: int, b: int) -> None:
        if b <= a:
            return
        if not out or not isinstance(out[-1], _Pcm):
            out.append(_Pcm())
        last = out[-1]
        assert isinstance(last, _Pcm)
        last.ranges.append((path, t, a, b))

    for p in parts:
        t, a, b = p.table, p.first, p.end
        fa = int(np.searchsorted(t.starts, a, side="left"))  # first frame starting at >= a
        fb = int(np.searchsorted(t.starts, b, side="right")) - 1  # frames ending at <= b
        if fa >= fb:
            pcm(p.path, t, a, b)
            continue
        pcm(p.path, t, a, t.sample(fa))
        j = fa
        for k in range(fa, fb):  # a short frame (a file's last) goes with the samples
            if t.samples[k] < MIN_BLOCK:
                if k > j:
                    out.append(_Copy(p.path, t, j, k))
                pcm(p.path, t, t.sample(k), t.sample(k + 1))
                j = k + 1
        if fb > j:
            out.append(_Copy(p.path, t, j, fb))
        pcm(p.path, t, t.sample(fb), b)
    return _merge(out)


def _merge(segments: list[_Pcm | _Copy]) -> list[_Pcm | _Copy]:
    """Every run of samples to re-encode grows to at least ``MIN_BLOCK`` samples by
    taking whole frames from its neighbours, unless it is the clip's end (or all)."""
    out: list[_Pcm | _Copy] = []
    for seg in segments:  # join runs that touch
        if isinstance(seg, _Pcm) and out and isinstance(out[-1], _Pcm):
            out[-1].ranges.extend(seg.ranges)
        elif not isinstance(seg, _Copy) or seg.end > seg.first:
            out.append(seg)
    i = 0
    while i < len(out):
        seg = out[i]
        last = i == len(out) - 1
        if not isinstance(seg, _Pcm) or seg.samples >= MIN_BLOCK or last:
            i += 1
            continue
        after = out[i + 1] if i + 1 < len(out) else None
        before = out[i - 1] if i > 0 else None
        if isinstance(after, _Copy):
            t, k = after.table, after.first
            seg.ranges.append((after.path, t, t.sample(k), t.sample(k + 1)))
            after.first += 1
            if after.first == after.end:
                del out[i + 1]
                if i + 1 < len(out) and isinstance(out[i + 1], _Pcm):
                    seg.ranges.extend(out.pop(i + 1).ranges)  # type: ignore[union-attr]
        elif isinstance(before, _Copy):
            t, k = before.table, before.end - 1
            seg.ranges.insert(0, (before.path, t, t.sample(k), t.sample(k + 1)))
            before.end -= 1
            if before.end == before.first:
                del out[i - 1]
                i -= 1
                if i > 0 and isinstance(out[i - 1], _Pcm):
                    prev = out.pop(i - 1)
                    assert isinstance(prev, _Pcm)
                    seg.ranges[:0] = prev.ranges
                    i -= 1
        else:
            i += 1  # nothing to take from: the whole clip is this short
    return out


def _split(n: int) -> list[int]:
    """Block sizes for ``n`` samples re-encoded: as even as possible, each at most
    ``MAX_VERBATIM`` (and at least ``MIN_BLOCK`` when ``n`` is)."""
    frames = max(1, -(-n // MAX_VERBATIM))
    return [n // frames + (1 if i < n % frames else 0) for i in range(frames)]


def assemble_exact(parts: Sequence[Part]) -> list[Piece]:
    """``fLaC``, STREAMINFO, then frames copied and re-encoded (variable blocking)."""
    segments = _segments(parts)
    table = parts[0].table
    rate, bits = table.rate, int(table.facts["bits"])
    pieces: list[Piece] = []
    blocks: list[int] = []
    sizes: list[int] = []
    at = 0  # samples so far
    for seg in segments:
        if isinstance(seg, _Copy):
            t, a, b = seg.table, seg.first, seg.end
            numbers = at + t.starts[a:b] - t.starts[a]
            frames = frames_piece(seg.path, t, a, b, numbers, variable=True)
            pieces.append(frames)
            blocks.extend(t.samples[a:b].tolist())
            sizes.extend(np.diff(frames.bounds).tolist())
            at += t.sample(b) - t.sample(a)
            continue
        pcm = np.concatenate([decode_samples(path, t, a, b) for path, t, a, b in seg.ranges])
        done = 0
        for n in _split(len(pcm)):
            frame = verbatim_frame(pcm[done : done + n], at, rate, bits)
            pieces.append(Literal(frame))
            blocks.append(n)
            sizes.append(len(frame))
            done += n
            at += n
    inner = blocks[:-1] or blocks
    info = streaminfo_of(table)._replace(
        # A STREAMINFO says 16..65535 (RFC 9639 §8.2): a clip shorter than 16 samples
        # is a stream whose only, last frame is shorter than its minimum.
        min_block=max(MIN_BLOCK, min(inner)),
        max_block=max(MIN_BLOCK, max(blocks)),
        min_frame=min(sizes),
        max_frame=max(sizes),
        total_samples=at,
        md5=bytes(16),
    )
    return [Literal(streaminfo_block(info)), *pieces]
