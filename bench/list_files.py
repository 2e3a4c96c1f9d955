"""How fast `/api/files?limit=100` answers over a year of hourly files from ten sources.

Creates 87,600 empty files (``src{N}/YYYY/MM/DD/YYYYmmdd_HHMMSS.mp3``, one sidecar-less
file per hour per source) in a temporary directory, serves it with the real app on
127.0.0.1 and times the first (cold: scans everything) and later (cached) requests, a
filtered request, and a request after one new file appeared.

    .venv/bin/python bench/list_files.py [--sources 10] [--days 365]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from _common import date_directories
from aiohttp.test_utils import TestClient, TestServer

from isr.web.app import create_app


def populate(root: Path, sources: int, days: int) -> int:
    start = datetime(2025, 1, 1)
    n = 0
    for s in range(sources):
        for h in range(days * 24):
            t = start + timedelta(hours=h)
            d = root / f"src{s}" / t.strftime("%Y/%m/%d")
            if h % 24 == 0:
                d.mkdir(parents=True, exist_ok=True)
            p = d / t.strftime("%Y%m%d_%H%M%S.mp3")
            p.touch()
            ts = t.timestamp()
            os.utime(p, (ts, ts))
            n += 1
    date_directories(root, start.timestamp())
    return n


async def bench(root: Path, rounds: int) -> None:
    async with TestClient(TestServer(create_app(root), host="127.0.0.1")) as c:

        async def timed(url: str) -> tuple[float, dict[str, object]]:
            t = time.perf_counter()
            r = await c.get(url)
            data = await r.json()
            return time.perf_counter() - t, data

        cold, data = await timed("/api/files?limit=100")
        print(f"cold /api/files?limit=100: {cold * 1000:.0f} ms (total {data['total']})")
        warm = [(await timed("/api/files?limit=100"))[0] for _ in range(rounds)]
        print(
            f"warm /api/files?limit=100: median {statistics.median(warm) * 1000:.1f} ms, "
            f"max {max(warm) * 1000:.1f} ms over {rounds}"
        )
        deep = [(await timed("/api/files?limit=100&offset=80000"))[0] for _ in range(rounds)]
        print(f"warm offset=80000:        median {statistics.median(deep) * 1000:.1f} ms")
        q1, data = await timed("/api/files?limit=100&q=src3/2025/06")
        q2 = [(await timed("/api/files?limit=100&q=src3/2025/06"))[0] for _ in range(rounds)]
        print(
            f"q=src3/2025/06 (total {data['total']}): first {q1 * 1000:.0f} ms, "
            f"then median {statistics.median(q2) * 1000:.1f} ms"
        )
        t = time.perf_counter()
        r = await c.get("/")
        await r.read()
        print(f"GET / (page 1, rendered): {(time.perf_counter() - t) * 1000:.1f} ms")
        new = root / "src0" / "2025" / "12" / "31" / "20251231_235959_1.mp3"
        new.touch()
        after, data = await timed("/api/files?limit=100")
        print(f"after one new file:        {after * 1000:.1f} ms (total {data['total']})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=10)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="isr-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        n = populate(root, args.sources, args.days)
        print(f"created {n} files in {time.perf_counter() - t:.1f} s")
        asyncio.run(bench(root, args.rounds))


if __name__ == "__main__":
    main()
