"""The TS and fMP4 demuxers against ffmpeg's own: segments made by ffmpeg's HLS
muxer, demuxed here and by ``ffmpeg -c copy -f adts|mp3``, must give the same
audio bytes. Then fuzzed: any bytes, never a raise, never a byte twice."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isr.framing.adts import AdtsFramer
from isr.framing.mp3 import Mp3Framer
from isr.hls import fmp4, ts
from tests.support.tools import require_tool

pytestmark = pytest.mark.integration


def _hls(tmp: Path, kind: str, codec: list[str], rate: int = 44100) -> list[Path]:
    """ffmpeg's HLS muxer over 5 s of a sine: the segment files in order."""
    ffmpeg = require_tool("ffmpeg")
    ext = "m4s" if kind == "fmp4" else "ts"
    subprocess.run(
        [ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"sine=f=440:r={rate}", "-t", "5",
         *codec, "-f", "hls", "-hls_time", "1", "-hls_segment_type", kind,
         "-hls_segment_filename", str(tmp / f"s%d.{ext}"), str(tmp / "live.m3u8")],
        check=True,
    )  # fmt: skip
    return sorted(tmp.glob(f"s*.{ext}"), key=lambda p: int(p.stem[1:]))


def _ffmpeg_es(path: Path, fmt: str, init: Path | None = None) -> bytes:
    src = str(path)
    if init is not None:  # ffmpeg reads a media segment after its init segment
        joined = path.with_suffix(".joined.mp4")
        joined.write_bytes(init.read_bytes() + path.read_bytes())
        src = str(joined)
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", src, "-map", "0:a:0", "-c", "copy", "-f", fmt, "-"],
        check=True,
        capture_output=True,
    ).stdout
    return out


def _frames(data: bytes, codec: str) -> list[bytes]:
    framer = AdtsFramer() if codec == "aac" else Mp3Framer()
    frames = framer.feed(data) + framer.flush()
    return [f.data for f in frames]


@pytest.mark.parametrize(
    ("codec", "args"),
    [("aac", ["-c:a", "aac", "-b:a", "64k"]), ("mp3", ["-c:a", "libmp3lame", "-b:a", "128k"])],
)
def test_ts_matches_ffmpeg(tmp_path: Path, codec: str, args: list[str]) -> None:
    segments = _hls(tmp_path, "mpegts", args)
    assert len(segments) >= 4
    for seg in segments:
        got = ts.demux(seg.read_bytes())
        assert got.codec == codec
        assert not got.problems, got.problems
        want = _ffmpeg_es(seg, "adts" if codec == "aac" else "mp3")
        # ffmpeg's mp3 muxer adds its own ID3/Xing: compare audio frames
        assert _frames(got.data, codec) == _frames(want, codec)
        if codec == "aac":
            assert got.data == want


@pytest.mark.parametrize("rate", [44100, 48000])
def test_fmp4_matches_ffmpeg(tmp_path: Path, rate: int) -> None:
    segments = _hls(tmp_path, "fmp4", ["-c:a", "aac", "-b:a", "96k", "-ac", "2"], rate)
    init = tmp_path / "init.mp4"
    track = fmp4.parse_init(init.read_bytes())
    assert track.channels == 2 and track.object_type == 2
    total = 0
    for seg in segments:
        got = fmp4.demux(seg.read_bytes(), track)
        assert not got.problems
        assert got.data == _ffmpeg_es(seg, "adts", init)
        total += len(_frames(got.data, "aac"))
    assert total >= 5 * rate // 1024 - 2


def test_fmp4_init_refusals() -> None:
    with pytest.raises(fmp4.Fmp4Error, match="moov"):
        fmp4.parse_init(b"<html>not found</html>")
    with pytest.raises(fmp4.Fmp4Error):
        fmp4.parse_init(b"\x00\x00\x00\x10moov\x00\x00\x00\x08trak")


def test_asc() -> None:
    assert fmp4.parse_asc(bytes([0x12, 0x10])) == (2, 4, 2)  # LC 44.1 kHz stereo
    # HE-AAC signalled explicitly: AOT 5, 22.05 kHz core, stereo, 44.1 kHz SBR, LC
    assert fmp4.parse_asc(bytes([0x2B, 0x92, 0x08, 0x00])) == (2, 7, 2)
    with pytest.raises(fmp4.Fmp4Error):
        fmp4.parse_asc(bytes([0xF8, 0x00]))


FUZZ = settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def ts_segment(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("ts")
    return _hls(tmp, "mpegts", ["-c:a", "aac", "-b:a", "64k"])[0].read_bytes()


@pytest.fixture(scope="module")
def fmp4_segment(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    tmp = tmp_path_factory.mktemp("fmp4")
    seg = _hls(tmp, "fmp4", ["-c:a", "aac", "-b:a", "64k"])[0].read_bytes()
    return (tmp / "init.mp4").read_bytes(), seg


def _mangle(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Cut, flip and splice: each edit is (position, kind, value)."""
    buf = bytearray(data)
    for pos, kind, value in edits:
        if not buf:
            break
        p = pos % len(buf)
        if kind == 0:
            buf[p] ^= value & 0xFF or 1
        elif kind == 1:
            del buf[p : p + value % 400]
        else:
            buf[p:p] = bytes([value & 0xFF]) * (value % 300)
    return bytes(buf)


def _is_subsequence(out: bytes, data: bytes, min_piece: int) -> None:
    """``out`` is pieces of ``data`` in order, none used twice (pieces found greedily)."""
    pos = 0
    i = 0
    while i < len(out):
        piece = out[i : i + min_piece]
        j = data.find(piece, pos)
        assert j >= 0, f"output byte {i} is not from the input after {pos}"
        n = len(piece)
        while i + n < len(out) and j + n < len(data) and out[i + n] == data[j + n]:
            n += 1
        pos = j + n
        i += n


EDITS = st.lists(
    st.tuples(st.integers(0, 10**6), st.integers(0, 2), st.integers(0, 1000)), max_size=12
)


@FUZZ
@given(edits=EDITS)
def test_fuzz_ts(ts_segment: bytes, edits: list[tuple[int, int, int]]) -> None:
    data = _mangle(ts_segment, edits)
    got = ts.demux(data)
    assert len(got.data) <= len(data)
    _is_subsequence(got.data, data, 1)


@FUZZ
@given(data=st.binary(max_size=3000))
def test_fuzz_ts_random(data: bytes) -> None:
    got = ts.demux(b"\x47" + data)
    assert len(got.data) <= len(data)


@FUZZ
@given(edits=EDITS)
def test_fuzz_fmp4(fmp4_segment: tuple[bytes, bytes], edits: list[tuple[int, int, int]]) -> None:
    init, seg = fmp4_segment
    try:
        track = fmp4.parse_init(_mangle(init, edits[:3]))
    except fmp4.Fmp4Error:
        track = fmp4.parse_init(init)
    data = _mangle(seg, edits)
    got = fmp4.demux(data, track)
    # Every sample once: the output without its ADTS headers is pieces of the input.
    framer = AdtsFramer()
    frames = framer.feed(got.data) + framer.flush()
    assert framer.dropped_bytes == 0
    payload = b"".join(f.data[7:] for f in frames)
    assert len(payload) <= len(data)
    _is_subsequence(payload, data, 1)
