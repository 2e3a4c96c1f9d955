"""Continuity across reconnects: the audio a server repeats on connect (Icecast's
burst) is dropped, so nothing is doubled, and each ledger tells the gap."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from pathlib import Path

import pytest

from isr.framing.xing import leading_tag_length
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.judge import ffmpeg_errors, sessions, sidecar_of
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for

RATE = 16000  # bytes per second of a 128 kbps MP3


def audio_of(path: Path) -> bytes:
    """The file's frames, without the Xing/Info frame the recorder puts first."""
    data = path.read_bytes()
    tag = leading_tag_length(data)
    assert tag, "every MP3 starts with ISR's own Xing/Info frame"
    return data[tag:]


def session_audio(files: list[Path]) -> bytes:
    """The audio of one connection's files, joined: a split boundary that fell in the
    session cut it into two files, and loses nothing."""
    return b"".join(audio_of(f) for f in files)


def test_burst_after_reconnect_is_not_recorded_twice(tmp_path: Path, media: MediaFactory) -> None:
    mount = Mount(
        "/live",
        payload=media("mp3", 60).read_bytes(),
        status_line="HTTP/1.0 200 OK",
        byte_rate=RATE,
        live=True,
        replay_bytes=4 * RATE,  # a 4-second burst on every connect
        drop_after=3 * RATE + 4 * RATE,  # each connection ends 3 s after its burst
        faulty_connections=2,
    )

    def recorded() -> list[Path]:
        return sorted((tmp_path / "recordings").glob("*.mp3"))

    with FakeStreamServer(mount) as srv:
        time.sleep(4.5)  # the live stream runs before we connect, so a burst exists
        config = (
            "[general]\nsplit_minutes = 10\nlog_file = rec.log\nretry_delay_seconds = 0.3\n"
            f"[radio]\ntype = stream\nurl = {srv.url('/live')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            assert wait_for(lambda: srv.connections_to("/live"), step=0.01)
            connected = time.time()
            assert wait_for(lambda: len(srv.connections_to("/live")) >= 3, timeout=30)
            # The third connection holds its audio back until Icecast's burst is all in
            # (up to two read ticks): stop once it wrote its file, not after a guess.
            assert wait_for(lambda: len(sessions(recorded())) >= 3, timeout=20), rec.output
            assert rec.stop() == 0, rec.output
        conns = srv.connections_to("/live")
    files = recorded()
    runs = sessions(files)  # a new file for every connection, and at every split
    assert len(runs) == len(conns) >= 3, [[f.name for f in run] for run in runs]
    spans = []
    for run, conn in zip(runs, conns, strict=True):
        for f in run:
            assert ffmpeg_errors(f) == "", f.name
        data = session_audio(run)
        offset = bytes(conn.audio).find(data)
        assert offset >= 0, f"{run[0].name}.. is not a slice of what connection {conn.index} sent"
        start = conn.start + offset
        spans.append((start, start + len(data)))
    for (_, end), (start, _) in itertools.pairwise(spans):
        # The burst repeated seconds already written; the recording goes on exactly
        # where it stopped: nothing doubled, nothing lost.
        assert start == end
    for run in runs[1:]:
        side = sidecar_of(run[0])
        assert side["gaps"] and side["gaps"][0]["cause"] == "the server closed the connection"
        assert side["gaps"][0]["seconds"] < 0.5
        removed = side["overlaps_removed"]
        assert removed and 2 * RATE < removed[0]["bytes"] < 4 * RATE
    # The first file is named after the moment its first sample was aired: the
    # connect time less the 4-second burst, not the moment the bytes arrived.
    first = sidecar_of(files[0])
    aired = datetime.fromisoformat(first["start"]).timestamp()
    assert connected - 4.6 < aired < connected - 3.3
    assert files[0].name == datetime.fromtimestamp(aired).strftime("%Y%m%d_%H%M%S.mp3")
    log = (tmp_path / "rec.log").read_text()
    assert "the server sent again" in log


def test_a_burst_larger_than_a_read_and_late_is_dated_whole(
    tmp_path: Path, media: MediaFactory
) -> None:
    """Icecast's burst can arrive after the first read and exceed one read: the
    first file is named from the whole burst, not from the part read first (which
    named it seconds late, and cut the first files by a clock that then jumped)."""
    mount = Mount(
        "/live",
        payload=media("mp3", 60).read_bytes(),
        status_line="HTTP/1.0 200 OK",
        byte_rate=RATE,
        live=True,
        replay_bytes=8 * RATE,  # 128 kB: two reads' worth
        stall_after=2000,  # a little of it at once, the rest 1.2 s later
        stall_seconds=1.2,
    )
    with FakeStreamServer(mount) as srv:
        time.sleep(9)  # the live stream runs before we connect, so a burst exists
        config = (
            "[general]\nsplit_minutes = 10\nlog_file = rec.log\n"
            f"[radio]\ntype = stream\nurl = {srv.url('/live')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            assert wait_for(lambda: srv.connections_to("/live"), step=0.01)
            connected = time.time()
            rec.wait_recording()
            time.sleep(1)
            assert rec.stop() == 0, rec.output
    (run,) = sessions(sorted((tmp_path / "recordings").glob("*.mp3")))
    side = sidecar_of(run[0])
    aired = datetime.fromisoformat(side["start"]).timestamp()
    assert connected - 8.6 < aired < connected - 7.3, (connected - aired, side)


def test_quick_restart_neither_doubles_nor_hides_anything(
    tmp_path: Path, media: MediaFactory
) -> None:
    """A restarted recorder gets the server's burst again: what the previous run
    already wrote is dropped, and the first new file notes the gap."""
    mount = Mount(
        "/live",
        payload=media("mp3", 60).read_bytes(),
        status_line="HTTP/1.0 200 OK",
        byte_rate=RATE,
        live=True,
        replay_bytes=4 * RATE,
    )
    config = (
        "[general]\nsplit_minutes = 10\nlog_file = rec.log\n[radio]\ntype = stream\nurl = {url}\n"
    )
    with FakeStreamServer(mount) as srv:
        time.sleep(4.5)
        text = config.format(url=srv.url("/live"))
        for _ in range(2):
            with RecorderProcess(tmp_path, text) as rec:
                rec.wait_recording()
                time.sleep(1.5)
                assert rec.stop() == 0, rec.output
        conns = srv.connections_to("/live")
    runs = sessions(sorted((tmp_path / "recordings").glob("*.mp3")))
    assert len(runs) == len(conns) == 2, [[f.name for f in run] for run in runs]
    spans = []
    for run, conn in zip(runs, conns, strict=True):
        data = session_audio(run)
        offset = bytes(conn.audio).find(data)
        assert offset >= 0
        spans.append((conn.start + offset, conn.start + offset + len(data)))
    assert spans[1][0] >= spans[0][1]  # nothing written twice
    side = sidecar_of(runs[1][0])
    assert side["overlaps_removed"] and side["overlaps_removed"][0]["bytes"] > RATE
    (gap,) = side["gaps"]
    assert gap["cause"] == "the recorder was not running"
    lost = (spans[1][0] - spans[0][1]) / RATE
    assert gap["seconds"] == pytest.approx(lost, abs=0.15)
