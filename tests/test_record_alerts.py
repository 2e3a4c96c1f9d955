"""Alerts from a running recorder reach a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for


class Receiver:
    """A webhook receiver in a thread, recording every JSON body it is sent."""

    def __init__(self) -> None:
        events: list[dict[str, Any]] = []
        self.events = events

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                events.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_failed_dead_air_and_recovered_alerts(tmp_path: Path, media: MediaFactory) -> None:
    mp3 = media("mp3", 30).read_bytes()
    stall = Mount(
        "/live",
        payload=mp3,
        byte_rate=16000,
        stall_after=24000,
        stall_seconds=4,
        faulty_connections=1,
    )
    dead = FakeStreamServer(Mount("/x", payload=mp3)).start()
    dead_url = dead.url("/x")
    dead.stop()
    with Receiver() as hook, FakeStreamServer(stall) as srv:
        config = (
            "[general]\nlog_file = rec.log\nretry_delay_seconds = 0.3\n"
            "filename_pattern = {source}/%Y%m%d_%H%M%S\n"
            f"[alerts]\nwebhook_url = {hook.url}\n"
            f"[live]\ntype = stream\nurl = {srv.url('/live')}\ntimeout_seconds = 1\n"
            f"[gone]\ntype = stream\nurl = {dead_url}\nmax_retries = 2\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            assert wait_for(
                lambda: (
                    {e["event"] for e in hook.events}
                    >= {"source_failed", "dead_air", "source_recovered"}
                ),
                timeout=20,
            ), hook.events
            assert wait_for(lambda: rec.status()["sources"]["live"]["state"] == "recording")
            status = rec.status()
            assert rec.stop() == 0, rec.output
    by_event = {e["event"]: e for e in hook.events}
    assert by_event["source_failed"]["source"] == "gone"
    assert "gave up after 2 failures" in by_event["source_failed"]["message"]
    assert by_event["dead_air"]["source"] == "live"
    assert by_event["source_recovered"]["source"] == "live"
    assert status["sources"]["gone"]["state"] == "failed"
    assert status["sources"]["live"]["state"] == "recording"
