"""Mp3Framer against real encoder output (ffmpeg) and hand-built streams."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

from isr.framing._sync import id3v2_size
from isr.framing.base import Frame, Framer
from isr.framing.mp3 import Mp3Framer
from tests.support.framing import ffprobe_packets, joined, run_framer
from tests.support.tools import require_tool

SINE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=3"]

VARIANTS: dict[str, tuple[list[str], str, int, int]] = {
    # name: (ffmpeg output args, extension, sample rate, samples per frame)
    "cbr": (
        ["-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", "-id3v2_version", "3"],
        ".mp3",
        44100,
        1152,
    ),
    "plain": (
        [
            "-ac",
            "2",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            "-write_xing",
            "0",
            "-id3v2_version",
            "0",
        ],
        ".mp3",
        44100,
        1152,
    ),
    "mpeg2": (["-c:a", "libmp3lame", "-ar", "22050", "-b:a", "64k"], ".mp3", 22050, 576),
    "mpeg25": (["-c:a", "libmp3lame", "-ar", "8000", "-b:a", "16k"], ".mp3", 8000, 576),
    "vbr": (["-ac", "2", "-c:a", "libmp3lame", "-q:a", "4"], ".mp3", 44100, 1152),
    "layer2": (["-c:a", "mp2", "-b:a", "192k", "-f", "mp2"], ".mp2", 44100, 1152),
}

MP3VAL_NOISE = ("No supported tags", "Non-layer-III frame")


@pytest.fixture(scope="session")
def mp3_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("mp3")
    files = {}
    for name, (args, ext, _, _) in VARIANTS.items():
        path = out / f"{name}{ext}"
        cmd = [ffmpeg, "-v", "error", "-y", *SINE, *args, "-metadata", "title=ISR test", str(path)]
        subprocess.run(cmd, check=True)
        files[name] = path
    return files


def run(data: bytes, chunks: Iterable[int] | None = None) -> tuple[list[Frame], Mp3Framer]:
    return run_framer(Mp3Framer(), data, chunks)


def assert_decodes_cleanly(path: Path) -> None:
    cmd = [require_tool("ffmpeg"), "-v", "error", "-i", str(path), "-f", "null", "-"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout + result.stderr == ""


def id3v2(payload: bytes, footer: bool = False) -> bytes:
    size = len(payload)
    syncsafe = bytes((size >> s) & 0x7F for s in (21, 14, 7, 0))
    head = b"ID3\x04\x00" + (b"\x10" if footer else b"\x00") + syncsafe
    return head + payload + (b"3DI\x04\x00\x10" + syncsafe if footer else b"")


def ape(items: bytes, header: bool = True) -> bytes:
    size = len(items) + 32

    def block(is_header: bool) -> bytes:
        flags = (1 << 31) | (1 << 29 if is_header else 0)
        fields = (2000, size, 1, flags)
        return b"APETAGEX" + b"".join(v.to_bytes(4, "little") for v in fields) + bytes(8)

    return (block(True) if header else b"") + items + block(False)


def layer1_frame(padding: int = 0) -> bytes:
    """MPEG-1 layer I, 128 kbps, 44.1 kHz, all allocations zero: valid silence."""
    return bytes((0xFF, 0xFF, 0x40 | padding << 1, 0xC0)) + bytes(132 + 4 * padding)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_real_files_frame_count_and_decode(
    name: str, mp3_media: dict[str, Path], tmp_path: Path
) -> None:
    _, _, rate, spf = VARIANTS[name]
    src = mp3_media[name]
    data = src.read_bytes()
    frames, framer = run(data)
    assert len(frames) == ffprobe_packets(src)
    assert {(f.samples, f.sample_rate) for f in frames} == {(spf, rate)}
    assert framer.resyncs == 0
    assert set(framer.drops) <= {"id3v2", "xing"}
    if name == "cbr":
        assert framer.drops["id3v2"] == data.index(b"\xff\xfb")
    if name in ("cbr", "vbr", "mpeg25"):
        assert framer.drops["xing"] > 0
    if name == "plain":
        assert joined(frames) == data
    # the frames are the tail of the file: tags and info frame come first
    assert data.endswith(joined(frames))
    out = tmp_path / f"joined{src.suffix}"
    out.write_bytes(joined(frames))
    assert_decodes_cleanly(out)
    assert ffprobe_packets(out) == len(frames)


@pytest.mark.parametrize("name", ["cbr", "layer2", "mpeg2"])
def test_mp3val_accepts_output(name: str, mp3_media: dict[str, Path], tmp_path: Path) -> None:
    mp3val = require_tool("mp3val")
    frames, _ = run(mp3_media[name].read_bytes())
    out = tmp_path / "joined.mp3"
    out.write_bytes(joined(frames))
    report = subprocess.run([mp3val, str(out)], capture_output=True, text=True, check=True).stdout
    problems = [
        line
        for line in report.splitlines()
        if line.startswith(("WARNING", "ERROR")) and not any(n in line for n in MP3VAL_NOISE)
    ]
    assert problems == []
    assert f"{len(frames)} MPEG frames" in report


def test_one_byte_chunks_give_same_frames(mp3_media: dict[str, Path]) -> None:
    data = mp3_media["vbr"].read_bytes()
    whole, ref = run(data)
    single, framer = run(data, [1] * len(data))
    assert single == whole
    assert framer.drops == ref.drops


def test_random_chunks_give_same_frames(mp3_media: dict[str, Path]) -> None:
    data = mp3_media["cbr"].read_bytes()
    whole, ref = run(data)
    rng = random.Random(7)
    for _ in range(5):
        frames, framer = run(data, [rng.randint(1, 900) for _ in range(200)])
        assert frames == whole
        assert framer.drops == ref.drops


def test_start_mid_stream_drops_only_the_partial_frame(mp3_media: dict[str, Path]) -> None:
    data = mp3_media["plain"].read_bytes()
    frames, _ = run(data)
    bounds = [0]
    for f in frames[:-1]:
        bounds.append(bounds[-1] + len(f.data))
    data = data[: bounds[25]]  # keep the scan quick
    rng = random.Random(11)
    offsets = list(range(bounds[3] + 5)) + rng.sample(range(bounds[3], bounds[20]), 40)
    for off in offsets:
        first = next(b for b in bounds if b >= off)
        got, framer = run(data[off:])
        assert joined(got) == data[first:], off
        assert framer.dropped_bytes == first - off
        assert framer.drops.get("junk", 0) == first - off


def test_tags_and_junk_between_frames_are_dropped(mp3_media: dict[str, Path]) -> None:
    audio = joined(run(mp3_media["plain"].read_bytes())[0])
    frames = run(audio)[0]
    parts = [joined(frames[i : i + 5]) for i in range(0, 30, 5)]
    rng = random.Random(3)
    junk = bytes(rng.randrange(256) for _ in range(777))
    # an embedded picture full of sync-like bytes must not be taken for frames
    tag = id3v2(b"APIC" + b"\xff\xfb\x90\x64" * 300, footer=True)
    ape_full = ape(b"Title\x00ISR" * 10)
    ape_footer_only = ape(b"Artist\x00x" * 5, header=False)
    v1 = b"TAG" + bytes(125)
    stream = (
        parts[0] + junk + parts[1] + tag + parts[2] + ape_full + parts[3] + v1
        + parts[4] + ape_footer_only + parts[5] + v1
    )  # fmt: skip
    got, framer = run(stream)
    assert joined(got) == b"".join(parts)
    assert len(got) == 30
    assert framer.drops == {
        "junk": len(junk) + len(ape_footer_only) - 32,
        "id3v2": len(tag),
        "ape": len(ape_full) + 32,
        "id3v1": 256,
    }
    one, f1 = run(stream, [1] * len(stream))
    assert one == got
    assert f1.drops == framer.drops


def test_xing_and_vbri_frames_are_dropped(mp3_media: dict[str, Path]) -> None:
    frames = run(mp3_media["plain"].read_bytes())[0]
    first = bytearray(frames[0].data)
    first[4:] = bytes(len(first) - 4)
    vbri = bytes(first[:36]) + b"VBRI" + bytes(len(first) - 40)
    info = bytes(first[:36]) + b"Info" + bytes(len(first) - 40)  # stereo MPEG-1: offset 36
    stream = vbri + info + joined(frames[:10])
    got, framer = run(stream)
    assert got == frames[:10]
    assert framer.drops == {"xing": len(vbri) + len(info)}


def test_layer1_samples_and_padding() -> None:
    stream = b"".join(layer1_frame(i % 2) for i in range(12))
    got, framer = run(stream)
    assert len(got) == 12
    assert [len(f.data) for f in got] == [136, 140] * 6
    assert {(f.samples, f.sample_rate) for f in got} == {(384, 44100)}
    assert framer.dropped_bytes == 0


def test_format_change_resyncs_without_loss(mp3_media: dict[str, Path]) -> None:
    a = mp3_media["cbr"].read_bytes()
    b = mp3_media["mpeg2"].read_bytes()
    fa, ra = run(a)
    fb, rb = run(b)
    got, framer = run(a + b)
    assert [f.data for f in got] == [f.data for f in fa + fb]
    # The first frame of the new format must start a new file (headers, Xing counts).
    assert [i for i, f in enumerate(got) if f.new_link] == [len(fa)]
    assert framer.resyncs == 1
    assert framer.drops == {k: ra.drops[k] + rb.drops[k] for k in ra.drops}


def test_truncated_last_frame_is_dropped_at_flush(mp3_media: dict[str, Path]) -> None:
    data = mp3_media["plain"].read_bytes()
    frames = run(data)[0]
    cut = len(joined(frames[:20])) + 100
    framer = Mp3Framer()
    got = framer.feed(data[:cut])
    assert got == frames[: len(got)]
    assert got + framer.flush() == frames[:20]
    assert framer.drops == {"truncated": 100}


def test_short_stream_of_two_frames_is_kept_at_end() -> None:
    stream = b"junk" + layer1_frame() + layer1_frame()
    framer = Mp3Framer()
    assert framer.feed(stream) == []  # two frames are not proof until the stream ends
    assert len(framer.flush()) == 2
    assert framer.drops == {"junk": 4}


def test_free_format_and_reserved_headers_are_junk() -> None:
    free = bytes((0xFF, 0xFB, 0x00, 0xC0)) + bytes(400)
    reserved_rate = bytes((0xFF, 0xFB, 0x9C, 0xC0)) + bytes(400)
    got, framer = run((free + reserved_rate) * 4)
    assert got == []
    assert framer.drops == {"junk": 3232}
    assert Mp3Framer.score(free * 10) == 0.0


def test_protocol_attributes() -> None:
    framer: Framer = Mp3Framer()  # mypy checks the protocol here
    assert (framer.format, framer.extension, framer.header_frames) == ("mp3", ".mp3", [])
    assert framer.feed(b"") == []
    assert framer.flush() == []
    assert framer.dropped_bytes == 0


def source_client_playlist(
    tracks: list[bytes], cut_at: Iterable[int]
) -> tuple[bytes, list[bytes], list[bytes]]:
    """Tagged files back to back as ezstream or ices send them: each file whole
    (ID3v2, Xing/Info frame, audio, ID3v1) but for its last frame, cut short.
    Returns the stream, the audio frames that must come out, and the cut frames."""
    stream: list[bytes] = []
    keep: list[bytes] = []
    cut_frames: list[bytes] = []
    for data, cut in zip(tracks, cut_at, strict=True):
        v2 = id3v2_size_of(data)
        frames = run(data[v2:])[0]
        assert data[-128:-125] == b"TAG"
        last = frames[-1].data
        start = data.index(last, v2 + len(frames[0].data))
        body = data[: start + cut] + data[-128:]  # the last frame cut, ID3v1 kept
        stream.append(body)
        keep += [f.data for f in frames[:-1]]
        cut_frames.append(last[:cut])
    return b"".join(stream), keep, cut_frames


def id3v2_size_of(data: bytes) -> int:
    size = id3v2_size(data, 0)
    assert size > 0
    return size


@pytest.fixture(scope="session")
def tagged_tracks(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Three LAME files of different length and rate mode, each with ID3v2 (a cover
    picture full of sync-like bytes), a Xing or Info frame and ID3v1."""
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("tracks")
    cover = out / "cover.png"
    subprocess.run(
        [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "mandelbrot=size=64x64",
         "-frames:v", "1", str(cover)],
        check=True,
    )  # fmt: skip
    tracks = []
    for i, (dur, rate_args) in enumerate(
        [(2.3, ["-b:a", "128k"]), (1.7, ["-q:a", "2"]), (2.9, ["-b:a", "96k"])]
    ):
        path = out / f"t{i}.mp3"
        cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
               f"sine=frequency={300 + 100 * i}:duration={dur}", "-i", str(cover),
               "-map", "0:a", "-map", "1:v", "-c:v", "copy", "-ac", "2", "-c:a", "libmp3lame",
               *rate_args, "-id3v2_version", "3", "-write_id3v1", "1",
               "-metadata", f"title=Track {i}", "-metadata:s:v", "comment=Cover (front)",
               str(path)]  # fmt: skip
        subprocess.run(cmd, check=True)
        tracks.append(path.read_bytes())
    return tracks


@pytest.mark.parametrize("cuts", [(1, 5, 9), (0.3, 0.5, 0.7), (-1, -4, -100)])
def test_tracks_back_to_back_with_cut_last_frames(
    tagged_tracks: list[bytes], cuts: tuple[float, float, float]
) -> None:
    """Issue 11 item 1: no tag byte in a frame, no lost first frame of the next
    track, Xing/Info frames dropped, and the framed duration is the real one.
    A cut is bytes kept of the last frame (a fraction of it, or from its end)."""
    lasts = [run(t[id3v2_size_of(t) :])[0][-1].data for t in tagged_tracks]
    at = [
        int(c * len(last)) if 0 < c < 1 else int(c) if c > 0 else len(last) + int(c)
        for c, last in zip(cuts, lasts, strict=True)
    ]
    assert all(0 < a < len(last) for a, last in zip(at, lasts, strict=True))
    stream, keep, cut_frames = source_client_playlist(tagged_tracks, at)
    for chunks in (None, [1] * 3000 + [4096] * 100, [777] * 200):
        got, framer = run(stream, chunks)
        assert [f.data for f in got] == keep
        # a cut shorter than a header is not a frame at all: junk
        cut = framer.drops.get("truncated", 0) + framer.drops.get("junk", 0)
        assert cut == sum(map(len, cut_frames))
        assert framer.drops["xing"] > 0 and framer.drops["id3v1"] == 3 * 128
        assert framer.drops["id3v2"] == sum(id3v2_size_of(t) for t in tagged_tracks)
        assert set(framer.drops) <= {"truncated", "junk", "xing", "id3v1", "id3v2"}
    # The framed duration is the real one: what ffmpeg decodes from the same frames.
    framed = sum(f.samples for f in got) / 44100
    whole = sum(len(run(t)[0]) - 1 for t in tagged_tracks) * 1152 / 44100
    assert framed == pytest.approx(whole)
