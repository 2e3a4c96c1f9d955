"""`isr record` of live HLS under faults: a segment that answers 404, an HTML page
with status 200 instead of a segment, a recorder paused until segments expired, a
master playlist of three renditions, a playlist that stalls, EXT-X-ENDLIST and a
new stream after it, the server restarted, a program date that jumps, a
discontinuity to another sample rate. Each is logged, becomes a gap with its cause
and length in the next file's sidecar (or, where no audio is lost, a new file with
no false gap), and never a traceback; another source in the same recorder goes on
undisturbed. Verdicts are on frames and sidecars, never on where a split falls."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.hls import (
    Republisher,
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
    gaps = [g for f in files for g in _sidecar(f)["gaps"]]
    # Lost audio always ends the file: a gap is never inside one (clips and the
    # timeline count a file's audio from its start).
    assert all(g["at"] == 0 for g in gaps), gaps
    return gaps


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


def _log(root: Path) -> str:
    path = root / "recorder.log"
    return path.read_text() if path.exists() else ""


def _judge(root: Path, rec: RecorderProcess) -> list[Path]:
    """Every file passes ffmpeg, no traceback, the tone source undisturbed."""
    assert "Traceback" not in rec.output + _log(root)
    files = _files(root)
    assert files
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
    tones = _files(root, "tone")
    assert tones and all(_sidecar(t)["gaps"] == [] for t in tones)
    for t in tones:
        assert ffmpeg_errors(t) == "", t.name
    return files


def _config(url: str, timeout: float = 8) -> str:
    return CONFIG.format(url=url, more="").replace(
        "timeout_seconds = 8", f"timeout_seconds = {timeout:g}"
    )


def test_stalled_playlist_reconnects_and_goes_on(tmp_path: Path) -> None:
    """No new segment for timeout_seconds: a reconnect, which goes on from the
    segment after the last one written (still listed): none twice, none lost."""
    www = tmp_path / "www"
    writer = hls_writer(www, seconds=60, list_size=10)
    try:
        wait_segments(www, 2)
        with Republisher(www) as pub, nginx(www, tmp_path / "nginx") as srv:
            assert wait_for(lambda: (www / "pub.m3u8").exists(), timeout=10)
            rec = RecorderProcess(tmp_path, _config(srv.url("pub.m3u8"), timeout=3))
            with rec:
                rec.wait_recording(timeout=30)
                time.sleep(2)
                pub.stall()
                assert wait_for(lambda: "no new segment" in _log(tmp_path), timeout=20)
                time.sleep(0.5)
                pub.stall(False)
                assert wait_for(lambda: len(_gaps(_files(tmp_path))) >= 1, timeout=20)
                time.sleep(2.5)
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    files = _judge(tmp_path, rec)
    gaps = _gaps(files)
    assert gaps and "no new segment for 3 s" in gaps[0]["cause"], gaps
    assert all(g["seconds"] < 0.5 for g in gaps), gaps  # no audio was lost
    assert _missing_runs(files, pub.frames()) == []  # each file a slice, none lost


def test_endlist_ends_the_source_and_a_new_stream_is_recorded(tmp_path: Path) -> None:
    """EXT-X-ENDLIST: the last segments are written, the source ends and is retried
    like a closed connection; the stream that follows (numbered from 1000) is
    recorded from its first segment, its gap's cause the end, not expired segments."""
    www = tmp_path / "www"
    first = hls_writer(www, seconds=9, list_size=10)
    second = None
    try:
        wait_segments(www, 2)
        with nginx(www, tmp_path / "nginx") as srv:
            rec = RecorderProcess(tmp_path, _config(srv.url("live.m3u8")))
            with rec:
                rec.wait_recording(timeout=30)
                first.wait(timeout=30)
                assert "#EXT-X-ENDLIST" in (www / "live.m3u8").read_text()
                assert wait_for(lambda: "EXT-X-ENDLIST" in _log(tmp_path), timeout=20)
                time.sleep(1.5)  # retried meanwhile, the playlist still ended
                second = hls_writer(
                    www, seconds=60, list_size=10, frequency=660, extra=("-start_number", "1000")
                )
                assert wait_for(lambda: len(_gaps(_files(tmp_path))) >= 1, timeout=30)
                time.sleep(2.5)
                assert rec.stop() == 0
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
    files = _judge(tmp_path, rec)
    log = _log(tmp_path)
    assert log.count("the playlist ended (EXT-X-ENDLIST)") >= 2  # retried
    assert ": a gap" not in log  # ffmpeg's last segment, 0.023 s, holds no whole frame
    gaps = _gaps(files)
    assert len(gaps) == 1 and "EXT-X-ENDLIST" in gaps[0]["cause"], gaps
    served = served_frames(www)
    ended = sum(
        len(_segment_frames(p))
        for p in www.glob("live_*.ts")
        if int(p.stem.rsplit("_", 1)[1]) < 1000
    )
    # the first stream to its last frame, then the second from its first
    assert _missing_runs(files, served) == []
    ends = [contiguous_in(file_frames(f), served) + len(file_frames(f)) for f in files]
    assert ended in ends


def _segment_frames(path: Path) -> list[bytes]:
    from isr.framing.adts import AdtsFramer
    from isr.hls import ts

    framer = AdtsFramer()
    return [f.data for f in framer.feed(ts.demux(path.read_bytes()).data) + framer.flush()]


def test_server_restart_goes_on(tmp_path: Path) -> None:
    """nginx stopped and started again: retried, and the recording goes on from the
    segment after the last one written: nothing lost, nothing twice."""
    www = tmp_path / "www"
    writer = hls_writer(www, seconds=60, list_size=10)
    try:
        wait_segments(www, 2)
        with nginx(www, tmp_path / "nginx") as srv:
            rec = RecorderProcess(tmp_path, _config(srv.url("live.m3u8")))
            with rec:
                rec.wait_recording(timeout=30)
                time.sleep(2)
                srv.stop()
                assert wait_for(lambda: "session ended" in _log(tmp_path), timeout=20)
                time.sleep(1)
                srv.start()
                assert wait_for(lambda: len(_gaps(_files(tmp_path))) >= 1, timeout=30)
                time.sleep(2.5)
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    files = _judge(tmp_path, rec)
    gaps = _gaps(files)
    assert gaps and all(g["seconds"] < 0.5 for g in gaps), gaps
    assert _missing_runs(files, served_frames(www)) == []


def test_program_date_jump_starts_a_file(tmp_path: Path) -> None:
    """The program dates jump an hour ahead: a new file named after the new date,
    its sidecar notes the jump; no frame is lost or repeated."""
    www = tmp_path / "www"
    writer = hls_writer(www, seconds=60, list_size=10)
    try:
        wait_segments(www, 2)
        with Republisher(www) as pub, nginx(www, tmp_path / "nginx") as srv:
            assert wait_for(lambda: (www / "pub.m3u8").exists(), timeout=10)
            rec = RecorderProcess(tmp_path, _config(srv.url("pub.m3u8")))
            with rec:
                rec.wait_recording(timeout=30)
                time.sleep(2)
                pub.jump(3600)
                assert wait_for(lambda: len(_gaps(_files(tmp_path))) >= 1, timeout=20)
                time.sleep(2.5)
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    files = _judge(tmp_path, rec)
    gaps = _gaps(files)
    assert len(gaps) == 1 and gaps[0]["cause"].startswith("the program date jumped +"), gaps
    assert abs(float(gaps[0]["cause"].split()[-2]) - 3600) < 1, gaps
    assert abs(gaps[0]["seconds"] - 3600) < 1, gaps
    after = next(f for f in files if _sidecar(f)["gaps"])
    before = files[files.index(after) - 1]
    assert "program date jumps" in _log(tmp_path)
    assert _missing_runs(files, pub.frames()) == []
    assert after.name > before.name  # named after the new date, an hour on


@pytest.mark.parametrize("rate", [48000, 44100])
def test_discontinuity(tmp_path: Path, rate: int) -> None:
    """An EXT-X-DISCONTINUITY to another encoder's segments: at 48 kHz (after
    44.1 kHz) a new file where they begin, with no gap, and no file holds both rates;
    at the same rate (only the timestamps reset) no new file is forced. Neither
    loses or repeats a frame."""
    www = tmp_path / "www"
    a = hls_writer(www, seconds=60, list_size=10, flags="independent_segments")
    b = hls_writer(
        www,
        seconds=60,
        list_size=10,
        flags="independent_segments",
        rate=rate,
        name="b",
        frequency=660,
    )
    try:
        wait_segments(www, 2)
        wait_segments(www, 2, name="b")
        with Republisher(www) as pub, nginx(www, tmp_path / "nginx") as srv:
            assert wait_for(lambda: (www / "pub.m3u8").exists(), timeout=10)
            rec = RecorderProcess(tmp_path, _config(srv.url("pub.m3u8")))
            with rec:
                rec.wait_recording(timeout=30)
                time.sleep(2)
                at = pub.splice("b.m3u8")
                assert wait_for(lambda: len(pub.entries) > at + 3, timeout=20)
                time.sleep(3)
                assert rec.stop() == 0
    finally:
        stop_process(a)
        stop_process(b)
    files = _judge(tmp_path, rec)
    assert _gaps(files) == []  # no false gap
    served = pub.frames()
    assert _missing_runs(files, served) == []
    # the recording runs past the discontinuity
    last = files[-1]
    assert contiguous_in(file_frames(last), served) + len(file_frames(last)) > len(
        Republisher.frames_of(www, pub.entries[:at])
    )
    changed = "codec parameters change" in _log(tmp_path)
    rates = [{(fr[2] >> 2) & 0x0F for fr in file_frames(f)} for f in files]
    if rate == 48000:
        assert changed
        assert all(len(r) == 1 for r in rates), rates  # 4 = 44.1 kHz, 3 = 48 kHz
        assert rates[0] == {4} and rates[-1] == {3}, rates
    else:
        assert not changed
        assert all(r == {4} for r in rates), rates


@pytest.mark.parametrize(
    ("sig", "path"),
    [(signal.SIGTERM, "live.m3u8"), (signal.SIGKILL, "radio")],
    ids=["stopped", "killed-found-by-content-type"],
)
def test_a_recorder_restarted_within_the_window_loses_and_repeats_nothing(
    tmp_path: Path, sig: int, path: str
) -> None:
    """The recorder stopped (or SIGKILLed) for 5 s while 30 s of segments stay
    listed: the next start goes on, by the program dates, from the audio after the
    last it wrote (dropping the frames a killed run had written of that segment), so
    the files of both runs hold what was served, each frame once, and no gap. The
    killed one's URL has no .m3u8: found to be HLS by its Content-Type, it resumes
    as an HLS source does."""
    www = tmp_path / "www"
    writer = hls_writer(www, seconds=90, list_size=30)  # 30 s listed: room for slow starts
    extra = (
        "    location = /radio { types { } default_type application/vnd.apple.mpegurl; "
        f"alias {www / 'live.m3u8'}; }}\n"
    )
    try:
        wait_segments(www, 2)
        with nginx(www, tmp_path / "nginx", extra) as srv:
            text = _config(srv.url(path))
            with RecorderProcess(tmp_path, text) as first:
                first.wait_recording(timeout=30)
                time.sleep(3)
                first.stop(sig)
            time.sleep(5)
            with RecorderProcess(tmp_path, text) as rec:
                assert wait_for(lambda: "going on from segment" in _log(tmp_path), timeout=30)
                rec.wait_recording(timeout=30)
                time.sleep(3)
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    assert "Traceback" not in first.output + rec.output + _log(tmp_path)
    assert "inside the playlist's window" in _log(tmp_path)
    files = _files(tmp_path)
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
    assert _missing_runs(files, served_frames(www)) == []
    gaps = _gaps(files)
    assert len(gaps) == 1 and gaps[0]["seconds"] < 0.1, gaps  # the restart: no audio lost
