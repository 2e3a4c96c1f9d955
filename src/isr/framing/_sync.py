"""Frame sync shared by the MP3 and ADTS framers.

Both formats are a bare run of frames whose header starts with a 12-bit 0xFFF
sync word and gives the frame's length, so finding boundaries is the same job:
lock on after three chained frames with the same fixed header fields (as mutagen
and most decoders do, since one 0xFF byte proves nothing), then check each header
where the previous frame says it must be, and resynchronise when it is not there.

Every decision is taken only once the bytes it depends on are in, so the output
does not depend on how the input was chunked; ``flush()`` decides what is left
knowing the stream has ended.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar, NamedTuple

from isr.framing.base import FileWriter, Frame, FramerBase, PassThrough

_NEED = -1
"""More bytes are needed before this position can be judged."""

_KEEP = 7
"""Bytes kept back while searching: the longest partial tag signature."""

APE_MAX = 16 << 20
"""APE tags larger than this are taken for junk that happens to spell APETAGEX."""


def byte_class(allowed: Callable[[int], bool]) -> bytes:
    """A regex character class of the byte values ``allowed`` accepts."""
    return b"[" + b"".join(b"\\x%02x" % v for v in range(256) if allowed(v)) + b"]"


def sync_search(header: bytes) -> re.Pattern[bytes]:
    """What a search stops at: a plausible ``header`` or a tag signature.

    The regex runs in C, so junk (even a run of 0xFF bytes) costs no Python
    per byte. ID3v1 is recognised only where a frame is due: "TAG" is common text.
    """
    return re.compile(header + b"|ID3|APETAGEX")


class Header(NamedTuple):
    """What a frame header says, as far as framing needs it."""

    length: int
    samples: int
    sample_rate: int
    key: int
    """The fields that must stay the same from frame to frame."""


def id3v2_size(buf: bytes | bytearray, i: int) -> int:
    """Whole size of the ID3v2 tag at ``i`` (10 bytes present), or 0 if not one."""
    major, minor, flags = buf[i + 3], buf[i + 4], buf[i + 5]
    s0, s1, s2, s3 = buf[i + 6], buf[i + 7], buf[i + 8], buf[i + 9]
    if major not in (2, 3, 4) or minor == 0xFF or flags & 0x0F or (s0 | s1 | s2 | s3) & 0x80:
        return 0
    size = 10 + ((s0 << 21) | (s1 << 14) | (s2 << 7) | s3)
    if major == 4 and flags & 0x10:
        size += 10  # footer
    return size


def ape_size(buf: bytes | bytearray, i: int) -> int:
    """Bytes to drop for the APE header or footer at ``i`` (32 bytes present), or 0.

    A header is followed by the items and a footer (its size field covers both);
    a footer comes after the items, which were already dropped as junk.
    """
    version = int.from_bytes(buf[i + 8 : i + 12], "little")
    size = int.from_bytes(buf[i + 12 : i + 16], "little")
    flags = int.from_bytes(buf[i + 20 : i + 24], "little")
    if version not in (1000, 2000) or not 32 <= size <= APE_MAX:
        return 0
    return 32 + size if flags & (1 << 29) else 32


def tag_at(buf: bytearray, p: int, end: int, id3v1: bool) -> tuple[int, str] | int | None:
    """The tag starting at ``p`` as (bytes to drop, reason), ``_NEED``, or None."""
    n = end - p
    if buf.startswith(b"ID3", p):
        if n < 10:
            return _NEED
        size = id3v2_size(buf, p)
        return (size, "id3v2") if size else None
    if buf.startswith(b"APETAGEX", p):
        if n < 32:
            return _NEED
        size = ape_size(buf, p)
        return (size, "ape") if size else None
    if id3v1 and buf.startswith(b"TAG", p):
        return (128, "id3v1")
    if n < 8:
        tail = bytes(buf[p:end])
        if b"APETAGEX".startswith(tail) or b"ID3".startswith(tail):
            return _NEED
        if id3v1 and b"TAG".startswith(tail):
            return _NEED
    return None


class SyncFramer(FramerBase):
    """Push-based framer for formats of self-delimiting frames with a sync word."""

    HEADER_LEN: ClassVar[int] = 4
    """Bytes needed to parse a header."""
    SEARCH: ClassVar[re.Pattern[bytes]] = sync_search(b"\\xff")
    """Where a frame or tag may start (``sync_search``)."""

    def __init__(self) -> None:
        super().__init__()
        # drops: junk, id3v2, id3v1, ape, xing, truncated
        self.resyncs = 0
        """Times the lock was lost: a header missing where one was due."""
        self.frame_count = 0
        """Frames emitted so far."""
        self._locked = False
        self._key = -1
        self._emitted_key = -1
        """Key of the last frame emitted: a frame with another key starts a new file."""

    @property
    def locked(self) -> bool:
        """Whether frame boundaries are currently known."""
        return self._locked

    def file_writer(self) -> FileWriter:
        """Frames of these formats stand alone: files are the frames as received."""
        return PassThrough()

    def _parse(self, buf: bytearray, i: int) -> Header | None:
        """The header at ``i`` (``HEADER_LEN`` bytes present), or None if not one."""
        raise NotImplementedError

    def _silent(self, buf: bytearray, i: int, h: Header) -> bool:
        """Whether the whole frame at ``i`` is an info frame to drop, not audio."""
        return False

    @classmethod
    def score(cls, head: bytes) -> float:
        """How sure we are that ``head`` is this format: 0, or 0.5..1 once locked.

        The more of the head that is junk rather than frames or tags, the lower.
        """
        framer = cls()
        framer.feed(head)
        framer.flush()
        if not head or (framer.frame_count == 0 and "xing" not in framer.drops):
            return 0.0
        junk = framer.drops.get("junk", 0)
        return 0.5 + 0.5 * (1.0 - junk / len(head))

    def flush(self) -> list[Frame]:
        """End of stream: return the last whole frames and drop the rest.

        The framer is then ready for a new stream.
        """
        out = self._run(eof=True)
        rest = len(self._buf)
        self._drop(rest, "truncated" if self._locked else "junk")
        self._buf.clear()
        self._locked = False
        self._skip = 0
        return out

    def _chain(self, buf: bytearray, c: int, end: int, eof: bool) -> int:
        """Whether three frames chain from ``c``: key if so, -2 if not, ``_NEED``.

        At the end of the stream two whole chained frames are enough.
        """
        hl = self.HEADER_LEN
        h = self._parse(buf, c)
        if h is None:
            return -2
        key = h.key
        q = c + h.length
        n = 1
        while n < 3:
            if q + hl > end:
                if not eof:
                    return _NEED
                return key if n >= 2 and q <= end else -2
            h = self._parse(buf, q)
            if h is None or h.key != key:
                return -2
            q += h.length
            n += 1
        return key

    def _run(self, eof: bool) -> list[Frame]:
        buf = self._buf
        end = len(buf)
        hl = self.HEADER_LEN
        out: list[Frame] = []
        p = 0
        while p < end:
            if self._skip:
                p = self._skip_ahead(p, end)
                continue
            if self._locked:
                if end - p < hl:
                    break
                h = self._parse(buf, p)
                if h is not None and h.key == self._key:
                    q = p + h.length
                    if q > end:
                        break
                    if self._silent(buf, p, h):
                        self._drop(h.length, "xing")
                    else:
                        # A new key (rate, version, channels) cannot share a file with
                        # the old one: its headers and Xing counts would lie.
                        changed = self._emitted_key not in (-1, h.key)
                        self._emitted_key = h.key
                        out.append(
                            Frame(bytes(buf[p:q]), h.samples, h.sample_rate, new_link=changed)
                        )
                    p = q
                    continue
                tag = tag_at(buf, p, end, id3v1=True)
                if tag == _NEED and not eof:
                    break
                if isinstance(tag, tuple):
                    self._skip, self._skip_reason = tag
                    continue
                self._locked = False
                self.resyncs += 1
                continue
            # Searching: the next plausible header or tag signature.
            m = self.SEARCH.search(buf, p)
            if m is None:
                keep = 0 if eof else min(_KEEP, end - p)
                self._drop(end - keep - p, "junk")
                p = end - keep
                break
            self._drop(m.start() - p, "junk")
            p = m.start()
            if buf[p] != 0xFF:
                tag = tag_at(buf, p, end, id3v1=False)
                if tag == _NEED and not eof:
                    break
                if isinstance(tag, tuple):
                    self._skip, self._skip_reason = tag
                else:
                    self._drop(1, "junk")
                    p += 1
                continue
            if end - p < hl:
                if not eof:
                    break
                key = -2
            else:
                key = self._chain(buf, p, end, eof)
            if key == _NEED:
                break
            if key >= 0:
                self._locked = True
                self._key = key
                continue
            self._drop(1, "junk")
            p += 1
        del buf[:p]
        self.frame_count += len(out)
        return out
