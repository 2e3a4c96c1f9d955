"""The Icecast harness itself works: real server, real ffmpeg sources, real listeners."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.icecast import Icecast, listen, split_icy
from tests.support.media import MediaFactory
from tests.support.tools import descendants, pid_alive

pytestmark = pytest.mark.integration

KIB64 = 64 * 1024


def test_feeds_mp3_and_aac_and_serves_listeners(icecast: Icecast, media: MediaFactory) -> None:
    icecast.feed(media("mp3", 10), "a.mp3", fmt="mp3", content_type="audio/mpeg")
    icecast.feed(media("aac", 10), "/b.aac", fmt="adts", content_type="audio/aac")

    status, headers, body = listen(icecast.url("a.mp3"), KIB64, icy_metadata=True)
    assert status == 200
    assert headers["content-type"] == "audio/mpeg"
    assert int(headers["icy-metaint"]) > 0
    assert len(body) == KIB64

    status, headers, body = listen(icecast.url("b.aac"), KIB64)
    assert status == 200
    assert headers["content-type"] == "audio/aac"
    assert "icy-metaint" not in headers  # only sent when asked for
    assert len(body) == KIB64

    assert {"/a.mp3", "/b.aac"} <= set(icecast.mounts())
    with urllib.request.urlopen(icecast.base_url + "/status-json.xsl") as response:
        sources = json.load(response)["icestats"]["source"]
    assert sorted(s["listenurl"] for s in sources) == [icecast.url("a.mp3"), icecast.url("b.aac")]


def test_ogg_mount_has_no_icy_metaint(icecast: Icecast, media: MediaFactory) -> None:
    icecast.feed(media("vorbis", 10), "c.ogg", fmt="ogg", content_type="audio/ogg")
    status, headers, body = listen(icecast.url("c.ogg"), 512, icy_metadata=True)
    assert status == 200
    assert "icy-metaint" not in headers
    assert body.startswith(b"OggS")  # an Ogg listener starts with the stream's headers


def test_set_title_reaches_icy_listener(icecast: Icecast, media: MediaFactory) -> None:
    icecast.feed(media("mp3", 10), "t.mp3", fmt="mp3", content_type="audio/mpeg")
    icecast.set_title("t.mp3", "Artist - Song")
    _, headers, data = listen(icecast.url("t.mp3"), 20_000, icy_metadata=True)
    _, blocks = split_icy(data, int(headers["icy-metaint"]))
    assert b"StreamTitle='Artist - Song';" in blocks


def test_kill_source_removes_mount(icecast: Icecast, media: MediaFactory) -> None:
    icecast.feed(media("mp3", 10), "k.mp3", fmt="mp3", content_type="audio/mpeg")
    icecast.kill_source("k.mp3")
    icecast.wait_mount("k.mp3", 5, present=False)


def test_restart_serves_again_on_same_port(icecast: Icecast, media: MediaFactory) -> None:
    icecast.feed(media("mp3", 10), "a.mp3", fmt="mp3", content_type="audio/mpeg")
    port = icecast.port
    old_pid = icecast.proc.pid if icecast.proc else None

    icecast.restart()

    assert icecast.port == port
    assert icecast.proc is not None and icecast.proc.pid != old_pid
    assert icecast.mounts() == {}  # sources were dropped with the old server
    icecast.feed(media("mp3", 10), "a.mp3", fmt="mp3", content_type="audio/mpeg")
    status, _, body = listen(icecast.url("a.mp3"), 16_384)
    assert status == 200
    assert len(body) == 16_384


def test_stop_leaves_no_process(media: MediaFactory) -> None:
    with Icecast() as server:
        feeders = [
            server.feed(media("mp3", 10), f"m{i}.mp3", fmt="mp3", content_type="audio/mpeg")
            for i in range(2)
        ]
        assert server.proc is not None
        pids = [server.proc.pid] + [f.proc.pid for f in feeders]
        assert all(pid_alive(pid) for pid in pids)
        workdir = server.workdir
    assert not any(pid_alive(pid) for pid in pids)
    ours = [p for p in descendants() if p.cmdline.split(" ")[0].endswith(("icecast2", "ffmpeg"))]
    assert ours == []
    assert not workdir.exists()


def test_private_workdir_and_no_burst(tmp_path: Path, media: MediaFactory) -> None:
    """A workdir icecast2 cannot reach (pytest's 0700 tmp_path) still works, and
    burst_size=0 really turns the burst off (128 kbit/s gives ~16 KB in the first second)."""
    with Icecast(tmp_path, burst_size=0) as server:
        server.feed(media("mp3", 10), "p.mp3", fmt="mp3", content_type="audio/mpeg")
        assert "Source logging in" in server.error_log.read_text()
        _, _, body = listen(server.url("p.mp3"), KIB64, timeout=1.0)
        assert 0 < len(body) < 40_000


def test_sigkilled_test_run_orphans_nothing(media: MediaFactory) -> None:
    """Even a SIGKILLed pytest (no atexit, no finalizers) takes icecast2 and ffmpeg along."""
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from tests.support.icecast import Icecast\n"
        "server = Icecast().start()\n"
        "feeder = server.feed(Path(sys.argv[1]), 'x.mp3', fmt='mp3', content_type='audio/mpeg')\n"
        "print(server.proc.pid, feeder.proc.pid, server.workdir, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", script, str(media("mp3", 10))],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    icecast_pid, ffmpeg_pid, workdir = result.stdout.split()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            pid_alive(int(icecast_pid)) or pid_alive(int(ffmpeg_pid))
        ):
            time.sleep(0.05)
        assert not pid_alive(int(icecast_pid))
        assert not pid_alive(int(ffmpeg_pid))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
