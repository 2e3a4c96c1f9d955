"""`isr record` against a real Icecast 2 fed by real ffmpeg source clients (MP3, ADTS AAC)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.icecast import Icecast
from tests.support.judge import ffmpeg_errors, ffprobe_duration, mp3val_problems
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for

SPLIT = 3.0


def check_split_files(files: list[Path], first_start: datetime, log: str = "") -> None:
    assert len(files) >= 3, [f.name for f in files]
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
    for f in files[1:-1]:
        assert ffprobe_duration(f) == pytest.approx(SPLIT, abs=0.5), f.name
    for f in files[1:]:
        stamp = datetime.strptime(f.name[:15], "%Y%m%d_%H%M%S")
        assert stamp.second % 3 == 0, f.name  # named on the boundary
    # The first file is named after the first aired sample: the burst moved it back.
    first = datetime.strptime(files[0].name[:15], "%Y%m%d_%H%M%S")
    source = files[0].parent.name
    mine = [line for line in log.splitlines() if f"isr.source.{source}:" in line]
    assert first <= first_start, (first_start, "\n".join(mine[:12]))


def test_mp3_and_aac_from_icecast(tmp_path: Path, icecast: Icecast, media: MediaFactory) -> None:
    icecast.feed(media("mp3", 60), "/radio.mp3", fmt="mp3", content_type="audio/mpeg")
    icecast.feed(media("aac", 60), "/radio.aac", fmt="adts", content_type="audio/aac")
    icecast.set_title("/radio.mp3", "Station ID - It's 'on air'")
    time.sleep(3)  # let Icecast hold a burst of older audio for the recorder's connect
    config = (
        "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\n"
        "filename_pattern = {source}/%Y%m%d_%H%M%S\n"
        f"[mp3]\ntype = stream\nurl = {icecast.url('/radio.mp3')}\n"
        f"[aac]\ntype = stream\nurl = {icecast.url('/radio.aac')}\nformat = aac\n"
    )
    started = datetime.now().replace(microsecond=0)
    with RecorderProcess(tmp_path, config) as rec:
        assert wait_for(lambda: rec.status()["sources"]["mp3"]["state"] == "recording")
        time.sleep(10.5)
        status = rec.status()
        assert rec.stop() == 0, rec.output
    assert rec.stop_seconds < 5
    out = tmp_path / "recordings"
    mp3_files = sorted((out / "mp3").glob("*.mp3"))
    aac_files = sorted((out / "aac").glob("*.aac"))
    log = (tmp_path / "rec.log").read_text()
    check_split_files(mp3_files, started, log)
    check_split_files(aac_files, started, log)
    for f in mp3_files:
        assert mp3val_problems(f) == [], f.name
    assert status["sources"]["mp3"]["title"] == "Station ID - It's 'on air'"
    assert status["sources"]["mp3"]["format"] == "mp3"
    assert status["sources"]["aac"]["format"] == "aac"
    side = json.loads((mp3_files[0].with_name(mp3_files[0].name + ".json")).read_text())
    assert side["titles"][0]["title"] == "Station ID - It's 'on air'"
    assert "Traceback" not in (tmp_path / "rec.log").read_text()
