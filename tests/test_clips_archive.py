"""Clips of archives the recorder's own framer, segmenter and sinks wrote from real
encoded audio (ffmpeg's), at airing times the test chose: ``isr.clips`` directly and
``/api/clip`` over real HTTP on 127.0.0.1. No real time passes, so no wall-clock
boundary can fall anywhere the test did not put it.

A clip is judged against what was aired: the frames from the one that holds FROM to
the one that holds TO (MP3/ADTS byte for byte after the clip's Xing/Info frame; FLAC
frame for frame once renumbered), PCM sample for sample, by ffmpeg, mp3val and flac.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import soundfile
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from isr.clips.clip import Clip, Clipper
from isr.clips.tables import TABLES_FILE, UnitTables
from isr.errors import BadTime, FormatChanged, NoAudio, QueryError, UnknownSource
from isr.framing.flac import FlacFramer, frame_header, renumber_frame
from isr.framing.xing import leading_tag_length
from isr.sidecar import iso
from isr.timeline.index import TimelineIndex
from isr.web.app import create_app
from tests.support.archive import local, write_status
from tests.support.clips import Aired, PcmArchive, StreamArchive, signal
from tests.support.judge import (
    decode_pcm,
    ffmpeg_errors,
    ffprobe_duration,
    flac_test,
    mp3val_problems,
)
from tests.support.media import MediaFactory

BERLIN = ZoneInfo("Europe/Berlin")
T0 = "2026-11-24T14:00:01"
"""The first session's first frame: files start at 14:00:01, :03, :06, :09, ..."""
Client = TestClient[web.Request, web.Application]


@pytest.fixture(autouse=True)
def _berlin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")


def clipper(root: Path, **kwargs: Any) -> Clipper:
    return Clipper(root, BERLIN, TimelineIndex(root, BERLIN, in_memory=True), **kwargs)


def clip_bytes(clip: Clip) -> bytes:
    assert clip.body is not None
    data = b"".join(clip.body.read())
    assert len(data) == clip.length
    return data


def holding(aired: list[Aired], t: float) -> int:
    """The index of the frame aired at ``t``."""
    return next(i for i, f in enumerate(aired) if f.start <= t < f.end)


def mid(f: Aired) -> float:
    return (f.start + f.end) / 2


def flac_frames(data: bytes) -> list[bytes]:
    framer = FlacFramer()
    return [f.data for f in framer.feed(data) + framer.flush()]


def renumbered_to(frame: bytes, number: int) -> bytes:
    h = frame_header(frame)
    assert h is not None
    return renumber_frame(frame, h, number)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- stream formats ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp3", "aac", "flac"])
def test_a_clip_is_the_frames_from_the_one_holding_from_to_the_one_holding_to(
    tmp_path: Path, media: MediaFactory, fmt: str
) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, fmt)
    aired = archive.session(media(fmt, 14), local(T0, BERLIN))
    assert len(archive.files()) >= 5
    # FROM inside a frame of the second file, TO inside one of the fourth: three files,
    # each moment in the middle of a frame, so no rounding decides which frame holds it.
    i = holding(aired, local("2026-11-24T14:00:04.2", BERLIN))
    j = holding(aired, local("2026-11-24T14:00:10.7", BERLIN))
    t0, t1 = mid(aired[i]), mid(aired[j])
    clip = clipper(root).make("radio", t0, t1)
    data = clip_bytes(clip)
    m = clip.manifest
    assert [p["file"] for p in m["parts"]] == [
        "radio/20261124_140003" + archive.files()[0].suffix,
        "radio/20261124_140006" + archive.files()[0].suffix,
        "radio/20261124_140009" + archive.files()[0].suffix,
    ]
    expect = [f.data for f in aired[i : j + 1]]
    frames = flac_frames(data) if fmt == "flac" else []
    if fmt == "mp3":
        tag = leading_tag_length(data)
        assert tag > 0, "an MP3 clip starts with its own Xing/Info frame"
        assert data[tag:] == b"".join(expect)
    elif fmt == "aac":
        assert data == b"".join(expect)
    else:
        renumbered = [renumbered_to(f, k) for k, f in enumerate(expect)]
        assert frames == renumbered, "the aired frames, numbered from the clip's start"
    # The manifest's byte ranges are those very frames, in the archived files.
    used = [(root / p["file"]).read_bytes()[p["bytes"][0] : p["bytes"][1]] for p in m["parts"]]
    if fmt == "flac":  # each file's frames, as numbered there
        in_files = [f for u in used for f in flac_frames(data[:42] + u)]
        assert [renumbered_to(f, k) for k, f in enumerate(in_files)] == frames
    else:
        assert b"".join(used) == b"".join(expect)
    assert m["from"] == iso(t0, BERLIN) and m["to"] == iso(t1, BERLIN)
    assert abs(clip.plan.start - aired[i].start) < 0.001
    assert abs(clip.plan.end - aired[j].end) < 0.001
    assert m["gaps"] == []
    out = write(tmp_path, clip.filename, data)
    assert clip.filename == "radio_20261124_140004-140010" + out.suffix
    assert ffmpeg_errors(out) == ""
    held = clip.plan.end - clip.plan.start
    frame = aired[i].samples / aired[i].rate
    assert t1 - t0 < held < t1 - t0 + 2 * frame  # half a frame at each end here
    if fmt == "mp3":
        assert mp3val_problems(out) == []
        assert ffprobe_duration(out) == pytest.approx(held, abs=0.002)
    elif fmt == "flac":
        assert flac_test(out) == ""
        assert ffprobe_duration(out) == pytest.approx(held, abs=0.001)
        assert soundfile.info(str(out)).frames == sum(f.samples for f in aired[i : j + 1])
    else:
        decoded = len(decode_pcm(out, channels=1)) / aired[0].rate
        assert decoded == pytest.approx(held, abs=0.001)


def test_a_clip_across_a_reconnect_holds_both_sides_and_lists_the_gap(
    tmp_path: Path, media: MediaFactory
) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, "mp3")
    first = archive.session(media("mp3", 14), local(T0, BERLIN), count=150)  # ~3.9 s
    second = archive.session(
        media("mp3", 14), first[-1].end + 4.2, skip=200, cause="connection reset"
    )
    t0, t1 = mid(first[40]), mid(second[60])
    clip = clipper(root).make("radio", t0, t1)
    data = clip_bytes(clip)
    expect = b"".join(f.data for f in first[40:]) + b"".join(f.data for f in second[:61])
    assert data[leading_tag_length(data) :] == expect
    (gap,) = clip.manifest["gaps"]
    assert gap["cause"] == "connection reset"
    assert gap["seconds"] == pytest.approx(4.2, abs=0.002)
    assert gap["start"] == iso(first[-1].end, BERLIN)
    assert gap["end"] == clip.manifest["parts"][-2]["start"] or gap["end"] == iso(
        second[0].start, BERLIN
    )
    out = write(tmp_path, "gap.mp3", data)
    assert ffmpeg_errors(out) == ""
    assert mp3val_problems(out) == []


@pytest.mark.parametrize("fmt", ["mp3", "flac"])
def test_a_clip_ends_in_the_file_being_recorded(
    tmp_path: Path, media: MediaFactory, fmt: str
) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, fmt)
    start = local(T0, BERLIN)
    n = 250 if fmt == "mp3" else 80  # 6.5 s or 8.4 s: the last file is open, < 2 s in
    aired = archive.session(media(fmt, 14), start, count=n, stop=False)
    growing = archive.files()[-1]
    write_status(root, {"radio": f"radio/{growing.name}"})
    c = clipper(root)
    t0, t1 = mid(aired[30]), start + 3600
    first = c.make("radio", t0, t1)
    data = clip_bytes(first)
    last = first.manifest["parts"][-1]
    assert last["file"] == f"radio/{growing.name}" and last["sha256"] is None
    # Every whole frame written so far (FLAC: the last waits for the next to begin).
    held = aired[30:] if fmt == "mp3" else aired[30:-1]
    assert first.plan.end == pytest.approx(held[-1].end, abs=0.001)
    if fmt == "mp3":
        assert data[leading_tag_length(data) :] == b"".join(f.data for f in held)
    else:
        assert len(flac_frames(data)) == len(held)
    assert ffmpeg_errors(write(tmp_path, "now" + growing.suffix, data)) == ""
    # The file grows: the next clip holds more; its table is extended, not walked anew.
    walks = c.tables.walks
    more = archive.session(media(fmt, 14), aired[-1].end, skip=n, count=n // 8, stop=False)
    second = c.make("radio", t0, t1)
    assert c.tables.walks == walks + 1
    assert second.length > first.length
    assert second.plan.end == pytest.approx((more if fmt == "mp3" else more[:-1])[-1].end, abs=1e-3)
    archive.close()


def test_a_change_of_sample_rate_inside_the_span_is_refused_naming_the_moment(
    tmp_path: Path, media: MediaFactory
) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, "mp3")
    first = archive.session(media("mp3", 6), local(T0, BERLIN))
    second = archive.session(media("mp3", 6, sample_rate=48000), first[-1].end + 1.0)
    c = clipper(root)
    with pytest.raises(FormatChanged) as caught:
        c.make("radio", mid(first[10]), mid(second[10]))
    assert caught.value.at == pytest.approx(second[0].start, abs=0.001)
    assert "48000 Hz" in str(caught.value) and "44100 Hz" in str(caught.value)
    # Each side on its own is a clip.
    assert c.make("radio", mid(first[10]), first[-1].end).length > 0
    assert c.make("radio", second[0].start, mid(second[10])).length > 0


def test_questions_without_an_answer(tmp_path: Path, media: MediaFactory) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, "mp3")
    aired = archive.session(media("mp3", 6), local(T0, BERLIN))
    c = clipper(root, max_hours=2)
    with pytest.raises(NoAudio):
        c.make("radio", aired[-1].end + 10, aired[-1].end + 20)
    with pytest.raises(UnknownSource):
        c.make("radio2", aired[0].start, aired[-1].end)
    with pytest.raises(BadTime, match="at most 2 hours"):
        c.make("radio", aired[0].start, aired[0].start + 2 * 3600 + 1)
    with pytest.raises(BadTime, match="before"):
        c.make("radio", aired[-1].end, aired[0].start)
    for name in ("", "a/b", "tab\there", "x" * 300):
        with pytest.raises(QueryError):
            c.make(name, aired[0].start, aired[-1].end)
    # A span reaching before the first recording and after the last yields what exists.
    clip = c.make("radio", aired[0].start - 100, aired[-1].end + 100)
    data = clip_bytes(clip)
    assert data[leading_tag_length(data) :] == b"".join(f.data for f in aired)


def test_unit_tables_are_kept_in_isr_and_a_damaged_file_is_replaced(
    tmp_path: Path, media: MediaFactory
) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, "aac")
    aired = archive.session(media("aac", 10), local(T0, BERLIN))
    span = (mid(aired[5]), mid(aired[-5]))
    c = clipper(root)
    whole = clip_bytes(c.make("radio", *span))
    assert c.tables.walks == 4
    c.close()
    again = clipper(root)
    assert clip_bytes(again.make("radio", *span)) == whole
    assert again.tables.walks == 0, "the tables came from .isr/units.sqlite"
    again.close()
    (root / ".isr" / TABLES_FILE).write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (root / ".isr" / (TABLES_FILE + suffix)).unlink(missing_ok=True)
    third = Clipper(root, BERLIN, TimelineIndex(root, BERLIN, in_memory=True), UnitTables(root))
    assert clip_bytes(third.make("radio", *span)) == whole
    assert third.tables.walks == 4
    third.close()


# -- PCM ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_pcm_clips_are_the_captured_samples_exactly(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "rec"
    rate = 8000
    archive = PcmArchive(root, BERLIN, fmt, rate=rate)
    sig = signal(13, rate, 2)
    start = local(T0, BERLIN)
    archive.session(sig, start)
    files = archive.files()
    assert len(files) >= 5
    c = clipper(root)
    # Odd moments, a tiny clip, clips that begin and end next to FLAC frame edges.
    spans = [(2.73219, 10.50007), (4.0, 4.001), (3.0, 3.0015), (0.0, 13.0)]
    spans += [(2.0 + 4096 / rate - k / rate, 6.0 + k / rate) for k in (1, 3, 15, 17)]
    for a, b in spans:
        clip = c.make("card", start + a, start + b)
        out = write(tmp_path, f"c{a}-{b}.{fmt}", clip_bytes(clip))
        got, got_rate = soundfile.read(str(out), dtype="int16", always_2d=True)
        g0, n = round(a * rate), round((b - a) * rate)
        assert got_rate == rate
        assert len(got) == n, (a, b)
        assert np.array_equal(got, sig[g0 : g0 + n]), (a, b)
        assert ffmpeg_errors(out) == ""
        if fmt == "flac":
            assert flac_test(out) == "", (a, b)
        parts = clip.manifest["parts"]
        assert sum(p["samples"][1] - p["samples"][0] for p in parts) == n
    long = c.make("card", start + 2.73219, start + 10.50007)
    stems = [Path(p["file"]).stem[-6:] for p in long.manifest["parts"]]
    assert stems == ["140003", "140006", "140009"]
    assert long.manifest["start"] == iso(start + round(2.73219 * rate) / rate, BERLIN)


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_pcm_clip_across_a_new_capture(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "rec"
    rate = 8000
    archive = PcmArchive(root, BERLIN, fmt, rate=rate)
    one, two = signal(5, rate, 1 + 1, seed=1), signal(5, rate, 2, seed=2)
    start = local(T0, BERLIN)
    archive.session(one, start)
    archive.session(two, start + 7.5, cause="arecord exited")
    clip = clipper(root).make("card", start + 1.25, start + 9.0)
    out = write(tmp_path, f"across.{fmt}", clip_bytes(clip))
    got, _ = soundfile.read(str(out), dtype="int16", always_2d=True)
    want = np.concatenate([one[round(1.25 * rate) :], two[: round(1.5 * rate)]])
    assert np.array_equal(got, want)
    (gap,) = clip.manifest["gaps"]
    assert gap["cause"] == "arecord exited" and gap["seconds"] == pytest.approx(2.5, abs=1e-3)


# -- over HTTP ------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, media: MediaFactory) -> Iterator[tuple[Path, list[Aired]]]:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, "mp3")
    aired = archive.session(media("mp3", 14), local(T0, BERLIN))
    yield root, aired
    archive.close()


def serve(root: Path, check: Any, **kwargs: Any) -> None:
    async def main() -> None:
        app = create_app(root, **kwargs)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await check(client)

    asyncio.run(main())


def q(**params: str) -> str:
    return urlencode(params)


def test_api_clip_serves_the_clip_with_ranges(served: tuple[Path, list[Aired]]) -> None:
    root, aired = served
    t0, t1 = iso(mid(aired[100]), BERLIN), iso(mid(aired[400]), BERLIN)
    query = q(source="radio", **{"from": t0, "to": t1})

    async def check(c: Client) -> None:
        r = await c.get("/api/clip?" + query)
        assert r.status == 200
        whole = await r.read()
        assert r.headers["Content-Type"] == "audio/mpeg"
        assert r.headers["Accept-Ranges"] == "bytes"
        assert int(r.headers["Content-Length"]) == len(whole)
        assert whole[leading_tag_length(whole) :] == b"".join(f.data for f in aired[100:401])
        tag = r.headers["ETag"]
        size = len(whole)
        parts = []
        for rng, lo, hi in (
            ("bytes=-100", size - 100, size),
            ("bytes=1000-50000", 1000, 50001),
            (f"bytes={size - 10}-", size - 10, size),
            ("bytes=0-0", 0, 1),
        ):
            r = await c.get("/api/clip?" + query, headers={"Range": rng})
            assert r.status == 206, rng
            assert r.headers["Content-Range"] == f"bytes {lo}-{hi - 1}/{size}"
            body = await r.read()
            assert body == whole[lo:hi]
            parts.append(body)
        # Ranges joined give the whole clip, whatever the pieces' edges.
        step = 7919
        joined = b""
        for lo in range(0, size, step):
            r = await c.get("/api/clip?" + query, headers={"Range": f"bytes={lo}-{lo + step - 1}"})
            joined += await r.read()
        assert joined == whole
        r = await c.get("/api/clip?" + query, headers={"Range": f"bytes={size}-"})
        assert r.status == 416
        assert r.headers["Content-Range"] == f"bytes */{size}"
        r = await c.get("/api/clip?" + query, headers={"Range": "bytes=5-9", "If-Range": tag})
        assert r.status == 206
        r = await c.get("/api/clip?" + query, headers={"Range": "bytes=5-9", "If-Range": '"other"'})
        assert r.status == 200 and await r.read() == whole
        r = await c.get("/api/clip?" + query + "&download=1")
        assert r.headers["Content-Disposition"].startswith(
            'attachment; filename="radio_20261124_140003-140011.mp3"'
        )
        assert await r.read() == whole
        r = await c.head("/api/clip?" + query)
        assert r.status == 200 and int(r.headers["Content-Length"]) == size
        r = await c.get("/api/clip.json?" + query)
        assert r.status == 200
        m = await r.json()
        assert m["source"] == "radio" and m["from"] == t0 and m["to"] == t1
        assert [p["file"] for p in m["parts"]] == [
            "radio/20261124_140003.mp3",
            "radio/20261124_140006.mp3",
            "radio/20261124_140009.mp3",
        ]

    serve(root, check)


def test_api_clip_errors(served: tuple[Path, list[Aired]]) -> None:
    root, aired = served
    a, b = iso(aired[10].start, BERLIN), iso(aired[200].start, BERLIN)

    async def status(c: Client, url: str) -> tuple[int, Any]:
        r = await c.get(url)
        assert r.content_type == "application/json", url
        return r.status, await r.json()

    async def check(c: Client) -> None:
        for path in ("/api/clip?", "/api/clip.json?"):
            assert (await status(c, path + q(source="radio", **{"from": a})))[0] == 400
            assert (await status(c, path + q(source="radio", **{"from": "nonsense", "to": b})))[
                0
            ] == 400
            assert (await status(c, path + q(source="radio", **{"from": b, "to": a})))[0] == 400
            assert (
                await status(
                    c, path + q(source="radio", **{"from": "2026-11-24", "to": "2026-11-26"})
                )
            )[0] == 400
            assert (await status(c, path + q(source="r\x00", **{"from": a, "to": b})))[0] == 400
            assert (await status(c, path + q(source="nobody", **{"from": a, "to": b})))[0] == 404
            got = await status(
                c,
                path + q(source="radio", **{"from": "2026-11-25T10:00", "to": "2026-11-25T11:00"}),
            )
            assert got[0] == 404 and "nothing" in got[1]["error"]

    serve(root, check, max_clip_hours=24)


def test_a_clip_of_an_unwalkable_span_is_refused_before_any_work(tmp_path: Path) -> None:
    """max_clip_hours from the config reaches the web UI (and the timeline page)."""
    root = tmp_path / "rec"
    root.mkdir()

    async def check(c: Client) -> None:
        r = await c.get(
            "/api/clip.json?"
            + q(source="x", **{"from": "2026-11-24T00:00", "to": "2026-11-24T01:00:01"})
        )
        assert r.status == 400
        assert "at most 1 hours" in (await r.json())["error"]
        page = await c.get("/timeline")
        assert 'data-max-clip-hours="1.0"' in await page.text()

    serve(root, check, max_clip_hours=1.0)


def test_clip_json_is_exactly_the_manifest(served: tuple[Path, list[Aired]]) -> None:
    root, aired = served
    t0, t1 = mid(aired[3]), mid(aired[300])
    want = clipper(root).make("radio", t0, t1, body=False).manifest
    query = q(source="radio", **{"from": iso(t0, BERLIN), "to": iso(t1, BERLIN)})

    async def check(c: Client) -> None:
        r = await c.get("/api/clip.json?" + query)
        assert json.loads(await r.text()) == json.loads(json.dumps(want))

    serve(root, check)
    assert os.path.isdir(root / ".isr")


@pytest.mark.parametrize("fmt", ["mp3", "flac"])
def test_serving_clips_leaks_no_descriptor(tmp_path: Path, media: MediaFactory, fmt: str) -> None:
    """Whole, ranged and abandoned responses all give back the files they opened (MP3:
    ranges sent by sendfile; FLAC: frames renumbered in a worker thread)."""
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, fmt)
    aired = archive.session(media(fmt, 14), local(T0, BERLIN))
    query = q(
        source="radio", **{"from": iso(aired[5].start, BERLIN), "to": iso(aired[-5].end, BERLIN)}
    )

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    async def check(c: Client) -> None:
        await (await c.get("/api/clip?" + query)).read()  # tables walked, pools warm
        before = open_fds()
        for i in range(15):
            await (await c.get("/api/clip?" + query)).read()
            r = await c.get("/api/clip?" + query, headers={"Range": f"bytes={i * 1000}-"})
            await r.read()
            r = await c.get("/api/clip?" + query)
            await r.content.read(5000)  # the client leaves in the middle
            r.close()
        for _ in range(50):
            await asyncio.sleep(0.05)
            if open_fds() <= before:
                break
        assert open_fds() <= before

    serve(root, check)
