"""Ogg pages (RFC 3533 section 6): the one module that knows their layout.

A page is a 27-byte header, a segment table of lacing values, and a body as long
as their sum::

    offset  field
     0      capture_pattern            b"OggS"
     4      stream_structure_version   0
     5      header_type                CONTINUED 1, BOS 2, EOS 4
     6      granule_position           int64 LE; -1 on a page where no packet ends
    14      bitstream_serial_number    uint32 LE
    18      page_sequence_number       uint32 LE
    22      CRC_checksum               uint32 LE, of the page with this field zero
    26      number_page_segments       0..255
    27      segment_table              a packet ends at each lacing value under 255

Two levels, for two kinds of callers:

- functions on a page's bytes, for the per-page path of the framer and the file
  writer (a live stream brings a page or more a second, a thousand streams share a
  process): ``page_length`` of a page in a buffer, ``page_crc_ok``,
  ``page_fields``, ``page_packets``, and ``restamp``, which gives a page new header
  fields and the CRC that goes with them;
- ``OggPage``, a page as a value with named fields, for everything else: parsed
  at an offset, written back to exactly the bytes it was parsed from, built from
  packets with their lacing.

The CRC is the unreflected CRC-32 (poly 0x04C11DB7, init 0, no final xor), which
neither zlib nor binascii computes. ``fastcrc`` (Rust's crc crate) computes
CRC-32/CKSUM, the same CRC with a final xor of 0xFFFFFFFF, undone here. A call
costs well under a microsecond, mostly Python's, so each page's CRC is one call
over one copy: a check (``page_crc_ok``) costs a sixth of the instructions that
zlib's reflected CRC over bit-reversed bytes (``bytes.translate``), the way this
module did it before, cost; ``restamp`` under half of deriving the new CRC from
the old by linearity.

Errors: ``OggPage.parse`` raises ``OggPageError`` (a ``ValueError``) on bytes that
are no page, and its subclass ``PageTruncated`` on a page cut short; nothing else.
The functions on bytes raise nothing on garbage (``page_length`` says 0 or -1).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import accumulate, compress, repeat

from fastcrc import crc32 as _crc32

__all__ = [
    "BOS",
    "CONTINUED",
    "EOS",
    "HEADER_SIZE",
    "MAX_PAGE_SIZE",
    "OggPage",
    "OggPageError",
    "PageTruncated",
    "body_start",
    "crc32_ogg",
    "lacing_values",
    "packet_layout",
    "page_crc",
    "page_crc_ok",
    "page_fields",
    "page_length",
    "page_packets",
    "restamp",
]

CAPTURE = b"OggS"
CONTINUED, BOS, EOS = 1, 2, 4
HEADER_SIZE = 27
"""Bytes of the fixed header, up to the segment table."""
MAX_SEGMENTS = 255
MAX_PAGE_SIZE = HEADER_SIZE + MAX_SEGMENTS + MAX_SEGMENTS * 255
"""65,307 bytes: 255 lacing values of 255."""

_FLAGS_AT = 5
_CRC_AT = 22
_SEGMENTS_AT = 26

_HEADER = struct.Struct("<4sBBqIIIB")
"""The whole fixed header, capture pattern to segment count."""
_FIELDS = struct.Struct("<BqII")
"""header_type, granule_position, serial, sequence: bytes 5 to 21."""
_CRC_FIELD = struct.Struct("<I")
_LENGTH_FIELDS = struct.Struct("<4sBB20xB")
"""capture_pattern, version, header_type and the segment count: what a length needs."""

_ENDS = bytes(int(v < 255) for v in range(256))
"""1 for a lacing value that ends a packet (under 255), else 0."""
_ZERO_CRC = bytes(4)
_cksum = _crc32.cksum
_XOR_OUT = 0xFFFFFFFF
"""CRC-32/CKSUM's final xor: the Ogg CRC is ``_cksum(data) ^ _XOR_OUT``."""


class OggPageError(ValueError):
    """Bytes that are no Ogg page: no capture pattern, a version other than 0,
    header_type flags that RFC 3533 does not define."""


class PageTruncated(OggPageError):
    """Bytes that may start an Ogg page but end before it does."""


# -- the CRC -----------------------------------------------------------------------------


def crc32_ogg(data: bytes | bytearray | memoryview) -> int:
    """The Ogg CRC (RFC 3533 section 6) of ``data`` (the CRC field already zeroed)."""
    return _cksum(data) ^ _XOR_OUT


def page_crc(page: bytes) -> int:
    """The CRC ``page`` should carry: of its bytes with the CRC field taken as zero.
    (Of a copy with the field zeroed: one call over a copy costs fewer instructions
    than three calls over the parts.)"""
    return _cksum(b"".join((page[:_CRC_AT], _ZERO_CRC, memoryview(page)[_CRC_AT + 4 :]))) ^ _XOR_OUT


def page_crc_ok(page: bytes) -> bool:
    """Whether the page's stored CRC matches its bytes."""
    return page_crc(page) == int.from_bytes(page[_CRC_AT : _CRC_AT + 4], "little")


# -- a page's bytes ------------------------------------------------------------------------


def page_length(buf: bytes | bytearray | memoryview, at: int = 0) -> int:
    """Length of the page at ``buf[at:]``, read from its header and segment table
    (its body may not all be there yet); 0 if no page starts there (capture
    pattern, version or flags), -1 if ``buf`` ends before its segment table does."""
    have = len(buf) - at
    if have >= HEADER_SIZE:  # the common case, in one unpack
        fields: tuple[bytes, int, int, int] = _LENGTH_FIELDS.unpack_from(buf, at)
        capture, version, flags, nseg = fields
        if capture != CAPTURE or version or flags & 0xF8:
            return 0
        table = at + HEADER_SIZE
        if have < HEADER_SIZE + nseg:
            return -1
        return HEADER_SIZE + nseg + sum(buf[table : table + nseg])
    if buf[at : at + 4] != CAPTURE:
        return 0
    if have > 4 and buf[at + 4] != 0:
        return 0
    if have > _FLAGS_AT and buf[at + _FLAGS_AT] & 0xF8:
        return 0
    return -1


def body_start(page: bytes) -> int:
    """Offset of the body in ``page``: after the header and the segment table."""
    return HEADER_SIZE + page[_SEGMENTS_AT]


def lacing_values(page: bytes) -> bytes:
    """The page's segment table."""
    return page[HEADER_SIZE : HEADER_SIZE + page[_SEGMENTS_AT]]


def page_fields(page: bytes) -> tuple[int, int, int, int]:
    """(header_type, granule_position, serial, sequence) of ``page``."""
    fields: tuple[int, int, int, int] = _FIELDS.unpack_from(page, _FLAGS_AT)
    return fields


def packet_layout(page: bytes) -> tuple[list[int], list[int], bool, bool]:
    """(starts, ends, open, zero) of the packet pieces of ``page``'s body, as offsets
    in ``page``: piece ``i`` of those that end on the page is ``starts[i]:ends[i]``;
    ``starts`` has one more entry, where a piece that goes on in the next page
    starts if ``open``; ``zero``: a lacing value is 0 (an empty packet, or the end
    of one whose length is a multiple of 255). Computed in C: the lacing values'
    running sums, kept where the value is under 255."""
    nseg = page[_SEGMENTS_AT]
    base = HEADER_SIZE + nseg
    lacing = page[HEADER_SIZE:base]
    ends = list(compress(accumulate(lacing, initial=base), b"\0" + lacing.translate(_ENDS)))
    return [base, *ends], ends, nseg > 0 and lacing[-1] == 255, 0 in lacing


def page_packets(page: bytes) -> list[tuple[int, int, bool]]:
    """(start, end, complete) of each packet piece in the page's body, as offsets in
    ``page``; the last piece is incomplete when the page ends on lacing value 255."""
    starts, ends, open_, _ = packet_layout(page)
    out = list(zip(starts, ends, repeat(True)))
    if open_:
        out.append((starts[-1], body_start(page) + sum(lacing_values(page)), False))
    return out


def restamp(page: bytes, *, flags: int, granule: int, serial: int, sequence: int) -> bytes:
    """``page`` with new header fields, and the CRC that goes with them (``page``
    itself when nothing changes)."""
    if _FIELDS.unpack_from(page, _FLAGS_AT) == (flags, granule, serial, sequence):
        return page
    out = bytearray(page)
    _FIELDS.pack_into(out, _FLAGS_AT, flags, granule, serial, sequence)
    out[_CRC_AT : _CRC_AT + 4] = _ZERO_CRC
    _CRC_FIELD.pack_into(out, _CRC_AT, _cksum(out) ^ _XOR_OUT)
    return bytes(out)


# -- a page as a value ---------------------------------------------------------------------


@dataclass(slots=True)
class OggPage:
    """One page with its header fields by name (RFC 3533 section 6).

    ``lacing`` and ``body`` are kept as they were, so ``write()`` gives back exactly
    the bytes ``parse`` read, a stored CRC that does not hold included; ``with_crc()``
    makes the page whose CRC does. Pages are equal when they write the same bytes.
    """

    version: int = 0
    header_type: int = 0
    """``CONTINUED``, ``BOS``, ``EOS`` flags."""
    granule_position: int = 0
    serial: int = 0
    sequence: int = 0
    checksum: int = 0
    """The CRC as stored."""
    lacing: bytes = b""
    """The segment table: one value per 255-byte segment of the body."""
    body: bytes = b""

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, offset: int = 0) -> OggPage:
        """The page at ``data[offset:]``; raises ``OggPageError`` if none starts there,
        ``PageTruncated`` if it is cut short. Its CRC is not checked (``crc_ok``)."""
        data = bytes(data)
        if offset < 0 or offset > len(data):
            raise OggPageError(f"offset {offset} outside the {len(data)} bytes")
        length = page_length(data, offset)
        if length == 0 and CAPTURE.startswith(data[offset:]):
            length = -1  # the data ends inside the capture pattern, or before it
        if length == 0:
            raise OggPageError(f"no Ogg page at offset {offset}")
        if length < 0 or offset + length > len(data):
            raise PageTruncated(f"the Ogg page at offset {offset} is cut short")
        _, version, flags, granule, serial, sequence, crc, nseg = _HEADER.unpack_from(data, offset)
        table = offset + HEADER_SIZE
        return cls(
            version,
            flags,
            granule,
            serial,
            sequence,
            crc,
            data[table : table + nseg],
            data[table + nseg : offset + length],
        )

    @classmethod
    def from_packets(
        cls,
        packets: Sequence[bytes],
        *,
        serial: int,
        sequence: int = 0,
        granule_position: int = 0,
        header_type: int = 0,
        continued: bool = False,
        max_segments: int = MAX_SEGMENTS,
    ) -> list[OggPage]:
        """``packets`` laid out in pages of at most ``max_segments`` lacing values, a
        packet too long for one page continued on the next (``CONTINUED``), each
        page with its CRC. Pages get consecutive sequence numbers from ``sequence``;
        ``granule_position`` on each page where a packet ends, -1 on the others
        (RFC 3533). ``BOS`` in ``header_type`` goes on the first page, ``EOS`` on the
        last; ``continued``: the first packet continues one of an earlier page."""
        if not 1 <= max_segments <= MAX_SEGMENTS:
            raise ValueError(f"max_segments must be 1..255, not {max_segments}")
        pieces: list[tuple[int, bytes]] = []  # (lacing value, bytes) of each segment
        for packet in packets:
            for at in range(0, len(packet) // 255 * 255, 255):
                pieces.append((255, packet[at : at + 255]))
            tail = packet[len(packet) // 255 * 255 :]
            pieces.append((len(tail), tail))
        pages: list[OggPage] = []
        for start in range(0, len(pieces), max_segments):
            chunk = pieces[start : start + max_segments]
            lacing = bytes(v for v, _ in chunk)
            ended = any(v < 255 for v in lacing)
            flags = (header_type & ~(BOS | EOS)) | (CONTINUED if continued else 0)
            page = cls(
                header_type=flags,
                granule_position=granule_position if ended else -1,
                serial=serial,
                sequence=(sequence + len(pages)) & 0xFFFFFFFF,
                lacing=lacing,
                body=b"".join(b for _, b in chunk),
            )
            pages.append(page)
            continued = lacing[-1] == 255
        if pages:
            pages[0].header_type |= header_type & BOS
            pages[-1].header_type |= header_type & EOS
        return [p.with_crc() for p in pages]

    @property
    def continued(self) -> bool:
        """The first packet piece continues a packet of an earlier page."""
        return bool(self.header_type & CONTINUED)

    @property
    def bos(self) -> bool:
        """The first page of a logical stream."""
        return bool(self.header_type & BOS)

    @property
    def eos(self) -> bool:
        """The last page of a logical stream."""
        return bool(self.header_type & EOS)

    @property
    def complete(self) -> bool:
        """The last packet piece ends on this page (no lacing value 255 last)."""
        return not self.lacing or self.lacing[-1] != 255

    @property
    def size(self) -> int:
        """The page's length in bytes, header included."""
        return HEADER_SIZE + len(self.lacing) + len(self.body)

    def packets(self) -> list[tuple[bytes, bool]]:
        """(bytes, complete) of each packet piece of the body."""
        data = self.write()
        return [(data[a:b], whole) for a, b, whole in page_packets(data)]

    def header(self) -> bytes:
        """The 27-byte header, as stored (CRC included)."""
        return _HEADER.pack(
            CAPTURE,
            self.version,
            self.header_type,
            self.granule_position,
            self.serial,
            self.sequence,
            self.checksum,
            len(self.lacing),
        )

    def write(self) -> bytes:
        """The page's bytes; raises ``OggPageError`` if its segment table and body
        disagree, ``struct.error`` for a field out of range."""
        if len(self.lacing) > MAX_SEGMENTS or sum(self.lacing) != len(self.body):
            raise OggPageError("the segment table does not match the body")
        return self.header() + self.lacing + self.body

    def crc(self) -> int:
        """The CRC the page should carry."""
        return page_crc(self.write())

    @property
    def crc_ok(self) -> bool:
        """Whether the stored CRC holds."""
        return self.crc() == self.checksum

    def with_crc(self) -> OggPage:
        """This page with the CRC that holds for its fields, lacing and body."""
        return replace(self, checksum=self.crc())
