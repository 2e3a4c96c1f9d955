"""Waveform analysis of real encoded files in every format the recorder writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from isr.web.analyse import AnalysisError, analyse_file
from tests.support.media import MediaFactory

KINDS = ["mp3", "aac", "vorbis", "opus", "oggflac", "flac", "wav"]


@pytest.mark.parametrize("kind", KINDS)
def test_loud_matches_the_tone(media: MediaFactory, kind: str) -> None:
    path = media(kind, 6, pattern="silence-tone-silence", tone_start=2.0, tone_end=4.5)
    result = analyse_file(path).to_json(0.05)
    assert result["window_ms"] == 100
    assert abs(result["duration_s"] - 6.0) < 0.1, result["duration_s"]
    assert len(result["rms"]) == pytest.approx(60, abs=1)
    loud = result["loud"]
    assert len(loud) == 1, loud
    start, end = loud[0]
    assert abs(start - 2.0) <= 0.2 and abs(end - 4.5) <= 0.2, loud
    # amplitude 0.5 sine in both channels: RMS 0.354 (a full-scale square is 1)
    peak = max(result["rms"])
    assert 0.3 < peak < 0.4, peak
    assert max(result["rms"][:15]) < 0.01


def test_undecodable_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "x.mp3"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(AnalysisError):
        analyse_file(bad)


def test_truncated_file_yields_what_decodes(media: MediaFactory, tmp_path: Path) -> None:
    src = media("mp3", 6, pattern="silence-tone-silence", tone_start=2.0, tone_end=4.5)
    cut = tmp_path / "cut.mp3"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 7])  # a recording still being written
    result = analyse_file(cut).to_json(0.05)
    assert 2.5 < result["duration_s"] < 3.5
    assert result["loud"] and abs(result["loud"][0][0] - 2.0) <= 0.2


_PROBE = """
import json, resource, sys
import av, numpy
from isr.web.analyse import analyse_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
a = analyse_file(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "after_kb": after, "duration": a.duration_s}))
"""


def test_memory_stays_bounded(media: MediaFactory) -> None:
    """Two minutes of stereo: holding it whole as float64 would add ~85 MB."""
    path = media("flac", 120, pattern="tone")
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    m = json.loads(out.stdout)
    grown_mb = (m["after_kb"] - m["before_kb"]) / 1024
    assert m["duration"] == pytest.approx(120, abs=0.1)
    assert grown_mb < 30, m
