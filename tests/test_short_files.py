"""Short stream files: what a stop, a SIGKILL or a fault leaves when it comes just after
a split boundary. Such a file is legitimate wherever the boundary falls; it must still
be a whole, valid file, and the tools must judge it so (``tests/support/judge.py``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile

from isr.framing.adts import AdtsFramer
from isr.framing.base import Framer
from isr.framing.mp3 import Mp3Framer
from isr.segment import MIN_UNITS, Segmenter
from isr.sinks.base import Sink
from tests.support.judge import MP3VAL_MIN_FRAMES, ffmpeg_errors, flac_test, mp3val_problems
from tests.support.media import MediaFactory

pytestmark = pytest.mark.integration

SPLIT = 3.0
BOUNDARY = datetime(2026, 11, 24, 14, 0, 3, tzinfo=UTC).timestamp()


def record(tmp_path: Path, data: bytes, framer: Framer, after: int) -> list[Path]:
    """Frame ``data`` and record it through the real segmenter, timed so that exactly
    ``after`` frames fall at or after a boundary; then stop, as a recorder does."""
    frames = framer.feed(data) + framer.flush()
    frames = frames[: len(frames) // 2]  # enough before the boundary for a first file
    duration = frames[0].samples / frames[0].sample_rate
    t0 = BOUNDARY - (len(frames) - after) * duration + duration / 4
    seg = Segmenter(
        source="s",
        directory=tmp_path,
        base_dir=tmp_path,
        pattern="%H%M%S",
        split_seconds=SPLIT,
        tz=UTC,
        log=logging.getLogger("test"),
    )

    def make_sink(directory: Path, stem: str, ext: str | None) -> Sink:
        return Sink(directory, stem, ext or framer.extension)

    fmt = framer.extension.lstrip(".")
    seg.write_frames(frames, t0, make_sink, fmt, framer.file_writer)
    seg.close()
    return sorted(p for p in tmp_path.iterdir() if p.suffix == framer.extension)


@pytest.mark.parametrize("after", range(MIN_UNITS, MP3VAL_MIN_FRAMES + 1))
def test_an_mp3_file_of_a_few_frames_is_judged_whole(
    tmp_path: Path, media: MediaFactory, after: int
) -> None:
    """mp3val doubts that a file of fewer than ten frames is MPEG at all: the judge
    takes that doubt back only for a whole file, every frame of which ffprobe reads."""
    data = media("mp3", 4, bitrate="64k").read_bytes()
    files = record(tmp_path, data, Mp3Framer(), after)
    assert [f.name for f in files] == ["140001.mp3", "140003.mp3"]
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
        assert mp3val_problems(f) == [], f.name


def test_a_short_mp3_file_with_a_fault_is_still_a_problem(
    tmp_path: Path, media: MediaFactory
) -> None:
    data = media("mp3", 4, bitrate="64k").read_bytes()
    short = record(tmp_path, data, Mp3Framer(), 5)[-1]
    whole = short.read_bytes()
    for name, bad in [("cut.mp3", whole[:-50]), ("junk.mp3", whole + bytes(range(100)))]:
        path = tmp_path / name
        path.write_bytes(bad)
        problems = mp3val_problems(path)
        assert any("truncated" in p or "Garbage" in p for p in problems), (name, problems)


@pytest.mark.parametrize(("kind", "after"), [("mp3", 1), ("aac", 2), ("mp3", 2)])
def test_a_stop_just_after_a_boundary_leaves_only_valid_files(
    tmp_path: Path, media: MediaFactory, kind: str, after: int
) -> None:
    """DESIGN.md: every file passes ``ffmpeg -v error -i FILE -f null -``, and nothing
    is lost at a split. A file of one MP3 frame, or of one or two ADTS frames, is
    one ffmpeg cannot open (its demuxers need two or three frames in a row): the
    few frames a stop leaves past a boundary end the last file instead."""
    data = media(kind, 4, bitrate="64k").read_bytes()
    framer: Framer = Mp3Framer() if kind == "mp3" else AdtsFramer()
    files = record(tmp_path, data, framer, after)
    assert len(files) == 1
    assert ffmpeg_errors(files[0]) == "", files[0].name
    if kind == "mp3":
        assert mp3val_problems(files[0]) == []


@pytest.mark.parametrize("kind", ["mp3", "aac"])
def test_from_min_units_past_a_boundary_a_new_file_starts(
    tmp_path: Path, media: MediaFactory, kind: str
) -> None:
    """The other side: enough frames past the boundary make a file of their own,
    named after the boundary, and it is valid."""
    data = media(kind, 4, bitrate="64k").read_bytes()
    framer: Framer = Mp3Framer() if kind == "mp3" else AdtsFramer()
    files = record(tmp_path, data, framer, MIN_UNITS)
    assert [f.stem for f in files] == ["140001", "140003"]
    for f in files:
        assert ffmpeg_errors(f) == "", f.name


def killed_flac(path: Path, samples: int, rate: int = 8000) -> None:
    """A FLAC file as libsndfile leaves it when the recorder is SIGKILLed: whole frames
    on disk, STREAMINFO's total samples still 0 (unknown)."""
    t = np.arange(samples) / rate
    tone = (np.sin(2 * np.pi * 441 * t) * 0.4 * 32767).astype("<i2")
    soundfile.write(str(path), np.stack([tone, tone], axis=1), rate, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    data[21] &= 0xF0  # total samples: the low 4 bits of byte 21, then bytes 22-25
    data[22:26] = bytes(4)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("samples", [4096, 8192, 5000])
def test_crash_recovery_keeps_the_whole_frames_of_a_killed_flac_file(
    tmp_path: Path, samples: int
) -> None:
    """A SIGKILL just after a split leaves a card's or tone's new FLAC file with a frame
    or two (libsndfile frames 4096 samples). DESIGN.md: a killed recorder's files play
    up to the last second written, and recovery may cut only a partial last frame."""
    from isr.framing.repair import repair_flac

    path = tmp_path / "killed.flac"
    killed_flac(path, samples)
    size = path.stat().st_size
    repair_flac(path)
    assert path.stat().st_size == size  # every frame is whole: nothing to cut
    assert soundfile.info(str(path)).frames == samples
    assert flac_test(path) == ""


def test_crash_recovery_cuts_a_partial_last_flac_frame(tmp_path: Path) -> None:
    """The other side of the defect above, which holds today."""
    from isr.framing.repair import repair_flac

    path = tmp_path / "killed.flac"
    killed_flac(path, 8192)
    path.write_bytes(path.read_bytes()[:-300])  # the kill fell inside the second frame
    assert "partial frame" in (repair_flac(path) or "")
    assert soundfile.info(str(path)).frames == 4096
    assert flac_test(path) == ""
