"""Clips of Ogg streams the real recorder recorded from the fake server: Vorbis, Opus,
Ogg FLAC across three files and more, and a chained stream (a link of another channel
count starts a file) clipped across the new link.

Moments are chosen from what the sidecars say (a file's start plus a fraction of a
second). A clip's packets must be a contiguous run of the recorded files' packets,
from the second file to the fourth; ffmpeg, ogginfo and opusinfo must accept it; its
duration is what it holds; ``isr verify --clip`` cuts it again, identical, from the
manifest's ranges and proves its parts by the recorder's chain.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from isr.clips.clip import Clipper
from isr.clock import local_zone
from isr.evidence.clipverify import verify_clip
from isr.timeline.index import TimelineIndex
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.judge import decoded_duration, ffprobe_duration, sidecar_of
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for
from tests.test_clips_ogg import audio_of, check_stream, contiguous, judge, links, ogginfo_text
from tests.test_ogg_files import make_source

CONFIG = (
    "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\nretry_delay_seconds = 0.5\n"
    "filename_pattern = {source}/%Y%m%d_%H%M%S\n"
)
SUFFIX = {"vorbis": ".ogg", "opus": ".opus", "oggflac": ".oga"}


def start_of(path: Path) -> float:
    return datetime.fromisoformat(sidecar_of(path)["start"]).timestamp()


def audio_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix in (".ogg", ".opus", ".oga"))


def clip_of(tmp_path: Path, root: Path, source: str, t0: float, t1: float) -> tuple[Path, float]:
    tz = local_zone()
    clipper = Clipper(root, tz, TimelineIndex(root, tz, in_memory=True))
    clip = clipper.make(source, t0, t1)
    clipper.close()
    assert clip.body is not None
    data = b"".join(clip.body.read())
    assert len(data) == clip.length
    out = tmp_path / f"{source}{Path(clip.filename).suffix}"
    out.write_bytes(data)
    out.with_name(out.name + ".json").write_text(json.dumps(clip.manifest))
    report = verify_clip(out, root)
    assert report.ok and report.identical, report.lines()
    return out, clip.plan.end - clip.plan.start


def test_ogg_clips_of_what_the_recorder_recorded(tmp_path: Path, media: MediaFactory) -> None:
    src = tmp_path / "src"
    src.mkdir()
    link = b"".join(
        make_source(src, f"l{i}.ogg", "vorbis", seconds=4, channels=ch, cbr=True).read_bytes()
        for i, ch in enumerate((2, 1))
    )
    mounts = [Mount("/chain.ogg", payload=link, byte_rate=len(link) / 8, content_type="audio/ogg")]
    for kind in SUFFIX:
        data = media(kind, 60).read_bytes()
        mounts.append(
            Mount(f"/{kind}", payload=data, byte_rate=len(data) / 60, content_type="audio/ogg")
        )
    root = tmp_path / "recordings"
    with FakeStreamServer(*mounts) as srv:
        config = CONFIG + "".join(
            f"[{m.path[1:].removesuffix('.ogg')}]\ntype = stream\nurl = {srv.url(m.path)}\n"
            for m in mounts
        )
        with RecorderProcess(tmp_path, config) as rec:
            rec.wait_recording("vorbis")
            assert wait_for(
                lambda: all(len(audio_files(root / k)) >= 5 for k in SUFFIX), timeout=60
            ), rec.output
            time.sleep(0.5)
            assert rec.stop() == 0, rec.output
    for kind, suffix in SUFFIX.items():
        files = audio_files(root / kind)
        assert all(f.suffix == suffix for f in files)
        t0, t1 = start_of(files[1]) + 0.437, start_of(files[3]) + 0.611
        out, held = clip_of(tmp_path, root, kind, t0, t1)
        (one,) = links(out.read_bytes())
        check_stream(one)
        every = audio_of(files)
        counts = [len(audio_of([f])) for f in files]
        assert any(
            counts[0] <= at < sum(counts[:2]) and at + len(one["audio"]) > sum(counts[:3])
            for at in contiguous(one["audio"], every)
        ), kind
        judge(out, kind)
        packet = 0.1  # the longest packet of the three (Ogg FLAC: 4096 samples)
        assert abs(ffprobe_duration(out) - held) <= packet, kind
        assert held - (t1 - t0) <= 2 * packet
    # The chained stream: the file that starts the mono link, and a clip across it.
    files = audio_files(root / "chain")
    idents = [links(f.read_bytes())[0]["headers"][0] for f in files]
    change = next(i for i in range(1, len(files)) if idents[i] != idents[i - 1])
    at = start_of(files[change])
    out, held = clip_of(tmp_path, root, "chain", at - 1.3, at + 1.7)
    chain = links(out.read_bytes())
    assert [c["headers"][0] for c in chain] == idents[change - 1 : change + 1]
    for c in chain:
        check_stream(c)
    assert contiguous(chain[0]["audio"] + chain[1]["audio"], audio_of(files))
    judge(out, "vorbis")
    assert ogginfo_text(out).count("New logical stream") == 2
    assert abs(decoded_duration(out) - held) <= 0.1
    assert "Traceback" not in (tmp_path / "rec.log").read_text()
