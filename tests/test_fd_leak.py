"""No descriptor leaks (Datasette's test_fd_leak.py): ``isr run`` rolls many files,
reconnects many times and serves many requests, and holds no more open descriptors
after than before (issue 13 item 5). A leak of one per file, reconnect or request
would show as dozens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.media import MediaFactory
from tests.support.net import free_port
from tests.support.recorder import wait_for

RATE = 16000


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


def test_files_reconnects_and_requests_leak_no_descriptor(
    tmp_path: Path, media: MediaFactory
) -> None:
    mount = Mount(
        "/live",
        payload=media("mp3", 60, frequency=440).read_bytes(),
        byte_rate=RATE,
        drop_after=int(1.5 * RATE),  # every connection ends after 1.5 s
    )
    port = free_port()
    with FakeStreamServer(mount) as srv:
        (tmp_path / "config.ini").write_text(
            "[general]\nsplit_minutes = 0.02\nlog_file = rec.log\nretry_delay_seconds = 0.2\n"
            "fsync_seconds = 1\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
            f"[radio]\ntype = stream\nurl = {srv.url('/live')}\n"
            "[tone]\ntype = tone\n"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "isr", "run", "-c", "config.ini", "--port", str(port)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            assert wait_for(lambda: len(srv.connections_to("/live")) >= 2, timeout=30)

            def traffic() -> None:
                files = get(f"{base}/api/files?limit=5")
                assert files.startswith(b"{")
                get(f"{base}/api/status")
                get(f"{base}/api/sources")  # the index by time: SQLite, WAL
                get(f"{base}/api/timeline?source=tone")
                get(f"{base}/metrics")
                get(f"{base}/")

            def fds_settled() -> int:
                # Between rolls, reconnects and fsyncs: the count a quiet moment shows.
                counts = []
                for _ in range(5):
                    counts.append(open_fds(proc.pid))
                    time.sleep(0.2)
                return min(counts)

            for _ in range(10):
                traffic()
            before = fds_settled()
            connections = len(srv.connections_to("/live"))
            files = len(list((tmp_path / "recordings").rglob("*.json")))
            deadline = time.monotonic() + 15
            requests = 0
            while time.monotonic() < deadline:
                traffic()
                requests += 6
                time.sleep(0.05)
            after = fds_settled()
            reconnects = len(srv.connections_to("/live")) - connections
            rolled = len(list((tmp_path / "recordings").rglob("*.json"))) - files
            assert proc.poll() is None
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    assert reconnects >= 5 and rolled >= 15 and requests >= 100, (reconnects, rolled, requests)
    assert after <= before + 2, (before, after, reconnects, rolled, requests)
