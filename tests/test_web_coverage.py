"""``/api/coverage`` and the ``/coverage`` page over real HTTP on 127.0.0.1, on an
archive the recorder's own segmenter wrote (Berlin time, in the past: no verdict
depends on today)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from isr.evidence.report import gather
from isr.timeline.coverage import coverage_json
from isr.web.app import create_app
from isr.web.coverage import COVERAGE
from tests.support.archive import Archive, local

BERLIN = ZoneInfo("Europe/Berlin")
Client = TestClient[web.Request, web.Application]
NOW = local("2025-10-28T12:00", BERLIN)


def serve(root: Path, check: Any, **kw: Any) -> None:
    async def main() -> None:
        app = create_app(root, **kw)
        app[COVERAGE].now = lambda: NOW  # "today" is 2025-10-28
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await check(client)

    asyncio.run(main())


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    """radio1 from 2025-10-25 12:00 to 2025-10-28 12:00, a reconnect losing 30 s on the
    26th (25 hours long) and a file that failed its check; ``old`` for an hour."""
    monkeypatch.setenv("TZ", "Europe/Berlin")
    root = tmp_path / "recordings"
    root.mkdir()
    a = Archive(root, BERLIN)
    start = local("2025-10-25T12:00", BERLIN)
    drop = local("2025-10-26T10:00", BERLIN)
    a.record("radio1", start, int(drop - start))
    a.record("radio1", drop + 30, int(NOW - drop - 30), cause="connection reset")
    a.record("old", local("2025-10-25T20:00", BERLIN), 3600)
    a.close()
    side = root / "radio1" / "20251027_040000.mp3.json"
    data = json.loads(side.read_text())
    data["check"] = {"ok": False, "problems": ["byte 99: MP3 frame CRC-16 does not match"]}
    side.write_text(json.dumps(data))
    yield a


def url(**q: str) -> str:
    return "/api/coverage?" + urlencode(q)


async def get_json(c: Client, path: str) -> tuple[int, Any]:
    r = await c.get(path)
    assert r.content_type == "application/json", await r.text()
    return r.status, await r.json()


def test_api_coverage(archive: Archive) -> None:
    async def check(c: Client) -> None:
        status, data = await get_json(c, url(source="radio1", to="2025-10-28"))
        assert status == 200
        days = data["days"]
        assert [d["date"] for d in days] == ["2025-10-25", "2025-10-26", "2025-10-27", "2025-10-28"]
        assert [d["expected_seconds"] for d in days] == [43200, 90000, 86400, 43200]
        assert [d["recorded_seconds"] for d in days] == [43200, 89970, 86400, 43200]
        assert days[1]["coverage"] == 0.999666 and days[0]["coverage"] == 1
        assert days[1]["gaps"] == [
            {
                "start": "2025-10-26T10:00:00.000+01:00",
                "end": "2025-10-26T10:00:30.000+01:00",
                "seconds": 30.0,
                "cause": "connection reset",
            }
        ]
        assert days[2]["failed_checks"] == ["radio1/20251027_040000.mp3"]
        # all sources, the last 7 days by default; old is expected until now (no config)
        status, data = await get_json(c, "/api/coverage")
        assert status == 200
        got = {(d["source"], d["date"]) for d in data["days"]}
        assert ("old", "2025-10-28") in got and ("radio1", "2025-10-22") not in got
        # the same answer as isr report's JSON
        report, _ = gather(
            [archive.root], BERLIN, None, None, NOW, configured=None, home=None, only=None
        )
        assert data == json.loads(json.dumps(coverage_json(report.days, BERLIN)))

    serve(archive.root, check)


def test_api_coverage_refuses_bad_questions(archive: Archive) -> None:
    async def check(c: Client) -> None:
        for q, status, message in (
            ({"from": "2025-10-32"}, 400, "not a day of the calendar"),
            ({"to": "tomorrow"}, 400, "not a day (YYYY-MM-DD)"),
            ({"from": "2025-10-28", "to": "2025-10-01"}, 400, "is after TO"),
            ({"from": "2024-01-01", "to": "2025-10-28"}, 400, "at most 400"),
            ({"source": "nope"}, 404, "no recordings of source 'nope'"),
        ):
            got, data = await get_json(c, url(**q))
            assert (got, message in data["error"]) == (status, True), (q, data)
        got, data = await get_json(c, url(**{"from": "2024-09-24", "to": "2025-10-28"}))
        assert got == 200  # 400 days exactly

    serve(archive.root, check)


def test_api_coverage_with_the_config_known(archive: Archive) -> None:
    async def check(c: Client) -> None:
        _, data = await get_json(c, url(**{"from": "2025-10-25", "to": "2025-10-28"}))
        old = [d for d in data["days"] if d["source"] == "old"]
        assert [d["date"] for d in old] == ["2025-10-25"]  # removed: until its last end
        assert old[0]["expected_seconds"] == 3600
        got, _ = await get_json(c, url(source="radio2"))
        assert got == 200  # configured, never recorded: no days, not unknown

    serve(archive.root, check, sources=["radio1", "radio2"])


class Cells(HTMLParser):
    """The calendar cells: their class and link, by day."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[str, dict[str, str]] = {}
        self._day: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "td" and "data-day" in a:
            self._day = a["data-day"]
            self.cells[self._day] = {"class": a["class"]}
        elif tag == "a" and self._day is not None:
            self.cells[self._day]["href"] = a["href"]
            self.cells[self._day]["title"] = a.get("title", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._day = None


def test_the_page(archive: Archive) -> None:
    async def check(c: Client) -> None:
        r = await c.get("/coverage?source=radio1", headers={"Accept-Encoding": "gzip"})
        assert r.status == 200 and r.headers["Content-Encoding"] == "gzip"
        html = await r.text()
        cells = Cells()
        cells.feed(html)
        got = cells.cells
        assert sorted(got) == ["2025-10-25", "2025-10-26", "2025-10-27", "2025-10-28"]
        assert got["2025-10-25"]["class"] == "cov cov-full"
        assert got["2025-10-26"]["class"] == "cov cov-part"  # 99.96 %: below 99.99 %
        assert got["2025-10-27"]["class"] == "cov cov-full failed"  # no gap, a failed check
        assert "today" in got["2025-10-28"]["class"]
        assert got["2025-10-26"]["href"] == "/timeline?source=radio1&day=2025-10-26"
        assert got["2025-10-26"]["title"] == "2025-10-26: 99.96 % recorded, 1 gap"
        assert html.count('<td class="cov cov-na') == 42 - 4  # 42 days, 4 of them expected
        assert (
            "4 days expected: 99.98 % recorded (30.0 s missing); "
            "1 with gaps: 2025-10-26 (99.96 %); 1 failed check." in html
        )
        r = await c.get("/coverage?source=nope")
        assert r.status == 404 and "No recordings of source" in await r.text()
        r = await c.get("/coverage?to=garbage")
        assert r.status == 200 and re.search(
            r'id="to" name="to" type="date" value="2025-10-28"', await r.text()
        )

    serve(archive.root, check, min_coverage=0.9999)


def test_the_page_is_quick_enough(archive: Archive) -> None:
    async def check(c: Client) -> None:
        await c.get("/coverage")
        t = time.perf_counter()
        r = await c.get("/coverage")
        assert r.status == 200 and time.perf_counter() - t < 2.0

    serve(archive.root, check)
