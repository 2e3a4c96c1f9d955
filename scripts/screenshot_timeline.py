#!/usr/bin/env python3
"""Make docs/timeline.png, the README's picture of the timeline page, from a real recording.

    .venv/bin/python scripts/screenshot_timeline.py            # ~2 minutes
    .venv/bin/python scripts/screenshot_timeline.py --out /tmp/t.png --keep /tmp/rec

What it does, all for real: ffmpeg makes a few minutes of MP3; the tests' fake Icecast
server (tests/support/fake_server.py) streams it live with ICY titles; ``isr record``
records it, split every minute, while the server goes away for a few seconds in the
middle (a reconnect: a gap with its cause); then ``isr web`` serves the recordings and
Debian's Chromium (through Playwright, never a downloaded browser) shows the timeline,
zoomed to the recording, playing from a moment, with a span chosen for export.
Needs ffmpeg, /usr/bin/chromium and the test extras (``pip install -e '.[test]'``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.fake_server import FakeStreamServer, Mount  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
BYTE_RATE = 4000  # 32 kbit/s MP3
TITLES = [
    "Morning News - Headlines",
    "The Weather Band - Blue Skies",
    "Studio Talk - Guest of the Day",
    "Jingle - Station ID",
    "Night Owls - Slow Song",
]
MAX_PNG_BYTES = 200_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: object, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():  # type: ignore[operator]
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"screenshot_timeline: timed out waiting for {what}")


def _mp3(path: Path, seconds: int) -> bytes:
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"sine=frequency=330:duration={seconds}:sample_rate=22050",
            "-ac", "1", "-b:a", "32k", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


def record(work: Path, first: float, outage: float, second: float) -> Path:
    """Record the fake stream: ``first`` seconds, the server away for ``outage``, then
    ``second`` more. Returns the recordings directory."""
    payload = _mp3(work / "source.mp3", int(first + outage + second + 60))
    mount = Mount(
        "/live",
        payload=payload,
        metaint=4000,
        titles=TITLES,
        title_every=BYTE_RATE * 20,  # a new title every 20 s
        byte_rate=BYTE_RATE,
        live=True,
        replay_bytes=0,
    )
    root = work / "recordings"
    with FakeStreamServer(mount) as server:
        config = work / "config.ini"
        config.write_text(
            "[general]\n"
            f"output_directory = {root}\n"
            "split_minutes = 1\n"
            "filename_pattern = {source}/%Y%m%d_%H%M%S\n"
            "retry_delay_seconds = 1\n"
            "max_retries = 0\n"
            "log_file =\n"
            f"[radio1]\ntype = stream\nurl = {server.url('/live')}\n"
        )
        log = open(work / "record.log", "wb")  # noqa: SIM115 - closed below
        rec = subprocess.Popen(
            [sys.executable, "-m", "isr", "record", "-c", str(config)],
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait(lambda: any(root.rglob("*.mp3")), 20, "the first file")
            time.sleep(first)
            server.pause()
            time.sleep(outage)
            server.resume()
            time.sleep(second)
        finally:
            rec.send_signal(signal.SIGTERM)
            code = rec.wait(30)
            log.close()
        if code != 0:
            raise SystemExit((work / "record.log").read_text())
    return root


def screenshot(root: Path, out: Path, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(work / "web.log", "wb")  # noqa: SIM115 - closed below
    web = subprocess.Popen(
        [sys.executable, "-m", "isr", "web", "--dir", str(root), "--port", str(port)],
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        def up() -> bool:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                return bool(r.status == 200)

        _wait(up, 20, "isr web")
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                locale="en-GB",
                viewport={"width": 960, "height": 900},
            )
            page = browser.new_page()
            page.goto(url + "/timeline?source=radio1&zoom=rec")
            page.wait_for_function(
                "() => document.getElementById('summary').textContent.startsWith('Recorded')"
            )
            page.locator("#details summary").click()
            gaps = page.locator("#gap-list button").count()
            if gaps:  # play from just before the gap, and export a span across it
                page.locator("#gap-list button").first.click()
            else:
                page.locator("#play").click()
            page.wait_for_function(
                "() => document.getElementById('player').currentTime > 1.5", timeout=20_000
            )
            page.evaluate("document.getElementById('player').pause()")
            at = page.locator("#at").input_value()
            h, m, s = (int(x) for x in at.split(":"))
            start = h * 3600 + m * 60 + s - 15
            page.locator("#span-from").fill(_clock(start))
            page.locator("#span-to").fill(_clock(start + 40))
            page.wait_for_function(
                "() => /clip holds|nothing/.test(document.getElementById('span-info').textContent)"
            )
            page.locator("#bar").focus()
            page.mouse.move(0, 0)
            page.screenshot(path=str(out), full_page=True)
            browser.close()
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(10)
        log.close()


def _clock(seconds: int) -> str:
    seconds %= 86400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "timeline.png")
    parser.add_argument("--keep", type=Path, help="record into this directory and keep it")
    parser.add_argument("--seconds", type=float, default=45, help="before and after the outage")
    parser.add_argument("--outage", type=float, default=8, help="seconds the server is away")
    parser.add_argument(
        "--recordings", type=Path, help="take the picture of these recordings; record nothing"
    )
    args = parser.parse_args()
    for tool in ("ffmpeg", CHROMIUM):
        if not shutil.which(tool):
            raise SystemExit(f"screenshot_timeline: {tool} is missing")
    work = Path(tempfile.mkdtemp(prefix="isr-shot-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.recordings:
            root = args.recordings.resolve()
        else:
            print(f"recording into {work} ({datetime.now():%H:%M:%S})", flush=True)
            root = record(work, args.seconds, args.outage, args.seconds)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(root, args.out, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    size = os.path.getsize(args.out)
    print(f"wrote {args.out} ({size:,} bytes)")
    if size > MAX_PNG_BYTES:
        print(f"warning: over {MAX_PNG_BYTES:,} bytes; the README's picture should stay small")
    return 0


if __name__ == "__main__":
    sys.exit(main())
