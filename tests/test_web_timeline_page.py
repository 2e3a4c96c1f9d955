"""The timeline page as the server sends it (``GET /timeline``), the recorder's zone it
names for the browser, and the file list's names that wrap only between words.

What the page does in a browser is tests/test_browser_timeline.py's.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from isr.web.app import CSP, create_app
from isr.web.paths import breakable
from isr.web.timeline_page import zone_name

Client = TestClient[web.Request, web.Application]


def serve(root: Path, check: Any) -> None:
    async def main() -> None:
        async with TestClient(TestServer(create_app(root), host="127.0.0.1")) as client:
            await check(client)

    asyncio.run(main())


def _data(html: str) -> dict[str, str]:
    body = re.search(r"<body ([^>]*)>", html)
    assert body, html[:500]
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))


def test_the_page_is_a_template_and_a_script_under_the_csp(tmp_path: Path) -> None:
    async def check(c: Client) -> None:
        r = await c.get("/timeline")
        assert r.status == 200 and r.content_type == "text/html"
        assert r.headers["Content-Security-Policy"] == CSP
        assert r.headers["Cache-Control"] == "no-store"
        html = await r.text()
        assert '<script src="/static/timeline.js" defer></script>' in html
        assert '<link rel="stylesheet" href="/static/timeline.css">' in html
        # Nothing inline: no script body, no style attribute or element, no handler.
        assert not re.search(r"<script[^>]*>[^<]", html)
        assert " style=" not in html and "<style" not in html
        assert not re.search(r"\son[a-z]+=", html)
        assert 'role="slider"' in html and 'tabindex="0"' in html
        data = _data(html)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["today"])
        assert data["source"] == data["day"] == data["at"] == data["zoom"] == ""
        assert float(data["max-clip-hours"]) > 0
        for path in ("/static/timeline.js", "/static/timeline.css"):
            assert (await c.get(path)).status == 200, path

    serve(tmp_path, check)


def test_the_main_page_links_to_the_timeline(tmp_path: Path) -> None:
    async def check(c: Client) -> None:
        html = await (await c.get("/")).text()
        assert '<a href="/timeline">Timeline</a>' in html

    serve(tmp_path, check)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "?source=radio%201&day=2026-11-24&at=14:23:05&zoom=2m",
            {"source": "radio 1", "day": "2026-11-24", "at": "14:23:05", "zoom": "2m"},
        ),
        # What is not a day, a time or a zoom is dropped; a source is only text.
        (
            '?source="><script>x</script>&day=24.11.2026&at=2pm&zoom=<b>',
            {"source": "&#34;&gt;&lt;script&gt;x&lt;/script&gt;", "day": "", "at": "", "zoom": ""},
        ),
    ],
)
def test_a_bookmark_opens_where_it_says(
    tmp_path: Path, query: str, expected: dict[str, str]
) -> None:
    async def check(c: Client) -> None:
        r = await c.get("/timeline" + query)
        assert r.status == 200
        html = await r.text()
        data = _data(html)
        assert {k: data[k] for k in expected} == expected
        assert "<script>x" not in html

    serve(tmp_path, check)


def test_the_page_names_the_recorders_zone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")

    async def check(c: Client) -> None:
        assert _data(await (await c.get("/timeline")).text())["zone"] == "Europe/Berlin"

    serve(tmp_path, check)


def test_zone_names() -> None:
    assert zone_name(ZoneInfo("America/Argentina/Buenos_Aires")) == (
        "America/Argentina/Buenos_Aires"
    )
    assert zone_name(ZoneInfo("Etc/GMT+5")) == "Etc/GMT+5"
    assert zone_name(UTC) == ""  # no name: the page uses the offsets the API carries
    assert zone_name(timezone(timedelta(hours=1))) == ""


def test_a_zone_from_etc_localtime_is_named_by_its_link(tmp_path: Path) -> None:
    target = Path("/usr/share/zoneinfo/Europe/Berlin")
    if not target.exists():
        pytest.skip("no zoneinfo files")
    link = tmp_path / "localtime"
    link.symlink_to(target)
    with open(link, "rb") as fh:
        tz = ZoneInfo.from_file(fh, key="localtime")
    assert zone_name(tz, localtime=str(link)) == "Europe/Berlin"
    link.unlink()
    link.symlink_to("/usr/share/zoneinfo/posix/Europe/Berlin")
    assert zone_name(tz, localtime=str(link)) == "Europe/Berlin"
    link.unlink()
    link.write_bytes(target.read_bytes())  # a copy, not a link: no name to give
    assert zone_name(tz, localtime=str(link)) == ""


@pytest.mark.parametrize(
    ("name", "html"),
    [
        ("radio1/20261124_140000.mp3", "radio1/<wbr>20261124_<wbr>140000.mp3"),
        ("a-b c.wav", "a-<wbr>b c.wav"),
        ('x<&>"_y.ogg', "x&lt;&amp;&gt;&#34;_<wbr>y.ogg"),
        ("Supercalifragilistic.flac", "Supercalifragilistic.flac"),
    ],
)
def test_names_wrap_only_after_separators(name: str, html: str) -> None:
    assert str(breakable(name)) == html


def test_the_file_list_lets_long_names_wrap_between_words(tmp_path: Path) -> None:
    name = "a_long_station_name/20261124_140000_morning_show.wav"
    (tmp_path / "a_long_station_name").mkdir()
    (tmp_path / name).write_bytes(b"RIFF")

    async def check(c: Client) -> None:
        html = await (await c.get("/")).text()
        assert (
            '<span class="folder">a_<wbr>long_<wbr>station_<wbr>name/<wbr></span>'
            '<span class="base">20261124_<wbr>140000_<wbr>morning_<wbr>show.wav</span>'
        ) in html
        rows = await (await c.get("/?partial=rows")).text()
        assert "20261124_<wbr>140000_<wbr>morning_<wbr>show.wav" in rows

    serve(tmp_path, check)


def test_the_page_asks_for_clips_no_longer_than_the_server_gives(tmp_path: Path) -> None:
    async def main() -> None:
        app = create_app(tmp_path, max_clip_hours=1.5)
        async with TestClient(TestServer(app, host="127.0.0.1")) as c:
            assert _data(await (await c.get("/timeline")).text())["max-clip-hours"] == "1.5"

    asyncio.run(main())
