"""The Ogg framer and writer on pages built in code (RFC 3533, RFC 7845).

A synthetic Opus stream is easy to make exactly: an ``OpusHead``, an ``OpusTags``
and audio packets whose TOC byte says how many samples they hold. On it the
tests check the CRC, page parsing, any chunking, resync after corruption, chains,
multiplexing, byte accounting, and the writer's renumbering and rebasing.
"""

from __future__ import annotations

import os
import random
import struct
import zlib
from collections.abc import Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isr.framing.base import Frame, Framer
from isr.framing.ogg import (
    BOS,
    CONTINUED,
    EOS,
    OggFrame,
    OggFramer,
    crc32_ogg,
    page_crc_ok,
    page_packets,
)
from isr.framing.oggcodecs import codec_for, flac_block_size, opus_samples, vorbis_modes
from isr.framing.oggcount import _count_packets, _count_vorbis, carry
from tests.support.framing import granules_disagree

_EXAMPLES = os.environ.get("ISR_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES or 60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=_EXAMPLES is None,
)


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else r << 1
        table.append(r & 0xFFFFFFFF)
    return table


_TABLE = _crc_table()


def crc_reference(data: bytes) -> int:
    """The textbook table-driven, unreflected CRC-32 of RFC 3533 / libogg."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _TABLE[(crc >> 24) ^ b]
    return crc


def lacing(packets: Sequence[bytes], last_open: bool = False) -> bytes:
    out = bytearray()
    for i, p in enumerate(packets):
        n = len(p)
        out += b"\xff" * (n // 255)
        if not (last_open and i == len(packets) - 1):
            out.append(n % 255)
    return bytes(out)


def make_page(
    packets: Sequence[bytes],
    *,
    serial: int = 7,
    seq: int = 0,
    granule: int = 0,
    flags: int = 0,
    last_open: bool = False,
) -> bytes:
    """One page of whole packets (the last one left open if ``last_open``; its
    length must then be a multiple of 255)."""
    lace = lacing(packets, last_open)
    head = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(lace))
    page = bytearray(head + lace + b"".join(packets))
    struct.pack_into("<I", page, 22, crc_reference(bytes(page)))
    return bytes(page)


OPUS_HEAD = b"OpusHead\x01\x02" + struct.pack("<HIhB", 312, 48000, 0, 0)
TOC_20MS = bytes([31 << 3])  # CELT fullband 20 ms, one frame: 960 samples


def opus_tags(title: str = "Song", artist: str = "Band") -> bytes:
    vendor = b"test"
    items = [f"TITLE={title}".encode(), f"ARTIST={artist}".encode()]
    body = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(items))
    for it in items:
        body += struct.pack("<I", len(it)) + it
    return b"OpusTags" + body


def opus_stream(
    pages: int,
    *,
    serial: int = 7,
    per_page: int = 5,
    seed: int = 0,
    head: bytes = OPUS_HEAD,
    title: str = "Song",
    start: int = 0,
) -> list[bytes]:
    """A whole Ogg Opus link: headers, then ``pages`` audio pages of 20 ms packets."""
    rng = random.Random(seed)
    out = [
        make_page([head], serial=serial, seq=0, flags=BOS),
        make_page([opus_tags(title)], serial=serial, seq=1),
    ]
    granule = start
    for i in range(pages):
        packets = [TOC_20MS + rng.randbytes(rng.randint(20, 300)) for _ in range(per_page)]
        granule += 960 * per_page
        flags = EOS if i == pages - 1 else 0
        out.append(make_page(packets, serial=serial, seq=2 + i, granule=granule, flags=flags))
    return out


def run(data: bytes, sizes: Sequence[int] = ()) -> tuple[list[Frame], OggFramer]:
    framer = OggFramer()
    frames: list[Frame] = []
    for chunk in pieces(data, sizes or [len(data) or 1]):
        frames += framer.feed(chunk)
    frames += framer.flush()
    assert sum(len(f.data) for f in frames) + framer.dropped_bytes == len(data)
    assert sum(framer.drops.values()) == framer.dropped_bytes
    return frames, framer


def pieces(data: bytes, sizes: Sequence[int]) -> Iterator[bytes]:
    pos = i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield data[pos : pos + n]
        pos += n
        i += 1


def key(frames: Sequence[Frame]) -> list[tuple[bytes, int, bool, bool, str | None]]:
    return [(f.data, f.samples, f.cut, f.new_link, f.title) for f in frames]


def write_file(frames: Sequence[Frame], framer: OggFramer) -> bytes:
    w = framer.file_writer()
    out = bytearray(w.begin(frames[0]))
    out += w.write(frames)
    out += w.end()
    for off, data in w.patches():
        out[off : off + len(data)] = data
    return bytes(out)


def parse_pages(data: bytes) -> list[tuple[int, int, int, int]]:
    """(flags, granule, serial, sequence) of each page of a file we wrote."""
    out = []
    p = 0
    while p < len(data):
        assert data.startswith(b"OggS", p)
        nseg = data[p + 26]
        length = 27 + nseg + sum(data[p + 27 : p + 27 + nseg])
        page = data[p : p + length]
        assert page_crc_ok(page)
        flags, granule, serial, seq = struct.unpack_from("<BqII", page, 5)
        out.append((flags, granule, serial, seq))
        p += length
    return out


# -- CRC and pages ----------------------------------------------------------------------


def test_crc_matches_the_table_driven_reference() -> None:
    rng = random.Random(1)
    for n in (0, 1, 2, 3, 27, 255, 4096):
        data = rng.randbytes(n)
        assert crc32_ogg(data) == crc_reference(data)
    # A known vector: the CRC of "OggS" alone is not zlib's (that one is reflected).
    assert crc32_ogg(b"OggS") != zlib.crc32(b"OggS")


def test_page_packets_and_continuation() -> None:
    big = bytes(range(256)) * 2  # 512 bytes: lacing 255, 255, 2
    page = make_page([b"abc", big, b""], flags=0)
    body = 27 + page[26]
    assert page_packets(page) == [
        (body, body + 3, True),
        (body + 3, body + 515, True),
        (body + 515, body + 515, True),
    ]
    open_page = make_page([b"x" * 510], last_open=True)
    assert page_packets(open_page) == [(29, 29 + 510, False)]


def test_codec_helpers() -> None:
    assert opus_samples(bytes([31 << 3])) == 960
    assert opus_samples(bytes([0 << 3 | 1])) == 2 * 480  # SILK 10 ms, two frames
    assert opus_samples(bytes([16 << 3 | 3, 6])) == 6 * 120  # CELT 2.5 ms, code 3
    assert opus_samples(bytes([3 << 3 | 3, 3])) == 0  # 3 x 60 ms > 120 ms: malformed
    assert opus_samples(b"") == 0
    assert flac_block_size(b"\xff\xf8\xc9\x18\x00") == 4096
    assert flac_block_size(b"\xff\xf8\x79\x18\x00\x01\x00") == 256 + 1  # 16-bit at end
    assert flac_block_size(b"\x00\x00\x00\x00\x00") == 0
    c = codec_for(OPUS_HEAD)
    assert c is not None and c.name == "opus" and c.extension == ".opus"
    assert codec_for(b"\x80theora" + bytes(40)) is None
    assert vorbis_modes(b"nope") is None


# -- framing ----------------------------------------------------------------------------


def test_headers_then_audio_pages() -> None:
    pages = opus_stream(4)
    frames, framer = run(b"".join(pages))
    assert [f.data for f in frames] == pages
    assert [f.samples for f in frames] == [0, 0, 4800, 4800, 4800, 4800]
    heads = frames[:2]
    assert heads[0].new_link and heads[0].title == "Band - Song"
    assert not heads[1].cut
    assert not frames[2].cut  # the first audio page of a new link: never a file of headers
    assert all(f.cut for f in frames[3:-1])
    assert not frames[-1].cut  # a link's last page: no file of it alone
    assert framer.extension == ".opus"
    assert framer.dropped_bytes == 0 and framer.granule_mismatches == 0
    assert not granules_disagree(frames)


def test_first_page_after_a_connect_is_computed_from_its_packets() -> None:
    pages = opus_stream(4, start=123456)  # granules far from 0: joined mid-stream
    frames, _ = run(b"".join(pages[:2] + pages[3:]))
    assert [f.samples for f in frames[2:]] == [4800, 4800, 4800]


@pytest.mark.parametrize("sizes", [[1], [2, 3], [26, 27, 28], [700], [4096, 1, 13]])
def test_any_chunking_gives_the_same_frames(sizes: list[int]) -> None:
    data = b"junk" + b"".join(opus_stream(6)) + b"OggS\x00trailing"
    whole, _ = run(data)
    chunked, _ = run(data, sizes)
    assert key(chunked) == key(whole)


def test_cut_at_every_offset() -> None:
    data = b"".join(opus_stream(3, per_page=2))
    whole, _ = run(data)
    for k in range(len(data) + 1):
        framer = OggFramer()
        frames = framer.feed(data[:k]) + framer.feed(data[k:]) + framer.flush()
        assert key(frames) == key(whole), k


def test_corrupt_crc_is_dropped_and_framing_resyncs() -> None:
    pages = opus_stream(5)
    bad = bytearray(pages[3])
    bad[40] ^= 0xFF
    data = b"".join([*pages[:3], bytes(bad), *pages[4:]])
    frames, framer = run(data)
    assert [f.data for f in frames] == [*pages[:3], *pages[4:]]
    assert framer.bad_pages >= 1
    assert framer.dropped_bytes == len(bad)
    # The page after the lost one is measured from its packets, not across the gap.
    assert [f.samples for f in frames[2:]] == [4800] * 4


def test_garbage_between_pages_and_fake_capture_patterns() -> None:
    rng = random.Random(3)
    pages = opus_stream(4)
    fake = b"OggS\x00\x00" + rng.randbytes(40)  # a capture pattern that is no page
    data = rng.randbytes(100) + pages[0] + pages[1] + fake + b"".join(pages[2:]) + b"OggS"
    frames, framer = run(data, [33])
    assert [f.data for f in frames] == pages
    assert framer.drops == {"junk": 100 + len(fake) + 4}


def test_pages_before_any_headers_and_orphans_are_dropped() -> None:
    pages = opus_stream(4)
    big = TOC_20MS + bytes(509)  # 510 bytes: two full lacing values, continued
    opened = make_page([big], seq=2, granule=-1, last_open=True)
    tail = make_page([b"tail", TOC_20MS + b"z"], seq=3, granule=7200, flags=CONTINUED)
    # Joined after the headers, in the middle of a packet: the tail page is an orphan.
    data = pages[2] + pages[0] + pages[1] + tail + pages[4]
    frames, framer = run(data)
    assert framer.drops == {"no-headers": len(pages[2]), "orphan": len(tail)}
    assert [f.data for f in frames] == [pages[0], pages[1], pages[4]]
    # With its start seen, the continued packet counts on the page it ends on.
    tail2 = make_page([b"tail", TOC_20MS + b"z"], seq=3, granule=1920, flags=CONTINUED)
    frames, framer = run(b"".join([pages[0], pages[1], opened, tail2]))
    assert [f.samples for f in frames[2:]] == [0, 1920]
    assert not frames[3].cut and framer.granule_mismatches == 0
    assert not granules_disagree(frames)


def test_multiplexed_link_keeps_the_first_audio_stream() -> None:
    skel = make_page([b"fishead\x00" + bytes(56)], serial=99, flags=BOS)
    skel_end = make_page([b""], serial=99, seq=1, flags=EOS)
    other = make_page([OPUS_HEAD], serial=55, flags=BOS)
    pages = opus_stream(3)
    data = skel + pages[0] + other + pages[1] + skel_end + b"".join(pages[2:])
    frames, framer = run(data)
    assert [f.data for f in frames] == pages
    assert framer.drops == {"other-stream": len(skel) + len(other) + len(skel_end)}


def test_chain_with_same_setup_is_stitched_and_different_setup_starts_a_file() -> None:
    first = opus_stream(3, serial=1, title="One")
    same = opus_stream(3, serial=2, title="Two", seed=1)
    mono_head = OPUS_HEAD[:9] + b"\x01" + OPUS_HEAD[10:]
    other = opus_stream(3, serial=3, title="Three", head=mono_head, seed=2)
    frames, framer = run(b"".join(first + same + other))
    links = [f for f in frames if isinstance(f, OggFrame) and f.header and f.title]
    assert [(f.title, f.new_link, f.cut) for f in links] == [
        ("Band - One", True, True),
        ("Band - Two", False, False),
        ("Band - Three", True, True),
    ]
    assert framer.header_frames == frames[-5:-3]
    # One file for the first two links: one logical stream, granules continuous.
    cut = frames.index(links[2])
    data = write_file(frames[:cut], framer)
    info = parse_pages(data)
    assert {serial for _, _, serial, _ in info} == {1}
    assert [seq for *_, seq in info] == list(range(len(info)))
    assert [g for _, g, _, _ in info[2:]] == [4800 * i for i in range(1, 7)]
    assert [flags for flags, *_ in info] == [BOS] + [0] * 6 + [EOS]
    # The next file starts with the third link's own headers.
    data = write_file(frames[cut:], framer)
    assert data.startswith(other[0]) and data[len(other[0]) :].startswith(other[1])


def test_writer_rebases_from_the_first_page_of_a_file() -> None:
    pages = opus_stream(5, start=10**9)
    frames, framer = run(b"".join(pages[:2] + pages[3:]))
    data = write_file(frames[:2] + frames[3:], framer)  # a file from the 2nd audio page
    info = parse_pages(data)
    assert [g for _, g, _, _ in info] == [0, 0, 4800, 9600, 14400]
    assert [seq for *_, seq in info] == [0, 1, 2, 3, 4]
    assert info[-1][0] == EOS and info[0][0] == BOS


def test_writer_of_headers_alone_ends_them_with_eos() -> None:
    frames, framer = run(b"".join(opus_stream(1)[:2]))
    data = write_file(frames, framer)
    assert [flags for flags, *_ in parse_pages(data)] == [BOS, EOS]


def _last_page_packets(data: bytes) -> tuple[int, bytes]:
    """(flags, lacing) of the last page of a file we wrote."""
    p = 0
    while True:
        nseg = data[p + 26]
        length = 27 + nseg + sum(data[p + 27 : p + 27 + nseg])
        if p + length == len(data):
            return data[p + 5], data[p + 27 : p + 27 + nseg]
        p += length


@pytest.mark.parametrize(
    ("tail", "lacing"),
    [
        ([TOC_20MS * 255, b""], bytes([255, 0])),  # a 255-byte packet keeps its 0 lacing
        ([TOC_20MS * 10, b"", b""], bytes([10])),
        ([TOC_20MS * 10], bytes([10])),
    ],
)
def test_writer_leaves_out_the_empty_packets_that_end_a_link(
    tail: list[bytes], lacing: bytes
) -> None:
    pages = opus_stream(2)
    pages[-1] = make_page(tail, seq=3, granule=9600 + 960, flags=EOS)
    frames, framer = run(b"".join(pages))
    flags, got = _last_page_packets(write_file(frames, framer))
    assert flags & EOS and got == lacing


def test_writer_drops_a_last_page_of_empty_packets_alone() -> None:
    pages = opus_stream(2)
    pages[-1] = make_page([TOC_20MS * 10], seq=3, granule=9600 + 960)
    pages.append(make_page([b""], seq=4, granule=9600 + 960, flags=EOS))
    frames, framer = run(b"".join(pages))
    data = write_file(frames, framer)
    info = parse_pages(data)
    assert [seq for *_, seq in info] == [0, 1, 2, 3] and info[-1][0] == EOS
    assert _last_page_packets(data)[1] == bytes([10])


# -- never raise ------------------------------------------------------------------------

seeds = st.integers(min_value=0, max_value=2**32)
chunkings = st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=12)


@FUZZ
@given(st.binary(max_size=3000), chunkings)
def test_random_bytes_never_raise(data: bytes, sizes: list[int]) -> None:
    run(data, sizes)
    run(b"OggS\x00" + data, sizes)


@FUZZ
@given(seeds, chunkings)
def test_mangled_streams_never_raise_and_chunking_does_not_matter(
    seed: int, sizes: list[int]
) -> None:
    rng = random.Random(seed)
    pages = opus_stream(3, seed=seed % 7) + opus_stream(2, serial=9, seed=seed % 5)
    data = bytearray(b"".join(pages))
    for _ in range(rng.randint(0, 4)):
        op = rng.randrange(3)
        at = rng.randrange(len(data))
        if op == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[at:at] = rng.randbytes(rng.randint(1, 60))
        else:
            del data[at : at + rng.randint(1, 300)]
    whole, framer = run(bytes(data))
    chunked, _ = run(bytes(data), sizes)
    assert key(chunked) == key(whole)
    if whole:
        write_file(whole, framer)  # the writer takes whatever the framer gives


def test_headers_that_never_end_are_dropped_not_hoarded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("isr.framing.ogg.MAX_HEADERS", 2000)
    head = make_page([OPUS_HEAD], flags=BOS)
    endless = [make_page([b"x" * 510], seq=i, last_open=True) for i in range(1, 8)]
    frames, framer = run(head + b"".join(endless) + b"".join(opus_stream(2, serial=8)))
    assert framer.drops["bad-headers"] > 0
    assert [f.samples for f in frames] == [0, 0, 4800, 4800]


def test_a_file_may_start_on_a_page_that_completes_no_packet() -> None:
    pages = opus_stream(1)
    opened = make_page([TOC_20MS + bytes(509)], seq=2, granule=-1, last_open=True)
    tail = make_page([b"tail", TOC_20MS], seq=3, granule=1920, flags=CONTINUED)
    frames, framer = run(b"".join([pages[0], pages[1], opened, tail]))
    info = parse_pages(write_file(frames, framer))
    assert [g for _, g, _, _ in info] == [0, 0, -1, 1920]
    assert [flags for flags, *_ in info] == [BOS, 0, 0, CONTINUED | EOS]


def test_ogg_framer_is_a_framer() -> None:
    framer: Framer = OggFramer()
    assert framer.format == "ogg" and framer.header_frames == []
    assert OggFramer.score(b"".join(opus_stream(2))) == 1.0
    assert OggFramer.score(b"\xff\xfb\x90\x00" * 100) == 0.0


VORBIS_ID = b"\x01vorbis" + bytes(4) + b"\x02" + struct.pack("<I", 44100) + bytes(12) + b"\xb8\x01"
"""A Vorbis identification header: stereo, 44.1 kHz, blocksizes 256 and 2048."""


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.sampled_from([0, 1, 2, 100, 254, 255, 256, 510, 600])),
        max_size=30,
    ),
    st.booleans(),
    st.sampled_from([None, b"\x00", b"\x02" * 64, b"\x01vorbis"]),
    st.sampled_from([0, 256, 2048]),
)
def test_vorbis_count_without_a_loop_agrees_packet_by_packet(
    packets: list[tuple[int, int]], last_open: bool, head: bytes | None, prev: int
) -> None:
    """The Vorbis count sums blocksizes without a loop over packets; on any page
    (empty packets, packets of 255 bytes, one left open, a head carried in, modes
    short and long, packets that are no audio) it agrees with the general count."""
    codec = codec_for(VORBIS_ID)
    assert codec is not None
    codec.modes = [0, 1]
    body = [bytes([lead]) * size for lead, size in packets]
    if last_open and body:
        body[-1] = bytes([packets[-1][0]]) * 510
    page = make_page(body, last_open=last_open and bool(body))
    general = _count_packets(codec, page, head, prev)
    assert _count_vorbis(codec, page, head, prev) == general
    # What a page hands on to the next, read without counting, is the count's.
    after = carry(codec, page, head, prev)
    assert after is None or after == general[2:]
    # It answers unless the last whole packet is empty or no audio.
    whole = [(a, b) for a, b, complete in page_packets(page) if complete]
    if whole:
        a, b = whole[-1]
        lead = head[0] if head and len(whole) == 1 else page[a] if a < b else None
        assert (after is not None) == (lead is not None and lead % 2 == 0)
    else:
        assert after is not None


@FUZZ
@given(
    st.lists(st.sampled_from([0, 1, 3, 100, 255, 510, 600]), max_size=30),
    st.booleans(),
    st.sampled_from([None, TOC_20MS, TOC_20MS * 64]),
)
def test_opus_carry_agrees_with_the_count(
    sizes: list[int], last_open: bool, head: bytes | None
) -> None:
    """An Opus page hands on only the start of the packet it leaves open."""
    codec = codec_for(OPUS_HEAD)
    assert codec is not None
    body = [TOC_20MS * size for size in sizes]
    if last_open and body:
        body[-1] = TOC_20MS * 510
    page = make_page(body, last_open=last_open and bool(body))
    count = _count_packets(codec, page, head, 0)
    assert carry(codec, page, head, 0) == count[2:]
