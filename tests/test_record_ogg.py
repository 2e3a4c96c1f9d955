"""`isr record` on Ogg streams: Vorbis, Opus and FLAC from a real Icecast 2 fed by
ffmpeg, and chained Vorbis and Opus streams from the tests' own server, all in one
recorder (sources run in parallel) with 3 s files."""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from isr.framing.ogg import OggFramer
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.icecast import Icecast
from tests.support.judge import decode_pcm, ffprobe_info
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.tools import require_tool
from tests.test_ogg_files import durations, judge, make_source

SPLIT = 3.0
LINK = 2.0
"""Seconds per link of the chained streams."""
SETTLING = 0.5
"""How far a young connection's settling clock may move a file's ends, beyond a
page (run 85: a file redated 0.2 s at its start and 0.3 s at its end)."""


def chained(directory: Path, codec: str, channels: list[int]) -> tuple[bytes, float]:
    """Links of ``LINK`` seconds with the given channel counts, and the byte rate."""
    ext = ".ogg" if codec == "vorbis" else ".opus"
    data = b""
    for i, ch in enumerate(channels):
        expr = f"0.3*sin(2*PI*{330 + 110 * i}*t)"
        path = make_source(
            directory,
            f"{codec}-{i}-{ch}{ext}",
            codec,
            expr=expr,
            seconds=LINK,
            channels=ch,
            title=f"Track {i}",
            page_ms=250,
            cbr=True,  # served at one byte rate: every link must run at real time
        )
        data += path.read_bytes()
    return data, len(data) / (LINK * len(channels))


def audio_files(directory: Path) -> list[Path]:
    return sorted(f for f in directory.iterdir() if f.suffix != ".json")


def longest_page(path: Path) -> float:
    framer = OggFramer()
    frames = framer.feed(path.read_bytes()) + framer.flush()
    return max(f.samples / f.sample_rate for f in frames)


def channels_of(path: Path) -> int:
    return int(ffprobe_info(path)["streams"][0]["channels"])


def check_files(files: list[Path], codec: str, ext: str) -> None:
    assert len(files) >= 3, [f.name for f in files]
    for f in files:
        assert f.suffix == ext
        judge(f, codec)
    spans = [span_of(f) for f in files]
    for (_, end), (start, _), f in zip(spans, spans[1:], files[1:], strict=False):
        assert start == pytest.approx(end, abs=0.002), f.name  # the files abut
    for f, (start, end) in list(zip(files, spans, strict=True))[1:-1]:
        # A file ends before the first page at or after its boundary, by the recorder's
        # clock then: the split give or take a page. Icecast re-pages Vorbis into pages
        # of half a second (format_vorbis.c flushes every rate/2 samples), more than
        # ffmpeg's 0.25 s. On a young connection that clock settles (its closed files
        # are redated, by how much depends on the machine's load): so the audio is
        # judged against the span its sidecar gives, and that span against the split
        # with room for the settling.
        page = longest_page(f)
        for d in durations(f, codec):
            assert d == pytest.approx(end - start, abs=page + 0.05), (f.name, d, end - start)
        assert end - start == pytest.approx(SPLIT, abs=max(0.5, page + 0.1) + SETTLING), f.name
    for f in files[1:]:
        assert datetime.strptime(f.name[:15], "%Y%m%d_%H%M%S").second % 3 == 0, f.name


def span_of(path: Path) -> tuple[float, float]:
    side = json.loads(path.with_name(path.name + ".json").read_text())
    return (
        datetime.fromisoformat(side["start"]).timestamp(),
        datetime.fromisoformat(side["end"]).timestamp(),
    )


def test_ogg_streams_are_recorded_into_valid_split_files(
    tmp_path: Path, icecast: Icecast, media: MediaFactory
) -> None:
    require_tool("ogginfo")
    require_tool("opusinfo")
    flac_src = media("oggflac", 60, frequency=523)
    # Files split on page boundaries: ffmpeg's default 1 s pages would make a 3 s file
    # 2 or 3 pages long; live encoders flush pages more often, and so do these feeds.
    pages = ["-page_duration", "250000"]
    for path, mount, fmt in (
        (media("vorbis", 60), "/v.ogg", "ogg"),
        (media("opus", 60), "/o.opus", "opus"),
        (flac_src, "/f.oga", "ogg"),
    ):
        icecast.feed(path, mount, fmt=fmt, content_type="audio/ogg", extra_args=pages)
    src = tmp_path / "src"
    src.mkdir()
    same_v, rate_same_v = chained(src, "vorbis", [2, 2, 2])
    diff_v, rate_diff_v = chained(src, "vorbis", [2, 1, 2])
    same_o, rate_same_o = chained(src, "opus", [2, 2, 2])
    diff_o, rate_diff_o = chained(src, "opus", [2, 1, 2])
    mounts = [
        Mount("/same.ogg", payload=same_v, byte_rate=rate_same_v, content_type="audio/ogg"),
        Mount("/diff.ogg", payload=diff_v, byte_rate=rate_diff_v, content_type="audio/ogg"),
        Mount("/same.opus", payload=same_o, byte_rate=rate_same_o, content_type="audio/ogg"),
        Mount("/diff.opus", payload=diff_o, byte_rate=rate_diff_o, content_type="audio/ogg"),
    ]
    time.sleep(2)  # let Icecast hold a burst of older audio for the recorder's connect
    with FakeStreamServer(*mounts) as srv:
        config = (
            "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\n"
            "filename_pattern = {source}/%Y%m%d_%H%M%S\n"
            f"[vorbis]\ntype = stream\nurl = {icecast.url('/v.ogg')}\n"
            f"[opus]\ntype = stream\nurl = {icecast.url('/o.opus')}\n"
            f"[flac]\ntype = stream\nurl = {icecast.url('/f.oga')}\nformat = ogg\n"
            f"[same_v]\ntype = stream\nurl = {srv.url('/same.ogg')}\n"
            f"[diff_v]\ntype = stream\nurl = {srv.url('/diff.ogg')}\n"
            f"[same_o]\ntype = stream\nurl = {srv.url('/same.opus')}\n"
            f"[diff_o]\ntype = stream\nurl = {srv.url('/diff.opus')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            assert wait_for(
                lambda: all(s["state"] == "recording" for s in rec.status()["sources"].values())
            ), rec.output
            time.sleep(10.5)
            status = rec.status()
            assert rec.stop() == 0, rec.output
    assert rec.stop_seconds < 5
    out = tmp_path / "recordings"
    log = (tmp_path / "rec.log").read_text()
    assert "Traceback" not in log
    for name in ("vorbis", "opus", "flac", "same_v", "diff_v", "same_o", "diff_o"):
        expected = "opus" if name in ("opus", "same_o", "diff_o") else "ogg"
        assert status["sources"][name]["format"] == expected, name
        assert status["sources"][name]["reconnects"] == 0, name

    check_files(audio_files(out / "vorbis"), "vorbis", ".ogg")
    check_files(audio_files(out / "opus"), "opus", ".opus")
    flac_files = audio_files(out / "flac")
    check_files(flac_files, "oggflac", ".oga")
    # Ogg FLAC is lossless: the files joined are a contiguous slice of the source.
    joined = np.concatenate([decode_pcm(f) for f in flac_files])
    whole = decode_pcm(flac_src)
    candidates = np.flatnonzero(whole[:, 0] == joined[0, 0])
    assert any(np.array_equal(whole[i : i + len(joined)], joined) for i in candidates)

    # Chains with one setup: one file per 3 s slot, de-chained (one logical stream).
    for name in ("same_v", "same_o"):
        files = audio_files(out / name)
        codec = "vorbis" if name == "same_v" else "opus"
        check_files(files, codec, ".ogg" if codec == "vorbis" else ".opus")
        for f in files:
            assert _serials(f) == 1, f.name
        titles = {t["title"] for f in files for t in _titles(f)}
        assert len(titles) >= 3 and titles <= {f"Band - Track {i}" for i in range(3)}, titles
    # A mono link between stereo ones: a new file at each change of setup, so no
    # file mixes them (ffmpeg would complain), and the changes are file boundaries.
    for name in ("diff_v", "diff_o"):
        files = audio_files(out / name)
        codec = "vorbis" if name == "diff_v" else "opus"
        for f in files:
            judge(f, codec)
            assert _serials(f) == 1, f.name
            # Never longer than a slot, judged as check_files does: the audio against
            # the sidecar's span, that span against the split with room for a page
            # and for a young connection's settling clock (run 107: 3.5065 s).
            start, end = span_of(f)
            page = longest_page(f)
            assert durations(f, codec)[0] == pytest.approx(end - start, abs=page + 0.05), f.name
            assert end - start <= SPLIT + max(0.5, page + 0.1) + SETTLING, f.name
        counts = [channels_of(f) for f in files]
        changes = sum(1 for a, b in itertools.pairwise(counts) if a != b)
        assert changes >= 3, counts  # 2 s links: stereo, mono, stereo, stereo, mono...


def _titles(path: Path) -> list[dict[str, object]]:
    data = json.loads(path.with_name(path.name + ".json").read_text())
    titles: list[dict[str, object]] = data["titles"]
    return titles


def _serials(path: Path) -> int:
    """How many logical streams (distinct serial numbers) the file holds."""
    result = subprocess.run(
        [require_tool("ogginfo"), str(path)], capture_output=True, text=True, check=False
    )
    return result.stdout.count("New logical stream")
