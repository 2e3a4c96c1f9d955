"""The check of a closed recording: one read, every CRC its format carries.

Each closed file is read once, off the event loop (``isr.evidence.checker``):

- its SHA-256, and the write path's account of it (``isr.evidence.digest``): the
  size, the head kept in memory and the SHA-256 of the rest must be those of the
  bytes on the disk, so the disk holds what was received. The file's SHA-256 is
  taken from this read when its head was patched at close;
- its frames or pages, each parsed, with the CRCs the format carries: every Ogg
  page's CRC-32 and sequence number; every FLAC frame's header CRC-8 and frame
  CRC-16, and STREAMINFO's sample count against the frames; every MP3 frame
  header, and the CRC-16 of protected layer III frames; every ADTS frame header
  and length (an ADTS CRC covers bits chosen by the AAC syntax inside the raw
  data block, which takes an AAC decoder to find: FFmpeg and FAAD do not check it
  either, nor does this check; neither does it check layer I/II CRCs, which
  depend on the bit allocation tables); a WAV file's sizes against its size.

A problem is a short sentence naming the byte where it is; the first
``MAX_PROBLEMS`` are kept, the rest counted.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from isr.evidence.digest import Written
from isr.framing._sync import Header
from isr.sinks.files import open_regular

CHUNK = 1 << 20
SLACK = 1 << 16
"""Room before each chunk read, where a walker puts the bytes it carried over from
the last one (an Ogg page is at most 65,307 bytes), so that a chunk is walked where
it was read, not copied after them."""
MAX_PROBLEMS = 10


class Walker(Protocol):
    def feed(self, buf: memoryview, start: int, end: int) -> None:
        """The file's next bytes are ``buf[start:end]``; ``buf[:start]`` is free room.
        ``buf`` is reused for the next chunk: what is kept must be copied."""

    def finish(self) -> list[str]: ...


@dataclass
class Result:
    """What a check found."""

    sha256: str
    """Of the file as it is on the disk."""
    size: int
    problems: list[str] = field(default_factory=list)
    attested: bool = False
    """The disk holds exactly what the write path wrote."""
    at: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self, iso: Any) -> dict[str, Any]:
        return {"ok": self.ok, "problems": list(self.problems), "at": iso(self.at)}


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.more = 0

    def add(self, text: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(text)
        else:
            self.more += 1

    def out(self) -> list[str]:
        return self.items + ([f"and {self.more} more problems"] if self.more else [])


class _Resync:
    """What the MP3, ADTS and Ogg walkers share: the bytes of a unit cut off by the
    end of a chunk are kept for the next, and where no unit starts, the walk looks
    for the next ``SYNC`` and says once, where it finds a unit, how many bytes it
    skipped (``LOST``, formatted with that count). One loop for three formats, so
    that they resync and report alike."""

    UNIT = ""
    """What a unit is called: "MP3 frame"."""
    SYNC = b""
    """The bytes every unit starts with."""
    LOST = ""
    """The problem of bytes skipped, after "byte N: "; ``{}`` is their count."""

    def __init__(self) -> None:
        self.buf = b""
        self.offset = 0
        self.problems = _Problems()
        self._lost_at = -1

    def feed(self, buf: memoryview, start: int, end: int) -> None:
        self._feed_bytes(self.buf + bytes(buf[start:end]))

    def _feed_bytes(self, buf: bytes) -> None:
        pos = self._walk(buf)
        self.buf = buf[pos:]
        self.offset += pos

    def _carried(self, buf: memoryview, start: int) -> int:
        """Put the bytes carried over just before ``start``; where they begin, or -1
        when they do not fit there."""
        lo = start - len(self.buf)
        if lo < 0:
            return -1
        buf[lo:start] = self.buf
        return lo

    def _walk(self, buf: bytes) -> int:
        """Walk the units from ``buf``'s start; where the next one starts (at or
        before the end of ``buf``: a unit cut off is walked with the next chunk)."""
        raise NotImplementedError

    def _skip(self, buf: bytes, pos: int) -> int:
        """Where to look on from ``pos``, where no unit starts: the next ``SYNC``; if
        there is none, the end of ``buf`` but for a ``SYNC`` the chunk may cut."""
        if self._lost_at < 0:
            self._lost_at = self.offset + pos
        nxt = buf.find(self.SYNC, pos + 1)
        return nxt if nxt >= 0 else max(pos + 1, len(buf) - len(self.SYNC) + 1)

    def _lost(self, found: int) -> None:
        at = self._lost_at
        self.problems.add(f"byte {at}: " + self.LOST.format(found - at))
        self._lost_at = -1

    def _finish(self, count: int) -> list[str]:
        """The problems, with what is left at the end (bytes skipped, a unit cut
        off) and a file without a unit."""
        if self.buf or self._lost_at >= 0:
            at = self._lost_at if self._lost_at >= 0 else self.offset
            end = self.offset + len(self.buf)
            self.problems.add(f"byte {at}: no whole {self.UNIT} ({end - at} bytes to the end)")
        if count == 0:
            self.problems.add(f"no {self.UNIT} in the file")
        return self.problems.out()


# -- MP3 ---------------------------------------------------------------------------------


def _crc16_mpeg(data: bytes) -> int:
    from isr.framing.flac import crc16  # poly 0x8005, not reflected, as ISO 11172-3

    return crc16(data, 0xFFFF)


@functools.cache
def _mp3_tables() -> tuple[tuple[Header | None, ...], npt.NDArray[np.int64]]:
    from isr.framing.mp3 import _TABLE

    return _TABLE, np.array([h.length if h else 0 for h in _TABLE], dtype=np.int64)


def _chain(arr: Any, starts: Any, lengths: Any, ends: Any) -> Any:
    """The MP3 frames from the first, as indices into ``starts`` (the places in
    ``arr`` that could start one, frames of ``lengths`` ending at ``ends``).

    A place is linked when its frame ends where another place is. Mostly, the
    linked places are the frames but the last, each ending where the next begins:
    then they, and where the last of them ends, are the chain, found in a few passes
    with no search. Otherwise (a place inside a frame links to another, or the chain
    breaks) each place's successor is searched for and followed by doubling: path
    holds k frames, jump the k-th successor, m standing for "no next frame"."""
    n = len(arr)
    inside = ends < n - 3
    at = np.where(inside, ends, 0)
    linked = inside & (lengths > 0) & (arr[at] == 0xFF) & (arr[at + 1] >= 0xE0)
    idx = np.flatnonzero(linked)
    if not len(idx):
        return np.zeros(1, dtype=np.int64)  # the first frame alone
    first, then = starts[idx], ends[idx]
    if first[0] == 0 and np.array_equal(first[1:], then[:-1]):
        return np.append(idx, np.searchsorted(starts, then[-1]))
    m = len(starts)
    jump = np.append(np.where(linked, np.searchsorted(starts, ends), m), m)
    path = np.zeros(1, dtype=np.int64)
    while path[-1] != m:
        path = np.concatenate((path, jump[path]))
        jump = jump[jump]
    return path[path != m]


class Mp3Walker(_Resync):
    """MPEG audio frames back to back; protected layer III frames' CRC-16.

    A file ISR wrote is frames and nothing else, so the walk is done in numpy (an
    hour at 128 kbps is 138,000 frames): every place that could start a frame is
    found at once, each one's length looked up, and the frames are followed from
    the file's first byte through those places by doubling (no Python per frame).
    The chunk is walked where it was read (the frame cut off by the last chunk's
    end put before it), and the scan's mask is kept from chunk to chunk: a fresh
    megabyte per chunk costs more in page faults than the scan itself.
    Where the chain breaks, the chunk is walked byte by byte to say where and how
    much is wrong.
    """

    UNIT = "MP3 frame"
    SYNC = b"\xff"
    LOST = "no MP3 frame ({} bytes skipped)"

    def __init__(self) -> None:
        super().__init__()
        self._table, self._lengths = _mp3_tables()
        self._mask = np.empty(0, dtype=np.bool_)
        self.frames = 0
        self.crcs = 0

    def feed(self, buf: memoryview, start: int, end: int) -> None:
        lo = self._carried(buf, start) if self._lost_at < 0 else -1
        if lo >= 0:
            pos = self._fast(buf[lo:end])
            if pos >= 0:
                self.buf = bytes(buf[lo + pos : end])
                self.offset += pos
                return
            self._feed_bytes(bytes(buf[lo:end]))
        else:
            self._feed_bytes(self.buf + bytes(buf[start:end]))

    def _walk(self, buf: bytes) -> int:
        pos = self._fast(memoryview(buf)) if self._lost_at < 0 else -1
        return pos if pos >= 0 else self._slow(buf)

    def _fast(self, buf: memoryview) -> int:
        """Where the frames from ``buf``'s start end (the last one may be cut off
        by the chunk's end); -1 when they do not follow each other to there."""
        n = len(buf)
        if n < 8:
            return 0
        arr = np.frombuffer(buf, np.uint8)
        if len(self._mask) < n:
            self._mask = np.empty(n, dtype=np.bool_)
        ff = np.flatnonzero(np.equal(arr[:-3], 0xFF, out=self._mask[: n - 3]))
        starts = ff[arr[ff + 1] >= 0xE0]
        if not len(starts) or starts[0] != 0:
            return -1
        b1 = arr[starts + 1]
        keys = (b1.astype(np.int64) & 0x1F) << 8 | arr[starts + 2]
        lengths = self._lengths[keys]
        ends = starts + lengths
        path = _chain(arr, starts, lengths, ends)
        i = int(path[-1])
        end = int(ends[i])
        if lengths[i] == 0:
            return -1
        if end > n:  # the last frame goes on in the next chunk
            path = path[:-1]
            end = int(starts[i])
        elif end + 4 <= n:
            return -1  # something that is not a frame follows
        fb1 = b1[path]
        protected = starts[path][(fb1 & 1 == 0) & ((fb1 >> 1) & 3 == 1)]
        for p in protected.tolist():
            self._crc(bytes(buf[p : p + 38]), self.offset + p)
        self.frames += len(path)
        return end

    def _slow(self, buf: bytes) -> int:
        n = len(buf)
        pos = 0
        table = self._table
        while pos + 4 <= n:
            b1 = buf[pos + 1]
            h = table[(b1 & 0x1F) << 8 | buf[pos + 2]] if buf[pos] == 0xFF and b1 >= 0xE0 else None
            if h is None:
                pos = self._skip(buf, pos)
                continue
            end = pos + h.length
            if end > n:
                break
            if self._lost_at >= 0:
                self._lost(self.offset + pos)
            if not b1 & 1 and (b1 >> 1) & 3 == 1:
                self._crc(buf[pos : pos + 38], self.offset + pos)
            self.frames += 1
            pos = end
        return pos

    def _crc(self, frame: bytes, at: int) -> None:
        """The CRC-16 of a protected layer III frame (its first 38 bytes), at byte
        ``at`` of the file."""
        b1 = frame[1]
        mono = frame[3] >> 6 == 3
        side = (17 if mono else 32) if (b1 >> 3) & 3 == 3 else (9 if mono else 17)
        covered = frame[2:4] + frame[6 : 6 + side]
        stored = frame[4] << 8 | frame[5]
        self.crcs += 1
        if _crc16_mpeg(covered) != stored:
            self.problems.add(f"byte {at}: MP3 frame CRC-16 does not match")

    def finish(self) -> list[str]:
        if self.buf:
            at = self._lost_at if self._lost_at >= 0 else self.offset
            end = self.offset + len(self.buf)
            self.problems.add(f"byte {at}: the file ends inside a frame ({end - at} bytes)")
            self._lost_at = -1
        elif self._lost_at >= 0:
            self._lost(self.offset)
        if self.frames == 0:
            self.problems.add("no MP3 frame in the file")
        return self.problems.out()


# -- ADTS --------------------------------------------------------------------------------


class AdtsWalker(_Resync):
    """ADTS frames back to back, by their headers' lengths."""

    UNIT = "ADTS frame"
    SYNC = b"\xff"
    LOST = "no ADTS frame ({} bytes)"

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0

    def _walk(self, buf: bytes) -> int:
        n = len(buf)
        pos = 0
        while pos + 7 <= n:
            b1 = buf[pos + 1]
            ok = buf[pos] == 0xFF and b1 & 0xF6 == 0xF0 and (buf[pos + 2] >> 2) & 0x0F < 13
            length = (buf[pos + 3] & 3) << 11 | buf[pos + 4] << 3 | buf[pos + 5] >> 5
            if not ok or length <= (7 if b1 & 1 else 9):
                pos = self._skip(buf, pos)
                continue
            if pos + length > n:
                break
            if self._lost_at >= 0:
                self._lost(self.offset + pos)
            self.frames += 1
            pos += length
        return pos

    def finish(self) -> list[str]:
        return self._finish(self.frames)


# -- Ogg ---------------------------------------------------------------------------------

_OGG_FIELDS = struct.Struct("<BqII")
"""header_type, granule_position, serial, sequence: bytes 5 to 21 of a page."""


class OggWalker(_Resync):
    """Ogg pages back to back, each with its CRC-32, sequence numbers without a gap.

    The Ogg CRC is zlib's CRC-32 of the page with each byte's bits reversed (zlib's
    is the reflected one), so each chunk is reversed once, in numpy, 8 bytes at a
    time, into a buffer kept from chunk to chunk (``bytes.translate`` of each page
    took twice as long and a fresh copy per page), and each page's CRC is one
    ``zlib.crc32`` there. Where no page starts, the rest of the chunk is walked as
    bytes (``_walk``), looking for the next.
    """

    UNIT = "Ogg page"
    SYNC = b"OggS"
    LOST = "no Ogg page ({} bytes)"

    def __init__(self) -> None:
        from isr.framing.oggpage import page_crc_ok, page_fields, page_length

        super().__init__()
        self._length = page_length
        self._crc_ok = page_crc_ok
        self._fields = page_fields
        self.pages = 0
        self._seq: dict[int, int] = {}
        self._rev = np.empty(0, dtype=np.uint64)
        self._tmp = np.empty(0, dtype=np.uint64)

    def feed(self, buf: memoryview, start: int, end: int) -> None:
        lo = self._carried(buf, start)
        if lo < 0 or len(buf) % 8:
            self._feed_bytes(self.buf + bytes(buf[start:end]))
            return
        rev = self._reversed(buf, lo, end)
        pos = self._fast(buf, rev, lo, end)
        if pos >= end - 26 or self._length(buf[:end], pos) != 0:
            self.buf = bytes(buf[pos:end])  # the start of a page cut off by the end
            self.offset += pos - lo
        else:
            self.offset += pos - lo
            self._feed_bytes(bytes(buf[pos:end]))

    def _reversed(self, buf: memoryview, lo: int, end: int) -> memoryview:
        """``buf`` with the bits of each byte reversed, at least from ``lo`` to
        ``end`` (the same offsets)."""
        words = len(buf) // 8
        if len(self._rev) < words:
            self._rev = np.empty(words, dtype=np.uint64)
            self._tmp = np.empty(words, dtype=np.uint64)
        w0, w1 = lo // 8, (end + 7) // 8
        x = np.frombuffer(buf, np.uint64)[w0:w1]
        r, t = self._rev[w0:w1], self._tmp[w0:w1]
        for shift, mask in (
            (1, 0x5555555555555555),
            (2, 0x3333333333333333),
            (4, 0x0F0F0F0F0F0F0F0F),
        ):
            np.bitwise_and(np.right_shift(x, shift, out=t), mask, out=t)
            np.bitwise_and(x, mask, out=r)
            np.left_shift(r, shift, out=r)
            np.bitwise_or(r, t, out=r)
            x = r
        return self._rev.data.cast("B")

    def _fast(self, buf: memoryview, rev: memoryview, pos: int, n: int) -> int:
        """Walk the pages from ``pos``; where the walk stops: a page cut off by ``n``,
        or bytes that do not start one (or the lost bytes end at ``pos``)."""
        crc32 = zlib.crc32
        base = self.offset - pos
        page_length = self._length
        view = buf[:n]
        while pos + 27 <= n:
            length = page_length(view, pos)
            if length == 0:
                return pos
            if length < 0 or pos + length > n:
                break
            at = base + pos
            if self._lost_at >= 0:
                self._lost(at)
            stored = int.from_bytes(rev[pos + 22 : pos + 26], "big")
            rev[pos + 22 : pos + 26] = b"\0\0\0\0"
            if crc32(rev[pos : pos + length], 0xFFFFFFFF) ^ 0xFFFFFFFF != stored:
                self.problems.add(f"byte {at}: Ogg page CRC-32 does not match")
            _, _, serial, seq = _OGG_FIELDS.unpack_from(buf, pos + 5)
            self._counted(serial, seq, at)
            pos += length
        return pos

    def _walk(self, buf: bytes) -> int:
        n = len(buf)
        pos = 0
        while pos + 27 <= n:
            length = self._length(buf, pos)
            if length == 0:
                pos = self._skip(buf, pos)
                continue
            if length < 0 or pos + length > n:
                break
            page = buf[pos : pos + length]
            at = self.offset + pos
            if self._lost_at >= 0:
                self._lost(at)
            if not self._crc_ok(page):
                self.problems.add(f"byte {at}: Ogg page CRC-32 does not match")
            _, _, serial, seq = self._fields(page)
            self._counted(serial, seq, at)
            pos += length
        return pos

    def _counted(self, serial: int, seq: int, at: int) -> None:
        """A page of ``serial`` numbered ``seq`` at byte ``at``: it must follow the
        last one of its stream."""
        last = self._seq.get(serial)
        if last is not None and seq != last + 1:
            self.problems.add(f"byte {at}: Ogg page sequence {seq} follows {last}")
        self._seq[serial] = seq
        self.pages += 1

    def finish(self) -> list[str]:
        return self._finish(self.pages)


# -- FLAC --------------------------------------------------------------------------------


class FlacWalker:
    """FLAC metadata, then frames each with its CRC-8 and CRC-16 (the FLAC framer)."""

    def __init__(self) -> None:
        from isr.framing.flac import FlacFramer

        self.framer = FlacFramer()
        self.samples = 0
        self.head = b""

    def feed(self, buf: memoryview, start: int, end: int) -> None:
        data = bytes(buf[start:end])
        if len(self.head) < 42:
            self.head += data[: 42 - len(self.head)]
        for frame in self.framer.feed(data):
            self.samples += frame.samples

    def finish(self) -> list[str]:
        from isr.framing.flac import STREAMINFO_OFFSET, parse_streaminfo

        for frame in self.framer.flush():
            self.samples += frame.samples
        problems = _Problems()
        if not self.head.startswith(b"fLaC"):
            problems.add("byte 0: no fLaC signature")
        for reason, n in sorted(self.framer.drops.items()):
            if reason != "metadata" and n:
                what = "frames whose CRC does not match" if reason == "crc" else reason
                problems.add(f"{n} bytes of {what}")
        info = parse_streaminfo(self.head[STREAMINFO_OFFSET:42]) if len(self.head) == 42 else None
        if info is not None and info.total_samples and info.total_samples != self.samples:
            problems.add(
                f"STREAMINFO says {info.total_samples} samples, the frames hold {self.samples}"
            )
        if self.framer.frame_count == 0:
            problems.add("no FLAC frame in the file")
        return problems.out()


# -- WAV ---------------------------------------------------------------------------------


class WavWalker:
    """A WAV header's sizes against the file's size."""

    def __init__(self) -> None:
        self.head = b""
        self.size = 0

    def feed(self, buf: memoryview, start: int, end: int) -> None:
        if len(self.head) < 4096:
            self.head += buf[start : min(end, start + 4096 - len(self.head))]
        self.size += end - start

    def finish(self) -> list[str]:
        from isr.sinks.wav import parse_wav_header

        layout = parse_wav_header(self.head)
        if layout is None:
            return ["byte 0: no PCM WAV header"]
        problems = []
        data = self.size - layout.data_offset
        if layout.data_size != data:
            problems.append(f"the header says {layout.data_size} data bytes, the file holds {data}")
        if layout.form == b"RIFF" and layout.riff_size != self.size - 8:
            problems.append(f"the RIFF size is {layout.riff_size}, the file's is {self.size - 8}")
        if data % layout.block_align:
            problems.append(f"{data % layout.block_align} bytes of a partial sample frame")
        return problems


WALKERS: dict[str, type[Walker]] = {
    ".mp3": Mp3Walker,
    ".aac": AdtsWalker,
    ".ogg": OggWalker,
    ".oga": OggWalker,
    ".opus": OggWalker,
    ".flac": FlacWalker,
    ".wav": WavWalker,
}


def check_file(path: Path, written: Written | None, *, pause: float = 0.0) -> Result:
    """Read ``path`` once: hash it, compare it with ``written`` (the write path's
    account, if known) and walk its frames. ``pause`` seconds are slept after each
    chunk (a check must never hold the event loop's thread from the GIL for long).
    Raises OSError when the file cannot be read (e.g. deleted meanwhile).

    The chunks are read into one buffer, kept for the whole file, after ``SLACK``
    bytes of room (see ``Walker.feed``), and hashed and walked there: a fresh
    megabyte per read costs more in page faults than reading it. The bytes from
    ``reserve`` on are hashed a second time only when there is a reserved head:
    without one, the file's SHA-256 is the one to compare."""
    walker_class = WALKERS.get(path.suffix.lower())
    walker = walker_class() if walker_class is not None else None
    full = hashlib.sha256()
    rest = hashlib.sha256()
    reserve = written.reserve if written is not None and not written.broken else 0
    head = bytearray()
    size = 0
    buf = memoryview(bytearray(SLACK + CHUNK))
    into = [buf[SLACK:]]
    fd = open_regular(path, os.O_RDONLY, single_link=False)
    try:
        while n := os.readv(fd, into):
            chunk = buf[SLACK : SLACK + n]
            full.update(chunk)
            if size >= reserve:
                if reserve:
                    rest.update(chunk)
            else:
                take = min(n, reserve - size)
                head += chunk[:take]
                rest.update(chunk[take:])
            size += n
            if walker is not None:
                walker.feed(buf, SLACK, SLACK + n)
            if pause:
                time.sleep(pause)
            else:
                time.sleep(0)  # let the loop's thread take the GIL
    finally:
        os.close(fd)
    result = Result(sha256=full.hexdigest(), size=size, at=time.time())
    problems = result.problems
    if written is not None:
        if size != written.size:
            problems.append(f"the file holds {size} bytes, {written.size} were written")
        elif written.broken:
            pass  # nothing to compare with: the hash read here is the file's
        elif reserve == 0 and result.sha256 != written.rest_sha256:
            problems.append("its SHA-256 is not the one computed while it was written")
        elif reserve and bytes(head) != written.head:
            problems.append(f"its first {reserve} bytes are not those written")
        elif reserve and rest.hexdigest() != written.rest_sha256:
            problems.append(f"its bytes from {reserve} on are not those written (SHA-256)")
        else:
            result.attested = True
    if walker is not None:
        problems.extend(walker.finish())
    return result
