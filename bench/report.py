"""Coverage over 42 days of 100 sources (100,800 hourly recordings with real sidecars).

The archive is ``bench/index.py``'s (``populate``: ``src{N}/YYYYmmdd_HHMMSS.mp3``, sparse
audio, a sidecar as the recorder writes it with a title every 4 minutes and now and
then a 4.2 s reconnect gap), from 2025-01-01; one file in 499 is marked as having
failed its check. Then:

- ``isr report --dir … --from 2025-01-01 --to 2025-02-11`` as a user runs it (a child
  process: its wall time, and its CPU time from ``RUSAGE_CHILDREN``): cold (the index
  is built first) and warm, in text, CSV and JSON;
- the recorder's watch: one measure of every source's last 24 hours over a warm index
  (what ``isr record`` does every minute and after a change), CPU time;
- through the real application on 127.0.0.1 (the client in a process of its own):
  ``/api/coverage`` for all sources and 42 days, and the ``/coverage`` page, median and
  p95, with the event loop's longest stall meanwhile.

    .venv/bin/python bench/report.py [--sources 100] [--days 42] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from _common import free_port
from aiohttp import web
from index import START, client, ms, populate

from isr.clock import local_zone
from isr.timeline.coverage import collect_window, day_bounds
from isr.timeline.index import INDEX_FILE, TimelineIndex
from isr.web.app import create_app

FAIL_EVERY = 499


def mark_failed_checks(root: Path) -> int:
    """One sidecar in ``FAIL_EVERY`` gets a failed check, as the checker writes it."""
    n = 0
    for i, side in enumerate(sorted(root.rglob("*.mp3.json"))):
        if i % FAIL_EVERY:
            continue
        data = json.loads(side.read_text())
        data["check"] = {"ok": False, "problems": ["byte 4096: MP3 frame CRC-16 does not match"]}
        mtime = side.stat().st_mtime
        side.write_text(json.dumps(data))
        os.utime(side, (mtime, mtime))
        n += 1
    return n


def run_report(root: Path, first: str, last: str, fmt: str) -> tuple[float, float, int]:
    """``isr report`` in a child: wall seconds, CPU seconds, bytes printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    args = ["report", "--dir", str(root), "--from", first, "--to", last, "--format", fmt]
    out = subprocess.run(
        [sys.executable, "-m", "isr", *args],
        capture_output=True,
        check=True,
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, len(out.stdout)


def cli(root: Path, first: str, last: str, rounds: int) -> None:
    for extra in ("", "-wal", "-shm"):
        (root / ".isr" / (INDEX_FILE + extra)).unlink(missing_ok=True)
    wall, cpu, size = run_report(root, first, last, "json")
    print(f"isr report, cold (the index built first): {wall:.1f} s wall, {cpu:.1f} s CPU")
    for fmt in ("text", "csv", "json"):
        walls, cpus = [], []
        for _ in range(rounds):
            wall, cpu, size = run_report(root, first, last, fmt)
            walls.append(wall)
            cpus.append(cpu)
        print(
            f"isr report --format {fmt}, warm: median {statistics.median(walls):.2f} s wall, "
            f"{statistics.median(cpus):.2f} s CPU ({size / 1000:.0f} kB)"
        )


def watch(root: Path, sources: int, days: int, rounds: int) -> None:
    tz = local_zone()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c = time.process_time()
    index = TimelineIndex(root, tz)
    index.refresh([])
    opened = time.process_time() - c
    _, end = day_bounds((START + timedelta(days=days - 1)).date(), tz)
    names = [f"src{s}" for s in range(sources)]
    cpus = []
    for _ in range(rounds):
        c = time.process_time()
        found = collect_window(index, names, end - 86400, end, expected_since=end - 86400)
        cpus.append(time.process_time() - c)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    index.close()
    worst = min(c.coverage or 0 for c in found.values())
    print(
        f"the recorder's watch, {sources} sources' last 24 h (warm index): median "
        f"{ms(statistics.median(cpus))} CPU a measure (lowest coverage {worst:.4f}); "
        f"opening the built index {opened:.1f} s CPU, peak RSS {rss0 / 1024:.0f} -> "
        f"{rss / 1024:.0f} MiB"
    )


async def over_http(root: Path, first: str, last: str, days: int, rounds: int) -> None:
    stalls: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.001)
            stalls.append(loop.time() - t - 0.001)

    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    await loop.run_in_executor(pool, client, 0, "", 0)
    port = free_port()
    runner = web.AppRunner(create_app(root))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    tick = asyncio.create_task(ticker())
    try:
        for what, path in (
            (f"/api/coverage, {days} days of every source", "/api/coverage?"),
            (f"/coverage page (42 days to {last}), every source", "/coverage?"),
        ):
            q = {"from": first, "to": last} if path.startswith("/api") else {"to": last}
            url = path + urlencode(q)
            await loop.run_in_executor(pool, client, port, url, 1)  # the index built
            stalls.clear()
            times, size = await loop.run_in_executor(pool, client, port, url, rounds)
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            print(
                f"{what}: median {ms(statistics.median(times))}, p95 {ms(p95)} "
                f"({size / 1000:.0f} kB); loop stalled at most {ms(max(stalls))}"
            )
    finally:
        tick.cancel()
        await runner.cleanup()
        pool.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--days", type=int, default=42)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--root", type=Path, help="make the archive here, keep it, reuse it")
    args = ap.parse_args()
    first = START.date().isoformat()
    last = (START + timedelta(days=args.days - 1)).date().isoformat()
    with tempfile.TemporaryDirectory(prefix="isr-bench-report-") as tmp:
        root = args.root or Path(tmp)
        if not (root / "src0").is_dir():
            root.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            n = populate(root, args.sources, args.days, 240, False)
            failed = mark_failed_checks(root)
            print(
                f"created {n} recordings with sidecars ({failed} failed checks) in "
                f"{time.perf_counter() - t:.0f} s"
            )
        print(f"reporting {first} to {last}")
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        cli(root, first, last, args.rounds)
        watch(root, args.sources, args.days, args.rounds)
        asyncio.run(over_http(root, first, last, args.days, args.rounds))
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
