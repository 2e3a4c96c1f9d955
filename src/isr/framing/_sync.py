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
"""Bytes kept back while searching: the longest partial tag signature (and
how far a signature that starts inside a frame may run past its end)."""

ID3V1_RUN = 8
"""ID3v1 tags believed in a row; a longer run of "TAG" blocks is junk."""

APE_MAX = 16 << 20
"""APE tags larger than this are taken for junk that happens to spell APETAGEX."""


def byte_class(allowed: Callable[[int], bool]) -> bytes:
    """A regex character class of the byte values ``allowed`` accepts."""
    return b"[" + b"".join(b"\\x%02x" % v for v in range(256) if allowed(v)) + b"]"


def sync_search(header: bytes) -> re.Pattern[bytes]:
    """What a search stops at: a plausible ``header`` or a tag signature.

    The regex runs in C, so junk (even a run of 0xFF bytes) costs no Python
    per byte. ID3v1 ("TAG", common text) is added where it is checked by what
    follows it (``SyncFramer._CUT``).
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

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._CUT = re.compile(cls.SEARCH.pattern + b"|TAG")

    _CUT: ClassVar[re.Pattern[bytes]] = re.compile(SEARCH.pattern + b"|TAG")
    """``SEARCH`` and ID3v1: what may start inside a frame that was cut short."""

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
        self._release = False

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

    def _follows(self, buf: bytearray, q: int, end: int, key: int, eof: bool) -> int:
        """Whether a frame ending at ``q`` is whole: 1 if two frames of this stream
        chain from ``q``, 0 when that cannot be shown (then ``_cut_at`` looks
        inside the frame), ``_NEED`` while the bytes that decide are not in.

        A source client that plays files back to back often cuts a file's last
        frame short: its header still promises the whole length, which then runs
        into the next file's tags or first frame. Only what follows tells, and one
        header there could be a tag's picture bytes: two are asked for, as cheap
        as one header parsed twice.
        """
        hl = self.HEADER_LEN
        if end - q < hl:
            return 0 if eof or self._release else _NEED
        h = self._parse(buf, q)
        if h is not None and h.key == key:
            q2 = q + h.length
            if end - q2 < hl:
                return 0 if eof or self._release else _NEED
            h2 = self._parse(buf, q2)
            return int(h2 is not None and h2.key == key)
        # A tag, a new setup or junk: the frame may still have been cut, with the
        # cut just fitting what came between (tags, another frame): look inside.
        return 0

    def _id3v1_at(self, buf: bytearray, r: int, end: int, eof: bool) -> int:
        """1 if an ID3v1 tag starts at ``r``: "TAG" followed, 128 bytes on, by a
        frame, a tag or the end of the stream (the three letters alone are common,
        even inside an APE footer); 0 if not; ``_NEED``."""
        for _ in range(ID3V1_RUN):  # a run of ID3v1 tags (some clients repeat them)
            if not buf.startswith(b"TAG", r):
                return 0 if end - r >= 3 or eof else _NEED
            r += 128
            if r >= end:
                return int(r == end) if eof else _NEED
            if buf[r] != 0x54:
                return self._starts(buf, r, end, eof)
        return 0

    def _cut_at(self, buf: bytearray, p: int, q: int, end: int, eof: bool) -> int:
        """Where a frame or tag really starts inside the frame at ``p`` that claims
        to run to ``q``: that position, ``q`` if nothing does (the frame is whole
        and junk follows it), or ``_NEED``.

        A start is believed only as the lock-on believes one: a header that chains
        three frames, a tag whose header is valid, an ID3v1 tag followed by one.
        """
        if end < q + _KEEP and not (eof or self._release):
            return _NEED  # a signature may start inside and end past what is in
        for m in self._CUT.finditer(buf, p + 1, min(end, q + _KEEP)):
            r = m.start()
            if r >= q:
                break
            if buf[r] == 0xFF:
                key = self._starts(buf, r, end, eof)
                if key == _NEED:
                    return _NEED
                if key:
                    return r
                continue
            if buf[r] == 0x54:  # "TAG"
                v1 = self._id3v1_at(buf, r, end, eof)
                if v1 == _NEED:
                    return _NEED
                if v1:
                    return r
                continue
            tag = tag_at(buf, r, end, id3v1=False)
            if tag == _NEED and not eof:
                return _NEED
            if isinstance(tag, tuple):
                return r
        return q

    def _starts(self, buf: bytearray, r: int, end: int, eof: bool) -> int:
        """1 if a chained frame or a tag starts at ``r``, 0 if not, or ``_NEED``."""
        if buf[r] == 0xFF:
            if end - r < self.HEADER_LEN:
                return 0 if eof else _NEED
            key = self._chain(buf, r, end, eof)
            return key if key == _NEED else int(key >= 0)
        if buf[r] == 0x54:
            return self._id3v1_at(buf, r, end, eof)
        tag = tag_at(buf, r, end, id3v1=False)
        if tag == _NEED:
            return 0 if eof else _NEED
        return int(isinstance(tag, tuple))

    def release(self) -> list[Frame]:
        """Frames whole by their own header that wait only for the next header.

        A stream that goes quiet, or a split that is due, must not hold its last
        frame back forever; the framer stays locked for the bytes that follow.
        """
        self._release = True
        try:
            return self._run(eof=False)
        finally:
            self._release = False

    def _run(self, eof: bool) -> list[Frame]:
        buf = self._buf
        end = len(buf)
        hl = self.HEADER_LEN
        parse = self._parse
        ahead_at = ahead2_at = -1
        ahead: Header | None = None
        ahead2: Header | None = None
        """Headers already parsed at the next two frames' positions."""
        out: list[Frame] = []
        p = 0
        while p < end:
            if self._skip:
                p = self._skip_ahead(p, end)
                continue
            if self._locked:
                if end - p < hl:
                    break
                h = ahead if ahead_at == p else parse(buf, p)
                if h is not None and h.key == self._key:
                    q = p + h.length
                    if q > end:
                        if eof:  # the stream ends inside it: keep any tag after the cut
                            r = self._cut_at(buf, p, end, end, eof)
                            if r < end:
                                self._drop(r - p, "truncated")
                                p = r
                                continue
                        break
                    # The common case inline, each header parsed once: two frames of
                    # this stream follow (kept for the next two turns).
                    whole = 0
                    key = h.key
                    if end - q >= hl:
                        hq = ahead2 if ahead2_at == q else parse(buf, q)
                        if hq is not None and hq.key == key:
                            q2 = q + hq.length
                            if end - q2 >= hl:
                                h2 = parse(buf, q2)
                                if h2 is not None and h2.key == key:
                                    whole = 1
                                    ahead_at, ahead, ahead2_at, ahead2 = q, hq, q2, h2
                    if not whole:
                        whole = self._follows(buf, q, end, key, eof)
                    if whole == _NEED:
                        break
                    if not whole:
                        r = self._cut_at(buf, p, q, end, eof)
                        if r == _NEED:
                            break
                        if r < q:
                            # Cut short: what really starts inside it is kept, the
                            # cut frame is dropped.
                            self._drop(r - p, "truncated")
                            p = r
                            continue
                        # Whole, with junk after it: the junk is found next.
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
            m = self._CUT.search(buf, p)
            if m is None:
                keep = 0 if eof else min(_KEEP, end - p)
                self._drop(end - keep - p, "junk")
                p = end - keep
                break
            r = m.start()
            if end - r < 5 and not eof and r - 3 >= p and buf.startswith(b"APETAG", r - 3):
                # The "TAG" of an "APETAGEX" not all in yet.
                self._drop(r - 3 - p, "junk")
                p = r - 3
                break
            self._drop(r - p, "junk")
            p = r
            if buf[p] != 0xFF:
                if buf[p] == 0x54:  # "TAG": ID3v1 only where a frame or tag follows
                    v1 = self._id3v1_at(buf, p, end, eof)
                    tag = (128, "id3v1") if v1 == 1 else v1 if v1 == _NEED else None
                else:
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
