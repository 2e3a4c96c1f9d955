"""``/api/sources`` and ``/api/timeline`` over real HTTP on 127.0.0.1, on an archive the
recorder's own segmenter wrote."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from isr.timeline.index import INDEX_FILE
from isr.web.app import create_app
from isr.web.paths import encode_name
from tests.support.archive import Archive, local, write_status

BERLIN = ZoneInfo("Europe/Berlin")
ODD = 'Radio "1" ü %41 & co'
Client = TestClient[web.Request, web.Application]


def serve(root: Path, check: Any) -> None:
    async def main() -> None:
        async with TestClient(TestServer(create_app(root), host="127.0.0.1")) as client:
            await check(client)

    asyncio.run(main())


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    """The web UI in Berlin time; radio1 on 2026-11-24 from 13:00 to 15:00 with a
    reconnect at 14:00 (4 s lost) and a title; a source with an odd name."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    root = tmp_path / "recordings"
    root.mkdir()
    a = Archive(root, BERLIN)
    a.record("radio1", local("2026-11-24T13:00", BERLIN), 3600, titles={5: "Artist - Song"})
    a.record("radio1", local("2026-11-24T14:00:04", BERLIN), 3596, cause="connection reset")
    a.record(ODD, local("2026-11-24T09:00", BERLIN), 60)
    yield a
    a.close()


def timeline_url(source: str, start: str | None, end: str | None) -> str:
    q = {"source": source}
    if start is not None:
        q["from"] = start
    if end is not None:
        q["to"] = end
    return "/api/timeline?" + urlencode(q)


async def get_json(c: Client, url: str) -> tuple[int, Any]:
    r = await c.get(url)
    assert r.content_type == "application/json", await r.text()
    return r.status, await r.json()


def test_sources_and_a_day(archive: Archive) -> None:
    async def check(c: Client) -> None:
        status, data = await get_json(c, "/api/sources")
        assert status == 200
        assert data == {
            "sources": [  # by name
                {
                    "name": ODD,
                    "format": "mp3",
                    "first": "2026-11-24T09:00:00.000+01:00",
                    "last": "2026-11-24T09:01:00.000+01:00",
                    "recording": False,
                },
                {
                    "name": "radio1",
                    "format": "mp3",
                    "first": "2026-11-24T13:00:00.000+01:00",
                    "last": "2026-11-24T15:00:00.000+01:00",
                    "recording": False,
                },
            ]
        }
        status, tl = await get_json(c, timeline_url("radio1", "2026-11-24", "2026-11-25"))
        assert status == 200
        assert (tl["source"], tl["from"], tl["to"]) == (
            "radio1",
            "2026-11-24T00:00:00.000+01:00",
            "2026-11-25T00:00:00.000+01:00",
        )
        assert [(s["file"], s["start"], s["end"], s["recording"]) for s in tl["segments"]] == [
            (
                "radio1/20261124_130000.mp3",
                "2026-11-24T13:00:00.000+01:00",
                "2026-11-24T14:00:00.000+01:00",
                False,
            ),
            (
                "radio1/20261124_140004.mp3",
                "2026-11-24T14:00:04.000+01:00",
                "2026-11-24T15:00:00.000+01:00",
                False,
            ),
        ]
        assert tl["gaps"] == [
            {
                "start": "2026-11-24T14:00:00.000+01:00",
                "end": "2026-11-24T14:00:04.000+01:00",
                "seconds": 4.0,
                "cause": "connection reset",
            }
        ]
        assert tl["titles"] == [{"at": "2026-11-24T13:00:05.000+01:00", "title": "Artist - Song"}]
        assert tl["covered_seconds"] == 7196.0
        # a span inside one file: the whole file, not cut; an offset given as UTC
        status, tl = await get_json(
            c, timeline_url("radio1", "2026-11-24T13:10:00Z", "2026-11-24T13:20:00Z")
        )
        assert [s["file"] for s in tl["segments"]] == ["radio1/20261124_140004.mp3"]
        assert tl["from"] == "2026-11-24T14:10:00.000+01:00" and tl["covered_seconds"] == 600
        # a '+' that the query string made a space still reads as the offset
        r = await c.get(
            "/api/timeline?source=radio1&from=2026-11-24T13:30:00+01:00&to=2026-11-24T13:40:00+01:00"
        )
        assert r.status == 200 and (await r.json())["from"] == "2026-11-24T13:30:00.000+01:00"
        # nothing recorded in the span: an answer, not an error
        status, tl = await get_json(c, timeline_url("radio1", "2026-11-20", "2026-11-21"))
        assert (status, tl["segments"], tl["covered_seconds"]) == (200, [], 0)
        assert (archive.root / ".isr" / INDEX_FILE).is_file()

    serve(archive.root, check)


def test_bad_input_is_a_clear_400_or_404(archive: Archive) -> None:
    async def check(c: Client) -> None:
        for url, status, words in [
            ("/api/timeline", 400, "source is required"),
            ("/api/timeline?from=2026-11-24", 400, "source is required"),
            (timeline_url("radio1", "yesterday", None), 400, "not a time: 'yesterday'"),
            (timeline_url("radio1", "2026-11-24T25:00", None), 400, "not a time"),
            (timeline_url("radio1", "2026-02-30", "2026-03-01"), 400, "not a time"),
            (timeline_url("radio1", "2026-11-24T15:00", "2026-11-24T14:00"), 400, "before"),
            (timeline_url("radio1", "2026-11-24", "2026-11-24"), 400, "before"),
            (timeline_url("radio1", "2026-11-01", "2026-12-02T00:00:01"), 400, "31 days"),
            (timeline_url("radio1", "x" * 5000, None), 400, "not a time"),
            (timeline_url("radio1", "2026-11-24\x00", None), 400, "not a time"),
            (timeline_url("radio2", "2026-11-24", "2026-11-25"), 404, "radio2"),
            (timeline_url("Radio1", "2026-11-24", "2026-11-25"), 404, "Radio1"),
        ]:
            got, data = await get_json(c, url)
            assert (got, set(data)) == (status, {"error"}), url
            assert words in data["error"] and len(data["error"]) < 200, (url, data)
            assert "Traceback" not in data["error"]
        # 31 local days are allowed, across the end of summer time (31 days + 1 h)
        status, _ = await get_json(c, timeline_url("radio1", "2026-10-01", "2026-11-01"))
        assert status == 200
        status, _ = await get_json(c, timeline_url("radio1", "2026-11-01", "2026-12-02"))
        assert status == 200

    serve(archive.root, check)


def test_odd_names_of_sources_and_files(archive: Archive) -> None:
    async def check(c: Client) -> None:
        status, tl = await get_json(c, timeline_url(ODD, "2026-11-24", "2026-11-25"))
        assert status == 200 and tl["source"] == ODD
        (seg,) = tl["segments"]
        assert seg["file"] == f"{ODD}/20261124_090000.mp3"
        # the name is the one /stream and /download take, once encoded
        r = await c.get("/stream/" + encode_name(seg["file"]))
        assert r.status == 200 and len(await r.read()) == 60 * 100
        # percent-encoded by hand: %25 for '%', %22 for '"', UTF-8 for 'ü'
        raw = "/api/timeline?source=" + quote(ODD, safe="") + "&from=2026-11-24&to=2026-11-25"
        assert "%2541" in raw and "%22" in raw
        status, again = await get_json(c, raw)
        assert status == 200 and again == tl
        # '%41' undecoded is another (unknown) source
        status, _ = await get_json(c, "/api/timeline?source=" + quote('Radio "1" ü A & co'))
        assert status == 404

    serve(archive.root, check)


def test_recording_files_retention_and_delete_are_reflected(archive: Archive) -> None:
    root = archive.root
    name = "radio1/20261124_160000.mp3"

    async def check(c: Client) -> None:
        url = timeline_url("radio1", "2026-11-24", "2026-11-25")
        await get_json(c, url)
        archive.segmenters.pop("radio1")  # a new recorder process: it knows no last end
        archive.record("radio1", local("2026-11-24T16:00", BERLIN), 20, stop=False)
        write_status(root, {"radio1": name})
        _, tl = await get_json(c, url)
        assert (tl["segments"][-1]["file"], tl["segments"][-1]["recording"]) == (name, True)
        assert tl["gaps"][-1]["cause"] == "not recorded"  # the recorder was not running
        _, data = await get_json(c, "/api/sources")
        assert {s["name"]: s["recording"] for s in data["sources"]}["radio1"] is True
        # the recorder closes it and its retention deletes the first file
        archive.stop("radio1")
        write_status(root, {})
        (root / "radio1" / "20261124_130000.mp3").unlink()
        (root / "radio1" / "20261124_130000.mp3.json").unlink()
        _, tl = await get_json(c, url)
        files = [s["file"] for s in tl["segments"]]
        assert files == ["radio1/20261124_140004.mp3", name]
        assert tl["segments"][-1]["recording"] is False
        _, data = await get_json(c, "/api/sources")
        assert data["sources"][1]["first"] == "2026-11-24T14:00:04.000+01:00"
        # deleted through the UI
        origin = {"Origin": f"http://127.0.0.1:{c.port}"}
        r = await c.delete("/api/files/" + encode_name(name), headers=origin)
        assert r.status == 204
        _, tl = await get_json(c, url)
        assert [s["file"] for s in tl["segments"]] == ["radio1/20261124_140004.mp3"]

    serve(root, check)


def test_a_damaged_index_is_replaced_while_serving(archive: Archive) -> None:
    root = archive.root
    url = timeline_url("radio1", "2026-11-24", "2026-11-25")
    answers = []

    async def first(c: Client) -> None:
        answers.append(await get_json(c, url))

    serve(root, first)
    db = root / ".isr" / INDEX_FILE
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.write_bytes(b"not a database, " * 1000)
    serve(root, first)
    assert answers[0] == answers[1] and answers[0][0] == 200
    assert (root / ".isr" / (INDEX_FILE + ".damaged")).read_bytes().startswith(b"not a data")
