"""AdtsFramer against real encoder output (ffmpeg) and hand-built streams."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

from isr.framing.adts import AdtsFramer
from isr.framing.base import Frame, Framer
from tests.support.framing import ffprobe_packets, joined, run_framer
from tests.support.tools import require_tool

SINE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=3"]

VARIANTS: dict[str, tuple[list[str], int]] = {
    # name: (ffmpeg output args, sample rate)
    "plain": (["-ac", "2", "-b:a", "128k"], 44100),
    "tagged": (["-ac", "2", "-b:a", "128k", "-write_id3v2", "1", "-write_apetag", "1"], 44100),
    "mono22k": (["-ac", "1", "-ar", "22050", "-b:a", "48k", "-write_mpeg2", "1"], 22050),
    "48k": (["-ac", "2", "-ar", "48000", "-b:a", "256k"], 48000),
}


@pytest.fixture(scope="session")
def aac_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("adts")
    files = {}
    for name, (args, _) in VARIANTS.items():
        path = out / f"{name}.aac"
        cmd = [ffmpeg, "-v", "error", "-y", *SINE, "-c:a", "aac", *args]
        cmd += ["-metadata", "title=ISR test", "-f", "adts", str(path)]
        subprocess.run(cmd, check=True)
        files[name] = path
    return files


def run(data: bytes, chunks: Iterable[int] | None = None) -> tuple[list[Frame], AdtsFramer]:
    return run_framer(AdtsFramer(), data, chunks)


def adts_frame(
    payload_len: int = 50,
    *,
    rate_index: int = 4,
    channels: int = 2,
    blocks: int = 0,
    crc: bool = False,
    fill: int = 0,
) -> bytes:
    """A frame with a valid ADTS header and ``payload_len`` bytes of ``fill``."""
    length = (9 if crc else 7) + payload_len
    header = bytes(
        (
            0xFF,
            0xF0 | (0 if crc else 1),
            1 << 6 | rate_index << 2 | channels >> 2,
            (channels & 3) << 6 | (length >> 11) & 3,
            (length >> 3) & 0xFF,
            (length & 7) << 5 | 0x1F,
            0xFC | blocks,
        )
    )
    return header + (b"\x12\x34" if crc else b"") + bytes([fill]) * payload_len


@pytest.mark.parametrize("name", list(VARIANTS))
def test_real_files_frame_count_and_decode(
    name: str, aac_media: dict[str, Path], tmp_path: Path
) -> None:
    src = aac_media[name]
    data = src.read_bytes()
    frames, framer = run(data)
    assert len(frames) == ffprobe_packets(src)
    assert {(f.samples, f.sample_rate) for f in frames} == {(1024, VARIANTS[name][1])}
    assert framer.resyncs == 0
    if name == "tagged":
        start = data.index(b"\xff\xf1")
        tail = data.index(b"APETAGEX")
        assert framer.drops == {"id3v2": start, "ape": len(data) - tail}
        assert joined(frames) == data[start:tail]
    else:
        assert framer.dropped_bytes == 0
        assert joined(frames) == data
    out = tmp_path / "joined.aac"
    out.write_bytes(joined(frames))
    result = subprocess.run(
        [require_tool("ffmpeg"), "-v", "error", "-i", str(out), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert ffprobe_packets(out) == len(frames)


def test_one_byte_and_random_chunks(aac_media: dict[str, Path]) -> None:
    data = aac_media["tagged"].read_bytes()
    whole, ref = run(data)
    one, f1 = run(data, [1] * len(data))
    assert one == whole
    assert f1.drops == ref.drops
    rng = random.Random(5)
    for _ in range(5):
        frames, framer = run(data, [rng.randint(1, 2000) for _ in range(60)])
        assert frames == whole
        assert framer.drops == ref.drops


def test_start_mid_stream_drops_only_the_partial_frame(aac_media: dict[str, Path]) -> None:
    data = aac_media["48k"].read_bytes()
    frames = run(data)[0]
    bounds = [0]
    for f in frames[:-1]:
        bounds.append(bounds[-1] + len(f.data))
    data = data[: bounds[25]]
    rng = random.Random(13)
    offsets = list(range(bounds[3] + 5)) + rng.sample(range(bounds[3], bounds[20]), 40)
    for off in offsets:
        first = next(b for b in bounds if b >= off)
        got, framer = run(data[off:])
        assert joined(got) == data[first:], off
        assert framer.drops.get("junk", 0) == framer.dropped_bytes == first - off


def test_junk_and_tags_between_frames(aac_media: dict[str, Path]) -> None:
    frames = run(aac_media["plain"].read_bytes())[0][:20]
    rng = random.Random(9)
    junk = bytes(rng.randrange(256) for _ in range(500))
    tag = b"ID3\x03\x00\x00\x00\x00\x01\x00" + b"\xff\xf1\x50\x80" * 32
    v1 = b"TAG" + bytes(125)
    stream = (
        joined(frames[:5]) + junk + joined(frames[5:10]) + tag + joined(frames[10:15]) + v1
        + joined(frames[15:])
    )  # fmt: skip
    got, framer = run(stream)
    assert got == frames
    assert framer.drops == {"junk": 500, "id3v2": len(tag), "id3v1": 128}
    assert run(stream, [3] * (len(stream) // 3))[0] == frames


def test_blocks_and_crc_header() -> None:
    plain = [adts_frame(60 + i % 3, blocks=3) for i in range(6)]
    crc = [adts_frame(70, crc=True, fill=i) for i in range(6)]
    got, framer = run(b"".join(plain) + b"".join(crc))
    assert [f.data for f in got] == plain + crc
    assert [f.samples for f in got] == [4096] * 6 + [1024] * 6
    assert framer.resyncs == 0  # the CRC flag is not part of the fixed header


def test_sample_rate_change_resyncs_without_loss() -> None:
    a = [adts_frame(80, rate_index=3) for _ in range(5)]
    b = [adts_frame(40, rate_index=8, channels=1) for _ in range(5)]
    got, framer = run(b"".join(a + b))
    assert [f.data for f in got] == a + b
    assert [f.sample_rate for f in got] == [48000] * 5 + [16000] * 5
    assert framer.resyncs == 1
    assert framer.dropped_bytes == 0


def test_lone_frames_are_not_trusted() -> None:
    frame = adts_frame(30)
    stream = frame + b"x" * 10 + frame + b"y" * 10 + frame
    got, framer = run(stream)
    assert got == []
    assert framer.drops == {"junk": len(stream)}


def test_reserved_rate_and_short_length_are_junk() -> None:
    bad_rate = bytearray(adts_frame(30))
    bad_rate[2] = 1 << 6 | 13 << 2
    short = bytearray(adts_frame(0))
    got, framer = run((bytes(bad_rate) + bytes(short)) * 5)
    assert got == []
    assert set(framer.drops) == {"junk"}
    assert AdtsFramer.score(bytes(bad_rate) * 10) == 0.0


def test_truncated_last_frame_is_dropped_at_flush() -> None:
    frames = [adts_frame(100, fill=i) for i in range(5)]
    framer = AdtsFramer()
    got = framer.feed(b"".join(frames) + frames[0][:50])
    got += framer.flush()
    assert [f.data for f in got] == frames
    assert framer.drops == {"truncated": 50}
    assert not framer.locked


def test_protocol_attributes() -> None:
    framer: Framer = AdtsFramer()  # mypy checks the protocol here
    assert (framer.format, framer.extension, framer.header_frames) == ("aac", ".aac", [])
    assert framer.flush() == []


def test_tagged_files_back_to_back_with_cut_last_frames(aac_media: dict[str, Path]) -> None:
    """Issue 11 item 1 for ADTS: each file (ID3v2, frames, APE) with its last
    frame cut short, sent back to back: every whole frame comes out, no tag byte."""
    tagged = aac_media["tagged"].read_bytes()
    frames = run(tagged)[0]
    last = frames[-1].data
    start = tagged.rindex(last)
    keep: list[bytes] = []
    stream = b""
    for cut in (1, len(last) // 2, len(last) - 1):
        stream += tagged[: start + cut] + tagged[start + len(last) :]
        keep += [f.data for f in frames[:-1]]
    for chunks in (None, [1] * 5000 + [4096] * 100, [333] * 1000):
        got, framer = run(stream, chunks)
        assert [f.data for f in got] == keep
        assert (
            framer.drops.get("truncated", 0) + framer.drops.get("junk", 0)
            == 1 + len(last) // 2 + len(last) - 1
        )
        assert set(framer.drops) <= {"truncated", "junk", "id3v2", "ape"}
