"""`isr record` against the tests' own SHOUTcast-like server: ICY metadata stripped
exactly, files a contiguous slice of what was sent, and faults that never disturb a
healthy source in the same config."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from isr.framing.xing import leading_tag_length
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.judge import ffmpeg_errors, ffprobe_duration, mp3val_problems
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for

TITLES: list[str | bytes] = [
    "Artist - It's a 'quoted'; song",
    "Ünïcödé – Läuft",
    "Plain Title",
    "Björk - Jóga".encode("cp1252"),
]
MP3_RATE = 16000  # 128 kbps in bytes per second


def frames_payload(path: Path) -> bytes:
    return path.read_bytes()


def audio_of(path: Path) -> bytes:
    """A recorded MP3 without the Xing/Info frame that ISR writes first in each file."""
    data = path.read_bytes()
    tag = leading_tag_length(data)
    assert tag > 0, f"{path.name} must start with a Xing/Info frame"
    return data[tag:]


def recorded(directory: Path, ext: str) -> list[Path]:
    return sorted(directory.glob(f"*{ext}"))


def sidecar(path: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.with_name(path.name + ".json").read_text())
    return data


@pytest.fixture(scope="module")
def mp3(media: MediaFactory) -> bytes:
    return media("mp3", 40, frequency=440).read_bytes()


def test_icy_stream_is_recorded_byte_exact_without_metadata(tmp_path: Path, mp3: bytes) -> None:
    mount = Mount(
        "/live",
        payload=mp3,
        status_line="ICY 200 OK",
        metaint=8000,
        titles=TITLES,
        title_every=24000,
        byte_rate=MP3_RATE,
        headers={"icy-name": "Fake FM"},
    )
    out = tmp_path / "recordings"
    with FakeStreamServer(mount) as srv:
        config = (
            "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\n"
            f"[radio]\ntype = stream\nurl = {srv.url('/live')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            assert wait_for(
                lambda: rec.status()["sources"]["radio"]["title"] is not None, timeout=15
            )
            # Two whole middle files to judge (the fourth is open), however late the
            # first boundary fell and however slowly the server's thread paced.
            assert wait_for(lambda: len(recorded(out, ".mp3")) >= 4, timeout=30), rec.output
            status = rec.status()
            assert rec.stop() == 0, rec.output
        conn = srv.connections_to("/live")[0]
    assert conn.metadata, "the recorder must ask for ICY metadata"
    assert not conn.headers["user-agent"].startswith("Mozilla")
    files = recorded(out, ".mp3")
    assert len(files) >= 4, rec.output
    joined = b"".join(audio_of(f) for f in files)
    sent = bytes(conn.audio)
    # A contiguous slice of the audio the server sent: nothing lost, doubled or inserted.
    start = sent.find(joined[:4096])
    assert start >= 0
    assert sent[start : start + len(joined)] == joined
    assert b"StreamTitle" not in joined
    # Only what precedes the first whole frame (tags, a partial frame) may be missing.
    assert start < 2000
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
        assert mp3val_problems(f) == [], f.name
    for f in files[1:-1]:
        assert ffprobe_duration(f) == pytest.approx(3.0, abs=0.5), f.name
        assert int(f.stem[-2:]) % 3 == 0  # named on the boundary
    # Titles: in the status file, in the log, and in the sidecars with byte offsets.
    assert status["sources"]["radio"]["title"] in {
        t if isinstance(t, str) else t.decode("cp1252") for t in TITLES
    }
    titles = [t for f in files for t in sidecar(f)["titles"]]  # type: ignore[attr-defined]
    names = {t["title"] for t in titles}
    assert "Artist - It's a 'quoted'; song" in names
    assert "Björk - Jóga" in names or len(names) >= 2
    for f in files:
        for t in sidecar(f)["titles"]:  # type: ignore[attr-defined]
            assert 0 <= t["byte"] <= f.stat().st_size
    log = (tmp_path / "rec.log").read_text()
    assert "title: Artist - It's a 'quoted'; song" in log


def test_faults_are_retried_and_never_disturb_a_healthy_source(tmp_path: Path, mp3: bytes) -> None:
    good = Mount("/good", payload=mp3, status_line="HTTP/1.0 200 OK", byte_rate=MP3_RATE)
    drop = Mount("/drop", payload=mp3, byte_rate=MP3_RATE, drop_after=40000, faulty_connections=1)
    garbage = Mount("/garbage", payload=mp3, garbage=True, byte_rate=MP3_RATE)
    stall = Mount(
        "/stall",
        payload=mp3,
        byte_rate=MP3_RATE,
        stall_after=30000,
        stall_seconds=30,
        faulty_connections=1,
    )
    with FakeStreamServer(good, drop, garbage, stall) as srv:
        dead = FakeStreamServer(Mount("/x", payload=mp3)).start()
        dead_url = dead.url("/x")
        dead.stop()  # nothing listens there any more: connection refused
        config = (
            "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\nmax_retries = 0\n"
            "retry_delay_seconds = 0.5\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
            f"[good]\ntype = stream\nurl = {srv.url('/good')}\n"
            f"[drop]\ntype = stream\nurl = {srv.url('/drop')}\n"
            f"[garbage]\ntype = stream\nurl = {srv.url('/garbage')}\ntimeout_seconds = 3\n"
            f"[stall]\ntype = stream\nurl = {srv.url('/stall')}\ntimeout_seconds = 2\n"
            f"[refused]\ntype = stream\nurl = {dead_url}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            time.sleep(13)
            status = rec.status()["sources"]
            assert rec.stop() == 0, rec.output
    out = tmp_path / "recordings"
    # The healthy source: one connection, continuous files, each on its boundary.
    assert status["good"]["reconnects"] == 0
    assert status["good"]["state"] == "recording"
    good_files = recorded(out / "good", ".mp3")
    assert len(good_files) >= 4
    for f in good_files:
        assert ffmpeg_errors(f) == ""
    for f in good_files[1:-1]:
        assert ffprobe_duration(f) == pytest.approx(3.0, abs=0.5)
    # Dropped mid-stream: a new file on reconnect, the gap in its ledger.
    assert status["drop"]["reconnects"] >= 1
    drop_files = recorded(out / "drop", ".mp3")
    gaps = [g for f in drop_files for g in sidecar(f)["gaps"]]  # type: ignore[attr-defined]
    assert gaps and gaps[0]["cause"] == "the server closed the connection"
    for f in drop_files:
        assert ffmpeg_errors(f) == ""
    # Garbage: nothing written, the reason in the status.
    assert list((out / "garbage").glob("*.mp3")) == []
    assert status["garbage"]["state"] in ("connecting", "retrying")
    assert status["garbage"]["failures"] >= 1 and status["garbage"]["reconnects"] == 0
    assert status["garbage"]["last_error"].startswith(("no valid", "cannot tell the format"))
    # Stall: the timeout reconnects, and recording resumes.
    assert status["stall"]["reconnects"] >= 1
    stall_gaps = [g for f in recorded(out / "stall", ".mp3") for g in sidecar(f)["gaps"]]  # type: ignore[attr-defined]
    assert stall_gaps and stall_gaps[0]["cause"].startswith("no data for 2 s")
    assert status["stall"]["last_error"] is None  # recording again: the error is past
    assert len(recorded(out / "stall", ".mp3")) >= 2
    # Refused: retried, never fatal.
    assert status["refused"]["state"] in ("connecting", "retrying")
    assert status["refused"]["failures"] >= 3
    assert "refused" in (status["refused"]["last_error"] or "").lower()
    log = (tmp_path / "rec.log").read_text()
    assert "Traceback" not in log


def test_a_sender_that_stalls_leaves_a_gap_where_its_audio_never_came(
    tmp_path: Path, mp3: bytes
) -> None:
    """The sender goes silent for 3 s with the connection open, then sends in real time
    from where it stopped: 3 s of air time has no audio. Once the media clock has seen
    the audio stay late long enough to re-anchor, the file ends and the next one starts
    with a gap of those 3 s; every file's sidecar spans the audio it holds, and the
    files are still one contiguous run of what was sent. (The gap is measured against
    the anchor the clock found before the stall: 8 s of audio first, since a recorder
    that starts on a busy machine may read every byte of its first seconds late.)"""
    stall = Mount(
        "/starved",
        payload=mp3,
        byte_rate=MP3_RATE,
        stall_after=8 * MP3_RATE,  # seconds enough for the clock to find its anchor
        stall_seconds=3,
        stall_loses=True,
    )
    out = tmp_path / "recordings"
    with FakeStreamServer(stall) as srv:
        config = (
            "[general]\nsplit_minutes = 60\nlog_file = rec.log\n"
            f"[radio]\ntype = stream\nurl = {srv.url('/starved')}\ntimeout_seconds = 10\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            assert wait_for(
                lambda: any(sidecar(f)["gaps"] for f in recorded(out, ".mp3")),
                timeout=40,
            ), rec.output
            time.sleep(1.5)
            status = rec.status()["sources"]["radio"]
            assert rec.stop() == 0, rec.output
        conn = srv.connections_to("/starved")[0]
    assert status["reconnects"] == 0
    files = recorded(out, ".mp3")
    gaps = [g for f in files for g in sidecar(f)["gaps"]]  # type: ignore[attr-defined]
    assert len(gaps) == 1, gaps
    assert gaps[0]["seconds"] == pytest.approx(3.0, abs=0.5), gaps
    assert "clock jumped" in gaps[0]["cause"], gaps
    for f in files:
        side = sidecar(f)
        span = _time(side["end"]) - _time(side["start"])
        assert span == pytest.approx(ffprobe_duration(f), abs=0.1), (f.name, side)
        assert ffmpeg_errors(f) == "", f.name
    joined = b"".join(audio_of(f) for f in files)
    sent = bytes(conn.audio)
    start = sent.find(joined[:4096])
    assert start >= 0 and sent[start : start + len(joined)] == joined


def _time(text: object) -> float:
    return datetime.fromisoformat(str(text)).timestamp()
