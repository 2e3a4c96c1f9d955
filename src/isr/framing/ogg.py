"""Ogg framer: pages of Ogg Vorbis, Ogg Opus and Ogg FLAC streams (RFC 3533).

The unit a file may be cut before is a page. The framer checks every page's
CRC, resynchronises on the next ``OggS`` whose CRC holds after junk, follows the
stream's links (each BOS page starts a new one, with its own header packets),
and emits:

- the header pages of each link as frames with ``samples = 0``, all at once when
  the link's headers are complete. When the new link's setup equals the previous
  one's (a chain of tracks from one encoder) they carry only the link's title, and
  the file writer drops them and stitches the link onto the previous one
  ("de-chaining"); otherwise the first carries ``new_link`` and a new file starts.
- each audio page as a frame whose ``samples`` is the granule delta from the
  previous page of the link, or, where there is none (the first page after a
  connect or a chain), the count computed from its packets (``oggcount``); for
  FLAC always that count (its blocks are exact, some encoders' granules are not).
  Other pages are counted only on demand (``OggFrame.counts``): where the writer
  needs it, or where a granule delta is no plausible page length.

A page that continues a packet can't start a file (``cut=False``), nor can the
first audio page of a new link (a file of headers alone would be useless).
Pages of other logical streams of a multiplexed link (a skeleton, video, a
second audio stream) are dropped: the first audio stream of a link is recorded,
unless the page after the BOS pages belongs to another one. A link cut short right
after its BOS page (a source client that restarted) looks like a multiplexed one
until then; the new link it is followed by must not be lost as "another stream".
A link cut short in its headers, or whose header page was lost, is dropped up to
the next link. A first link of a codec ISR cannot record (Speex) is refused.
Pages that continue a packet whose start was never seen (after a connect or a
lost page) are dropped as ``orphan``.

The page layout, its CRC and its lacing are ``oggpage``'s; the writer of the files
and the frame type it takes are ``oggwriter``'s.
"""

from __future__ import annotations

from isr.errors import UnsupportedFormat
from isr.framing.base import FileWriter, Frame, FramerBase
from isr.framing.oggcodecs import Codec, codec_for, unsupported_codec
from isr.framing.oggcount import Count, carry, page_samples
from isr.framing.oggpage import (
    BOS,
    CONTINUED,
    EOS,
    body_start,
    crc32_ogg,
    page_crc_ok,
    page_fields,
    page_length,
    page_packets,
)
from isr.framing.oggwriter import Link, OggFrame, OggWriter

# Page helpers re-exported: the framer's users name them from here.
__all__ = [
    "BOS",
    "CONTINUED",
    "EOS",
    "Link",
    "OggFrame",
    "OggFramer",
    "crc32_ogg",
    "page_crc_ok",
    "page_packets",
]

MAX_HEADER_PACKET = 1 << 20
"""A header packet larger than this is taken for garbage."""

MAX_HEADERS = 4 << 20
"""A link whose header pages pass this size without completing is dropped."""


def _flac_frame(page: bytes) -> bool:
    """Whether the page's first packet starts with a FLAC frame's sync code."""
    at = body_start(page)
    return page[at : at + 1] == b"\xff" and page[at + 1 : at + 2] in (b"\xf8", b"\xf9")


class OggFramer(FramerBase):
    """Splits an Ogg stream into pages; follows chains; see the module docstring."""

    format = "ogg"

    def __init__(self) -> None:
        super().__init__()
        # drops: junk, other-stream, no-headers, orphan, bad-headers, truncated
        self.extension = ".ogg"
        self.bad_pages = 0
        """Candidate pages rejected for their CRC."""
        self.granule_mismatches = 0
        """Pages whose granule delta disagreed with their packets' sample count, of
        those counted (a delta of up to a second is taken uncounted)."""
        self._refused = False
        """The stream is of a codec ISR cannot record (``UnsupportedFormat`` raised)."""
        self._reset()

    def _reset(self) -> None:
        self._link: Link | None = None
        """The link being read (headers or audio)."""
        self._audio_link: Link | None = None
        """The last link whose headers completed."""
        self._held: list[bytes] = []
        self._bos_run = False
        self._chosen = False
        self._unsupported: str | None = None
        """The codec of the link being skipped, one ISR cannot record."""
        self._candidates: list[tuple[bytes, int, int, Codec]] = []
        """BOS pages (page, serial, sequence, codec) of audio streams passed over
        for the chosen one in the current group of BOS pages."""
        self._packet = bytearray()
        """The header packet being assembled."""
        self._head: bytes | None = None
        """Start of the audio packet left unfinished by the last page."""
        self._prev_bs = 0
        self._prev_granule: int | None = None
        self._next_seq = -1
        self._no_cut = False

    @classmethod
    def score(cls, head: bytes) -> float:
        """1.0 if ``head`` holds a valid page of a stream we can record, else 0."""
        framer = cls()
        try:
            frames = framer.feed(head)
        except UnsupportedFormat:
            return 1.0  # Ogg, to be refused by name
        return 1.0 if frames or framer._link is not None else 0.0

    def file_writer(self) -> FileWriter:
        return OggWriter(self._audio_link)

    def flush(self) -> list[Frame]:
        """End of stream: return what is whole, drop the rest, and start afresh."""
        out = self._run(eof=True)
        self._drop(len(self._buf), "truncated")
        self._buf.clear()
        self._drop(sum(len(p) for p in self._held), "truncated")
        self._drop_candidates("truncated")
        self._reset()
        return out

    def _run(self, eof: bool) -> list[Frame]:
        buf = self._buf
        end = len(buf)
        out: list[Frame] = []
        if self._refused:  # the stream was refused: nothing more is read of it
            self._drop(end, "unsupported")
            buf.clear()
            return out
        p = 0
        while p < end:
            i = buf.find(b"OggS", p)
            if i < 0:
                keep = 0 if eof else min(3, end - p)
                self._drop(end - keep - p, "junk")
                p = end - keep
                break
            self._drop(i - p, "junk")
            p = i
            need = page_length(buf, p)
            if need == 0:  # a capture pattern, but no version 0 or defined flags after it
                self._drop(1, "junk")
                p += 1
                continue
            if need < 0 or end - p < need:
                if not eof:
                    break
                self._drop(1, "junk")
                p += 1
                continue
            page = bytes(memoryview(buf)[p : p + need])  # one copy (a slice, then bytes: two)
            if not page_crc_ok(page):
                self.bad_pages += 1
                self._drop(1, "junk")
                p += 1
                continue
            p += need
            try:
                self._page(page, out)
            except UnsupportedFormat:
                self._refused = True
                self._drop(need + end - p, "unsupported")
                buf.clear()
                raise
        del buf[:p]
        return out

    # -- one page ----------------------------------------------------------------------

    def _page(self, page: bytes, out: list[Frame]) -> None:
        flags, granule, serial, seq = page_fields(page)
        if flags & BOS:
            self._bos(page, serial, seq)
            return
        if self._bos_run:
            self._bos_run = False
            if self._candidates:
                self._resolve(serial)
            if not self._chosen:
                self._no_link()
        link = self._link
        if link is None or serial != link.serial:
            reason = "other-stream" if link is not None else self._unsupported or "no-headers"
            self._drop(len(page), reason)
            return
        if seq != self._next_seq:  # a page was lost: what we knew of the packet is gone
            if not link.codec.headers_done:  # a header with it: the link is lost
                self._drop(sum(len(p) for p in self._held) + len(page), "bad-headers")
                self._held = []
                self._packet.clear()
                self._link = None
                return
            self._head = None
            self._prev_granule = None
        self._next_seq = (seq + 1) & 0xFFFFFFFF
        if not link.codec.headers_done:
            self._header_page(link, page, flags, granule, out)
        else:
            self._audio_page(link, page, flags, granule, out)

    def _bos(self, page: bytes, serial: int, seq: int) -> None:
        pieces = page_packets(page)
        codec = None
        if pieces and pieces[0][2]:
            codec = codec_for(page[pieces[0][0] : pieces[0][1]])
        if not self._bos_run:  # the first BOS page of a link's group
            self._chosen = False
            self._unsupported = None
            self._drop_candidates("other-stream")
        self._bos_run = True
        if codec is None:  # a codec we don't record (a skeleton, video, Speex)
            if pieces and pieces[0][2] and self._unsupported is None:
                self._unsupported = unsupported_codec(page[pieces[0][0] : pieces[0][1]])
            self._drop(len(page), "other-stream")
            return
        if self._chosen and self._link is not None and serial != self._link.serial:
            # Another audio stream of a multiplexed link, or the start of a new link
            # after one that was cut short just after its BOS page (a reconnect, a
            # source client's restart): the next page tells which.
            self._candidates.append((page, serial, seq, codec))
            return
        self._choose(page, serial, seq, codec)

    def _choose(self, page: bytes, serial: int, seq: int, codec: Codec) -> None:
        """Record the stream whose BOS ``page`` this is; a link in progress ends."""
        self._chosen = True
        self._drop(sum(len(p) for p in self._held), "truncated")  # a link cut short
        self._held = []
        self._link = Link(serial, codec)
        self._packet.clear()
        self._head = None
        self._prev_granule = None
        self._next_seq = (seq + 1) & 0xFFFFFFFF
        start, end, _ = page_packets(page)[0]
        codec.add_header(page[start:end])
        self._held.append(page)
        self._link.header_pages.append(page)
        # The identification header is alone on its page (RFC 7845 section 3 and the
        # Vorbis and FLAC mappings); anything else on it is ignored.

    def _resolve(self, serial: int) -> None:
        """The first page after a group of BOS pages: if it belongs to a stream
        passed over for the chosen one, the chosen one never went on (a link cut
        short after its BOS page): record the new one."""
        for page, own, seq, codec in self._candidates:
            if own == serial:
                self._choose(page, own, seq, codec)
            else:
                self._drop(len(page), "other-stream")
        self._candidates = []

    def _drop_candidates(self, reason: str) -> None:
        self._drop(sum(len(c[0]) for c in self._candidates), reason)
        self._candidates = []

    def _no_link(self) -> None:
        """A link began in which no stream is one we record: its pages are dropped
        up to the next link. A stream that starts so is refused by name."""
        self._drop(sum(len(p) for p in self._held), "truncated")
        self._held = []
        self._link = None
        if self._unsupported is not None:
            name = self._unsupported
            self._unsupported = f"unsupported {name}"
            if self._audio_link is None:
                raise UnsupportedFormat(
                    f"the stream is Ogg {name}: not supported "
                    "(ISR records Ogg Vorbis, Opus and FLAC)"
                )

    def _header_page(
        self, link: Link, page: bytes, flags: int, granule: int, out: list[Frame]
    ) -> None:
        codec = link.codec
        if codec.name == "flac" and not flags & CONTINUED and _flac_frame(page):
            # An audio frame where a header was due: the metadata blocks are over,
            # whether or not the last one was flagged so.
            codec.headers_done = True
            self._headers_complete(link, out)
            self._audio_page(link, page, flags, granule, out)
            return
        if sum(len(p) for p in self._held) > MAX_HEADERS:  # headers that never end
            self._drop(sum(len(p) for p in self._held) + len(page), "bad-headers")
            self._held = []
            self._link = None
            return
        self._held.append(page)
        link.header_pages.append(page)
        for start, end, complete in page_packets(page):
            self._packet += page[start:end]
            if len(self._packet) > MAX_HEADER_PACKET:
                self._packet.clear()
            if complete:
                done = codec.add_header(bytes(self._packet))
                self._packet.clear()
                if done:
                    break
        if codec.headers_done:
            self._headers_complete(link, out)

    def _headers_complete(self, link: Link, out: list[Frame]) -> None:
        codec = link.codec
        prev = self._audio_link
        same = prev is not None and prev.codec.key == codec.key
        frames = [
            OggFrame(
                page,
                0,
                codec.sample_rate,
                cut=i == 0 and not same,
                new_link=i == 0 and not same,
                title=codec.title if i == 0 else None,
                link=link,
                flags=page_fields(page)[0],
                header=True,
            )
            for i, page in enumerate(self._held)
        ]
        self._held = []
        out += frames
        self.header_frames = list(frames)
        self.extension = codec.extension
        self._audio_link = link
        if not same:
            self._prev_bs = 0
            self._no_cut = True

    def _audio_page(
        self, link: Link, page: bytes, flags: int, granule: int, out: list[Frame]
    ) -> None:
        continued = bool(flags & CONTINUED)
        if continued and self._head is None:
            self._drop(len(page), "orphan")
            return
        codec = link.codec
        head = self._head if continued else None
        prev = self._prev_bs
        counted: Count | None = None
        after = carry(codec, page, head, prev)
        if after is None:
            counted = page_samples(codec, page, head, prev)
            self._prev_bs, self._head = counted[2], counted[3]
        else:
            self._prev_bs, self._head = after
        if granule == -1:
            samples = 0
        elif self._prev_granule is None or codec.name == "flac":
            # FLAC's block sizes are exact and it trims nothing, while some granules
            # are not (liquidsoap's last page of a link claims one sample more).
            counted = counted or page_samples(codec, page, head, prev)
            samples = counted[0]
        else:
            samples = granule - self._prev_granule
            if counted is None and not 0 <= samples <= codec.sample_rate:
                counted = page_samples(codec, page, head, prev)
            # A delta of at most a second is taken as it is, uncounted: only a count
            # could tell it wrong, and a wrong one is replaced only when it exceeds
            # twice the count and a second, or is negative.
            if counted is not None and samples != counted[0]:
                computed = counted[0]
                if not (flags & EOS and 0 <= samples < computed):
                    self.granule_mismatches += 1
                if samples < 0 or samples > 2 * computed + codec.sample_rate:
                    samples = computed
        if granule != -1:
            self._prev_granule = granule
        out.append(
            OggFrame(
                page,
                samples,
                codec.sample_rate,
                # A file that would start on a link's last page holds little more
                # than a decoder's priming: the file before keeps it.
                cut=not continued and not self._no_cut and not flags & EOS,
                link=link,
                flags=flags,
                granule=granule,
                counted=counted[:2] if counted else None,
                before=(prev, head),
            )
        )
        self._no_cut = False
