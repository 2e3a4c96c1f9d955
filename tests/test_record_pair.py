"""A redundant pair end to end: two `isr record` processes (recorder ids rec1 and
rec2) record the same Icecast mount fed by ffmpeg, both uploading to one prefix of a
real S3 HTTP server (moto's). rec1 is stopped for a measured 20 s, later rec2 for
4 s. Over the store, a clip across both outages holds every frame the server sent
exactly once (compared with what a plain listener, curl, received), and the pair's
timeline over the span has no gap. Verdicts compare frames, never where a wall-clock
boundary falls."""

from __future__ import annotations

import functools
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from isr.framing.mp3 import Mp3Framer
from isr.framing.xing import leading_tag_length
from tests.support.icecast import Icecast
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.s3 import Client, S3Server, mirror_of, serve_store
from tests.support.tools import require_tool, stop_process

FRAME = 1152 / 44100


def frames_of(data: bytes) -> list[bytes]:
    framer = Mp3Framer()
    return [f.data for f in framer.feed(data) + framer.flush()]


def recorder(tmp_path: Path, rid: str, url: str, s3: S3Server) -> RecorderProcess:
    cwd = tmp_path / rid
    cwd.mkdir(exist_ok=True)
    text = (
        "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\n"
        f"[radio]\ntype = stream\nurl = {url}\n" + s3.config(recorder_id=rid)
    )
    rec = RecorderProcess(cwd, text)
    rec.wait_recording("radio")
    return rec


def drained(rec: RecorderProcess) -> bool:
    archive: dict[str, Any] = rec.status()["archive"]
    return bool(archive["queue"] == 0)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")


def test_a_pair_fills_each_others_outages_and_a_clip_holds_every_frame_once(
    tmp_path: Path, icecast: Icecast, s3: S3Server, media: MediaFactory
) -> None:
    noise = media("mp3", 180, pattern="noise")
    feeder = icecast.feed(noise, "/pair.mp3", fmt="mp3", content_type="audio/mpeg")
    url = icecast.url("/pair.mp3")
    sent_path = tmp_path / "sent.mp3"
    curl = subprocess.Popen(
        [require_tool("curl"), "-sN", "-o", str(sent_path), url], stdin=subprocess.DEVNULL
    )
    rec2 = recorder(tmp_path, "rec2", url, s3)
    rec1 = recorder(tmp_path, "rec1", url, s3)
    try:
        time.sleep(5)
        a = time.time() - 3  # the clip begins while both record
        assert rec1.stop() == 0, rec1.output
        time.sleep(20)
        rec1 = recorder(tmp_path, "rec1", url, s3)
        time.sleep(5)
        assert rec2.stop() == 0, rec2.output
        time.sleep(4)
        rec2 = recorder(tmp_path, "rec2", url, s3)
        b = time.time() + 2  # it ends after rec2 is back
        time.sleep(7)  # the files that hold b close (3-second files), and go up
        for rec in (rec1, rec2):
            assert wait_for(functools.partial(drained, rec), timeout=60), rec.output
    finally:
        for rec in (rec1, rec2):
            rec.stop()
        stop_process(curl)
        feeder.stop()
    sent = frames_of(sent_path.read_bytes())
    assert len(sent) * FRAME > 40  # the listener heard the whole test

    got: dict[str, Any] = {}

    async def check(c: Client) -> None:
        span = {"source": "radio", "from": iso(a), "to": iso(b)}
        r = await c.get("/api/clip?" + urlencode(span))
        assert r.status == 200, await r.text()
        got["clip"] = await r.read()
        r = await c.get("/api/clip.json?" + urlencode(span))
        got["manifest"] = await r.json()
        r = await c.get("/api/timeline?" + urlencode(span))
        got["timeline"] = await r.json()

    serve_store(mirror_of(s3, tmp_path / "cache"), check)
    data: bytes = got["clip"]
    held = frames_of(data[leading_tag_length(data) :])
    held = held[1:] if held[0] not in sent else held  # the clip's own Info frame
    starts = [i for i in range(len(sent) - 8) if sent[i : i + 8] == held[:8]]
    assert len(starts) == 1, "noise never repeats: the clip's start is found once"
    i = starts[0]
    assert held == sent[i : i + len(held)], "every frame once, in order, none missing"
    # Each end is placed by its recorder's clock, and each dates the burst Icecast
    # sends a new listener its own way: the span is the asked one within that burst.
    assert abs(len(held) * FRAME - (b - a)) < 5.0
    recorders = {p["file"].split("/")[0] for p in got["manifest"]["parts"]}
    assert recorders == {"rec1", "rec2"}
    assert got["manifest"]["gaps"] == []
    assert got["timeline"]["gaps"] == []
    filled_by = {f["by"].split("/")[0] for f in got["timeline"]["filled"]}
    assert filled_by == {"rec1", "rec2"}
