"""Native FLAC framer and file writer (RFC 9639, "Free Lossless Audio Codec").

A native FLAC stream is ``fLaC``, metadata blocks, then frames (RFC 9639 §9). An
Icecast listener that joins late gets no ``fLaC`` and no STREAMINFO, only frames
from the middle of one. A frame header (§9.1) starts with the 15-bit sync
``0xFFF8`` plus the blocking-strategy bit, codes block size, sample rate,
channels and sample size, carries the frame number (fixed block size) or first
sample number (variable block size) in UTF-8-like coding, and ends with a CRC-8
(poly 0x07). The frame ends with a CRC-16 (poly 0x8005) over all of it (§9.3).

Nothing in a frame gives its length, so its end is where the next frame starts:
the candidates are the next sync bytes (found with a regex, in C), and the end is
the first candidate that is a valid header continuing the numbering (the frame's
CRC-16 then says whether the frame is intact), or, failing that, the first
candidate at which the CRC-16 holds (a restarted encoder, a corrupt next header,
a new ``fLaC``). A header whose frame finds no end within the largest size such
a frame can have was a false sync, and the search goes on one byte later.

Files get ``fLaC`` and a STREAMINFO built from the frame headers (``FlacWriter``);
frame numbers are rewritten from zero so that every file starts at time zero, and
the totals are patched in at close.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from isr.framing.base import FileWriter, Frame, FramerBase

__all__ = [
    "FlacFramer",
    "FlacWriter",
    "FrameHeader",
    "StreamInfo",
    "coded_number",
    "crc8",
    "crc16",
    "frame_header",
    "parse_streaminfo",
    "renumber_frame",
    "streaminfo_block",
    "streaminfo_patch",
]

_NEED = -1
_RATES = (0, 88200, 176400, 192000, 8000, 16000, 22050, 24000, 32000, 44100, 48000, 96000)
"""Sample rate by code 0..11 (§9.1.2); 0 = "get from STREAMINFO"."""
_BITS = (0, 8, 12, -1, 16, 20, 24, 32)
"""Bits per sample by code (§9.1.4); 0 = from STREAMINFO, -1 reserved."""


# -- CRCs ------------------------------------------------------------------------------


def _crc_table(poly: int, width: int) -> list[int]:
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    table = []
    for byte in range(256):
        c = byte << (width - 8)
        for _ in range(8):
            c = ((c << 1) ^ poly) & mask if c & top else (c << 1) & mask
        table.append(c)
    return table


_CRC8 = _crc_table(0x07, 8)
_CRC16 = _crc_table(0x8005, 16)


def crc8(data: bytes | bytearray | memoryview) -> int:
    """CRC-8 of a frame header (§9.1.8): poly x^8+x^2+x+1, init 0, not reflected."""
    crc = 0
    t = _CRC8
    for b in data:
        crc = t[crc ^ b]
    return crc


_ROW = 256
"""Bytes per row of the vectorised CRC-16: one table column per position in a row."""


def _crc16_tables() -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16], list[int]]:
    """Tables for ``crc16``: T[j*256 + b] is the CRC-16 of byte b followed by
    ``_ROW - 1 - j`` zero bytes; ``MUL[v]`` is v * x^(8 * _ROW) mod P."""
    t = _CRC16

    def shift1(c: int) -> int:  # c * x^8 mod P
        return ((c << 8) & 0xFFFF) ^ t[c >> 8]

    rows = np.zeros((_ROW, 256), dtype=np.uint16)
    cur = list(t)
    rows[_ROW - 1] = cur
    for j in range(_ROW - 2, -1, -1):
        cur = [shift1(c) for c in cur]
        rows[j] = cur
    hi, lo = [], []
    for b in range(256):
        c, d = b, b << 8
        for _ in range(_ROW):
            c, d = shift1(c), shift1(d)
        lo.append(c)
        hi.append(d)
    mul = [hi[v >> 8] ^ lo[v & 0xFF] for v in range(65536)]
    base = np.arange(_ROW, dtype=np.uint16) * np.uint16(256)
    return rows.reshape(-1), base, mul


_T16, _BASE16, _MUL16 = _crc16_tables()


def crc16(data: bytes | bytearray, init: int = 0) -> int:
    """CRC-16 of a frame (§9.3): poly x^16+x^15+x^2+1, not reflected; ``init`` is the
    CRC of what precedes ``data``, so a CRC can be continued piece by piece.

    Long inputs are done in numpy: the CRC is linear, so each row of 256 bytes is
    the XOR of one table lookup per byte (all rows at once), and the rows are
    combined by Horner's rule with a 64 Ki-entry table (about 3 ms per MB against
    about 70 ms for a byte loop).
    """
    n = len(data)
    if n < 64:
        crc = init
        t = _CRC16
        for b in data:
            crc = ((crc << 8) & 0xFFFF) ^ t[(crc >> 8) ^ b]
        return crc
    arr = np.frombuffer(data, dtype=np.uint8)
    pad = -n % _ROW
    if pad or init:
        # Leading zeros do not change a CRC with init 0, and a register value
        # ``init`` is the same as XORing it into the next two bytes.
        full = np.zeros(n + pad, dtype=np.uint8)
        full[pad:] = arr
        full[pad] ^= init >> 8
        full[pad + 1] ^= init & 0xFF
        arr = full
    idx = arr.reshape(-1, _ROW) + _BASE16
    rows: list[int] = np.bitwise_xor.reduce(_T16[idx], axis=1).tolist()
    crc = 0
    mul = _MUL16
    for r in rows:
        crc = mul[crc] ^ r
    return crc


def _shift_tables() -> list[tuple[list[int], list[int]]]:
    """Per k, the map c -> c * x^(8 * 2**k) mod P as (high byte, low byte) tables."""
    out = [(list(_CRC16), [b << 8 for b in range(256)])]  # c * x^8: T[high] ^ low << 8
    for _ in range(31):
        h, low = out[-1]

        def sq(c: int, h: list[int] = h, low: list[int] = low) -> int:
            c = h[c >> 8] ^ low[c & 0xFF]
            return h[c >> 8] ^ low[c & 0xFF]

        out.append(([sq(b << 8) for b in range(256)], [sq(b) for b in range(256)]))
    return out


_SHIFT = _shift_tables()


def _crc16_shift(crc: int, nbytes: int) -> int:
    """``crc`` * x^(8 * nbytes) mod P: the CRC of ``crc`` as two bytes, then
    ``nbytes - 2`` zeros, in O(log n)."""
    k = 0
    while nbytes:
        if nbytes & 1:
            hi, lo = _SHIFT[k]
            crc = hi[crc >> 8] ^ lo[crc & 0xFF]
        nbytes >>= 1
        k += 1
    return crc


# -- headers ---------------------------------------------------------------------------


class FrameHeader(NamedTuple):
    """What a frame header says (RFC 9639 §9.1)."""

    variable: bool
    """Blocking strategy: True = variable block size, the number counts samples."""
    block_size: int
    sample_rate: int
    """0 = "get from STREAMINFO"."""
    channels: int
    bits: int
    """Bits per sample; 0 = "get from STREAMINFO"."""
    number: int
    """Frame number (fixed block size) or first sample number (variable)."""
    number_len: int
    """Bytes of the coded number, which starts at byte 4."""
    length: int
    """Header bytes including the CRC-8."""


def _utf8_len(value: int) -> int:
    for n, limit in enumerate((0x80, 0x800, 0x10000, 0x200000, 0x4000000, 0x80000000), 1):
        if value < limit:
            return n
    return 7


def _utf8(value: int) -> bytes:
    """``value`` (< 2**36) in FLAC's extended UTF-8 coding (§9.1.5)."""
    n = _utf8_len(value)
    if n == 1:
        return bytes((value,))
    tail = [0x80 | (value >> (6 * i)) & 0x3F for i in range(n - 2, -1, -1)]
    lead = (0xFF00 >> n) & 0xFF | value >> (6 * (n - 1))
    return bytes([lead, *tail])


def coded_number(value: int) -> bytes:
    """A frame or sample number as a frame header codes it (§9.1.5)."""
    return _utf8(value)


def _header(buf: bytes | bytearray, i: int, end: int) -> FrameHeader | int | None:
    """The frame header at ``i``; ``_NEED`` if it may be one but is cut off at ``end``."""
    if end - i < 6:
        if end - i < 2:
            return _NEED if end == i or buf[i] == 0xFF else None
        return _NEED if buf[i] == 0xFF and buf[i + 1] & 0xFE == 0xF8 else None
    if buf[i] != 0xFF or buf[i + 1] & 0xFE != 0xF8:
        return None
    b2, b3 = buf[i + 2], buf[i + 3]
    bs_code, rate_code = b2 >> 4, b2 & 0x0F
    ch_code, bits_code = b3 >> 4, (b3 >> 1) & 7
    if bs_code == 0 or rate_code == 15 or ch_code > 10 or bits_code == 3 or b3 & 1:
        return None
    variable = bool(buf[i + 1] & 1)
    c = buf[i + 4]
    if c < 0x80:
        extra, number = 0, c
    elif c < 0xC0:
        return None
    elif c < 0xFE:
        extra = 1
        while c & (0x40 >> extra):
            extra += 1
        number = c & (0x3F >> extra)
    elif c == 0xFE and variable:
        extra, number = 6, 0
    else:
        return None
    j = i + 5
    if end < j + extra:
        return _NEED
    for k in range(j, j + extra):
        b = buf[k]
        if b & 0xC0 != 0x80:
            return None
        number = number << 6 | b & 0x3F
    j += extra
    tail = (1 if bs_code == 6 else 2 if bs_code == 7 else 0) + (
        1 if rate_code == 12 else 2 if rate_code in (13, 14) else 0
    )
    if end < j + tail + 1:
        return _NEED
    if bs_code == 1:
        block = 192
    elif bs_code <= 5:
        block = 576 << (bs_code - 2)
    elif bs_code == 6:
        block = buf[j] + 1
        j += 1
    elif bs_code == 7:
        block = (buf[j] << 8 | buf[j + 1]) + 1
        j += 2
        if block > 65535:
            return None
    else:
        block = 256 << (bs_code - 8)
    if rate_code < 12:
        rate = _RATES[rate_code]
    elif rate_code == 12:
        rate = buf[j] * 1000
        j += 1
    else:
        rate = (buf[j] << 8 | buf[j + 1]) * (10 if rate_code == 14 else 1)
        j += 2
    if rate_code >= 12 and rate == 0:
        return None
    if crc8(buf[i:j]) != buf[j]:
        return None
    channels = ch_code + 1 if ch_code < 8 else 2
    return FrameHeader(
        variable, block, rate, channels, _BITS[bits_code], number, 1 + extra, j + 1 - i
    )


def frame_header(data: bytes | bytearray, offset: int = 0) -> FrameHeader | None:
    """The FLAC frame header at ``offset`` with its CRC-8 checked; None if there is
    none (or it is cut off). Shared with the Ogg FLAC mapping."""
    h = _header(data, offset, len(data))
    return h if isinstance(h, FrameHeader) else None


def renumber_frame(
    data: bytes, h: FrameHeader, number: int, *, variable: bool | None = None
) -> bytes:
    """The frame ``data`` (header ``h``, CRC-16 intact) with its frame or sample
    number set to ``number``, both CRCs made right again; with ``variable`` its
    blocking strategy bit set too (``number`` is then what that strategy counts).

    The header may change length; the CRC-16 is updated from the header
    difference alone (the CRC is linear), without reading the subframes.
    """
    coded = _utf8(number)
    old_head = data[: h.length]
    b1 = old_head[1] if variable is None else (old_head[1] & 0xFE) | int(variable)
    if old_head[4 : 4 + h.number_len] == coded and b1 == old_head[1]:
        return data
    head = bytearray(old_head[:4])
    head[1] = b1
    head += coded
    head += old_head[4 + h.number_len : -1]
    head.append(crc8(head))
    body = len(data) - h.length - 2
    old = int.from_bytes(data[-2:], "big")
    delta = crc16(old_head) ^ crc16(head)
    new = old ^ _crc16_shift(delta, body)
    return bytes(head) + data[h.length : -2] + new.to_bytes(2, "big")


# -- STREAMINFO ------------------------------------------------------------------------


class StreamInfo(NamedTuple):
    """The STREAMINFO metadata block (§8.2)."""

    min_block: int
    max_block: int
    min_frame: int
    max_frame: int
    sample_rate: int
    channels: int
    bits: int
    total_samples: int = 0
    md5: bytes = bytes(16)

    def body(self) -> bytes:
        """The 34 bytes of the block, without its 4-byte block header."""
        packed = (
            (self.sample_rate & 0xFFFFF) << 44
            | ((self.channels - 1) & 7) << 41
            | ((self.bits - 1) & 0x1F) << 36
            | self.total_samples & 0xFFFFFFFFF
        )
        return (
            self.min_block.to_bytes(2, "big")
            + self.max_block.to_bytes(2, "big")
            + min(self.min_frame, 0xFFFFFF).to_bytes(3, "big")
            + min(self.max_frame, 0xFFFFFF).to_bytes(3, "big")
            + packed.to_bytes(8, "big")
            + self.md5
        )


def parse_streaminfo(body: bytes | bytearray) -> StreamInfo | None:
    """The STREAMINFO in a 34-byte block body, or None if it is not plausible."""
    if len(body) < 34:
        return None
    packed = int.from_bytes(body[10:18], "big")
    info = StreamInfo(
        min_block=int.from_bytes(body[0:2], "big"),
        max_block=int.from_bytes(body[2:4], "big"),
        min_frame=int.from_bytes(body[4:7], "big"),
        max_frame=int.from_bytes(body[7:10], "big"),
        sample_rate=packed >> 44,
        channels=(packed >> 41 & 7) + 1,
        bits=(packed >> 36 & 0x1F) + 1,
        total_samples=packed & 0xFFFFFFFFF,
        md5=bytes(body[18:34]),
    )
    if info.sample_rate == 0 or info.bits < 4 or info.max_block < 16:
        return None
    return info


def streaminfo_block(info: StreamInfo) -> bytes:
    """``fLaC`` and STREAMINFO as the only (last) metadata block: 42 bytes."""
    return b"fLaC" + bytes((0x80, 0, 0, 34)) + info.body()


STREAMINFO_OFFSET = 8
"""Where the STREAMINFO body sits in a file ``FlacWriter`` wrote."""


# -- the writer ------------------------------------------------------------------------


class FlacWriter:
    """Writes one file: ``fLaC`` + STREAMINFO, then the frames renumbered from zero.

    STREAMINFO comes from the first frame's header (``fallback`` fills what a
    header leaves to STREAMINFO). Total samples and the frame sizes are 0
    (unknown) until ``patches()`` gives them at close; MD5 stays 0 (unknown:
    computing it would mean decoding). A fixed-block-size file declares its block
    size as both minimum and maximum, as decoders need to turn frame numbers into
    sample numbers; a variable one declares 16..65535 until the close patch.
    """

    extension: str | None = None

    def __init__(self, fallback: StreamInfo | None = None) -> None:
        self.fallback = fallback
        self.info: StreamInfo | None = None
        self.variable = False
        self.frames = 0
        self.samples = 0
        self.min_block = 65535
        self.max_block = 0
        self.min_frame = 0
        self.max_frame = 0

    def begin(self, first: Frame) -> bytes:
        h = frame_header(first.data)
        if h is None:
            return b""
        fb = self.fallback
        bits = h.bits or (fb.bits if fb else 16)
        rate = h.sample_rate or first.sample_rate
        self.variable = h.variable
        lo, hi = (16, 65535) if h.variable else (h.block_size, h.block_size)
        self.info = StreamInfo(lo, hi, 0, 0, rate, h.channels, bits)
        return streaminfo_block(self.info)

    def write(self, frames: Sequence[Frame]) -> bytes:
        out = []
        for f in frames:
            h = frame_header(f.data)
            if h is None:  # not from FlacFramer: written as it is
                out.append(f.data)
                continue
            data = renumber_frame(f.data, h, self.samples if self.variable else self.frames)
            self.frames += 1
            self.samples += h.block_size
            self.min_block = min(self.min_block, h.block_size)
            self.max_block = max(self.max_block, h.block_size)
            size = len(data)
            self.min_frame = min(self.min_frame, size) if self.min_frame else size
            self.max_frame = max(self.max_frame, size)
            out.append(data)
        return b"".join(out)

    def end(self) -> bytes:
        return b""

    def patches(self) -> list[tuple[int, bytes]]:
        if self.info is None:
            return []
        info = self.info._replace(
            min_frame=self.min_frame, max_frame=self.max_frame, total_samples=self.samples
        )
        if self.variable and self.max_block:
            info = info._replace(min_block=max(16, self.min_block), max_block=self.max_block)
        return [(STREAMINFO_OFFSET, info.body())]


def streaminfo_patch(head: bytes, last: bytes) -> list[tuple[int, bytes]]:
    """For a file ``FlacWriter`` began but never closed (a killed recorder): the
    patch that sets its total samples, from its first 42 bytes (``head``) and its
    last whole frame (``last``, e.g. the last frame ``FlacFramer`` finds in the
    file's tail). Empty if ``head`` is not such a file or ``last`` no frame."""
    h = frame_header(last)
    if len(head) < 42 or head[:4] != b"fLaC" or h is None:
        return []
    info = parse_streaminfo(head[STREAMINFO_OFFSET : STREAMINFO_OFFSET + 34])
    if info is None:
        return []
    total = h.number + h.block_size if h.variable else h.number * info.max_block + h.block_size
    if total == info.total_samples:
        return []
    # An MD5 over the whole signal no longer holds for a file cut short: 0 = unknown.
    return [(STREAMINFO_OFFSET, info._replace(total_samples=total, md5=bytes(16)).body())]


# -- the framer ------------------------------------------------------------------------

_SYNC = re.compile(b"\\xff[\\xf8\\xf9]|fLaC")
"""Where a frame, or a new stream's ``fLaC``, may start."""


def _max_frame(h: FrameHeader, bits: int) -> int:
    """More bytes than any frame with header ``h`` can take (verbatim subframes,
    side channel one bit wider, wasted-bits and subframe headers, padding, CRC)."""
    return h.length + 3 + h.channels * (8 + (h.block_size * (bits + 1) + 7) // 8)


class FlacFramer(FramerBase):
    """Splits a native FLAC stream into frames; drops metadata, junk and bad frames.

    Drop reasons (``drops``): ``junk`` (no frame there), ``metadata`` (``fLaC``
    and metadata blocks: the STREAMINFO is kept in ``streaminfo``), ``crc`` (a
    frame whose CRC-16 fails), ``no_streaminfo`` (a frame that leaves its sample
    rate or size to a STREAMINFO that was never seen), ``truncated``.

    A frame that changes the stream's parameters (blocking strategy, rate,
    channels, sample size, or the fixed block size) has ``new_link``, so that
    every file has one STREAMINFO that is true of all its frames.
    """

    format = "flac"
    extension = ".flac"

    def __init__(self) -> None:
        super().__init__()  # header_frames stays empty: FlacWriter makes each header
        self.streaminfo: StreamInfo | None = None
        """The stream's own STREAMINFO, if it was seen (a listener from the start)."""
        self.resyncs = 0
        self.frame_count = 0
        self._meta = False
        self._locked = False
        self._scan = 0
        """Where the search for the current frame's end goes on (offset from it)."""
        self._crc = 0
        self._crc_to = 0
        """CRC-16 of the current frame's first ``_crc_to`` bytes."""
        self._alt = 0
        """Offset of the first candidate end where the CRC-16 holds (0 = none yet)."""
        self._key: tuple[bool, int, int, int] | None = None
        self._block = 0
        self._short = False

    @property
    def locked(self) -> bool:
        """Whether frame boundaries are currently known."""
        return self._locked

    def file_writer(self) -> FileWriter:
        """A writer that starts the file with its own STREAMINFO."""
        return FlacWriter(self.streaminfo)

    @classmethod
    def score(cls, head: bytes) -> float:
        """1 for ``fLaC``; else 0.5..1 by the share of ``head`` that is frames."""
        if head.startswith(b"fLaC"):
            return 1.0
        framer = cls()
        framer.feed(head)
        if framer.frame_count == 0:
            return 0.0
        return 0.5 + 0.5 * (1.0 - framer.drops.get("junk", 0) / len(head))

    def flush(self) -> list[Frame]:
        """End of stream: the last whole frame, if its CRC-16 holds; the framer is
        then ready for a new stream."""
        out = self._run(eof=True)
        self._drop(len(self._buf), "truncated" if self._locked or self._skip else "junk")
        self._buf.clear()
        self._locked = self._meta = False
        self._skip = 0
        self._next_frame()
        return out

    def _resolve(self, h: FrameHeader) -> tuple[int, int]:
        """(sample rate, bits per sample), 0 where only a STREAMINFO could tell."""
        si = self.streaminfo
        rate = h.sample_rate or (si.sample_rate if si else 0)
        bits = h.bits or (si.bits if si else 0)
        return rate, bits

    def _emit(self, data: bytes, h: FrameHeader, rate: int, bits: int) -> Frame:
        key = (h.variable, rate, h.channels, bits)
        new_link = False
        if self._key is None or key != self._key:
            new_link = self._key is not None
            self._key, self._block = key, h.block_size
        elif not h.variable and (self._short or h.block_size > self._block):
            new_link = True
            self._block = h.block_size
        self._short = not h.variable and h.block_size < self._block
        return Frame(data, h.block_size, rate, new_link=new_link)

    def _end(self, buf: bytearray, p: int, h: FrameHeader, end: int, eof: bool) -> int:
        """Where the frame at ``p`` ends: ``q`` > p with its CRC-16 good, ``-q`` for
        a frame whose CRC-16 fails (the next one is at q), ``_NEED``, or 0 when
        there is no end (a false header, or a frame cut off at ``eof``).

        A next header that continues the numbering decides. Without one within the
        largest possible frame, the first candidate where the CRC-16 holds does (a
        restarted encoder, a new ``fLaC``, a damaged next header): waiting for the
        whole span keeps a chance 2**-16 match inside a frame from cutting it.
        """
        rate, bits = self._resolve(h)
        limit = p + _max_frame(h, bits or 32)
        want = h.number + (h.block_size if h.variable else 1)
        s = p + max(self._scan, h.length + 2)
        while True:
            m = _SYNC.search(buf, s, min(end, limit + 4))
            if m is None:
                if not eof and end < limit + 4:
                    self._scan = max(s, end - 3) - p
                    return _NEED
                if eof and end <= limit and self._crc_upto(buf, p, end) == 0:
                    return end
                return p + self._alt if self._alt else 0
            q = m.start()
            if buf[q] == 0xFF:
                nh = _header(buf, q, end)
                if nh == _NEED and not eof:
                    self._scan = q - p
                    return _NEED
                if (
                    isinstance(nh, FrameHeader)
                    and nh.number == want
                    and nh.variable == h.variable
                    and nh.channels == h.channels
                    and self._resolve(nh) == (rate, bits)
                ):
                    return q if self._crc_upto(buf, p, q) == 0 else -q
            if not self._alt and self._crc_upto(buf, p, q) == 0:
                self._alt = q - p
            s = q + 1

    def _crc_upto(self, buf: bytearray, p: int, q: int) -> int:
        """CRC-16 of ``buf[p:q]``, continued from the last one computed."""
        if q - p < self._crc_to:
            self._crc, self._crc_to = 0, 0
        self._crc = crc16(buf[p + self._crc_to : q], self._crc)
        self._crc_to = q - p
        return self._crc

    def _next_frame(self) -> None:
        self._scan = self._crc = self._crc_to = self._alt = 0

    def _metadata(self, buf: bytearray, p: int, end: int, eof: bool) -> int:
        """Handle a metadata block header at ``p``: bytes consumed, or ``_NEED``."""
        if end - p < 4:
            return _NEED
        kind = buf[p] & 0x7F
        length = int.from_bytes(buf[p + 1 : p + 4], "big")
        if kind == 127:
            self._meta = False
            return 0
        if kind == 0:
            if end - p < 4 + 34:
                return _NEED
            info = parse_streaminfo(buf[p + 4 : p + 4 + 34])
            if length == 34 and info is not None:
                self.streaminfo = info
        if buf[p] & 0x80:
            self._meta = False
        self._skip, self._skip_reason = 4 + length, "metadata"
        return 0

    def _run(self, eof: bool) -> list[Frame]:
        buf = self._buf
        end = len(buf)
        out: list[Frame] = []
        p = 0
        while p < end:
            if self._skip:
                p = self._skip_ahead(p, end)
                continue
            if self._meta:
                if self._metadata(buf, p, end, eof) == _NEED:
                    if not eof:
                        break
                    self._meta = False
                continue
            if buf.startswith(b"fLaC", p):
                # A new stream (or a listener from the start): its first block
                # must be a STREAMINFO, else "fLaC" was only audio data.
                if end - p < 8 and not eof:
                    break
                if end - p >= 8 and buf[p + 4] & 0x7F == 0 and buf[p + 5 : p + 8] == b"\0\0\x22":
                    self._drop(4, "metadata")
                    self._meta = True
                    p += 4
                    self._locked = False
                    continue
            if not eof and end - p < 4 and b"fLaC".startswith(buf[p:end]):
                break
            h = _header(buf, p, end)
            if h == _NEED and not eof:
                break
            if isinstance(h, FrameHeader):
                q = self._end(buf, p, h, end, eof)
                if q == _NEED:
                    break
                if q:
                    self._next_frame()
                    self._locked = True
                    if q < 0:
                        self._drop(-q - p, "crc")
                        p = -q
                        continue
                    rate, bits = self._resolve(h)
                    if rate and bits:
                        out.append(self._emit(bytes(buf[p:q]), h, rate, bits))
                    else:
                        self._drop(q - p, "no_streaminfo")
                    p = q
                    continue
                self._next_frame()
            # No frame here: search for the next sync or ``fLaC``.
            if self._locked:
                self._locked = False
                self.resyncs += 1
            m = _SYNC.search(buf, p + 1)
            if m is None:
                keep = 0 if eof else min(3, end - p - 1)
                self._drop(end - keep - p, "junk")
                p = end - keep
                if not eof:
                    break
                continue
            self._drop(m.start() - p, "junk")
            p = m.start()
        del buf[:p]
        self.frame_count += len(out)
        return out
