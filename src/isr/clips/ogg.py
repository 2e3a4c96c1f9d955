"""Clips of Ogg recordings (Vorbis ``.ogg``, Opus ``.opus``, FLAC ``.oga``): packets,
re-paged as one Ogg stream that starts at granule 0.

**Units are packets.** The walk reads a file's pages (CRCs checked, sequence numbers
consecutive as ISR's writer makes them) and counts each audio packet's samples from the
codec (``isr.framing.oggcodecs``: Vorbis blocksizes from the setup header, the Opus TOC,
the FLAC frame header). A unit's offset is where its packet's first byte is in the
file, so a part's byte range (the manifest's ``bytes``) runs from the first byte of its
first packet to the first byte of the packet after its last (or the end of the last
page): it names the packets exactly, and lies within the pages used, which ``assemble``
finds from it (the page that holds a byte: the nearest capture pattern before it that
starts a page whose CRC holds and that reaches past it). The header packets are in
``facts``; ``key`` is the codec setup (for Vorbis it includes the setup header), so a
change of setup is a new link.

Time: a packet's samples are those its file's granules count: a Vorbis packet decodes
to ``prev/4 + cur/4`` samples, the first one of a file to none (as ISR's writer counts
it: a file's first page carries what a decoder starting there gets); a page whose
granule says less (a link's end-trimmed last page) plays only to its granule, and its
last packets count that much less (``facts["trims"]``: in a clip that goes on after
it, the page plays in full, since only a stream's last page may end early). So a
file's units last what the segmenter timed it for. A Vorbis file that continues a
link places its packets up to one packet early (its first packet aired, but counts
none); never later, so a file's units never overlap the next file's (where the
planner would leave a packet out).

**Assembly.** Per link (a run of parts with one key): the header packets of its first
part re-paged (the identification header alone on a BOS page, the others on pages of
their own, granule 0, sequence numbers from 0; Ogg FLAC's STREAMINFO gets the clip's
total samples and MD5 0), then per part: the page where its first packet begins,
rebuilt without the packet pieces before it (a :class:`Literal`); the whole pages after
it, rewritten as they are read (:class:`OggPages`: sequence number, granule rebased,
serial, with the CRC that goes with them, ``oggpage.restamp``); the page
its last packet ends on, rebuilt without what follows it. The clip's granules count
from 0: its first page carries the samples its packets decode to from a decoder start
(Vorbis: its first packet none; Opus: the recorded pre-skip is kept, and the granule
counts it, as in ISR's own files); where two parts join, a Vorbis packet that its file
counted as none (its first) counts what it decodes to after the part before
(``prev/4 + cur/4``, the blocksizes read from the edge packets' mode bytes), so the
granules are those of one continuous stream. The last page of each link has EOS. Lengths are
known before the first byte: the middle pages keep their size, the edge pages are
built at assembly (two or three pages read per part). The middle pages' new sequence
numbers and granules follow from their own (a file's pages are numbered on from its
headers, its granules continuous: the walk checks the one, the writer makes the other),
so a Range in the middle reads only the pages it asks for.

**Chains** (``chains = True``): a part whose key differs from the one before starts a
new link in the clip: EOS on the previous link's last page, a new BOS with the part's
own headers, its own serial number (a fresh one if it equals the previous link's).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from isr.clips.body import CHUNK, Literal, Piece
from isr.clips.cutter import Part
from isr.clips.units import EMPTY, UnitTable, join_arrays
from isr.framing.oggcodecs import STREAMINFO_AT, Codec, codec_for
from isr.framing.oggpage import (
    BOS,
    CONTINUED,
    EOS,
    MAX_PAGE_SIZE,
    OggPage,
    page_crc_ok,
    page_fields,
    page_length,
    page_packets,
    restamp,
)
from isr.sinks.files import open_regular

__all__ = ["CUTTER", "OggCutter", "OggPages"]

log = logging.getLogger("isr.clips")

READ = 4 << 20
"""Bytes read at a time by the walk."""
HEAD = 16
"""Bytes of a packet's start kept to count its samples (a FLAC frame header)."""
_TOTAL_AT = STREAMINFO_AT + 13
"""Offset in the Ogg FLAC mapping packet of the byte whose low 4 bits start the 36-bit
total sample count; the MD5 follows the count."""

_NAMES = {"vorbis": "Vorbis", "opus": "Opus", "flac": "FLAC"}


def _codec(headers: Sequence[bytes]) -> Codec | None:
    codec = codec_for(headers[0]) if headers else None
    if codec is None:
        return None
    codec.header_packets.append(headers[0])
    for h in headers[1:]:
        codec.add_header(h)
    return codec


def _describe(codec: Codec, ident: bytes) -> str:
    if codec.name == "vorbis":
        channels = ident[11]
    elif codec.name == "opus":
        channels = ident[9]
    else:
        channels = ((ident[STREAMINFO_AT + 12] >> 1) & 7) + 1
    return f"Ogg {_NAMES[codec.name]}, {codec.sample_rate} Hz, {channels} channels"


@dataclass
class _State:
    """Where a walk stands: what a walk of the grown file goes on from."""

    prev: int = 0
    """Vorbis: the blocksize of the last packet (0: none yet)."""
    seq: int = -1
    """The sequence number of the last page."""
    pending: int = -1
    """Where a packet not yet complete begins (its first byte; -1: none)."""
    head: bytes = b""
    """That packet's first bytes."""
    total: int = 0
    """The samples of the packets so far as the file's granules count them (a Vorbis
    file's first packet: none)."""
    count: int = 0
    """Packets walked before this walk."""
    trims: list[list[int]] = field(default_factory=list)
    """(last packet, samples) of each end-trimmed page: what its packets decode to
    beyond its granule, played where the clip goes on after it."""


class OggCutter:
    chains = True

    def walk(
        self, path: Path, previous: UnitTable | None, *, final: bool, name: str = ""
    ) -> UnitTable:
        fd = open_regular(path, os.O_RDONLY, single_link=False)
        try:
            size = os.fstat(fd).st_size
            if previous is not None and previous.count:
                facts: dict[str, Any] = dict(previous.facts)
                headers = [bytes.fromhex(h) for h in facts["headers"]]
                codec = _codec(headers)
                assert codec is not None
                state = _State(
                    int(facts["prev"]), int(facts["seq"]), int(facts["pending"]),
                    bytes.fromhex(str(facts["head"])), int(facts["total"]), previous.count,
                    [list(x) for x in facts["trims"]],
                )  # fmt: skip
                start, data_start = previous.walked, previous.data_start
                key, describe = previous.key, previous.describe
            else:
                previous = None
                found = _read_headers(fd, size)
                if found is None:
                    return UnitTable("ogg", "", "", 0, 0, walked=0, final=final)
                headers, data_start, seq, serial = found
                codec = _codec(headers)
                assert codec is not None
                state = _State(seq=seq)
                start = data_start
                key, describe = codec.key.hex(), _describe(codec, headers[0])
                facts = {"headers": [h.hex() for h in headers], "serial": serial}
            offsets, samples, end, odd = _walk(fd, start, size, codec, state)
            if previous is None and offsets:
                data_start = offsets[0]
        finally:
            os.close(fd)
        if odd:
            log.warning(
                "%s: %s at byte %d; clips use the packets before it", name or path.name, odd, end
            )
            facts["odd"] = end
        if final or odd:
            state.pending = -1  # a packet never completed is not in the file
        boundary = state.pending if state.pending >= 0 else end
        facts.update(
            prev=state.prev,
            seq=state.seq,
            pending=state.pending,
            head=state.head.hex(),
            total=state.total,
            trims=state.trims,
        )
        # Sizes make each unit's offset the start of its packet's first page.
        if previous is not None:
            all_offsets = [int(previous.offsets[-2]), *offsets, boundary]
            old_sizes = previous.sizes[:-1]
        else:
            all_offsets = [*offsets, boundary]
            old_sizes = EMPTY
        sizes = np.diff(np.asarray(all_offsets, dtype=np.int64)).astype(np.uint32)
        return UnitTable(
            "ogg",
            key,
            describe,
            codec.sample_rate,
            data_start,
            np.concatenate([old_sizes, sizes]) if len(all_offsets) > 1 else old_sizes,
            join_arrays(previous.samples if previous is not None else EMPTY, samples),
            walked=end,
            final=final or odd is not None,
            facts=facts,
        )

    def assemble(self, parts: Sequence[Part]) -> list[Piece]:
        pieces: list[Piece] = []
        links: list[list[Part]] = []
        for p in parts:
            if p.end <= p.first:
                continue
            if links and links[-1][-1].table.key == p.table.key:
                links[-1].append(p)
            else:
                links.append([p])
        serial = -1
        for link in links:
            own = int(link[0].table.facts["serial"])
            serial = own if own != serial else (serial + 1) & 0xFFFFFFFF
            pieces.extend(_link(link, serial))
        return pieces


def _read_headers(fd: int, size: int) -> tuple[list[bytes], int, int, int] | None:
    """The header packets at the start of ``fd``, where the audio pages start, the
    last header page's sequence number and the serial; None if not a known codec."""
    pos = 0
    packets: list[bytes] = []
    partial = b""
    codec: Codec | None = None
    while pos < size:
        head = os.pread(fd, MAX_PAGE_SIZE, pos)
        n = page_length(head)
        if n <= 0 or n > len(head):
            return None
        page = head[:n]
        if not page_crc_ok(page):
            return None
        _, _, serial, seq = page_fields(page)
        for a, b, whole in page_packets(page):
            partial += page[a:b]
            if not whole:
                continue
            packet, partial = partial, b""
            if codec is None:
                codec = codec_for(packet)
                if codec is None:
                    return None
                packets.append(packet)
                codec.header_packets.append(packet)
            elif not codec.headers_done:
                packets.append(packet)
                codec.add_header(packet)
        pos += n
        if codec is not None and codec.headers_done and not partial:
            return packets, pos, seq, serial
    return None


def _walk(
    fd: int, start: int, size: int, codec: Codec, state: _State
) -> tuple[list[int], list[int], int, str | None]:
    """Pages from ``start``: the first byte's offset and the samples of each packet completed,
    where the last whole page ends, why the walk stopped early."""
    offsets: list[int] = []
    samples: list[int] = []
    vorbis = codec.name == "vorbis"
    base, buf, p = start, b"", 0
    odd: str | None = None
    while True:
        n = page_length(buf, p) if len(buf) - p >= 4 else -1
        if n == 0:
            odd = "no Ogg page"
            break
        if n < 0 or p + n > len(buf):
            left = size - (base + len(buf))
            if left <= 0:
                break
            buf = buf[p:] + os.pread(fd, min(READ, left), base + len(buf))
            base, p = base + p, 0
            continue
        page = buf[p : p + n]
        if not page_crc_ok(page):
            odd = "a page whose CRC does not hold"
            break
        flags, granule, _, seq = page_fields(page)
        if flags & BOS:
            odd = "a new logical stream"
            break
        if state.seq >= 0 and seq != (state.seq + 1) & 0xFFFFFFFF:
            odd = "a page out of sequence"
            break
        if bool(flags & CONTINUED) != (state.pending >= 0):
            odd = "a page that does not continue the packet before it"
            break
        state.seq = seq
        at = base + p
        k0 = len(samples)
        for i, (a, b, whole) in enumerate(page_packets(page)):
            if i > 0 or state.pending < 0:
                state.pending, state.head = at + a, page[a : min(b, a + HEAD)]
            elif len(state.head) < HEAD:
                state.head += page[a : min(b, a + HEAD - len(state.head))]
            if not whole:
                break
            offsets.append(state.pending)
            packet = state.head
            if vorbis:
                if not packet or packet[0] & 1:
                    count = 0  # not an audio packet
                else:
                    count, block = codec.packet_samples(packet, state.prev)
                    state.prev = block
            else:
                count = codec.packet_samples(packet, 0)[0]
            samples.append(count)
            state.pending, state.head = -1, b""
        state.total += sum(samples[k0:])
        if granule != -1 and granule < state.total:
            # An end-trimmed page (a link's last): its packets play only to its granule.
            cut = state.total - granule
            state.trims.append([state.count + len(samples) - 1, min(cut, sum(samples[k0:]))])
            for k in range(len(samples) - 1, k0 - 1, -1):
                less = min(cut, samples[k])
                samples[k] -= less
                cut -= less
            state.total = granule + cut
        p += n
    return offsets, samples, base + p, odd


# -- assembly ---------------------------------------------------------------------------


def _page_at(fd: int, offset: int) -> bytes:
    head = os.pread(fd, MAX_PAGE_SIZE, offset)
    n = page_length(head)
    if n <= 0 or n > len(head):
        raise OSError(f"no Ogg page at byte {offset}")
    return head[:n]


def _page_containing(fd: int, x: int, floor: int = 0) -> tuple[int, bytes]:
    """The page (its start, its bytes) that byte ``x`` of ``fd`` is in: the nearest
    capture pattern before it, at or after ``floor``, that starts a page whose CRC
    holds and which reaches past ``x``."""
    base = max(floor, x - MAX_PAGE_SIZE)
    buf = os.pread(fd, x - base + MAX_PAGE_SIZE, base)
    i = buf.rfind(b"OggS", 0, x - base + 1)
    while i >= 0:
        n = page_length(buf, i)
        if n > 0 and i + n > x - base and i + n <= len(buf) and page_crc_ok(buf[i : i + n]):
            return base + i, buf[i : i + n]
        i = buf.rfind(b"OggS", 0, i)
    raise OSError(f"byte {x} is in no Ogg page")


def _piece_at(page: bytes, offset: int) -> int:
    """Which packet piece of ``page`` starts at ``offset`` (in the page)."""
    for i, (a, _, _) in enumerate(page_packets(page)):
        if a == offset:
            return i
    raise OSError(f"no packet starts at byte {offset} of its page")


def _trimmed(page: bytes, keep_from: int, keep_to: int) -> OggPage:
    """``page`` with only its segments ``[keep_from, keep_to)``."""
    parsed = OggPage.parse(page)
    lacing = parsed.lacing
    a = sum(lacing[:keep_from])
    b = a + sum(lacing[keep_from:keep_to])
    parsed.lacing = lacing[keep_from:keep_to]
    parsed.body = parsed.body[a:b]
    return parsed


def _segment_of_piece(lacing: bytes, piece: int) -> int:
    """The segment index where packet piece ``piece`` of a page starts."""
    seg = 0
    for _ in range(piece):
        while lacing[seg] == 255:
            seg += 1
        seg += 1
    return seg


def _segment_end_of_piece(lacing: bytes, piece: int) -> int:
    """The segment index just after piece ``piece`` of a page ends (it ends there)."""
    seg = _segment_of_piece(lacing, piece)
    while lacing[seg] == 255:
        seg += 1
    return seg + 1


@dataclass
class _Edges:
    first_page: bytes
    first_at: int
    """Where the first page starts in the file."""
    first_seg: int
    last_page: bytes
    last_seg: int
    """Segments ``[.., last_seg)`` of the last page hold the part's last packet's end."""
    last_at: int
    """Where the last page starts in the file."""
    first_byte: int
    """The first byte of the part's first packet (Vorbis: its mode)."""
    last_byte: int
    """The first byte of the part's last packet."""


def _edges(part: Part) -> _Edges:
    t = part.table
    fd = open_regular(part.path, os.O_RDONLY, single_link=False)
    try:
        x = t.offset(part.first)
        first_at, first_page = _page_containing(fd, x)
        piece = _piece_at(first_page, x - first_at)
        first_seg = _segment_of_piece(OggPage.parse(first_page).lacing, piece)
        first_byte = first_page[x - first_at] if x - first_at < len(first_page) else 1
        x = t.offset(part.end - 1)
        at, page = _page_containing(fd, x)
        piece = _piece_at(page, x - at)
        last_byte = page[x - at] if x - at < len(page) else 1
        while True:
            pieces = page_packets(page)
            if piece < len(pieces) and pieces[piece][2]:
                lacing = OggPage.parse(page).lacing
                last_seg = _segment_end_of_piece(lacing, piece)
                return _Edges(
                    first_page, first_at, first_seg, page, last_seg, at, first_byte, last_byte
                )
            at += len(page)
            page = _page_at(fd, at)
            piece = 0
    finally:
        os.close(fd)


def _header_pages(part: Part, serial: int, total: int) -> tuple[list[bytes], int]:
    """The link's header pages and the next sequence number."""
    headers = [bytes.fromhex(h) for h in part.table.facts["headers"]]
    ident = headers[0]
    if ident.startswith(b"\x7fFLAC") and len(ident) >= _TOTAL_AT + 21:
        body = bytearray(ident)
        body[7:9] = min(len(headers) - 1, 0xFFFF).to_bytes(2, "big")
        count = (body[_TOTAL_AT] & 0xF0) << 32 | (total & 0xFFFFFFFFF)
        body[_TOTAL_AT : _TOTAL_AT + 5] = count.to_bytes(5, "big")
        body[_TOTAL_AT + 5 : _TOTAL_AT + 21] = bytes(16)
        ident = bytes(body)
    pages = OggPage.from_packets([ident], serial=serial, header_type=BOS)
    for h in headers[1:]:
        pages += OggPage.from_packets([h], serial=serial, sequence=len(pages))
    return [p.write() for p in pages], len(pages)


def _link(parts: Sequence[Part], serial: int) -> list[Piece]:
    codec = _codec([bytes.fromhex(h) for h in parts[0].table.facts["headers"]])
    vorbis = codec is not None and codec.name == "vorbis"
    prev = 0  # Vorbis: the blocksize of the last packet before the part
    total = sum(p.samples for p in parts)
    pages, seq = _header_pages(parts[0], serial, total)
    pieces: list[Piece] = [Literal(b"".join(pages))]
    before = 0  # clip granule before the part
    tail: OggPage | None = None  # the link's last page, held back for EOS
    for part in parts:
        t = part.table
        e = _edges(part)
        # The clip's granule after packet k of this part: starts[k+1] - starts[first] + base.
        # Vorbis: the part's first packet decodes in the clip to none (the link's first)
        # or to prev/4 + cur/4 (its file may count none: the file's first).
        base = before
        if vorbis and codec is not None:
            cur = codec.packet_samples(bytes((e.first_byte,)), 0)[1]
            decoded = (prev + cur) // 4 if prev and cur else 0
            base += decoded - int(t.samples[part.first])
            prev = codec.packet_samples(bytes((e.last_byte,)), 0)[1] or prev

        def granule(k: int, t: UnitTable = t, part: Part = part, base: int = base) -> int:
            return int(t.starts[k + 1]) - int(t.starts[part.first]) + base

        # A page of the file trimmed at its end (a link's last) plays in full where the
        # clip goes on after it (only a stream's last page may end early).
        end_granule = granule(part.end - 1)
        if part is not parts[-1]:
            trims = t.facts.get("trims", [])
            end_granule += sum(n for k, n in trims if part.first <= k < part.end)

        same = e.last_at == e.first_at
        first = _trimmed(e.first_page, e.first_seg, e.last_seg if same else 256)
        first.header_type &= ~(CONTINUED | BOS | EOS)
        # Packets that begin on the first page after the part's first one end on it too,
        # but for a last one left open.
        whole = _whole_pieces(first)
        if same:
            first.granule_position = end_granule
        else:
            first.granule_position = granule(part.first + whole - 1) if whole > 0 else -1
        if tail is not None:
            pieces.append(Literal(tail.with_crc().write()))
        first.serial, first.sequence = serial, seq
        seq += 1
        if same:
            tail = first
        else:
            pieces.append(Literal(first.with_crc().write()))
            lo = e.first_at + len(e.first_page)
            old_seq = page_fields(e.first_page)[3]
            file_granule_before = int(t.starts[part.first])
            middle = OggPages(
                part.path,
                lo,
                e.last_at,
                seq_delta=seq - old_seq - 1,
                granule_delta=base - file_granule_before,
                serial=serial,
            )  # fmt: skip
            seq += page_fields(e.last_page)[3] - old_seq - 1
            pieces.append(middle)
            last = _trimmed(e.last_page, 0, e.last_seg)
            last.header_type &= ~(BOS | EOS)
            last.granule_position = end_granule
            last.serial, last.sequence = serial, seq
            seq += 1
            tail = last
        before = end_granule
    if tail is not None:
        tail.header_type |= EOS
        pieces.append(Literal(tail.with_crc().write()))
    return pieces


def _whole_pieces(page: OggPage) -> int:
    """Packets that end on ``page``."""
    return sum(1 for v in page.lacing if v < 255)


@dataclass(eq=False)
class OggPages:
    """Whole pages ``[lo, hi)`` of a recording, restamped as they are read: sequence
    number plus ``seq_delta``, granule plus ``granule_delta`` (-1 stays), ``serial``."""

    path: Path
    lo: int
    hi: int
    seq_delta: int
    granule_delta: int
    serial: int

    @property
    def length(self) -> int:
        return self.hi - self.lo

    def describe(self) -> bytes:
        return (
            f"O{self.path}\0{self.lo}\0{self.hi}\0{self.seq_delta}\0{self.granule_delta}"
            f"\0{self.serial}"
        ).encode("utf-8", "surrogateescape")

    def read(self, start: int, end: int, chunk: int = CHUNK) -> Generator[bytes, None, None]:
        end = min(end, self.length)
        if start >= end:
            return
        stop = self.lo + end
        fd = open_regular(self.path, os.O_RDONLY, single_link=False)
        try:
            pos = self.lo if start == 0 else _page_containing(fd, self.lo + start, self.lo)[0]
            buf, base = b"", pos
            while pos < stop:
                p = pos - base
                n = page_length(buf, p)
                if n <= 0 or p + n > len(buf):
                    more = os.pread(fd, min(max(chunk, MAX_PAGE_SIZE), self.hi - base - len(buf)),
                                    base + len(buf))  # fmt: skip
                    buf, base, p = buf[p:] + more, pos, 0
                    n = page_length(buf, 0)
                    if n <= 0 or n > len(buf):
                        raise OSError(f"{self.path}: no whole Ogg page at byte {pos}")
                page = buf[p : p + n]
                flags, granule, _, seq = page_fields(page)
                out = restamp(
                    page,
                    flags=flags & CONTINUED,
                    granule=granule if granule == -1 else granule + self.granule_delta,
                    serial=self.serial,
                    sequence=(seq + self.seq_delta) & 0xFFFFFFFF,
                )
                a, b = max(start + self.lo, pos) - pos, min(stop, pos + n) - pos
                if b > a:
                    yield out[a:b]
                pos += n
        finally:
            os.close(fd)


CUTTER = OggCutter()
