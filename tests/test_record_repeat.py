"""A repeat after a reconnect is proven by the clock as well as by content (issue 11
item 6): audio that repeats itself matches the last frames written at many lengths,
and only the length the media clock agrees with is dropped, never new audio."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from isr.framing.base import Frame
from isr.sources.stream import _Connection
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.judge import ffmpeg_errors, sessions, sidecar_of
from tests.support.recorder import RecorderProcess, wait_for

FRAME = bytes((0xFF, 0xFF, 0x40, 0xC0)) + bytes(132)
"""MPEG-1 layer I, 128 kbps, 44.1 kHz, all allocations zero: silence, every frame alike."""
SAMPLES = 384
RATE = len(FRAME) * 44100 / SAMPLES  # bytes per second


def test_clock_chooses_among_runs_of_alike_frames() -> None:
    frames = [Frame(FRAME, SAMPLES, 44100)] * 600  # 5.2 s
    runs = list(range(1, 601))  # alike frames repeat at every length
    n, seconds = _Connection.clock_repeat(frames, runs, expected=2.0)
    assert abs(seconds - 2.0) <= SAMPLES / 44100 and n == round(2.0 * 44100 / SAMPLES)
    assert _Connection.clock_repeat(frames, [599, 600], expected=2.0) == (0, 0.0)
    assert _Connection.clock_repeat(frames, [], expected=2.0) == (0, 0.0)


@pytest.mark.parametrize("burst", [2.0, 4.0])
def test_reconnect_on_audio_that_repeats_itself(tmp_path: Path, burst: float) -> None:
    mount = Mount(
        "/live",
        payload=FRAME * 20000,
        status_line="HTTP/1.0 200 OK",
        byte_rate=RATE,
        live=True,
        replay_bytes=int(burst * RATE),
        drop_after=int((burst + 3) * RATE),  # the first connection ends 3 s after its burst
        faulty_connections=1,
    )
    with FakeStreamServer(mount) as srv:
        time.sleep(burst + 0.5)  # the live stream runs before we connect: a burst exists
        config = (
            "[general]\nsplit_minutes = 60\nlog_file = rec.log\nretry_delay_seconds = 0.3\n"
            f"[radio]\ntype = stream\nurl = {srv.url('/live')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            assert wait_for(lambda: len(srv.connections_to("/live")) >= 2, timeout=30)
            second = srv.connections_to("/live")[1]
            assert wait_for(lambda: len(second.audio) > (burst + 3) * RATE, timeout=30)
            assert rec.stop() == 0, rec.output
        first = srv.connections_to("/live")[0]
    files = sorted((tmp_path / "recordings").glob("*.mp3"))
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
    # A file per connection, two if the hour's boundary fell in one.
    runs = sessions(files)
    assert len(runs) == 2, rec.output
    after = sidecar_of(runs[1][0])
    # What the server really repeated: where the first connection ended, minus where
    # the second began, on the live stream's own timeline.
    end1 = first.start + len(first.audio)
    repeated = max(0, end1 - second.start) / RATE
    removed = sum(o["seconds"] for o in after["overlaps_removed"])
    assert removed == pytest.approx(repeated, abs=0.35), (after, repeated, rec.output)
    # And the second file holds the rest: nothing new dropped, nothing doubled.
    new_bytes = second.start + len(second.audio) - max(end1, second.start)
    held = sum(f.stat().st_size for f in runs[1]) / RATE
    assert held == pytest.approx(new_bytes / RATE, abs=0.4), (held, new_bytes / RATE)
