"""Secrets in stream URLs never reach logs, the status file or the web UI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from isr.config import describe, load
from isr.urls import is_secret_name, redact_url
from isr.web.app import create_app
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for


def test_query_values_whose_names_say_secret_are_masked() -> None:
    assert redact_url("http://h:8000/live?token=abc") == "http://h:8000/live?token=***"
    assert (
        redact_url("http://h/live.mp3?station=3&key=K1&auth=A;password=P&b=2")
        == "http://h/live.mp3?station=3&key=***&auth=***;password=***&b=2"
    )
    assert (
        redact_url("https://u:pw@h/a?access_token=t&X-Amz-Signature=s&X-Amz-Date=d#sig=f")
        == "https://u:***@h/a?access_token=***&X-Amz-Signature=***&X-Amz-Date=d#sig=***"
    )
    # a name spelled with escapes is still recognised; everything else is kept as is
    assert redact_url("http://h/x?%74oken=z&q=a%20b+c") == "http://h/x?%74oken=***&q=a%20b+c"
    assert redact_url("http://h/x?token=") == "http://h/x?token="
    assert redact_url("http://h/x?title=a=b") == "http://h/x?title=a=b"


def test_userinfo_is_masked_as_before() -> None:
    assert redact_url("http://u:p%40ss@h.example:8000/a?b=1") == "http://u:***@h.example:8000/a?b=1"
    assert redact_url("https://u@h/") == "https://u@h/"
    assert redact_url("http://h/x") == "http://h/x"
    assert redact_url("http://:pw@[::1]:80/") == "http://:***@[::1]:80/"
    # a password that ends the netloc early: masked up to the last '@', query too
    assert redact_url("http://dj:se/cret@127.0.0.1:8000/live?pass=x") == (
        "http://***@127.0.0.1:8000/live?pass=***"
    )
    assert redact_url("http://[::1") == "<unparsable URL>"


def test_secret_names() -> None:
    for name in ("token", "Key", "api_key", "apikey", "auth", "passwd", "pwd", "secret", "sig"):
        assert is_secret_name(name), name
    for name in ("station", "format", "bitrate", "t", "mount"):
        assert not is_secret_name(name), name


def test_isr_check_masks_query_tokens() -> None:
    cfg = load(
        "c.ini",
        text="[s]\ntype = stream\nurl = http://127.0.0.1:8000/live?token=SeCrEt&x=1\n",
    )
    text = describe(cfg)
    assert "SeCrEt" not in text and "live?token=***&x=1" in text


@pytest.fixture(scope="module")
def mp3(media: MediaFactory) -> bytes:
    return media("mp3", 20, frequency=440).read_bytes()


def test_a_query_token_reaches_no_log_status_file_or_api(tmp_path: Path, mp3: bytes) -> None:
    """Real recorder, real server: one source connects with ``?token=``, one gets a 404
    with ``?key=`` (the error names the URL); neither secret is written anywhere."""
    good = Mount("/live", payload=mp3, status_line="ICY 200 OK", byte_rate=16000)
    with FakeStreamServer(good) as srv:
        config = (
            "[general]\nsplit_minutes = 1\nlog_file = rec.log\nretry_delay_seconds = 0.2\n"
            "filename_pattern = {source}/%Y%m%d_%H%M%S\nmax_retries = 0\n"
            f"[good]\ntype = stream\nurl = {srv.url('/live?token=TOKEN-1234&bitrate=128')}\n"
            f"[bad]\ntype = stream\nurl = {srv.url('/missing?key=KEY-5678')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            assert wait_for(
                lambda: (
                    rec.status()["sources"]["good"]["state"] == "recording"
                    and rec.status()["sources"]["bad"]["last_error"]
                ),
                timeout=20,
            ), rec.stop() or rec.output
            status_text = (tmp_path / "recordings" / ".isr" / "status.json").read_text()
            api = asyncio.run(_api_status(tmp_path / "recordings"))
            assert rec.stop() == 0, rec.output
        # the query did reach the server: only what ISR writes down is masked
        assert srv.connections_to("/live")[0].request_line.count("TOKEN-1234") == 1
    log = (tmp_path / "rec.log").read_text()
    bad_error = json.loads(status_text)["sources"]["bad"]["last_error"]
    assert "/missing?key=***" in bad_error
    assert "/live?token=***&bitrate=128" in log and "/missing?key=***" in log
    assert api["recorder_alive"] is True
    assert api["sources"]["bad"]["last_error"] == bad_error
    for where, text in [
        ("log", log),
        ("stdout", rec.output),
        ("status.json", status_text),
        ("/api/status", json.dumps(api)),
    ]:
        assert "TOKEN-1234" not in text and "KEY-5678" not in text, where


async def _api_status(root: Path) -> dict[str, Any]:
    async with TestClient(TestServer(create_app(root), host="127.0.0.1")) as client:
        resp = await client.get("/api/status")
        assert resp.status == 200
        data: dict[str, object] = await resp.json()
        return data
