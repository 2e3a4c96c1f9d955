"""Clips of what the real recorder recorded: from the fake server (MP3, ADTS AAC, native
FLAC, a reconnect), from a real Icecast, and from tone sources (WAV, FLAC from PCM);
a clip ending in the file being recorded, served by the web UI while the recorder
writes it.

Moments are chosen from what the sidecars say (a file's start, plus a fraction of a
second), never from where a wall-clock boundary fell, and the frames a clip must hold
are found with the recorder's own framer in the recorded files: the frame aired at
FROM (its file's start plus the samples before it) to the one aired at TO.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
import soundfile
from aiohttp.test_utils import TestClient, TestServer

from isr.clips.clip import Clipper
from isr.clock import local_zone
from isr.evidence.clipverify import verify_clip
from isr.framing.adts import AdtsFramer
from isr.framing.base import Framer
from isr.framing.flac import FlacFramer, frame_header, renumber_frame
from isr.framing.mp3 import Mp3Framer
from isr.framing.xing import leading_tag_length
from isr.sidecar import iso
from isr.timeline.index import TimelineIndex
from isr.web.app import create_app
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.icecast import Icecast
from tests.support.judge import (
    decode_pcm,
    ffmpeg_errors,
    ffprobe_duration,
    flac_test,
    mp3val_problems,
    sidecar_of,
)
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for

CONFIG = (
    "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\nretry_delay_seconds = 0.5\n"
    "filename_pattern = {source}/%Y%m%d_%H%M%S\n"
)
FRAMERS: dict[str, type[Framer]] = {".mp3": Mp3Framer, ".aac": AdtsFramer, ".flac": FlacFramer}


@dataclass
class Unit:
    data: bytes
    start: float
    end: float


def audio_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix in (*FRAMERS, ".wav"))


def start_of(path: Path) -> float:
    return datetime.fromisoformat(sidecar_of(path)["start"]).timestamp()


def units(path: Path) -> list[Unit]:
    """The frames of a recorded file with the times they were aired."""
    data = path.read_bytes()
    if path.suffix == ".mp3":
        data = data[leading_tag_length(data) :]
    framer = FRAMERS[path.suffix]()
    frames = framer.feed(data) + framer.flush()
    t0 = start_of(path)
    out, samples = [], 0
    for f in frames:
        a = t0 + samples / f.sample_rate
        samples += f.samples
        out.append(Unit(f.data, a, t0 + samples / f.sample_rate))
    return out


def expected(files: list[Path], t0: float, t1: float) -> list[Unit]:
    """The units from the one aired at ``t0`` to the one aired just before ``t1``."""
    every = [u for f in files for u in units(f)]
    first = next(i for i, u in enumerate(every) if u.start <= t0 < u.end)
    last = next(i for i, u in enumerate(every) if u.start < t1 <= u.end)
    return every[first : last + 1]


def verified(root: Path, clip: Path, manifest: dict[str, Any]) -> list[str]:
    """``isr verify --clip``'s lines for ``clip`` with ``manifest`` beside it (none
    and intact: the chain the recorder wrote proves every part)."""
    clip.with_name(clip.name + ".json").write_text(json.dumps(manifest))
    report = verify_clip(clip, root)
    assert report.ok and report.identical and report.proven == len(manifest["parts"]), (
        report.lines()
    )
    return report.notes


def make_clip(root: Path, source: str, t0: float, t1: float) -> tuple[bytes, dict[str, Any]]:
    tz = local_zone()
    clipper = Clipper(root, tz, TimelineIndex(root, tz, in_memory=True))
    clip = clipper.make(source, t0, t1)
    clipper.close()
    assert clip.body is not None
    return b"".join(clip.body.read()), clip.manifest


def check_stream_clip(
    tmp_path: Path, root: Path, source: str, sent: bytes | None, pcm: np.ndarray | None
) -> None:
    files = audio_files(root / source)
    assert len(files) >= 4, [f.name for f in files]
    t0 = start_of(files[1]) + 0.437
    t1 = start_of(files[3]) + 0.611
    data, manifest = make_clip(root, source, t0, t1)
    assert len(manifest["parts"]) >= 3
    want = expected(files, t0, t1)
    out = tmp_path / f"{source}{files[0].suffix}"
    out.write_bytes(data)
    assert ffmpeg_errors(out) == ""
    assert verified(root, out, manifest) == []
    held = want[-1].end - want[0].start
    frame = want[0].end - want[0].start
    assert 0 <= t0 - want[0].start < frame and 0 < want[-1].end - t1 <= frame + 1e-3
    assert manifest["start"] == iso(want[0].start, local_zone())
    for part in manifest["parts"]:  # closed files: their sidecar's SHA-256, and true
        digest = hashlib.sha256((root / part["file"]).read_bytes()).hexdigest()
        assert part["sha256"] == digest
    if files[0].suffix == ".flac":
        framer = FlacFramer()
        got = [f.data for f in framer.feed(data) + framer.flush()]
        assert len(got) == len(want)
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            h = frame_header(w.data)
            assert h is not None
            assert g == renumber_frame(w.data, h, k), k
        assert flac_test(out) == ""
        assert ffprobe_duration(out) == pytest.approx(held, abs=0.001)
        assert pcm is not None
        clip_pcm, _ = soundfile.read(str(out), dtype="int16", always_2d=True)
        at = np.flatnonzero(np.all(pcm == clip_pcm[0], axis=1))
        assert any(np.array_equal(pcm[i : i + len(clip_pcm)], clip_pcm) for i in at)
        return
    audio = data[leading_tag_length(data) :] if files[0].suffix == ".mp3" else data
    joined = b"".join(u.data for u in want)
    assert audio == joined, "the recorded frames from FROM's to TO's, byte for byte"
    if sent is not None:
        assert sent.find(joined) >= 0, "a contiguous run of what the server sent"
    if files[0].suffix == ".mp3":
        assert mp3val_problems(out) == []
        assert ffprobe_duration(out) == pytest.approx(held, abs=0.002)
    else:
        # ADTS has no header to tell a duration: count what decodes (1024 per frame).
        assert len(decode_pcm(out, channels=1)) == 1024 * len(want)


def serve_clip_now(root: Path, source: str, t0: float) -> tuple[int, bytes, dict[str, Any]]:
    """``/api/clip`` to an hour from now, over HTTP, while the recorder writes."""
    tz = local_zone()
    q = urlencode({"source": source, "from": iso(t0, tz), "to": iso(time.time() + 3600, tz)})

    async def main() -> tuple[int, bytes, dict[str, Any]]:
        async with TestClient(TestServer(create_app(root), host="127.0.0.1")) as c:
            m = await (await c.get("/api/clip.json?" + q)).json()
            r = await c.get("/api/clip?" + q)
            body = await r.read()
            assert int(r.headers["Content-Length"]) == len(body)
            return r.status, body, m

    return asyncio.run(main())


def test_clips_of_streams_recorded_from_the_fake_server(
    tmp_path: Path, media: MediaFactory
) -> None:
    mp3 = media("mp3", 60).read_bytes()
    aac = media("aac", 60).read_bytes()
    flac_path = media("flac", 60)
    flac = flac_path.read_bytes()
    mounts = [
        Mount("/mp3", payload=mp3, byte_rate=16000),
        Mount("/aac", payload=aac, byte_rate=len(aac) / 60, content_type="audio/aac"),
        Mount("/flac", payload=flac, byte_rate=len(flac) / 60, content_type="audio/flac"),
        Mount("/drop", payload=mp3, byte_rate=16000, drop_after=110_000, faulty_connections=1),
    ]
    root = tmp_path / "recordings"
    with FakeStreamServer(*mounts) as srv:
        config = CONFIG + "".join(
            f"[{m.path[1:]}]\ntype = stream\nurl = {srv.url(m.path)}\n" for m in mounts
        )
        with RecorderProcess(tmp_path, config) as rec:
            rec.wait_recording("mp3")
            assert wait_for(lambda: len(list((root / "mp3").glob("*.mp3"))) >= 5, timeout=40)
            # A clip to "now", served while the recorder writes its last file.
            files = sorted((root / "mp3").glob("*.mp3"))
            status, body, m = serve_clip_now(root, "mp3", start_of(files[-3]) + 0.2)
            assert status == 200
            last = m["parts"][-1]
            assert last["file"] == f"mp3/{files[-1].name}" and last["sha256"] is None
            assert len(m["parts"][0]["sha256"]) == 64
            growing = tmp_path / "now.mp3"
            growing.write_bytes(body)
            assert ffmpeg_errors(growing) == ""
            assert wait_for(lambda: len(list((root / "drop").glob("*.mp3"))) >= 6, timeout=30)
            assert rec.stop() == 0, rec.output
        sent = {m.path[1:]: bytes(srv.connections_to(m.path)[0].audio) for m in mounts}
    # The clip to "now": its last part, still recorded then, is proven by the chain
    # line written when the file closed (and so is one whose line was not written yet,
    # its check under way).
    notes = verified(root, growing, m)
    assert notes[-1].startswith(f"note: part {len(m['parts'])} (mp3/{files[-1].name}): ")
    assert all(n.endswith("after the clip was made") for n in notes)
    source_pcm, _ = soundfile.read(str(flac_path), dtype="int16", always_2d=True)
    check_stream_clip(tmp_path, root, "mp3", sent["mp3"], None)
    check_stream_clip(tmp_path, root, "aac", sent["aac"], None)
    check_stream_clip(tmp_path, root, "flac", None, source_pcm)
    # Across the reconnect: both sides, and the gap in the manifest.
    drops = audio_files(root / "drop")
    after = next(i for i, f in enumerate(drops) if i and sidecar_of(f)["gaps"])
    before = drops[after - 1]
    length = datetime.fromisoformat(sidecar_of(before)["end"]).timestamp() - start_of(before)
    t0, t1 = start_of(before) + length / 2, start_of(drops[after]) + 1.3
    data, manifest = make_clip(root, "drop", t0, t1)
    want = expected(drops, t0, t1)
    assert data[leading_tag_length(data) :] == b"".join(u.data for u in want)
    (gap,) = manifest["gaps"]
    assert gap["cause"] and gap["end"] == iso(start_of(drops[after]), local_zone())
    out = tmp_path / "across.mp3"
    out.write_bytes(data)
    assert ffmpeg_errors(out) == ""
    assert "Traceback" not in (tmp_path / "rec.log").read_text()


@pytest.mark.integration
def test_mp3_clip_recorded_from_icecast(
    tmp_path: Path, icecast: Icecast, media: MediaFactory
) -> None:
    source = media("mp3", 60)
    icecast.feed(source, "/radio.mp3", fmt="mp3", content_type="audio/mpeg")
    time.sleep(2)
    root = tmp_path / "recordings"
    config = CONFIG + f"[radio]\ntype = stream\nurl = {icecast.url('/radio.mp3')}\n"
    with RecorderProcess(tmp_path, config) as rec:
        rec.wait_recording("radio")
        assert wait_for(lambda: len(list((root / "radio").glob("*.mp3"))) >= 5, timeout=40)
        assert rec.stop() == 0, rec.output
    check_stream_clip(tmp_path, root, "radio", source.read_bytes(), None)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_clips_of_tone_recordings_are_the_captured_samples(tmp_path: Path, fmt: str) -> None:
    rate = 8000
    config = CONFIG + (
        f"[tone]\ntype = tone\nsample_rate = {rate}\nchannels = 2\nfrequency = 441\n"
        f"format = {fmt}\n"
    )
    root = tmp_path / "recordings"
    with RecorderProcess(tmp_path, config) as rec:
        assert wait_for(lambda: len(list((root / "tone").glob(f"*.{fmt}"))) >= 5, timeout=40)
        assert rec.stop() == 0, rec.output
    files = audio_files(root / "tone")
    pcm = [soundfile.read(str(f), dtype="int16", always_2d=True)[0] for f in files]
    joined = np.concatenate(pcm[1:])  # one capture from the second file's start on
    for a, b in ((0.123457, 0.5), (2.9999, 0.0001), (0.0, 0.0)):
        t0 = start_of(files[1]) + a
        t1 = start_of(files[3]) + b
        data, manifest = make_clip(root, "tone", t0, t1)
        assert len(manifest["parts"]) >= 2
        out = tmp_path / f"clip{a}.{fmt}"
        out.write_bytes(data)
        assert verified(root, out, manifest) == []
        got, got_rate = soundfile.read(str(out), dtype="int16", always_2d=True)
        g0, n = round(a * rate), round((t1 - t0) * rate)
        assert got_rate == rate and len(got) == n
        assert np.array_equal(got, joined[g0 : g0 + n]), (a, b)
        assert ffmpeg_errors(out) == ""
        if fmt == "flac":
            assert flac_test(out) == ""
