"""The recorder trusts the bytes over the Content-Type, and follows playlists."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.judge import ffmpeg_errors, sessions, sidecar_of
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for


def test_wrong_content_type_is_logged_and_sniffed_format_used(
    tmp_path: Path, media: MediaFactory
) -> None:
    aac = media("aac", 30).read_bytes()
    mp3 = media("mp3", 30).read_bytes()
    mounts = [
        Mount("/liar", payload=aac, content_type="audio/mpeg", byte_rate=16000),
        Mount("/stream.mp3", payload=mp3, content_type="audio/mpeg", byte_rate=16000),
        Mount.pls("/listen.pls", "/stream.mp3"),
        Mount("/secret", payload=mp3, byte_rate=16000, auth=("dj", "pa:ss w0rd")),
        Mount(
            "/page",
            payload=b"<html><body>Listen live!</body></html>" * 100,
            content_type="text/html",
            status_line="HTTP/1.0 200 OK",
        ),
        Mount("/untitled", payload=mp3, byte_rate=16000, metaint=4000, titles=[""]),
    ]
    with FakeStreamServer(*mounts) as srv:
        config = (
            "[general]\nlog_file = rec.log\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
            f"[liar]\ntype = stream\nurl = {srv.url('/liar')}\n"
            f"[playlist]\ntype = stream\nurl = {srv.url('/listen.pls')}\n"
            f"[auth]\ntype = stream\nurl = {srv.url('/secret')}\nusername = dj\n"
            "password = pa:ss w0rd\n"
            f"[page]\ntype = stream\nurl = {srv.url('/page')}\n"
            f"[untitled]\ntype = stream\nurl = {srv.url('/untitled')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            assert wait_for(
                lambda: all(
                    s["state"] == "recording"
                    for name, s in rec.status()["sources"].items()
                    if name != "page"
                ),
                timeout=15,
            )
            time.sleep(2)
            status = rec.status()
            assert rec.stop() == 0, rec.output
    out = tmp_path / "recordings"

    def connection(source: str, ext: str) -> list[Path]:
        """A source's files: those of its one connection, which a split boundary (on
        the hour by default) cuts in two when it happens to fall in the test."""
        (files,) = sessions(sorted((out / source).glob(f"*{ext}")))
        return files

    assert status["sources"]["liar"]["format"] == "aac"
    aac_files = connection("liar", ".aac")
    assert not list((out / "liar").glob("*.mp3"))
    for f in [*aac_files, *connection("playlist", ".mp3")]:
        assert ffmpeg_errors(f) == "", f.name
    assert sum(f.stat().st_size for f in connection("auth", ".mp3")) > 16000
    # A web page is not audio: said plainly, and retried like any failure.
    assert "text/html, not audio" in status["sources"]["page"]["last_error"]
    assert not (out / "page").exists()
    # A station without titles sends empty StreamTitles: they are no titles.
    for f in connection("untitled", ".mp3"):
        assert sidecar_of(f)["titles"] == []
    assert status["sources"]["untitled"]["title"] is None
    log = (tmp_path / "rec.log").read_text()
    assert "Content-Type 'audio/mpeg' says mp3 but the bytes are aac" in log
    assert "pa:ss w0rd" not in log and "pa:ss w0rd" not in rec.output
