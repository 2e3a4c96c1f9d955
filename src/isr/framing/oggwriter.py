"""The writer of one Ogg file: every split file is a whole, valid Ogg stream.

- It starts with the header pages of the link its first frame belongs to.
- Audio pages are renumbered on from the headers, and their granule positions
  rebased so the file starts at zero: the first audio page gets ``n_first``, the
  samples a decoder starting there gets from it (``OggFrame.fresh``), and each
  later page adds its own samples. Within a link that is ``g - (g_first -
  n_first)``; rebasing the first page to 0 instead would make opusfile and
  libsndfile reject Opus and libvorbis drop audio (RFC 7845 section 4.3,
  Vorbis I section A.2).
- A link whose headers equal the file's (the framer sends its header pages as
  frames without ``new_link``) is stitched on: its header pages are dropped and
  its pages take the file's serial number and continue its granules. The end
  trimming of the previous link's last page is undone, since a decoder of one
  continuous stream plays those samples.
- Zero-byte packets at the end of a link's last page are left out: liquidsoap
  ends each link with one; they carry no audio, opusinfo calls them invalid, and
  in the middle of a file (links joined) ffmpeg stops decoding there.
- The last page is held back until ``end()``, which sets its EOS flag.
- Ogg FLAC: the STREAMINFO of the mapping header gets MD5 0 and total samples 0,
  and the true total is patched in at close (the FLAC-in-Ogg mapping); its count
  of header packets is the number the file holds, not what the stream claimed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from isr.framing.base import Frame
from isr.framing.oggcodecs import STREAMINFO_AT, Codec
from isr.framing.oggcount import page_samples
from isr.framing.oggpage import CONTINUED, EOS, OggPage, page_fields, restamp

__all__ = ["Link", "OggFrame", "OggWriter"]

_TOTAL_AT = STREAMINFO_AT + 13
"""Offset in the FLAC mapping packet of the byte whose low 4 bits start the
36-bit total sample count; MD5 follows the count."""


@dataclass(eq=False)
class Link:
    """One link of a (possibly chained) stream: its logical stream and headers."""

    serial: int
    codec: Codec
    header_pages: list[bytes] = field(default_factory=list)


@dataclass(slots=True)
class OggFrame(Frame):
    """A page, with what the file writer needs to rewrite it (the framer makes
    them, the writer takes them: both are defined here, so the framer imports the
    writer and not the other way round)."""

    link: Link | None = None
    flags: int = 0
    """The page's header_type flags (``CONTINUED``, ``BOS``, ``EOS``)."""
    granule: int = -1
    """The page's granule position as received."""
    header: bool = False
    counted: tuple[int, int] | None = None
    """(computed, fresh) if the framer counted the page's packets; else ``counts``
    counts them when asked, from ``before``."""
    before: tuple[int, bytes | None] = (0, None)
    """(blocksize before the page, start of the packet it continues): what counting
    its packets needs (``oggcount.page_samples``)."""

    def counts(self) -> tuple[int, int]:
        """(computed, fresh): the samples the page's packets decode to after the
        packets before it (``samples`` is the granule delta, smaller than this on an
        end-trimmed EOS page), and those a decoder starting at its first whole packet
        gets from it. Counted on demand: a file's first page and a link's last."""
        if self.counted is not None:
            return self.counted
        if self.link is None or self.header:
            return 0, 0
        prev, head = self.before
        computed, fresh, _, _ = page_samples(self.link.codec, self.data, head, prev)
        return computed, fresh

    @property
    def computed(self) -> int:
        """``counts()[0]``."""
        return self.counts()[0]

    @property
    def fresh(self) -> int:
        """``counts()[1]``."""
        return self.counts()[1]


def _flac_info(page: bytes, total: int, headers: int | None = None) -> bytes:
    """The Ogg FLAC mapping header page with ``total`` samples and MD5 0 (and
    ``headers`` header packets said to follow, if given)."""
    parsed = OggPage.parse(page)
    body = bytearray(parsed.body)
    if len(body) < _TOTAL_AT + 21:
        return page
    if headers is not None:
        body[7:9] = min(headers, 0xFFFF).to_bytes(2, "big")
    count = (body[_TOTAL_AT] & 0xF0) << 32 | (total & 0xFFFFFFFFF)
    body[_TOTAL_AT : _TOTAL_AT + 5] = count.to_bytes(5, "big")
    body[_TOTAL_AT + 5 : _TOTAL_AT + 21] = bytes(16)
    parsed.body = bytes(body)
    return parsed.with_crc().write()


def _renumbered(page: bytes, sequence: int) -> bytes:
    flags, granule, serial, _ = page_fields(page)
    return restamp(page, flags=flags, granule=granule, serial=serial, sequence=sequence)


def _without_empty_tail(page: bytes) -> bytes | None:
    """``page`` without the zero-byte packets it ends with; None if that is all
    it holds. (A 0 lacing value after a 255 ends a packet, it is no empty one.)"""
    parsed = OggPage.parse(page)
    lacing = parsed.lacing
    n = len(lacing)
    while n and lacing[n - 1] == 0:
        ends_packet = lacing[n - 2] == 255 if n >= 2 else parsed.continued
        if ends_packet:
            break
        n -= 1
    if n == len(lacing):
        return page
    if n == 0:
        return None
    parsed.lacing = lacing[:n]  # the empty packets have no bytes in the body
    return parsed.with_crc().write()


class OggWriter:
    """A ``FileWriter`` for Ogg files; see the module docstring."""

    def __init__(self, link: Link | None = None) -> None:
        self._link = link
        """The link whose headers start the file."""
        self.extension: str | None = None
        """The file's extension, from its link's codec (set by ``begin``)."""
        self._current: Link | None = None
        """The link of the last audio page written."""
        self._serial = 0
        self._seq = 0
        self._total = 0
        self._started = False
        self._held: tuple[bytes, int, int, int] | None = None
        """(page, flags, granule, sequence) of the last page, not written yet."""
        self._held_frame: OggFrame | None = None
        self._info_page = b""
        """The FLAC mapping header page as written, to patch at close."""
        self._raw = False
        self.wrote_audio = False
        """An audio page reached the file: one of headers alone is no file (ffmpeg
        says "End of file"), and the segmenter discards it at close."""

    def begin(self, first: Frame) -> bytes:
        if isinstance(first, OggFrame) and first.link is not None:
            self._link = first.link
        link = self._link
        if link is not None:
            # The file's extension follows its own link, not the framer's latest one.
            self.extension = link.codec.extension
        if link is None or not link.header_pages:
            self._raw = True  # no headers known: not a decodable file in any case
            return b""
        self._current = link
        self._serial = link.serial
        pages = [_renumbered(page, i) for i, page in enumerate(link.header_pages)]
        if link.codec.name == "flac" and len(pages) > 1:
            headers = len(link.codec.header_packets) - 1
            pages[0] = self._info_page = _flac_info(pages[0], 0, headers)
        self._seq = len(pages)
        last = pages.pop()
        flags, granule, _, _ = page_fields(last)
        self._held = (last, flags, granule, len(pages))
        return b"".join(pages)

    def write(self, frames: Sequence[Frame]) -> bytes:
        if self._raw:
            self.wrote_audio = self.wrote_audio or any(f.data for f in frames)
            return b"".join(f.data for f in frames)
        parts: list[bytes] = []
        for f in frames:
            if not isinstance(f, OggFrame) or f.header:
                continue
            data = f.data
            if f.flags & EOS:  # a link's last page
                stripped = _without_empty_tail(data)
                if stripped is None:
                    continue  # nothing but the empty packets that ended the link
                data = stripped
            if f.link is not self._current:
                self._stitch()
                self._current = f.link
            if not self._started:
                self._started = f.granule != -1
                if self._started:  # n_first, less any end trimming (an EOS page)
                    computed, fresh = f.counts()
                    self._total += max(0, fresh - max(0, computed - f.samples))
            else:
                self._total += f.samples
            granule = self._total if f.granule != -1 else -1
            parts.append(self._release())
            self.wrote_audio = True
            self._held = (data, f.flags & CONTINUED, granule, self._seq)
            self._held_frame = f
            self._seq += 1
        return b"".join(parts)

    def _stitch(self) -> None:
        """A new link continues the file: play the previous link's end in full."""
        held, f = self._held, self._held_frame
        if held is None or f is None or held[2] == -1:
            return
        extra = f.computed - f.samples
        if extra <= 0:
            return
        self._total += extra
        self._held = (held[0], held[1], held[2] + extra, held[3])

    def _release(self, flags: int = 0) -> bytes:
        if self._held is None:
            return b""
        page, own, granule, seq = self._held
        self._held = None
        self._held_frame = None
        return restamp(page, flags=own | flags, granule=granule, serial=self._serial, sequence=seq)

    def end(self) -> bytes:
        if self._raw:
            return b""
        return self._release(EOS)

    def patches(self) -> list[tuple[int, bytes]]:
        if self._raw or not self._info_page:
            return []
        patched = _flac_info(self._info_page, self._total)
        return [] if patched == self._info_page else [(0, patched)]
