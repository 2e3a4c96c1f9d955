"""Every route of the web UI over real HTTP on 127.0.0.1 (aiohttp's TestServer)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from isr.sinks.files import create_exclusive
from isr.web import analyse
from isr.web.app import create_app

Check = Callable[[TestClient[web.Request, web.Application]], Awaitable[None]]


def serve(root: Path, check: Check, **kwargs: Any) -> None:
    """Run ``check(client)`` against the app on a real socket, then shut all down."""

    async def main() -> None:
        app = create_app(root, **kwargs)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await check(client)

    asyncio.run(main())


def write_status(root: Path, sources: dict[str, Any], *, age: float = 0.0) -> None:
    updated = (datetime.now().astimezone() - timedelta(seconds=age)).isoformat()
    (root / ".isr").mkdir(exist_ok=True)
    data = {
        "version": 1,
        "pid": 1,
        "host": "h",
        "started": updated,
        "updated": updated,
        "disk_free_mb": 512,
        "sources": sources,
    }
    (root / ".isr" / "status.json").write_text(json.dumps(data))


def make_file(root: Path, name: str, data: bytes, mtime: float | None = None) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "recordings"
    r.mkdir()
    base = time.time() - 1000
    make_file(r, "radio1/20261124_140000.mp3", b"\xff\xfb" + bytes(998), base + 1)
    make_file(r, "radio1/20261124_150000.mp3", bytes(range(256)) * 4, base + 3)
    make_file(r, "radio2/20261124_140000.ogg", b"OggS" + bytes(96), base + 2)
    make_file(r, "top.flac", b"fLaC" + bytes(12), base + 4)
    (r / "radio1/20261124_140000.mp3.json").write_text(
        json.dumps(
            {
                "source": "radio1",
                "format": "mp3",
                "start": "2026-11-24T14:00:00.000+01:00",
                "end": "2026-11-24T15:00:00.500+01:00",
                "titles": [{"at": 1.0, "title": "A - B"}],
                "gaps": [],
            }
        )
    )
    make_file(r, "notes.txt", b"not audio", base + 5)
    return r


def test_healthz_and_security_headers(root: Path) -> None:
    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.get("/healthz")
        assert r.status == 200
        assert await r.text() == "ok\n"
        for path in ("/", "/healthz", "/nope", "/static/app.js"):
            r = await c.get(path)
            csp = r.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert r.headers["Referrer-Policy"] == "no-referrer"

    serve(root, check)


def test_page_lists_audio_newest_first_without_inline_script(root: Path) -> None:
    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.get("/")
        assert r.status == 200 and r.content_type == "text/html"
        html = await r.text()
        order = [
            html.index(n)
            for n in (
                "top.flac",
                "20261124_150000.mp3",
                "radio2/",
                'data-name="radio1/20261124_140000.mp3"',
            )
        ]
        assert order == sorted(order)
        assert "notes.txt" not in html and ".mp3.json" not in html
        assert "1:00:00" in html  # duration from the sidecar (rounded)
        assert "<script>" not in html and " onclick" not in html
        assert '<script src="/static/app.js" defer></script>' in html
        assert 'aria-expanded="false"' in html and 'aria-live="polite"' in html
        js = await c.get("/static/app.js")
        assert js.status == 200

    serve(root, check)


def test_api_files_paging_filter_and_facts(root: Path) -> None:
    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.get("/api/files")
        data = await r.json()
        assert data["total"] == 4
        names = [f["name"] for f in data["files"]]
        assert names == [
            "top.flac",
            "radio1/20261124_150000.mp3",
            "radio2/20261124_140000.ogg",
            "radio1/20261124_140000.mp3",
        ]
        mtimes = [f["mtime"] for f in data["files"]]
        assert mtimes == sorted(mtimes, reverse=True)
        side = data["files"][3]
        assert side["duration"] == 3600.5 and side["source"] == "radio1"
        assert side["titles"] == [{"at": 1.0, "title": "A - B"}]
        assert side["size"] == 1000 and side["recording"] is False
        assert data["folders"] == ["radio1", "radio2"]
        page = await (await c.get("/api/files?limit=2&offset=1")).json()
        assert page["total"] == 4
        assert [f["name"] for f in page["files"]] == names[1:3]
        q = await (await c.get("/api/files?q=RADIO1")).json()
        assert q["total"] == 2
        folder = await (await c.get("/api/files?folder=radio2")).json()
        assert [f["name"] for f in folder["files"]] == ["radio2/20261124_140000.ogg"]
        beyond = await (await c.get("/api/files?offset=10")).json()
        assert beyond["total"] == 4 and beyond["files"] == []
        for bad in ("limit=0", "limit=x", "offset=-1", "limit=100000"):
            assert (await c.get(f"/api/files?{bad}")).status == 400
        assert (await c.get("/?page=x")).status == 400

    serve(root, check)


def test_page_number_is_clamped_to_the_pages_there_are(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("isr.web.app.PAGE_SIZE", 3)  # 4 files: 2 pages
    oldest = 'data-name="radio1/20261124_140000.mp3"'

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        for page in ("999", "2", "99999999999999999999999"):
            html = await (await c.get(f"/?page={page}")).text()
            assert "Page 2 of 2" in html and oldest in html and "top.flac" not in html, page
            assert 'data-page="2"' in html and "page=1" in html and 'rel="next"' not in html
        rows = await (await c.get("/?page=999&partial=rows")).text()
        assert oldest in rows
        for page in ("0", "-4", "1", ""):
            html = await (await c.get(f"/?page={page}")).text()
            assert "Page 1 of 2" in html and "top.flac" in html and oldest not in html, page
        html = await (await c.get("/?page=7&q=nothing-matches")).text()
        assert "No recordings match" in html and 'data-page="1"' in html
        assert (await c.get("/?page=1.5")).status == 400
        # the API pages by offset and says so: past the end is simply empty
        data = await (await c.get("/api/files?offset=999")).json()
        assert data["total"] == 4 and data["files"] == [] and data["offset"] == 999

    serve(root, check)


def test_status_with_absolute_or_odd_file_paths(root: Path) -> None:
    """A source writing outside the recordings directory is named by an absolute path:
    it is not in the listing, gets no REC badge, and nothing breaks."""
    write_status(
        root,
        {
            "elsewhere": {"state": "recording", "file": "/srv/other/x.mp3"},
            "radio1": {"state": "recording", "file": "radio1/20261124_150000.mp3"},
            "up": {"state": "recording", "file": "../outside/y.mp3"},
            "odd": None,
            "weird": {"state": 3, "file": 7, "last_error": ["x"]},
        },
    )

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        st = await (await c.get("/api/status")).json()
        assert st["recorder_alive"] is True
        assert st["recording"] == ["../outside/y.mp3", "radio1/20261124_150000.mp3"]
        r = await c.get("/")
        assert r.status == 200
        html = await r.text()
        assert "<strong>elsewhere</strong>: recording" in html
        assert "/srv/other" not in html
        assert html.count('disabled title="Being recorded') == 1
        rec_row = html.split('data-name="radio1/20261124_150000.mp3"')[1].split("</tr>")[0]
        assert '<span class="rec">' in rec_row
        files = await (await c.get("/api/files")).json()
        assert files["total"] == 4
        assert [f["name"] for f in files["files"] if f["recording"]] == [
            "radio1/20261124_150000.mp3"
        ]
        assert (await c.get("/metrics")).status == 200
        r = await c.delete("/api/files/top.flac", headers=_origin(c))
        assert r.status == 204
        # a status file whose "updated" is no text at all is no recorder, not a 500
        raw = json.loads((root / ".isr" / "status.json").read_text())
        raw["updated"] = 12345
        (root / ".isr" / "status.json").write_text(json.dumps(raw))
        r = await c.get("/")
        assert r.status == 200 and "Recorder not running" in await r.text()
        st = await (await c.get("/api/status")).json()
        assert st["recorder_alive"] is False and st["updated"] is None

    serve(root, check)


def test_listing_never_shows_a_file_retention_deleted(root: Path) -> None:
    """Retention deletes behind the web UI's back; the directory mtime may not move
    (a coarse clock, NFS attribute caching): no row, no 500, 404 on its links."""
    name = "radio1/20261124_140000.mp3"
    old = time.time() - 500
    for d in (root, root / "radio1", root / "radio2"):
        os.utime(d, (old, old))

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        assert name in await (await c.get("/")).text()
        before = os.stat(root / "radio1").st_mtime_ns
        (root / name).unlink()
        (root / (name + ".json")).unlink()
        os.utime(root / "radio1", ns=(before, before))
        r = await c.get("/")
        assert r.status == 200 and name not in await r.text()
        data = await (await c.get("/api/files")).json()
        assert data["total"] == 3 and name not in [f["name"] for f in data["files"]]
        for url in ("/stream/", "/download/", "/api/analyse/"):
            assert (await c.get(url + name)).status == 404, url
        assert (await c.delete("/api/files/" + name, headers=_origin(c))).status == 404

    serve(root, check)


def test_names_with_spaces_unicode_hash_and_question_marks(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import html as htmllib
    import re

    monkeypatch.setattr("isr.web.app.PAGE_SIZE", 1)
    base = time.time()
    odd = ["dé mo/x #1?.mp3", "dé mo/x #2 100%&a=b.mp3"]
    for i, n in enumerate(odd):
        make_file(root, n, b"\xff\xfb" + bytes(100 + i), base + i)
    make_file(root, "line\nbreak.mp3", b"abc", base - 100)  # a name no header may carry
    os.close(os.open(os.path.join(os.fsencode(root), b"\xff.mp3"), os.O_CREAT | os.O_WRONLY))

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.get("/?q=" + "x %23")  # 'x #': both odd names, one per page
        assert r.status == 200, await r.text()
        page = await r.text()
        assert "Page 1 of 2" in page
        url = htmllib.unescape(re.search(r'data-url="([^"]+)"', page)[1])  # type: ignore[index]
        assert url == "d%C3%A9%20mo/x%20%232%20100%25%26a%3Db.mp3"
        assert f'href="/download/{url}"' in page
        assert f'data-src="/stream/{url}"' in page
        body = await (await c.get("/stream/" + url)).read()
        assert body == b"\xff\xfb" + bytes(101)
        nxt = htmllib.unescape(re.search(r'href="([^"]+)" rel="next"', page)[1])  # type: ignore[index]
        page2 = await (await c.get("/" + nxt)).text()
        assert "Page 2 of 2" in page2 and htmllib.escape(odd[0]) in page2
        r = await c.get("/download/" + url)
        assert r.status == 200
        r = await c.get("/download/line%0Abreak.mp3")
        assert r.status == 200 and await r.read() == b"abc"
        assert 'filename="line_break.mp3"' in r.headers["Content-Disposition"]
        r = await c.delete("/api/files/" + url, headers=_origin(c))
        assert r.status == 204 and not (root / odd[1]).exists()
        # the file whose name is not UTF-8 cannot be named in a URL: it is not listed
        assert (await c.get("/")).status == 200
        names = [f["name"] for f in (await (await c.get("/api/files?limit=99")).json())["files"]]
        assert len(names) == 6 and not any("\udcff" in n for n in names)

    serve(root, check)


def test_listing_sees_new_and_growing_files(root: Path) -> None:
    async def check(c: TestClient[web.Request, web.Application]) -> None:
        await c.get("/api/files")
        path, fd = create_exclusive(root / "radio2", "20261124_160000", ".ogg")
        try:
            os.write(fd, b"OggS")
            write_status(root, {"radio2": {"state": "recording", "file": "radio2/" + path.name}})
            data = await (await c.get("/api/files")).json()
            first = data["files"][0]
            assert first["name"] == "radio2/" + path.name
            assert first["recording"] is True and first["size"] == 4
            os.write(fd, bytes(100))
            data = await (await c.get("/api/files")).json()
            assert data["files"][0]["size"] == 104  # a hot file is re-statted
        finally:
            os.close(fd)

    serve(root, check)


def test_api_status_fresh_stale_and_missing(root: Path) -> None:
    async def check(c: TestClient[web.Request, web.Application]) -> None:
        st = await (await c.get("/api/status")).json()
        assert st["recorder_alive"] is False and st["recording"] == []
        write_status(
            root,
            {
                "radio1": {"state": "recording", "file": "radio1/20261124_150000.mp3"},
                "radio2": {"state": "retrying", "file": None, "last_error": "refused"},
            },
        )
        st = await (await c.get("/api/status")).json()
        assert st["recorder_alive"] is True
        assert st["recording"] == ["radio1/20261124_150000.mp3"]
        assert st["sources"]["radio2"]["last_error"] == "refused"
        html = await (await c.get("/")).text()
        assert "Recorder running" in html and "retrying: refused" in html
        write_status(root, {"radio1": {"state": "recording", "file": "x.mp3"}}, age=20)
        st = await (await c.get("/api/status")).json()
        assert st["recorder_alive"] is False and st["recording"] == []

    serve(root, check)


CONTENT_TYPES = {
    ".mp3": "audio/mpeg",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
    ".oga": "audio/ogg",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
}


def test_stream_content_types(tmp_path: Path) -> None:
    for ext in CONTENT_TYPES:
        make_file(tmp_path, "a" + ext, b"x" * 10)

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        for ext, ctype in CONTENT_TYPES.items():
            r = await c.get("/stream/a" + ext)
            assert r.status == 200
            assert r.content_type == ctype
            assert r.headers["Accept-Ranges"] == "bytes"
            assert "attachment" not in r.headers.get("Content-Disposition", "")
        opus = await c.get("/stream/a.opus")
        assert opus.headers["Content-Type"] == "audio/ogg; codecs=opus"

    serve(tmp_path, check)


def test_stream_ranges(root: Path) -> None:
    body = bytes(range(256)) * 4
    url = "/stream/radio1/20261124_150000.mp3"

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        async def get(rng: str | None) -> tuple[int, bytes, dict[str, str]]:
            headers = {"Range": rng} if rng else {}
            r = await c.get(url, headers=headers)
            return r.status, await r.read(), dict(r.headers)

        status, data, h = await get(None)
        assert (status, data) == (200, body)
        status, data, h = await get("bytes=10-19")
        assert (status, data, h["Content-Range"]) == (206, body[10:20], "bytes 10-19/1024")
        assert h["Content-Length"] == "10"
        status, data, h = await get("bytes=1000-")  # open-ended
        assert (status, data, h["Content-Range"]) == (206, body[1000:], "bytes 1000-1023/1024")
        status, data, h = await get("bytes=-24")  # suffix
        assert (status, data, h["Content-Range"]) == (206, body[-24:], "bytes 1000-1023/1024")
        status, data, h = await get("bytes=-5000")  # suffix longer than the file
        assert (status, data, h["Content-Range"]) == (206, body, "bytes 0-1023/1024")
        status, data, h = await get("bytes=1020-9999")  # end past the size is clipped
        assert (status, data, h["Content-Range"]) == (206, body[1020:], "bytes 1020-1023/1024")
        for unsatisfiable in ("bytes=1024-", "bytes=5000-6000", "bytes=-0"):
            status, data, h = await get(unsatisfiable)
            assert status == 416, unsatisfiable
            assert h["Content-Range"] == "bytes */1024"
        # Several ranges: ignored as RFC 9110 allows, the whole file comes back.
        status, data, h = await get("bytes=0-1,5-6")
        assert (status, data) == (200, body) and "Content-Range" not in h
        status, data, h = await get("bytes=9-2")  # invalid: ignored
        assert (status, data) == (200, body)
        head = await c.head(url, headers={"Range": "bytes=0-9"})
        assert head.status == 206 and head.headers["Content-Range"] == "bytes 0-9/1024"

    serve(root, check)


def test_a_range_of_thousands_of_digits_is_416_or_the_whole_file(root: Path) -> None:
    url = "/stream/radio1/20261124_150000.mp3"
    huge = "9" * 5000

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.get(url, headers={"Range": f"bytes={huge}-"})
        assert r.status == 416 and r.headers["Content-Range"] == "bytes */1024"
        for rng in (f"bytes=0-{huge}", f"bytes=-{huge}"):
            r = await c.get(url, headers={"Range": rng})
            assert r.status == 206 and r.headers["Content-Range"] == "bytes 0-1023/1024"
            assert len(await r.read()) == 1024

    serve(root, check)


def test_if_range_with_a_stale_etag_gets_the_whole_file(tmp_path: Path) -> None:
    """A resumed download of a WAV that grew (and whose header changed) must not get
    206 of bytes that no longer belong to what the client holds."""
    _path, fd = create_exclusive(tmp_path, "growing", ".wav")

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        os.write(fd, b"a" * 1000)
        first = await c.get("/stream/growing.wav")
        old = first.headers["ETag"]
        assert await first.read() == b"a" * 1000
        r = await c.get("/stream/growing.wav", headers={"Range": "bytes=500-", "If-Range": old})
        assert r.status == 206 and len(await r.read()) == 500  # unchanged: resumed
        os.pwrite(fd, b"RIFF", 0)
        os.write(fd, b"b" * 1000)
        r = await c.get("/stream/growing.wav", headers={"Range": "bytes=500-", "If-Range": old})
        assert r.status == 200, "a stale validator must not resume"
        assert await r.read() == b"RIFF" + b"a" * 996 + b"b" * 1000
        new = r.headers["ETag"]
        assert new != old
        r = await c.get("/stream/growing.wav", headers={"Range": "bytes=1500-", "If-Range": new})
        assert r.status == 206 and await r.read() == b"b" * 500
        r = await c.get(
            "/stream/growing.wav", headers={"Range": "bytes=0-1", "If-Range": "W/" + new}
        )
        assert r.status == 200  # a weak validator never resumes

    try:
        serve(tmp_path, check)
    finally:
        os.close(fd)


def test_growing_file_is_served_up_to_its_current_end(tmp_path: Path) -> None:
    _path, fd = create_exclusive(tmp_path, "growing", ".wav")

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        os.write(fd, b"a" * 1000)
        r = await c.get("/stream/growing.wav", headers={"Range": "bytes=500-"})
        assert r.status == 206 and r.headers["Content-Range"] == "bytes 500-999/1000"
        assert len(await r.read()) == 500
        os.write(fd, b"b" * 1000)
        r = await c.get("/stream/growing.wav", headers={"Range": "bytes=1500-"})
        assert r.headers["Content-Range"] == "bytes 1500-1999/2000"
        assert await r.read() == b"b" * 500
        r = await c.get("/stream/growing.wav", headers={"Range": "bytes=2000-"})
        assert r.status == 416

    try:
        serve(tmp_path, check)
    finally:
        os.close(fd)


def test_download_is_an_attachment(root: Path) -> None:
    make_file(root, "radio 1/été 1.mp3", b"abc")

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.get("/download/radio1/20261124_140000.mp3")
        assert r.status == 200 and len(await r.read()) == 1000
        cd = r.headers["Content-Disposition"]
        assert cd.startswith('attachment; filename="20261124_140000.mp3"')
        r = await c.get("/download/radio%201/%C3%A9t%C3%A9%201.mp3")
        assert r.status == 200 and await r.read() == b"abc"
        assert "filename*=UTF-8''%C3%A9t%C3%A9%201.mp3" in r.headers["Content-Disposition"]
        assert (await c.get("/download/missing.mp3")).status == 404

    serve(root, check)


def _origin(c: TestClient[web.Request, web.Application]) -> dict[str, str]:
    return {"Origin": f"http://127.0.0.1:{c.port}"}


def test_delete(root: Path) -> None:
    cache = root / ".isr" / "analysis"
    name = "radio1/20261124_140000.mp3"

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        # fill the analysis cache by hand-made entry via the route's own path
        from isr.web.app import _analysis_cache_path

        entry = _analysis_cache_path(root, name)
        cache.mkdir(parents=True)
        entry.write_text("{}")
        r = await c.delete("/api/files/" + name, headers=_origin(c))
        assert r.status == 204
        assert not (root / name).exists()
        assert not (root / (name + ".json")).exists()
        assert not entry.exists()
        (logged,) = (root / ".isr" / "deletions.log").read_text().splitlines()
        fields = logged.split("\t")
        assert fields[1] == name and fields[3] == "deleted in the web UI"
        data = await (await c.get("/api/files")).json()
        assert name not in [f["name"] for f in data["files"]]
        r = await c.delete("/api/files/" + name, headers=_origin(c))
        assert r.status == 404
        # a sidecar or any non-audio file cannot be deleted through the API
        r = await c.delete("/api/files/notes.txt", headers=_origin(c))
        assert r.status == 404 and (root / "notes.txt").exists()
        assert (await c.get("/api/files/top.flac")).status == 405

    serve(root, check)


def test_a_sidecar_that_is_a_directory_refuses_the_delete_first(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    (root / "top.flac.json").mkdir()

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.delete("/api/files/top.flac")
        assert r.status == 409
        assert await r.text() == "cannot delete top.flac: its sidecar is a directory"
        assert (root / "top.flac").exists()  # nothing was deleted
        r = await c.delete("/api/files/radio1/20261124_140000.mp3")
        assert r.status == 204

    with caplog.at_level(logging.INFO, logger="isr.web"):
        serve(root, check)
    assert "did not delete top.flac: its sidecar is a directory" in caplog.text
    assert "deleted radio1/20261124_140000.mp3 (1000 bytes) with its sidecar at" in caplog.text


def test_delete_that_the_filesystem_refuses_names_no_server_path(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_unlink = os.unlink

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).endswith("top.flac"):
            raise PermissionError(13, "Permission denied", str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.delete("/api/files/top.flac", headers=_origin(c))
        assert r.status == 500
        assert await r.text() == "cannot delete top.flac: Permission denied"
        assert (root / "top.flac").exists()

    serve(root, check)


def test_delete_refused_while_recording(root: Path) -> None:
    locked, fd = create_exclusive(root / "radio2", "20261124_170000", ".ogg")
    write_status(root, {"radio1": {"state": "recording", "file": "radio1/20261124_150000.mp3"}})

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.delete(f"/api/files/radio2/{locked.name}", headers=_origin(c))
        assert r.status == 409  # locked by a "recorder" (this test)
        r = await c.delete("/api/files/radio1/20261124_150000.mp3", headers=_origin(c))
        assert r.status == 409  # named in a fresh status file
        # The page trusts a fresh status file (a closed file's lock may linger until
        # the recorder's next fsync); it asks the lock only when the recorder is gone.
        page = await (await c.get("/")).text()
        assert page.count('disabled title="Being recorded') == 1
        write_status(root, {}, age=30)
        page = await (await c.get("/")).text()
        assert page.count('disabled title="Being recorded') == 1
        assert f'data-name="radio2/{locked.name}"' in page.split('disabled title="Being')[0]
        os.close(fd)
        r = await c.delete(f"/api/files/radio2/{locked.name}", headers=_origin(c))
        assert r.status == 204
        write_status(root, {"radio1": {"state": "recording", "file": "x"}}, age=30)
        r = await c.delete("/api/files/radio1/20261124_150000.mp3", headers=_origin(c))
        assert r.status == 204  # the recorder is gone and holds no lock

    serve(root, check)
    assert (root / "top.flac").exists()


def test_delete_is_not_refused_by_a_passing_lock_probe(root: Path) -> None:
    """``is_locked`` (the listing's, the analysis', another process's) holds the
    exclusive lock for an instant; a delete that meets it must not say "busy"."""
    import fcntl
    import threading

    path = root / "top.flac"
    held = threading.Event()

    def probe() -> None:
        fd = os.open(path, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        held.set()
        time.sleep(0.1)
        os.close(fd)

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        t = threading.Thread(target=probe)
        t.start()
        assert held.wait(5)
        r = await c.delete("/api/files/top.flac", headers=_origin(c))
        t.join()
        assert r.status == 204
        assert not path.exists()

    serve(root, check)


def test_delete_from_another_origin_is_refused(root: Path) -> None:
    """The full rule is in test_web_guard.py; a request with no Origin is no browser's."""

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}):
            r = await c.delete("/api/files/top.flac", headers=headers)
            assert r.status == 403, headers
        assert (root / "top.flac").exists()

    serve(root, check)


def test_basic_auth(root: Path) -> None:
    good = {"Authorization": "Basic " + base64.b64encode(b"ann:pw").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ann:nope").decode()}

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        assert (await c.get("/healthz")).status == 200
        for path in (
            "/",
            "/api/files",
            "/api/status",
            "/metrics",
            "/static/app.js",
            "/stream/top.flac",
            "/download/top.flac",
            "/api/analyse/top.flac",
        ):
            r = await c.get(path)
            assert r.status == 401, path
            assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
        # (wrong credentials are slowed down: test_web_guard.py; one is enough here)
        assert (await c.get("/api/files", headers=bad)).status == 401
        assert (await c.get("/api/files", headers=good)).status == 200
        r = await c.delete("/api/files/top.flac", headers={**good, "Origin": "http://x.example"})
        assert r.status == 403  # right credentials, another origin
        r = await c.delete("/api/files/top.flac", headers={**good, **_origin(c)})
        assert r.status == 204
        r = await c.delete("/api/files/radio2/20261124_140000.ogg", headers=_origin(c))
        assert r.status == 401

    serve(root, check, username="ann", password="pw")


def test_metrics_from_status(root: Path) -> None:
    now = datetime.now().astimezone()
    write_status(
        root,
        {
            "radio1": {
                "state": "recording",
                "file": "radio1/x.mp3",
                "bytes_total": 12345,
                "reconnects": 2,
                "last_byte": (now - timedelta(seconds=3)).isoformat(),
            },
            "radio2": {"state": "failed", "bytes_total": 0, "reconnects": 10, "last_byte": None},
        },
    )

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.get("/metrics")
        assert r.status == 200 and r.content_type == "text/plain"
        text = await r.text()
        lines = {
            ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1])
            for ln in text.splitlines()
            if ln and not ln.startswith("#")
        }
        assert lines['isr_source_up{source="radio1"}'] == 1.0
        assert lines['isr_source_up{source="radio2"}'] == 0.0
        assert lines['isr_source_bytes_total{source="radio1"}'] == 12345
        assert lines['isr_source_reconnects_total{source="radio2"}'] == 10
        assert 2.5 < lines['isr_source_seconds_since_last_byte{source="radio1"}'] < 30
        assert lines["isr_recorder_alive"] == 1.0
        assert lines["isr_disk_free_bytes"] == 512 * 1024 * 1024
        assert "# TYPE isr_source_bytes_total counter" in text

    serve(root, check)


def test_analyse_route_caches_and_validates(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import wave

    import numpy as np

    with wave.open(str(tmp_path / "a.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        t = np.arange(16000) / 8000
        x = np.where((t >= 0.5) & (t < 1.0), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    make_file(tmp_path, "broken.mp3", b"this is no mp3" * 10)
    make_file(tmp_path, "zero.wav", b"")

    async def check(c: TestClient[web.Request, web.Application]) -> None:
        r = await c.get("/api/analyse/a.wav?threshold=0.1")
        assert r.status == 200, await r.text()
        data = await r.json()
        assert data["window_ms"] == 100 and data["threshold"] == 0.1
        assert data["duration_s"] == 2.0 and len(data["rms"]) == 20
        assert data["loud"] == [[0.5, 1.0]]
        cached = list((tmp_path / ".isr" / "analysis").glob("*.rms"))
        assert len(cached) == 1
        # the cached result answers a new threshold without decoding again
        key, _, _ = cached[0].read_bytes().partition(b"\n")
        fake = analyse.encode(analyse.Analysis(100, 2.0, [1.0] * 20))
        cached[0].write_bytes(key + b"\n" + fake)
        again = await (await c.get("/api/analyse/a.wav?threshold=0.5")).json()
        assert again["loud"] == [[0.0, 2.0]] and again["rms"] == [1.0] * 20
        os.utime(tmp_path / "a.wav", (1, 1))  # a changed file is analysed again
        fresh = await (await c.get("/api/analyse/a.wav?threshold=0.1")).json()
        assert fresh["loud"] == [[0.5, 1.0]]
        for bad in ("x", "-1", "2"):
            assert (await c.get(f"/api/analyse/a.wav?threshold={bad}")).status == 400
        for name in ("broken.mp3", "zero.wav"):
            r = await c.get(f"/api/analyse/{name}")
            assert r.status == 422
            # the recording's own name and a reason; never a server path
            assert await r.text() == f"cannot analyse {name}: no audio could be decoded"
        assert (await c.get("/api/analyse/missing.wav")).status == 404

    with caplog.at_level(logging.WARNING, logger="isr.web"):
        serve(tmp_path, check)
    assert str(tmp_path / "zero.wav") in caplog.text  # the details are logged


def test_start_web_serves_on_the_running_loop(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What `isr run` does: the app on a loop it already runs, stopped by cleanup()."""
    import logging
    import socket
    import urllib.request

    from isr.web.app import start_web

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main() -> int:
        runner = await start_web(root, host="127.0.0.1", port=port)
        try:

            def get() -> int:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as r:
                    return int(r.status)

            return await asyncio.to_thread(get)
        finally:
            await runner.cleanup()

    with caplog.at_level(logging.INFO, logger="isr.web"):
        assert asyncio.run(main()) == 200
    assert f"web UI on http://127.0.0.1:{port}/" in caplog.text
