"""`isr record` of live HLS under faults: a segment that answers 404, an HTML page
with status 200 instead of a segment, a recorder paused until segments expired, a
master playlist of three renditions. Each is logged, becomes a gap with its cause
and length in the next file's sidecar, and never a traceback; another source in
the same recorder goes on undisturbed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.hls import (
    contiguous_in,
    file_frames,
    hls_writer,
    nginx,
    served_frames,
    wait_segments,
)
from tests.support.judge import ffmpeg_errors
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.tools import popen, require_tool, stop_process

pytestmark = pytest.mark.integration

FRAME = 1024 / 44100

CONFIG = """\
[general]
output_directory = recordings
split_minutes = 1
filename_pattern = {{source}}/%Y%m%d_%H%M%S
retry_delay_seconds = 1
max_retries = 0

[radio]
type = stream
url = {url}
timeout_seconds = 8
{more}

[tone]
type = tone
sample_rate = 8000
channels = 1
"""


def _files(root: Path, source: str = "radio") -> list[Path]:
    d = root / "recordings" / source
    if not d.exists():
        return []
    return sorted(p for p in d.iterdir() if p.suffix in (".aac", ".mp3", ".wav"))


def _sidecar(p: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(p.with_name(p.name + ".json").read_text())
    return data


def _gaps(files: list[Path]) -> list[dict[str, Any]]:
    return [g for f in files for g in _sidecar(f)["gaps"]]


def _missing_runs(files: list[Path], served: list[bytes]) -> list[int]:
    """Frames served but not recorded between consecutive files (each file is a
    slice of what was served)."""
    runs: list[int] = []
    end = None
    for f in files:
        frames = file_frames(f)
        at = contiguous_in(frames, served)
        if end is not None and at != end:
            runs.append(at - end)
        end = at + len(frames)
    return runs


def test_404_and_html_segments_are_gaps(tmp_path: Path) -> None:
    www = tmp_path / "www"
    extra = (
        "    location = /live_7.ts { return 404; }\n"
        "    location = /live_10.ts { default_type text/html; "
        'return 200 "<html><body>Service unavailable</body></html>"; }\n'
    )
    writer = hls_writer(www, seconds=60)
    try:
        wait_segments(www, 2)
        with nginx(www, tmp_path / "nginx", extra) as srv:
            rec = RecorderProcess(tmp_path, CONFIG.format(url=srv.url("live.m3u8"), more=""))
            with rec:
                rec.wait_recording(timeout=30)
                assert wait_for(lambda: len(_gaps(_files(tmp_path))) >= 2, timeout=40), rec.output
                time.sleep(1.5)
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    out = rec.output + (tmp_path / "recorder.log").read_text()
    assert "Traceback" not in out
    assert "segment 7" in out and "segment 10" in out
    files = _files(tmp_path)
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
    gaps = _gaps(files)
    assert [g["cause"].split(":")[0] for g in gaps] == ["segment 7", "segment 10"], gaps
    assert "404" in gaps[0]["cause"] and "not audio" in gaps[1]["cause"], gaps
    served = served_frames(www)
    missing = _missing_runs(files, served)
    assert len(missing) == 2
    for gap, frames in zip(gaps, missing, strict=True):
        assert abs(gap["seconds"] - frames * FRAME) < 1.0, (gap, frames)
    # the tone source went on undisturbed: one unbroken file
    tones = _files(tmp_path, "tone")
    assert tones and all(_sidecar(t)["gaps"] == [] for t in tones)


def test_paused_recorder_notes_expired_segments(tmp_path: Path) -> None:
    www = tmp_path / "www"
    writer = hls_writer(www, seconds=60, flags="program_date_time+delete_segments")
    try:
        wait_segments(www, 2)
        with nginx(www, tmp_path / "nginx") as srv:
            rec = RecorderProcess(tmp_path, CONFIG.format(url=srv.url("live.m3u8"), more=""))
            with rec:
                rec.wait_recording(timeout=30)
                time.sleep(3)
                os.kill(rec.pid, signal.SIGSTOP)
                time.sleep(9)  # 5 segments listed: several expire meanwhile
                os.kill(rec.pid, signal.SIGCONT)
                assert wait_for(lambda: len(_gaps(_files(tmp_path))) >= 1, timeout=20), rec.output
                time.sleep(2)
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    assert "Traceback" not in rec.output
    files = _files(tmp_path)
    gaps = _gaps(files)
    assert len(gaps) == 1 and "expired" in gaps[0]["cause"], gaps
    # 9 s paused, 5 s listed: ~4 s of segments expired; the gap's length is within
    # a segment's duration (1 s) of the audio really missing
    assert 1.5 < gaps[0]["seconds"] < 7.5, gaps
    for f in files:
        assert ffmpeg_errors(f) == "", f.name


def _master_writer(www: Path) -> Any:
    ffmpeg = require_tool("ffmpeg")
    www.mkdir(parents=True, exist_ok=True)
    args = [
        ffmpeg, "-v", "error", "-re", "-f", "lavfi", "-i", "sine=f=440:r=44100", "-t", "60",
        "-map", "0:a", "-map", "0:a", "-map", "0:a", "-c:a", "aac",
        "-b:a:0", "32k", "-b:a:1", "128k", "-b:a:2", "64k",
        "-f", "hls", "-hls_time", "1", "-hls_list_size", "5",
        "-var_stream_map", "a:0 a:1 a:2", "-master_pl_name", "master.m3u8",
        "-hls_segment_filename", str(www / "v%v/live_%d.ts"), str(www / "v%v/live.m3u8"),
    ]  # fmt: skip
    return popen(args, cwd=www)


@pytest.mark.parametrize(("variant", "expect"), [(None, "v1"), (2, "v2")])
def test_master_playlist_chooses_rendition(
    tmp_path: Path, variant: int | None, expect: str
) -> None:
    www = tmp_path / "www"
    writer = _master_writer(www)
    try:
        assert wait_for(lambda: (www / "master.m3u8").exists(), timeout=20)
        wait_segments(www / "v0", 2)
        more = "" if variant is None else f"hls_variant = {variant}"
        with nginx(www, tmp_path / "nginx") as srv:
            rec = RecorderProcess(tmp_path, CONFIG.format(url=srv.url("master.m3u8"), more=more))
            with rec:
                rec.wait_recording(timeout=30)
                time.sleep(3)
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    assert "Traceback" not in rec.output
    files = _files(tmp_path)
    recorded = [fr for f in files for fr in file_frames(f)]
    contiguous_in(recorded, served_frames(www / expect))
    log = (tmp_path / "recorder.log").read_text()
    assert "3 variants" in log
