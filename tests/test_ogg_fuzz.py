"""Property tests for the Ogg framer and writer: chained streams built in code, then
mangled the ways a network and a reconnect mangle them.

Links of Opus and FLAC (synthetic but valid: the framer reads their headers and
counts their packets) are paged at random, with header packets spanning pages,
packets running on across pages, zero-byte packets at a link's end, multiplexed
streams beside them, links cut short in their headers; then the stream starts at
any byte, loses or repeats pages, gets junk and flipped bytes. The framer must
never raise, must account for every byte, must hand out contiguous slices of its
input in order, and must not care how the input is chunked; the writer must make
valid pages of whatever it is given.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isr.framing.base import Frame
from isr.framing.ogg import BOS, CONTINUED, EOS, OggFrame, OggFramer, page_crc_ok
from tests.test_ogg import crc_reference

_EXAMPLES = os.environ.get("ISR_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES or 60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=_EXAMPLES is None,
)
"""Fixed examples by default; ISR_FUZZ_EXAMPLES=5000 explores at random for longer."""

seeds = st.integers(min_value=0, max_value=2**32)
chunkings = st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=12)


# -- streams ------------------------------------------------------------------------------


def comments(rng: random.Random, size: int) -> bytes:
    vendor = b"fuzz"
    items = [b"TITLE=Song %d" % rng.randrange(100), b"COMMENT=" + b"x" * size]
    body = struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(items))
    return body + b"".join(struct.pack("<I", len(it)) + it for it in items)


def opus_link(rng: random.Random) -> tuple[list[bytes], list[int], int, int]:
    """(packets, samples of each, header packets, samples the last granule claims
    beyond them) of an Opus link."""
    channels = rng.choice((1, 2))
    head = b"OpusHead\x01" + bytes([channels]) + struct.pack("<HIhB", 312, 48000, 0, 0)
    tags = b"OpusTags" + comments(rng, rng.choice((10, 300, 70_000)))
    packets = [head, tags]
    for _ in range(rng.randrange(1, 40)):
        packets.append(bytes([31 << 3]) + rng.randbytes(rng.randrange(1, 400)))
    return packets, [0, 0] + [960] * (len(packets) - 2), 2, 0


def flac_link(rng: random.Random) -> tuple[list[bytes], list[int], int, int]:
    """``opus_link`` for Ogg FLAC, whose mapping header may claim more header
    packets than follow, and whose last granule one sample more than the blocks
    (as liquidsoap's do)."""
    rate, channels = 44100, rng.choice((1, 2))
    fields = rate << 44 | (channels - 1) << 41 | 15 << 36  # 16 bits, total unknown
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + fields.to_bytes(8, "big") + bytes(16)
    count = rng.choice((1, 2))
    mapping = b"\x7fFLAC\x01\x00" + count.to_bytes(2, "big") + b"fLaC" + b"\x00\x00\x00\x22"
    comment = comments(rng, rng.choice((10, 70_000)))
    block = b"\x84" + len(comment).to_bytes(3, "big") + comment
    packets = [mapping + info, block]
    for _ in range(rng.randrange(1, 30)):
        packets.append(b"\xff\xf8\xc9\x08" + rng.randbytes(rng.randrange(10, 900)))
    return packets, [0, 0] + [4096] * (len(packets) - 2), 2, rng.choice((0, 1))


def page(
    segments: list[int], body: bytes, *, flags: int, granule: int, serial: int, seq: int
) -> bytes:
    head = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(segments))
    out = bytearray(head + bytes(segments) + body)
    struct.pack_into("<I", out, 22, crc_reference(bytes(out)))
    return bytes(out)


def paginate(
    rng: random.Random,
    packets: list[bytes],
    samples: list[int],
    headers: int,
    extra: int,
    serial: int,
) -> list[bytes]:
    """Pages of one logical stream: the first packet alone on the BOS page, the
    headers ending their page, audio packets running on across pages at random."""
    out: list[bytes] = []
    seq = 0
    granule = 0
    pending: list[tuple[int, bytes, bool]] = []  # lacing value, bytes, ends a packet
    continued = False

    def flush(eos: bool = False) -> None:
        nonlocal seq, continued, pending
        while pending:
            take = pending[: min(255, rng.randrange(1, 300))]
            pending = pending[len(take) :]
            ends = [i for i, (_, _, last) in enumerate(take) if last]
            g = granule_at[id(take[ends[-1]])] if ends else -1
            flags = (CONTINUED if continued else 0) | (BOS if seq == 0 else 0)
            flags |= EOS if eos and not pending else 0
            body = b"".join(chunk for _, chunk, _ in take)
            out.append(page([v for v, _, _ in take], body, flags=flags, granule=g,
                            serial=serial, seq=seq))  # fmt: skip
            seq += 1
            continued = not take[-1][2]

    granule_at: dict[int, int] = {}
    for i, (packet, n) in enumerate(zip(packets, samples, strict=True)):
        granule += n
        pieces = [packet[k : k + 255] for k in range(0, len(packet), 255)] or [b""]
        if len(packet) % 255 == 0 and packet:
            pieces.append(b"")
        for j, chunk in enumerate(pieces):
            item = (len(chunk), chunk, j == len(pieces) - 1)
            granule_at[id(item)] = granule
            pending.append(item)
        if i == 0 or i == headers - 1:
            flush()  # the identification header alone; the headers end their page
    if rng.random() < 0.5:
        item = (0, b"", True)  # liquidsoap's zero-byte packet at a link's end
        granule_at[id(item)] = granule + extra
        pending.append(item)
    flush(eos=True)
    return out


def stream(seed: int) -> bytes:
    """A chain of links, some multiplexed with a stream the framer must leave out."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for n in range(rng.randrange(1, 5)):
        packets, samples, headers, extra = rng.choice((opus_link, flac_link))(rng)
        pages = paginate(rng, packets, samples, headers, extra, serial=1000 + n)
        if rng.random() < 0.15:  # cut short in its headers (a source client's restart)
            pages = pages[: rng.randrange(1, 3)]
        if rng.random() < 0.2:  # a second stream of the link, after the first's BOS
            skel = page([8], b"fishead\x00", flags=BOS, granule=0, serial=9, seq=0)
            skel_end = page([0], b"", flags=EOS, granule=0, serial=9, seq=1)
            pages = [*pages[:1], skel, *pages[1:2], skel_end, *pages[2:]]
        out += pages
    return b"".join(out)


def mangle(data: bytes, seed: int) -> bytes:
    """Start anywhere (a connect), lose, repeat and corrupt bits, add junk."""
    rng = random.Random(seed)
    out = bytearray(data[rng.randrange(len(data)) if rng.random() < 0.5 else 0 :])
    for _ in range(rng.randrange(0, 5)):
        if not out:
            break
        at = rng.randrange(len(out))
        what = rng.randrange(4)
        if what == 0:
            out[at] ^= 1 << rng.randrange(8)
        elif what == 1:
            del out[at : at + rng.randrange(1, 3000)]
        elif what == 2:
            out[at:at] = out[at : at + rng.randrange(1, 3000)]
        else:
            out[at:at] = rng.choice((b"OggS", b"OggS\x00\x02", rng.randbytes(40)))
    return bytes(out)


# -- properties ---------------------------------------------------------------------------


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    pos = i = 0
    while pos < len(data):
        yield data[pos : pos + sizes[i % len(sizes)]]
        pos += sizes[i % len(sizes)]
        i += 1


def run(data: bytes, sizes: list[int]) -> tuple[list[Frame], OggFramer]:
    framer = OggFramer()
    frames: list[Frame] = []
    for chunk in pieces(data, sizes):
        frames += framer.feed(chunk)
    frames += framer.flush()
    assert sum(len(f.data) for f in frames) + framer.dropped_bytes == len(data)
    assert sum(framer.drops.values()) == framer.dropped_bytes
    assert all(n > 0 for n in framer.drops.values())
    pos = 0
    for f in frames:  # in order, each a whole page found in the input
        at = data.find(f.data, pos)
        assert at >= 0 and page_crc_ok(f.data)
        pos = at + len(f.data)
    return frames, framer


def key(frames: list[Frame]) -> list[tuple[object, ...]]:
    return [
        (f.data, f.samples, f.cut, f.new_link, f.title, isinstance(f, OggFrame) and f.header)
        for f in frames
    ]


@FUZZ
@given(seeds, seeds, chunkings)
def test_any_stream_any_chunking_same_pages_every_byte_counted(
    seed: int, damage: int, sizes: list[int]
) -> None:
    data = mangle(stream(seed), damage)
    whole, _ = run(data, [len(data) or 1])
    chunked, _ = run(data, sizes)
    assert key(chunked) == key(whole)
    assert all(f.samples >= 0 for f in whole)


@FUZZ
@given(seeds)
def test_an_undamaged_chain_is_recorded_whole(seed: int) -> None:
    """Nothing dropped but the other stream of a multiplexed link and links cut
    short; each link's headers are its pages up to the last header packet, then
    audio pages."""
    data = stream(seed)
    frames, framer = run(data, [4096])
    assert set(framer.drops) <= {"other-stream", "truncated"}
    for f in frames:
        assert isinstance(f, OggFrame)
        if f.header:
            assert f.samples == 0
        elif f.granule != -1:
            assert f.samples == f.computed  # nothing lost, nothing taken for a header


@FUZZ
@given(seeds, seeds, st.integers(min_value=0, max_value=10**6))
def test_the_writer_makes_valid_pages_from_any_cut(seed: int, damage: int, where: int) -> None:
    """A file from any page that may start one, to the next new link: every page's
    CRC holds, one serial, sequence numbers from 0, granules never go back, BOS first
    and EOS last, and no zero-byte packet ends a page inside it."""
    data = mangle(stream(seed), damage)
    frames, framer = run(data, [len(data) or 1])
    starts = [i for i, f in enumerate(frames) if f.cut]
    if not starts:
        return
    first = starts[where % len(starts)]
    end = next((i for i in range(first + 1, len(frames)) if frames[i].new_link), len(frames))
    writer = framer.file_writer()
    out = writer.begin(frames[first]) + writer.write(frames[first:end]) + writer.end()
    if not out:
        return  # headers never seen: the frames are written raw (no file of use)
    pos = seq = 0
    granule = 0
    serials = set()
    while pos < len(out):
        assert out.startswith(b"OggS", pos)
        nseg = out[pos + 26]
        lacing = out[pos + 27 : pos + 27 + nseg]
        length = 27 + nseg + sum(lacing)
        pg = out[pos : pos + length]
        assert page_crc_ok(pg)
        flags, g, serial, s = struct.unpack_from("<BqII", pg, 5)
        assert s == seq and bool(flags & BOS) == (seq == 0)
        assert bool(flags & EOS) == (pos + length == len(out))
        if g != -1:
            assert g >= granule
            granule = g
        serials.add(serial)
        if pos + length < len(out) and nseg >= 2:
            assert not (lacing[-1] == 0 and lacing[-2] != 255)
        pos += length
        seq += 1
    assert len(serials) == 1
