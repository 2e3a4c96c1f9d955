"""Fragmented MP4 / CMAF (ISO/IEC 14496-12, -14): AAC of one HLS segment as ADTS.

Pure. The initialisation segment gives the audio track (``hdlr`` ``soun``), its
``mp4a`` sample entry's AudioSpecificConfig (``esds``) and the ``trex`` defaults;
each media segment's ``moof``/``traf``/``trun`` give the sizes and places of the
samples in ``mdat``. Each raw AAC sample is written with a 7-byte ADTS header
(ISO/IEC 13818-7 6.2) built from the AudioSpecificConfig around it: the payload
bytes are the segment's own. Nothing here raises past ``demux``/``parse_init``:
what does not parse is counted in ``problems`` (``parse_init`` raises
``Fmp4Error`` for an init segment ISR cannot use, which the source reports).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["AudioTrack", "Fmp4Audio", "Fmp4Error", "adts_header", "demux", "parse_init"]

CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"edts"}
MAX_ADTS = (1 << 13) - 1


class Fmp4Error(ValueError):
    """An initialisation segment whose audio ISR cannot record."""


@dataclass(frozen=True)
class AudioTrack:
    track_id: int
    object_type: int
    """AAC audio object type of the core (2 = LC), as ADTS carries it (minus 1)."""
    rate_index: int
    channels: int
    default_size: int = 0
    """``trex`` default_sample_size."""

    @property
    def key(self) -> tuple[int, int, int]:
        """What a file must not change inside it (a new file starts when it does)."""
        return self.object_type, self.rate_index, self.channels


@dataclass
class Fmp4Audio:
    data: bytes = b""
    """ADTS frames, one per sample."""
    problems: dict[str, int] = field(default_factory=dict)

    def note(self, what: str, n: int = 1) -> None:
        self.problems[what] = self.problems.get(what, 0) + n


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of the boxes in ``data[start:end]``;
    stops at the first that does not fit."""
    p = start
    while p + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, p)
        head = 8
        if size == 1:
            if p + 16 > end:
                return
            size = struct.unpack_from(">Q", data, p + 8)[0]
            head = 16
        elif size == 0:
            size = end - p
        if size < head or p + size > end:
            return
        yield kind, p, p + head, p + size
        p += size


def _find(data: bytes, start: int, end: int, path: list[bytes]) -> list[tuple[int, int]]:
    """(payload start, end) of every box at ``path`` below ``data[start:end]``."""
    found: list[tuple[int, int]] = []
    for kind, _, body, stop in _boxes(data, start, end):
        if kind == path[0]:
            if len(path) == 1:
                found.append((body, stop))
            else:
                found += _find(data, body, stop, path[1:])
    return found


def _descriptor(data: bytes, p: int, end: int) -> tuple[int, int, int] | None:
    """(tag, payload start, payload end) of the MPEG-4 descriptor at ``p``."""
    if p + 2 > end:
        return None
    tag = data[p]
    p += 1
    size = 0
    for _ in range(4):
        if p >= end:
            return None
        b = data[p]
        p += 1
        size = size << 7 | (b & 0x7F)
        if not b & 0x80:
            break
    if p + size > end:
        return None
    return tag, p, p + size


def _asc(data: bytes, p: int, end: int) -> bytes:
    """The AudioSpecificConfig in an ``esds`` payload (after version and flags)."""
    es = _descriptor(data, p, end)
    if es is None or es[0] != 0x03:
        raise Fmp4Error("esds without an ES descriptor")
    q = es[1] + 2
    flags = data[q] if q < es[2] else 0
    q += 1
    if flags & 0x80:
        q += 2
    if flags & 0x40 and q < es[2]:
        q += 1 + data[q]
    if flags & 0x20:
        q += 2
    dc = _descriptor(data, q, es[2])
    if dc is None or dc[0] != 0x04:
        raise Fmp4Error("esds without a decoder config")
    oti = data[dc[1]]
    if oti != 0x40:
        raise Fmp4Error(f"the audio is not AAC (object type indication 0x{oti:02x})")
    dsi = _descriptor(data, dc[1] + 13, dc[2])
    if dsi is None or dsi[0] != 0x05:
        raise Fmp4Error("AAC without an AudioSpecificConfig")
    return data[dsi[1] : dsi[2]]


def parse_asc(asc: bytes) -> tuple[int, int, int]:
    """(core audio object type, sampling index, channel configuration) of an
    AudioSpecificConfig, SBR/PS signalled explicitly taken back to their core (as
    ADTS carries HE-AAC: the core's type and rate, SBR found by the decoder)."""
    bits = int.from_bytes(asc[:8].ljust(8, b"\0"), "big")
    pos = 64

    def take(n: int) -> int:
        nonlocal pos
        pos -= n
        return (bits >> pos) & ((1 << n) - 1)

    def object_type() -> int:
        aot = take(5)
        return 32 + take(6) if aot == 31 else aot

    def rate() -> int:
        index = take(4)
        if index == 15:
            raise Fmp4Error("an explicit sampling rate cannot be carried in ADTS")
        return index

    if len(asc) < 2:
        raise Fmp4Error("AudioSpecificConfig too short")
    aot = object_type()
    index = rate()
    channels = take(4)
    if aot in (5, 29):  # explicit SBR / PS: the core follows
        rate()
        aot = object_type()
    if not 1 <= aot <= 4:
        raise Fmp4Error(f"AAC audio object type {aot} cannot be carried in ADTS")
    if index > 12:
        raise Fmp4Error(f"sampling frequency index {index} cannot be carried in ADTS")
    if channels == 0 or channels > 7:
        raise Fmp4Error(f"channel configuration {channels} cannot be carried in ADTS")
    return aot, index, channels


def parse_init(data: bytes) -> AudioTrack:
    """The audio track of an initialisation segment."""
    try:
        return _parse_init(data)
    except (struct.error, IndexError):
        raise Fmp4Error("a box of the initialisation segment is cut short") from None


def _parse_init(data: bytes) -> AudioTrack:
    moov = _find(data, 0, len(data), [b"moov"])
    if not moov:
        raise Fmp4Error("no moov box: not an fMP4 initialisation segment")
    defaults: dict[int, int] = {}
    for body, stop in _find(data, moov[0][0], moov[0][1], [b"mvex", b"trex"]):
        if stop - body >= 24:
            tid, _, _, size = struct.unpack_from(">IIII", data, body + 4)
            defaults[tid] = size
    for body, stop in _find(data, moov[0][0], moov[0][1], [b"trak"]):
        hdlr = _find(data, body, stop, [b"mdia", b"hdlr"])
        if not hdlr or data[hdlr[0][0] + 8 : hdlr[0][0] + 12] != b"soun":
            continue
        tkhd = _find(data, body, stop, [b"tkhd"])
        if not tkhd:
            continue
        version = data[tkhd[0][0]]
        tid = struct.unpack_from(">I", data, tkhd[0][0] + (20 if version == 1 else 12))[0]
        stsd = _find(data, body, stop, [b"mdia", b"minf", b"stbl", b"stsd"])
        if not stsd:
            continue
        entries = list(_boxes(data, stsd[0][0] + 8, stsd[0][1]))
        if not entries:
            continue
        kind, _, entry, entry_end = entries[0]
        if kind != b"mp4a":
            name = kind.decode("latin-1")
            raise Fmp4Error(f"the audio is {name!r}, not AAC ('mp4a'): not supported")
        esds = _find(data, entry + 28, entry_end, [b"esds"])
        if not esds:
            raise Fmp4Error("mp4a without esds")
        aot, index, channels = parse_asc(_asc(data, esds[0][0] + 4, esds[0][1]))
        return AudioTrack(tid, aot, index, channels, defaults.get(tid, 0))
    raise Fmp4Error("no audio track in the initialisation segment")


def adts_header(track: AudioTrack, payload_size: int) -> bytes:
    """The 7-byte ADTS header (no CRC) of one raw AAC frame."""
    length = payload_size + 7
    return bytes(
        (
            0xFF,
            0xF1,  # MPEG-4, layer 0, no CRC
            ((track.object_type - 1) << 6) | (track.rate_index << 2) | (track.channels >> 2),
            ((track.channels & 3) << 6) | (length >> 11),
            (length >> 3) & 0xFF,
            ((length & 7) << 5) | 0x1F,  # buffer fullness 0x7FF: VBR
            0xFC,  # ... and one raw data block
        )
    )


def _samples(
    data: bytes, moof: int, moof_end: int, track: AudioTrack, out: Fmp4Audio
) -> list[tuple[int, int]]:
    """(offset, size) of the track's samples that one ``moof`` describes."""
    found: list[tuple[int, int]] = []
    for body, stop in _find(data, moof + 8, moof_end, [b"traf"]):
        tfhd = _find(data, body, stop, [b"tfhd"])
        if not tfhd or tfhd[0][1] - tfhd[0][0] < 8:
            continue
        p = tfhd[0][0]
        flags = int.from_bytes(data[p + 1 : p + 4], "big")
        tid = struct.unpack_from(">I", data, p + 4)[0]
        if tid != track.track_id:
            continue
        q = p + 8
        base = moof
        if flags & 0x01:
            if q + 8 > tfhd[0][1]:
                out.note("tfhd")
                continue
            base = struct.unpack_from(">Q", data, q)[0]
            q += 8
        if flags & 0x02:
            q += 4
        if flags & 0x08:
            q += 4
        default_size = track.default_size
        if flags & 0x10 and q + 4 <= tfhd[0][1]:
            default_size = struct.unpack_from(">I", data, q)[0]
        for tbody, tstop in _find(data, body, stop, [b"trun"]):
            if tstop - tbody < 8:
                out.note("trun")
                continue
            tflags = int.from_bytes(data[tbody + 1 : tbody + 4], "big")
            count = struct.unpack_from(">I", data, tbody + 4)[0]
            r = tbody + 8
            offset = base
            if tflags & 0x01:
                if r + 4 > tstop:
                    out.note("trun")
                    continue
                offset = base + struct.unpack_from(">i", data, r)[0]
                r += 4
            elif found:
                offset = found[-1][0] + found[-1][1]
            if tflags & 0x04:
                r += 4
            fields = [f for f in (0x100, 0x200, 0x400, 0x800) if tflags & f]
            per = 4 * len(fields)
            if count > (tstop - r) // max(per, 1) and per:
                out.note("trun")
                continue
            if not per and count > 1 << 20:
                out.note("trun")
                continue
            for _ in range(count):
                size = default_size
                for f in fields:
                    if f == 0x200:
                        size = struct.unpack_from(">I", data, r)[0]
                    r += 4
                found.append((offset, size))
                offset += size
    return found


def demux(data: bytes, track: AudioTrack) -> Fmp4Audio:
    """The AAC samples of one media segment, as ADTS frames. Never raises."""
    out = Fmp4Audio()
    frames: list[bytes] = []
    n = len(data)
    for kind, start, _, stop in _boxes(data, 0, n):
        if kind != b"moof":
            continue
        try:
            samples = _samples(data, start, stop, track, out)
        except (struct.error, IndexError):
            out.note("moof")
            continue
        for offset, size in samples:
            if size <= 0 or size + 7 > MAX_ADTS or offset < 0 or offset + size > n:
                out.note("sample")
                continue
            frames.append(adts_header(track, size))
            frames.append(data[offset : offset + size])
    out.data = b"".join(frames)
    return out
