"""Generated media is what it claims to be, by the judgement of independent tools."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support.judge import (
    decode_pcm,
    decoded_duration,
    ffmpeg_errors,
    ffprobe_duration,
    flac_test,
    mp3val_problems,
    mutagen_duration,
    ogginfo_warnings,
    opusinfo_warnings,
    rms_windows,
)
from tests.support.media import EXTENSIONS, MediaFactory

pytestmark = pytest.mark.integration

SECONDS = 4.0
# ADTS has no length field: ffprobe and mutagen only estimate it from the bitrate.
ESTIMATED_LENGTH = {"aac"}


@pytest.mark.parametrize("kind", sorted(EXTENSIONS))
def test_each_kind_decodes_cleanly_with_right_duration(kind: str, media: MediaFactory) -> None:
    path = media(kind, SECONDS)
    assert path.suffix == EXTENSIONS[kind]
    assert ffmpeg_errors(path) == ""
    assert decoded_duration(path) == pytest.approx(SECONDS, abs=0.1)
    if kind not in ESTIMATED_LENGTH:
        assert ffprobe_duration(path) == pytest.approx(SECONDS, abs=0.1)
        assert mutagen_duration(path) == pytest.approx(SECONDS, abs=0.1)
    if kind.startswith("mp3"):
        assert mp3val_problems(path) == []
    if kind in ("vorbis", "oggflac"):
        assert ogginfo_warnings(path) == []
    if kind == "opus":
        assert opusinfo_warnings(path) == []
    if kind in ("flac", "oggflac"):
        assert flac_test(path) == ""


def test_media_is_cached_per_parameters(media: MediaFactory) -> None:
    first = media("wav", 1.0, frequency=880)
    assert media("wav", 1.0, frequency=880) == first
    assert media("wav", 1.0, frequency=440) != first
    low = decode_pcm(media("wav", 1.0, frequency=440))
    high = decode_pcm(first)
    assert low.shape == high.shape == (44100, 2)
    # A higher tone crosses zero about twice as often.
    crossings = [int(np.count_nonzero(np.diff(np.sign(x[:, 0])))) for x in (low, high)]
    assert crossings[1] == pytest.approx(2 * crossings[0], rel=0.05)


@pytest.mark.parametrize("kind", ["wav", "mp3", "aac", "opus", "vorbis", "oggflac"])
def test_silence_tone_silence_is_loud_where_asked(kind: str, media: MediaFactory) -> None:
    path = media(kind, 3.0, pattern="silence-tone-silence", tone_start=1.0, tone_end=2.0)
    rate = 48000 if kind == "opus" else 44100
    rms = rms_windows(decode_pcm(path, sample_rate=rate), rate, window_s=0.01)
    loud = [i for i, value in enumerate(rms) if value > 0.1]
    # A 0.5-amplitude sine has RMS 0.354; codecs smear an edge by a few ms (AAC priming ~23).
    assert loud[0] * 0.01 == pytest.approx(1.0, abs=0.04)
    assert (loud[-1] + 1) * 0.01 == pytest.approx(2.0, abs=0.04)
    assert len(loud) == pytest.approx(100, abs=3)
    assert min(rms[110:190]) == pytest.approx(0.354, abs=0.03)
    assert max(rms[:90] + rms[210:290]) < 0.01


def test_judges_notice_broken_files(media: MediaFactory, tmp_path: Path) -> None:
    """The judges are not rubber stamps: a cut Ogg file and a damaged MP3 are caught."""
    opus = tmp_path / "cut.opus"
    data = media("opus", SECONDS).read_bytes()
    opus.write_bytes(data[: len(data) // 2])
    assert opusinfo_warnings(opus) != []

    vorbis = tmp_path / "cut.ogg"
    data = media("vorbis", SECONDS).read_bytes()
    vorbis.write_bytes(data[: len(data) // 2])
    assert ogginfo_warnings(vorbis) != []

    mp3 = tmp_path / "damaged.mp3"
    data = media("mp3", SECONDS).read_bytes()
    mid = len(data) // 2
    mp3.write_bytes(data[:mid] + b"\xff\xfb" + bytes(300) + data[mid:])
    assert mp3val_problems(mp3) != []

    flac = tmp_path / "damaged.flac"
    shutil.copy(media("flac", SECONDS), flac)
    raw = bytearray(flac.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)
    flac.write_bytes(bytes(raw))
    assert flac_test(flac) != ""
