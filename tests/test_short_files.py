"""Short stream files: what a stop, a SIGKILL or a fault leaves when it comes just after
a split boundary. Such a file is legitimate wherever the boundary falls; it must still
be a whole, valid file, and the tools must judge it so (``tests/support/judge.py``)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from isr.framing.adts import AdtsFramer
from isr.framing.base import Framer
from isr.framing.mp3 import Mp3Framer
from isr.segment import MIN_UNITS, Segmenter
from isr.sinks.base import Sink
from tests.support.judge import MP3VAL_MIN_FRAMES, ffmpeg_errors, mp3val_problems
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

    def make_sink(directory: Path, stem: str) -> Sink:
        return Sink(directory, stem, framer.extension)

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
