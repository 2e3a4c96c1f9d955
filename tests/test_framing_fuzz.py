"""Property tests for the MP3 and ADTS framers: any bytes, any chunking.

Streams are built in code from valid headers and random payloads, then mangled:
tags and junk spliced in, bytes flipped, ends cut off. The framers must never
raise, must account for every byte, and must not care how the input is chunked.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isr.framing._sync import SyncFramer
from isr.framing.adts import AdtsFramer
from isr.framing.base import Frame
from isr.framing.mp3 import Mp3Framer
from isr.framing.sniff import sniff

FRAMERS = [Mp3Framer, AdtsFramer]
_EXAMPLES = os.environ.get("ISR_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES or 60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=_EXAMPLES is None,
)
"""Fixed examples by default; ISR_FUZZ_EXAMPLES=5000 explores at random for longer."""

seeds = st.integers(min_value=0, max_value=2**32)
chunkings = st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=20)


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """``data`` cut into chunks of the given sizes, cycling through them."""
    pos = 0
    i = 0
    while pos < len(data):
        yield data[pos : pos + sizes[i % len(sizes)]]
        pos += sizes[i % len(sizes)]
        i += 1


def run(
    cls: type[SyncFramer], data: bytes, sizes: list[int] | None = None
) -> tuple[list[Frame], SyncFramer]:
    framer = cls()
    frames: list[Frame] = []
    for chunk in pieces(data, sizes or [len(data) or 1]):
        frames += framer.feed(chunk)
    frames += framer.flush()
    assert sum(len(f.data) for f in frames) + framer.dropped_bytes == len(data)
    assert sum(framer.drops.values()) == framer.dropped_bytes
    assert all(n > 0 for n in framer.drops.values())
    pos = 0
    for f in frames:  # in order, each a contiguous slice of the input
        at = data.find(f.data, pos)
        assert at >= 0
        pos = at + len(f.data)
    return frames, framer


def mp3_segment(rng: random.Random) -> list[bytes]:
    """Three or more frames sharing version, layer and sample rate."""
    parse = Mp3Framer()._parse
    version = rng.choice((3, 2, 0))
    layer = rng.choice((1, 2, 3))
    rate = rng.randrange(3)
    frames = []
    for _ in range(rng.randint(3, 8)):
        b1 = 0xE0 | version << 3 | layer << 1 | rng.randrange(2)
        b2 = rng.randint(1, 14) << 4 | rate << 2 | rng.randrange(2) << 1 | rng.randrange(2)
        b3 = rng.randrange(256) & ~3 | rng.choice((0, 1, 3))
        header = bytes((0xFF, b1, b2, b3))
        h = parse(bytearray(header), 0)
        assert h is not None
        frames.append(header + rng.randbytes(h.length - 4))
    return frames


def adts_segment(rng: random.Random) -> list[bytes]:
    """Three or more frames sharing the ADTS fixed header."""
    mpeg2 = rng.randrange(2)
    profile = rng.randrange(4)
    rate = rng.randrange(13)
    channels = rng.randrange(8)
    frames = []
    for _ in range(rng.randint(3, 8)):
        crc = rng.randrange(2)
        length = (9 if crc else 7) + rng.randint(1, 400)
        header = bytes(
            (
                0xFF,
                0xF0 | mpeg2 << 3 | (0 if crc else 1),
                profile << 6 | rate << 2 | rng.randrange(2) << 1 | channels >> 2,
                (channels & 3) << 6 | rng.randrange(16) << 2 | (length >> 11) & 3,
                (length >> 3) & 0xFF,
                (length & 7) << 5 | rng.randrange(32),
                rng.randrange(256),
            )
        )
        frames.append(header + rng.randbytes(length - 7))
    return frames


def tag(rng: random.Random, id3v1: bool = True) -> bytes:
    """A tag; ID3v1 is only recognised where a frame is due, so not at the start."""
    kind = rng.choice((0, 1, 2, 3) if id3v1 else (0, 2, 3))
    if kind == 0:  # ID3v2 with a body full of sync-like bytes
        body = (b"\xff\xfb\x90\x64\xff\xf1\x50\x80" * rng.randint(0, 40))[: rng.randint(0, 300)]
        size = bytes((len(body) >> s) & 0x7F for s in (21, 14, 7, 0))
        return b"ID3\x03\x00\x00" + size + body
    if kind == 1:
        return b"TAG" + rng.randbytes(125)
    items = rng.randbytes(rng.randint(0, 100))
    size = (len(items) + 32).to_bytes(4, "little")

    def block(flags: int) -> bytes:
        return (
            b"APETAGEX"
            + (2000).to_bytes(4, "little")
            + size
            + bytes(4)
            + flags.to_bytes(4, "little")
            + bytes(8)
        )

    return block(0xA0000000) + items + block(0x80000000)


def stream(cls: type[SyncFramer], seed: int) -> tuple[bytes, list[bytes]]:
    """Segments of frames with tags between them, and the frames alone."""
    rng = random.Random(seed)
    segment = mp3_segment if cls is Mp3Framer else adts_segment
    parts: list[bytes] = []
    frames: list[bytes] = []
    if rng.randrange(3) == 0:
        parts.append(tag(rng, id3v1=False))
    for _ in range(rng.randint(1, 5)):
        seg = segment(rng)
        frames += seg
        parts += seg
        if rng.randrange(2):
            parts.append(tag(rng))
    return b"".join(parts), frames


@pytest.mark.parametrize("cls", FRAMERS)
@FUZZ
@given(data=st.binary(max_size=4000), sizes=chunkings)
def test_random_bytes(cls: type[SyncFramer], data: bytes, sizes: list[int]) -> None:
    whole, ref = run(cls, data)
    split, framer = run(cls, data, sizes)
    assert split == whole
    assert (framer.dropped_bytes, framer.drops) == (ref.dropped_bytes, ref.drops)
    assert sniff(data) in (None, "mp3", "aac", "ogg", "flac")


@pytest.mark.parametrize("cls", FRAMERS)
@FUZZ
@given(seed=seeds, sizes=chunkings)
def test_clean_streams_come_out_whole(cls: type[SyncFramer], seed: int, sizes: list[int]) -> None:
    data, expected = stream(cls, seed)
    frames, framer = run(cls, data, sizes)
    assert [f.data for f in frames] == expected
    assert "junk" not in framer.drops
    assert "truncated" not in framer.drops
    assert all(f.samples in (384, 576, 1152, 1024, 2048, 3072, 4096) for f in frames)


@pytest.mark.parametrize("cls", FRAMERS)
@FUZZ
@given(
    seed=seeds,
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
    cut=st.tuples(st.floats(0, 0.5), st.floats(0.5, 1)),
    junk=st.lists(st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=200)), max_size=4),
    sizes=chunkings,
)
def test_mangled_streams(
    cls: type[SyncFramer],
    seed: int,
    flips: list[tuple[float, int]],
    cut: tuple[float, float],
    junk: list[tuple[float, bytes]],
    sizes: list[int],
) -> None:
    clean, _ = stream(cls, seed)
    data = bytearray(clean)
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    for where, blob in junk:
        at = int(where * len(data))
        data[at:at] = blob
    mangled = bytes(data[int(cut[0] * len(data)) : int(cut[1] * len(data))])
    whole, ref = run(cls, mangled)
    split, framer = run(cls, mangled, sizes)
    assert split == whole
    assert (framer.dropped_bytes, framer.drops) == (ref.dropped_bytes, ref.drops)
    one, _ = run(cls, mangled[:3000], [1])
    assert one == run(cls, mangled[:3000])[0]
    parse = cls()._parse
    for f in whole:
        h = parse(bytearray(f.data), 0)
        assert h is not None
        assert (h.length, h.samples, h.sample_rate) == (len(f.data), f.samples, f.sample_rate)


def tracks(cls: type[SyncFramer], seed: int) -> tuple[bytes, list[bytes], int]:
    """Files played back to back as a source client sends them: each track's last
    frame cut short at a random byte, tags between tracks. Returns the stream, the
    whole frames and the bytes of the cut frames."""
    rng = random.Random(seed)
    segment = mp3_segment if cls is Mp3Framer else adts_segment
    parts: list[bytes] = []
    frames: list[bytes] = []
    cut_bytes = 0
    for _ in range(rng.randint(2, 5)):
        seg = segment(rng)
        while len(seg) < 4:  # three whole frames, as any lock-on needs, then the cut one
            seg = segment(rng)
        cut = seg[-1][: rng.randint(1, len(seg[-1]) - 1)]
        frames += seg[:-1]
        parts += [*seg[:-1], cut]
        cut_bytes += len(cut)
        for _ in range(rng.randrange(3)):
            parts.append(tag(rng))
    return b"".join(parts), frames, cut_bytes


@pytest.mark.parametrize("cls", FRAMERS)
@FUZZ
@given(seed=seeds, sizes=chunkings)
def test_cut_tracks_lose_only_the_cut_frames(
    cls: type[SyncFramer], seed: int, sizes: list[int]
) -> None:
    """Every whole frame after a cut one comes out, and no tag byte goes in."""
    data, expected, cut_bytes = tracks(cls, seed)
    frames, framer = run(cls, data, sizes)
    assert [f.data for f in frames] == expected
    assert framer.drops.get("truncated", 0) <= cut_bytes


@pytest.mark.parametrize("cls", FRAMERS)
def test_large_blobs_are_linear(cls: type[SyncFramer]) -> None:
    """Megabytes of junk, sync bytes and frames: the per-test timeout catches quadratic work."""
    rng = random.Random(42)
    frames: list[bytes] = []
    while sum(map(len, frames)) < 2 << 20:
        frames += stream(cls, rng.randrange(2**32))[1]
    blobs = [
        rng.randbytes(2 << 20),
        b"\xff" * (2 << 20),
        b"\xff\xfb" * (1 << 20),
        b"".join(frames),
    ]
    for blob in blobs:
        got, framer = run(cls, blob, [4096, 333, 10000])
        assert framer.dropped_bytes + sum(len(f.data) for f in got) == len(blob)
    assert len(got) == len(frames)
