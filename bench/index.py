"""The index by time over a year of hourly files from ten sources (87,600 recordings).

Creates, in a temporary directory, ``src{N}/YYYYmmdd_HHMMSS.mp3`` (the pattern
``{source}/%Y%m%d_%H%M%S``: 8,760 files and 8,760 sidecars in each source's folder;
``--dated``: ``{source}/%Y/%m/%d/%Y%m%d_%H%M%S``, a folder a day)
for a year of hours, each with a real sidecar as the recorder writes it (its titles,
one every ``--titles-every`` seconds, and now and then a reconnect gap); the audio
files are sparse (only their size and mtime matter to the index). Then measures:

- the index's first build (scan, every sidecar read, every row written), in process;
- a restart over the built index (the rows loaded, the directory scanned, compared);
- a refresh that finds nothing new, and one after a new file and its sidecar;
- through the real aiohttp application on 127.0.0.1: the time until ``/healthz``
  and ``/api/files`` answer while the first build runs, the first ``/api/timeline``
  (it waits for the build), then ``/api/timeline`` for one day and ``/api/sources``
  (median and p95), with the event loop's longest stall meanwhile.

    .venv/bin/python bench/index.py [--sources 10] [--days 365] [--rounds 200] [--dated]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from _common import date_directories, free_port
from aiohttp import web

from isr.clock import local_zone
from isr.sidecar import write_json_atomic
from isr.timeline.index import INDEX_FILE, TimelineIndex
from isr.web.app import create_app

START = datetime(2025, 1, 1)
BYTES_PER_HOUR = 128_000 // 8 * 3600


def within(wall: datetime, dated: bool) -> str:
    """A recording's path inside its source's folder."""
    stem = wall.strftime("%Y%m%d_%H%M%S") + ".mp3"
    return wall.strftime("%Y/%m/%d/") + stem if dated else stem


def populate(root: Path, sources: int, days: int, titles_every: int, dated: bool) -> int:
    tz = local_zone()
    n = 0
    for s in range(sources):
        for h in range(days * 24):
            wall = START + timedelta(hours=h)
            folder = (root / f"src{s}" / within(wall, dated)).parent
            if h % 24 == 0 or not dated:
                folder.mkdir(parents=True, exist_ok=True)
            t0 = wall.replace(tzinfo=tz).timestamp()
            gap = 4.2 if (h * 7 + s) % 97 == 0 else 0.0  # a reconnect now and then
            start = datetime.fromtimestamp(t0 + gap, tz)
            end = datetime.fromtimestamp(t0 + 3600, tz)
            stem = wall.strftime("%Y%m%d_%H%M%S")
            audio = folder / f"{stem}.mp3"
            with open(audio, "wb") as fh:
                fh.truncate(BYTES_PER_HOUR)  # sparse: no blocks written
            side = {
                "source": f"src{s}",
                "file": f"src{s}/{within(wall, dated)}",
                "format": "mp3",
                "start": start.isoformat(timespec="milliseconds"),
                "end": end.isoformat(timespec="milliseconds"),
                "titles": [
                    {"at": float(a), "byte": a * 16000, "title": f"Artist {h % 50} - Song {a}"}
                    for a in range(0, 3600, titles_every)
                ],
                "gaps": [{"at": 0.0, "seconds": gap, "cause": "connection reset"}] if gap else [],
                "overlaps_removed": [],
            }
            side_path = folder / f"{stem}.mp3.json"
            side_path.write_text(json.dumps(side))
            for p in (audio, side_path):  # as the recorder left them at the hour's end
                os.utime(p, (end.timestamp(), end.timestamp()))
            n += 1
    date_directories(root, START.timestamp())
    return n


def write_status(root: Path, sources: int, last: str) -> None:
    now = datetime.now().astimezone().isoformat()
    (root / ".isr").mkdir(exist_ok=True)
    files = {f"src{s}": {"state": "recording", "file": f"src{s}/{last}"} for s in range(sources)}
    status = {"version": 1, "pid": os.getpid(), "updated": now, "started": now, "sources": files}
    (root / ".isr" / "status.json").write_text(json.dumps(status))


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def timed_refresh(index: TimelineIndex, hot: list[str], what: str) -> None:
    """One refresh: its wall time and its CPU time (the machine is shared: the CPU
    time is the figure that does not depend on what else runs)."""
    t, cpu = time.perf_counter(), time.process_time()
    done = index.refresh(hot)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(
        f"{what}: {ms(wall)} wall, {ms(cpu)} CPU "
        f"(added {done.added}, changed {done.changed}, removed {done.removed})"
    )


def in_process(root: Path, sources: int, last: str) -> None:
    tz = local_zone()
    hot = [f"src{s}/{last}" for s in range(sources)]
    index = TimelineIndex(root, tz)
    timed_refresh(index, hot, "first build")
    db = root / ".isr" / INDEX_FILE
    size = sum(p.stat().st_size for p in db.parent.glob(INDEX_FILE + "*"))
    print(f"index size: {size / 1e6:.1f} MB")
    index.close()
    index = TimelineIndex(root, tz)
    timed_refresh(index, hot, "restart over the built index (quick_check, rows, scan)")
    quiet = []
    for _ in range(20):
        t = time.perf_counter()
        index.refresh(hot)
        quiet.append(time.perf_counter() - t)
    print(f"refresh, nothing changed: median {ms(statistics.median(quiet))}")
    new = (root / hot[0]).with_name("20991231_230000.mp3")
    new.write_bytes(b"\xff\xfb" + bytes(100))
    side = json.loads((root / f"{hot[0]}.json").read_text())
    side["start"], side["end"] = "2099-12-31T23:00:00+00:00", None
    write_json_atomic(new.with_name(new.name + ".json"), side)
    timed_refresh(index, hot, "refresh after one new file (its folder listed again)")
    new.unlink()
    new.with_name(new.name + ".json").unlink()
    index.refresh(hot)
    # the file being recorded gets a new title: its sidecar is replaced, its folder
    # listed again, that one sidecar read again
    recorded = root / hot[0]
    side = json.loads((root / (hot[0] + ".json")).read_text())
    side["titles"].append({"at": 3599.0, "byte": 1, "title": "A new one"})
    write_json_atomic(root / (hot[0] + ".json"), side)
    timed_refresh(index, hot, "refresh after a title in the recorded file")
    # it grows; its folder has not changed for long enough to be trusted
    time.sleep(3.1)
    index.refresh(hot)
    with open(recorded, "ab") as fh:
        fh.write(bytes(1000))
    timed_refresh(index, hot, "refresh after the recorded files grew")
    index.close()


def client(port: int, path: str, rounds: int) -> tuple[list[float], int]:
    """In a process of its own (its parsing must not load the server's loop): the
    latency of each of ``rounds`` GETs on one keep-alive connection, and the size of
    the last answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    times, size = [], 0
    for _ in range(rounds):
        t = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        times.append(time.perf_counter() - t)
        assert resp.status == 200, (path, resp.status, body[:200])
        size = len(body)
    conn.close()
    return times, size


async def over_http(root: Path, sources: int, rounds: int, last: str, day: datetime) -> None:
    for extra in ("", "-wal", "-shm"):  # the web process builds its own, cold
        (root / ".isr" / (INDEX_FILE + extra)).unlink(missing_ok=True)
    stalls: list[float] = []

    async def watch() -> None:  # the loop's lateness on a 1 ms tick
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.001)
            stalls.append(loop.time() - t - 0.001)

    loop = asyncio.get_running_loop()
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    await loop.run_in_executor(pool, client, 0, "", 0)  # the client process is up
    watcher = asyncio.create_task(watch())
    port = free_port()
    write_status(root, sources, last)
    t_start = time.perf_counter()
    runner = web.AppRunner(create_app(root))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    async def get(path: str, n: int = 1) -> tuple[list[float], int]:
        return await loop.run_in_executor(pool, client, port, path, n)

    try:
        took, _ = await get("/healthz")
        print(f"/healthz answered {ms(time.perf_counter() - t_start)} after the start")
        took, _ = await get("/api/files?limit=100")
        print(f"/api/files during the first build: {ms(took[0])}")
        url = "/api/timeline?" + urlencode(
            {
                "source": "src0",
                "from": day.strftime("%Y-%m-%d"),
                "to": (day + timedelta(days=1)).strftime("%Y-%m-%d"),
            }
        )
        took, _ = await get(url)
        print(
            f"first /api/timeline (waited for the build): {took[0]:.2f} s, "
            f"{time.perf_counter() - t_start:.2f} s after the start; "
            f"loop stalled at most {ms(max(stalls))} meanwhile"
        )

        async def series(what: str, path: str) -> None:
            write_status(root, sources, last)
            stalls.clear()
            cpu = time.process_time()
            times, size = await get(path, rounds)
            cpu = (time.process_time() - cpu) / rounds
            times.sort()
            p95 = times[max(0, int(len(times) * 0.95) - 1)]
            print(
                f"{what}: median {ms(statistics.median(times))}, p95 {ms(p95)}, "
                f"max {ms(times[-1])} ({rounds} requests, {size / 1000:.0f} kB each); "
                f"server CPU {ms(cpu)} a request; loop stalled at most {ms(max(stalls))}"
            )

        await series("/api/timeline, one day", url)
        month = url.replace(
            (day + timedelta(days=1)).strftime("%Y-%m-%d"),
            (day + timedelta(days=31)).strftime("%Y-%m-%d"),
        )
        await series("/api/timeline, 31 days", month)
        await series("/api/sources", "/api/sources")
    finally:
        watcher.cancel()
        await runner.cleanup()
        pool.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=10)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--titles-every", type=int, default=240, help="seconds between titles")
    ap.add_argument(
        "--dated",
        action="store_true",
        help="a folder a day ({source}/%%Y/%%m/%%d/...) instead of one a source",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="isr-bench-index-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        n = populate(root, args.sources, args.days, args.titles_every, args.dated)
        print(f"created {n} recordings with sidecars in {time.perf_counter() - t:.1f} s")
        last = within(START + timedelta(hours=args.days * 24 - 1), args.dated)
        write_status(root, args.sources, last)
        print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        in_process(root, args.sources, last)
        day = START + timedelta(days=args.days // 2)
        asyncio.run(over_http(root, args.sources, args.rounds, last, day))
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
