"""The Ogg page module on its own (RFC 3533 section 6): parse and write back, the CRC
against libogg's, lacing, and garbage that may raise only the documented errors."""

from __future__ import annotations

import itertools
import random
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isr.framing.oggpage import (
    BOS,
    EOS,
    HEADER_SIZE,
    MAX_PAGE_SIZE,
    OggPage,
    OggPageError,
    PageTruncated,
    body_start,
    crc32_ogg,
    lacing_values,
    packet_layout,
    page_crc,
    page_crc_ok,
    page_fields,
    page_length,
    page_packets,
    restamp,
)
from tests.support.media import MediaFactory
from tests.test_ogg import FUZZ, crc_reference, make_page

OGGENC_BOS = bytes.fromhex(
    "4f67675300020000000000000000d2040000000000009e0fc34f011e01766f726269730000000001"
    "401f000000000000b0360000000000009901"
)
"""The first page of ``oggenc -s 1234 -q 0`` (vorbis-tools 1.4.2) on 0.5 s of mono
8 kHz: the Vorbis identification header, its CRC computed by libogg."""


def reassemble(pages: list[OggPage]) -> list[bytes]:
    """The packets of consecutive pages, joined across page boundaries."""
    packets: list[bytes] = []
    partial = b""
    for page in pages:
        for data, complete in page.packets():
            partial += data
            if complete:
                packets.append(partial)
                partial = b""
    assert partial == b""
    return packets


# -- a real page -------------------------------------------------------------------------


def test_a_page_that_oggenc_wrote_parses_by_name_and_its_crc_is_libogg_s() -> None:
    page = OggPage.parse(OGGENC_BOS)
    assert (page.version, page.header_type, page.granule_position) == (0, BOS, 0)
    assert (page.serial, page.sequence, page.checksum) == (1234, 0, 0x4FC30F9E)
    assert page.bos and not page.eos and not page.continued and page.complete
    assert page.lacing == bytes([30]) and page.body.startswith(b"\x01vorbis")
    assert page.size == len(OGGENC_BOS) == page_length(OGGENC_BOS) == 58
    assert page.write() == OGGENC_BOS
    assert page.crc() == page_crc(OGGENC_BOS) == 0x4FC30F9E and page.crc_ok
    assert page_crc_ok(OGGENC_BOS)
    assert crc32_ogg(OGGENC_BOS[:22] + bytes(4) + OGGENC_BOS[26:]) == 0x4FC30F9E
    assert page_fields(OGGENC_BOS) == (BOS, 0, 1234, 0)
    assert body_start(OGGENC_BOS) == 28 and lacing_values(OGGENC_BOS) == bytes([30])
    assert page_packets(OGGENC_BOS) == [(28, 58, True)]


@pytest.mark.parametrize("kind", ["vorbis", "opus", "oggflac"])
def test_every_page_of_an_encoded_file_round_trips(kind: str, media: MediaFactory) -> None:
    data = Path(media(kind, 3.0)).read_bytes()
    at = pages = 0
    while at < len(data):
        length = page_length(data, at)
        assert length > 0 and at + length <= len(data), at
        raw = data[at : at + length]
        page = OggPage.parse(data, at)
        assert page.write() == raw and page.size == length
        assert (
            page.crc_ok
            and page_crc_ok(raw)
            and page.checksum == crc_reference(raw[:22] + bytes(4) + raw[26:])
        )
        assert page_fields(raw) == (
            page.header_type,
            page.granule_position,
            page.serial,
            page.sequence,
        )
        at += length
        pages += 1
    assert pages >= 3


# -- the CRC -----------------------------------------------------------------------------


def test_the_crc_of_a_page_is_the_textbook_one_with_its_field_zeroed() -> None:
    rng = random.Random(5)
    for n in (0, 1, 3, 255, 1000):
        packets = [rng.randbytes(rng.randrange(600)) for _ in range(n % 7)]
        page = make_page(packets, serial=rng.getrandbits(32), granule=rng.getrandbits(62))
        zeroed = page[:22] + bytes(4) + page[26:]
        assert page_crc(page) == crc32_ogg(zeroed) == crc_reference(zeroed)
        assert page_crc_ok(page)
        broken = bytearray(page)
        broken[rng.randrange(len(page))] ^= 1 << rng.randrange(8)
        assert not page_crc_ok(bytes(broken))


@FUZZ
@given(
    st.lists(st.binary(max_size=700), max_size=6),
    st.integers(0, 7),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)
def test_restamp_gives_the_crc_a_full_computation_gives(
    packets: list[bytes], flags: int, granule: int, serial: int, sequence: int
) -> None:
    page = make_page(packets, serial=3, seq=9, granule=1000)
    new = restamp(page, flags=flags, granule=granule, serial=serial, sequence=sequence)
    parsed = OggPage.parse(page)
    parsed.header_type, parsed.granule_position = flags, granule
    parsed.serial, parsed.sequence = serial, sequence
    assert new == parsed.with_crc().write()
    assert page_crc_ok(new) and page_fields(new) == (flags, granule, serial, sequence)
    assert restamp(page, flags=0, granule=1000, serial=3, sequence=9) is page  # unchanged


# -- lacing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "lacings"),
    [
        (0, [b"\x00"]),
        (1, [b"\x01"]),
        (254, [b"\xfe"]),
        (255, [b"\xff\x00"]),  # a multiple of 255 ends with a 0
        (256, [b"\xff\x01"]),
        (510, [b"\xff\xff\x00"]),
        (65024, [b"\xff" * 254 + b"\xfe"]),
        (65025, [b"\xff" * 255, b"\x00"]),  # 255 full segments: the 0 goes on the next page
        (65026, [b"\xff" * 255, b"\x01"]),
        (70000, [b"\xff" * 255, b"\xff" * 19 + bytes([70000 - 274 * 255])]),
    ],
)
def test_one_packet_is_laced_and_continued_across_pages(size: int, lacings: list[bytes]) -> None:
    packet = bytes(random.Random(size).randbytes(size))
    pages = OggPage.from_packets([packet], serial=5, sequence=7, granule_position=480)
    assert [p.lacing for p in pages] == lacings
    assert [p.sequence for p in pages] == list(range(7, 7 + len(pages)))
    assert [p.continued for p in pages] == [False] + [True] * (len(pages) - 1)
    assert [p.granule_position for p in pages] == [-1] * (len(pages) - 1) + [480]
    assert all(p.crc_ok and p.size <= MAX_PAGE_SIZE for p in pages)
    assert reassemble(pages) == [packet]
    for p in pages:  # every page it builds parses back to itself
        assert OggPage.parse(p.write()) == p


def test_many_packets_continue_across_small_pages_with_bos_and_eos_at_the_ends() -> None:
    rng = random.Random(9)
    packets = [rng.randbytes(rng.choice([0, 1, 255, 300, 510, 700])) for _ in range(40)]
    pages = OggPage.from_packets(
        packets, serial=1, header_type=BOS | EOS, granule_position=0, max_segments=3
    )
    assert pages[0].bos and not any(p.bos for p in pages[1:])
    assert pages[-1].eos and not any(p.eos for p in pages[:-1])
    assert all(len(p.lacing) <= 3 for p in pages)
    for before, page in itertools.pairwise(pages):
        assert page.continued == (not before.complete)
    assert reassemble(pages) == packets
    with pytest.raises(ValueError):
        OggPage.from_packets(packets, serial=1, max_segments=256)


def test_packet_layout_and_pieces_of_a_page() -> None:
    page = make_page([b"a" * 3, b"", b"b" * 255, b"c" * 510], last_open=True)
    base = HEADER_SIZE + 1 + 1 + 2 + 2
    starts, ends, open_, zero = packet_layout(page)
    assert ends == [base + 3, base + 3, base + 258]
    assert starts == [base, base + 3, base + 3, base + 258] and open_ and zero
    assert page_packets(page) == [
        (base, base + 3, True),
        (base + 3, base + 3, True),
        (base + 3, base + 258, True),
        (base + 258, base + 768, False),
    ]
    parsed = OggPage.parse(page)
    assert [len(d) for d, _ in parsed.packets()] == [3, 0, 255, 510]
    assert not parsed.complete
    assert packet_layout(make_page([])) == ([HEADER_SIZE], [], False, False)


# -- garbage -----------------------------------------------------------------------------


def test_what_is_no_page_and_what_is_cut_short() -> None:
    page = make_page([b"x" * 300])
    assert page_length(b"junk" + page, 4) == len(page)
    assert page_length(page[:3]) == 0  # not even the capture pattern
    assert page_length(b"OggS\x01" + page[5:]) == 0  # version 1
    assert page_length(page[:5] + b"\x08" + page[6:]) == 0  # a flag RFC 3533 lacks
    for cut in (4, 5, 26, 27, 28):  # the header or the segment table (255, 45) cut off
        assert page_length(page[:cut]) == -1
    assert page_length(page[:29]) == len(page)  # known, though the body is not there
    for cut in range(len(page)):
        with pytest.raises(PageTruncated):
            OggPage.parse(page[:cut])
    for junk in (b"OggT" + page[4:], b"OggS\x01" + page[5:]):
        with pytest.raises(OggPageError) as err:
            OggPage.parse(junk)
        assert not isinstance(err.value, PageTruncated)
    with pytest.raises(OggPageError):
        OggPage.parse(page, len(page) + 1)


def test_a_page_whose_table_and_body_disagree_is_not_written() -> None:
    page = OggPage.parse(make_page([b"abc"]))
    page.body = b"abcd"
    with pytest.raises(OggPageError):
        page.write()
    page.body, page.serial = b"abc", 2**32
    with pytest.raises(struct.error):
        page.write()


@FUZZ
@given(st.binary(max_size=400), st.integers(0, 40), st.booleans())
def test_garbage_raises_only_the_documented_errors(data: bytes, at: int, capture: bool) -> None:
    if capture:  # a capture pattern and version at ``at``: the rest is garbage
        data = data[:at] + b"OggS\x00" + data[at:]
    length = page_length(data, at)
    assert isinstance(length, int) and length >= -1
    try:
        page = OggPage.parse(data, at)
    except OggPageError:
        assert length <= 0 or at + length > len(data)
    else:
        assert page.write() == data[at : at + length] and page.size == length
    if length > 0 and at + length <= len(data):
        raw = data[at : at + length]
        page_crc_ok(raw)
        assert sum(b - a for a, b, _ in page_packets(raw)) == length - body_start(raw)
