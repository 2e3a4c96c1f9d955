"""Format detection from Content-Type and from the first bytes of a stream."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isr.framing.adts import AdtsFramer
from isr.framing.mp3 import Mp3Framer
from isr.framing.sniff import (
    format_from_content_type,
    sniff,
    sniff_scores,
    unsupported,
)
from tests.support.tools import require_tool

SINE = ["-f", "lavfi", "-i", "sine=frequency=440:duration=2"]

MEDIA: dict[str, tuple[list[str], str]] = {
    # name: (ffmpeg output args, expected format)
    "mp3": (["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"], "mp3"),
    "mp3_22k": (["-c:a", "libmp3lame", "-ar", "22050", "-b:a", "32k", "-f", "mp3"], "mp3"),
    "mp2": (["-c:a", "mp2", "-f", "mp2"], "mp3"),
    "aac": (["-c:a", "aac", "-f", "adts", "-write_id3v2", "1"], "aac"),
    "aac_mpeg2": (["-c:a", "aac", "-f", "adts", "-write_mpeg2", "1"], "aac"),
    "vorbis": (["-c:a", "libvorbis", "-f", "ogg"], "ogg"),
    "opus": (["-c:a", "libopus", "-f", "ogg"], "ogg"),
    "flac": (["-c:a", "flac", "-f", "flac"], "flac"),
}


@pytest.fixture(scope="session")
def sniff_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("sniff")
    media = {}
    for name, (args, _) in MEDIA.items():
        path = out / name
        cmd = [ffmpeg, "-v", "error", "-y", *SINE, *args, str(path)]
        subprocess.run(cmd, check=True)
        media[name] = path.read_bytes()
    return media


@pytest.mark.parametrize(
    ("ct", "fmt"),
    [
        ("audio/mpeg", "mp3"),
        ("audio/mp3", "mp3"),
        ("Audio/MPEG; charset=UTF-8", "mp3"),
        ("audio/aac", "aac"),
        ("audio/aacp", "aac"),
        ("audio/x-aac", "aac"),
        ("application/ogg", "ogg"),
        ("audio/ogg", "ogg"),
        ("audio/vorbis", "ogg"),
        ("audio/opus; rate=48000", "ogg"),
        ("audio/flac", "flac"),
        (" audio/x-flac ", "flac"),
        ("text/html", None),
        ("", None),
        ("application/vnd.apple.mpegurl", None),
    ],
)
def test_format_from_content_type(ct: str, fmt: str | None) -> None:
    assert format_from_content_type(ct) == fmt


@pytest.mark.parametrize("name", list(MEDIA))
def test_sniff_real_heads(name: str, sniff_media: dict[str, bytes]) -> None:
    data = sniff_media[name]
    expected = MEDIA[name][1]
    assert sniff(data[:8192]) == expected
    # a listener joining mid-stream: the head starts at an arbitrary byte (and an
    # Ogg page from ffmpeg can hold a second of audio, so take a longer head)
    rng = random.Random(name)
    for _ in range(5):
        off = rng.randrange(100, len(data) // 2)
        assert sniff(data[off : off + 32768]) == expected, off


def test_mpeg2_adts_is_not_taken_for_flac(sniff_media: dict[str, bytes]) -> None:
    head = sniff_media["aac_mpeg2"][:8192]
    assert head[:2] == b"\xff\xf9"  # the same two bytes as a FLAC frame sync
    scores = sniff_scores(head)
    assert scores["flac"] == 0.0
    assert scores["aac"] == 1.0


def test_score_ranges(sniff_media: dict[str, bytes]) -> None:
    mp3 = sniff_media["mp3"][:8192]
    assert Mp3Framer.score(mp3) == 1.0
    assert AdtsFramer.score(mp3) == 0.0
    junky = bytes(range(256)) * 8 + mp3
    assert 0.5 < Mp3Framer.score(junky) < 1.0


def test_random_and_empty_heads_say_nothing() -> None:
    rng = random.Random(1)
    for _ in range(20):
        head = bytes(rng.randrange(256) for _ in range(4096))
        assert sniff(head) is None
    assert sniff(b"") is None
    assert sniff(b"\xff") is None


def test_ogg_after_junk_and_two_pages() -> None:
    page = b"OggS\x00\x02" + bytes(20) + b"\x01\x05" + b"hello"
    assert sniff(page + page) == "ogg"
    assert sniff(b"garbage" + page + page) == "ogg"
    assert sniff(b"OggS\x01" + bytes(40)) is None  # version must be 0


def test_flac_marker() -> None:
    assert sniff(b"fLaC\x00\x00\x00\x22" + bytes(34)) == "flac"


def free_format_frames(n: int = 20) -> bytes:
    """MPEG-1 layer III headers with bitrate index 0 at a steady spacing."""
    out = b""
    for i in range(n):
        pad = i % 3 == 0
        out += bytes((0xFF, 0xFB, 0x00 | (2 if pad else 0), 0xC4)) + bytes([i & 0x7F]) * (600 + pad)
    return out


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real files of formats ISR refuses: MP4 (AAC) and WMA (ASF), made by ffmpeg."""
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("foreign")
    made = {}
    for name, args in {
        "mp4": ["-c:a", "aac", "-f", "mp4"],
        "wma": ["-c:a", "wmav2", "-f", "asf"],
    }.items():
        path = out / name
        cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1"]
        subprocess.run([*cmd, *args, str(path)], check=True)
        made[name] = path.read_bytes()
    return made


def test_unsupported_formats_are_named(foreign: dict[str, bytes]) -> None:
    """Issue 11 item 7: audio ISR recognises but cannot record gets a name, so the
    refusal says what the stream is instead of "bytes that were not audio"."""
    assert unsupported(b"ADIF" + bytes(range(256)) * 20) is not None
    assert "ADIF" in (unsupported(b"ADIF" + bytes(5000)) or "")
    assert "free-format" in (unsupported(free_format_frames()) or "")
    assert "free-format" in (
        unsupported(b"ID3\x03\x00\x00\x00\x00\x00\x10" + bytes(16) + free_format_frames()) or ""
    )
    assert "MP4" in (unsupported(foreign["mp4"][:32768]) or "")
    assert "WMA" in (unsupported(foreign["wma"][:32768]) or "")


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=9000))
def test_junk_is_not_taken_for_an_unsupported_format(data: bytes) -> None:
    """A garbage stream must stay "cannot tell" (retried), never a named refusal."""
    assert unsupported(b"\x00" + data) is None


def test_real_streams_are_not_refused(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    for fmt, args in {"mp3": ["-c:a", "libmp3lame"], "adts": ["-c:a", "aac"]}.items():
        path = tmp_path / fmt
        cmd = [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=2"]
        subprocess.run([*cmd, *args, "-f", fmt, str(path)], check=True)
        assert unsupported(path.read_bytes()[:32768]) is None
