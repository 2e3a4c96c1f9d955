"""The web UI over the store (``isr web --archive``) on a year of hourly files:
listing and playing from 87,600 recordings, side by side with rclone.

One S3 server (moto's standalone server on 127.0.0.1: MinIO is not packaged here)
holds what one recorder uploads in a year for ``--sources`` sources (default 10):
8,760 hourly MP3 files each, every one with its sidecar (175,200 objects). The files
are a few MP3 frames each: what is measured costs per object, not per byte. Planting
them (16 threads) is not timed. Then:

- ``rclone lsf -R`` of the prefix: what an archivist would run to see what the
  store holds (one LIST walk, nothing fetched);
- the mirror's first refresh (a LIST walk, every sidecar fetched, a placeholder per
  file), a refresh with nothing new, and one after a new hour (a file a source);
- the web UI over the store, served on 127.0.0.1 once its own first refresh is
  done: the listing's first page (the first request, then the median), a page 500
  deep, a name filter, a day's timeline of one source (the first request, after
  the background build of the index by time, then the median), and playing: the
  time to the first byte of a ranged ``/stream/`` request (passed through to the
  store) against a ranged GET of the same object straight from the store.

    .venv/bin/python bench/store_web.py                 # ~10 minutes
    .venv/bin/python bench/store_web.py --sources 1 --hours 500   # a quick look

Writes bench/results/store_web.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import free_port, install_signal_handlers, stop_all, tool
from archive import BUCKET, KEY, SECRET, Moto

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

PREFIX = "stations"
RECORDER = "rec1"
HOURS = 8760
START = datetime(2025, 12, 1, tzinfo=UTC)


def mp3_body(work: Path) -> bytes:
    """A few frames of a real MP3 stream (no tag, no Xing frame)."""
    out = work / "one.mp3"
    subprocess.run(
        [
            tool("ffmpeg"),
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=1",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "128k",
            "-id3v2_version",
            "0",
            "-write_xing",
            "0",
            str(out),
        ],
        check=True,
    )
    return out.read_bytes()[:2090]  # five frames of 418 bytes


def plant(moto: Moto, sources: int, body: bytes, hours: range) -> int:
    import hashlib

    client = moto.client()
    sha = hashlib.sha256(body).hexdigest()

    def put(job: tuple[int, int]) -> None:
        s, h = job
        start = START + timedelta(hours=h)
        name = f"s{s:02d}/{start:%Y%m%d_%H%M%S}.mp3"
        key = f"{PREFIX}/{RECORDER}/{name}"
        side = {
            "source": f"s{s:02d}",
            "file": name,
            "format": "mp3",
            "start": start.isoformat(timespec="milliseconds"),
            "end": (start + timedelta(hours=1)).isoformat(timespec="milliseconds"),
            "titles": [],
            "gaps": [],
            "sha256": sha,
            "bytes": len(body),
        }
        client.put_object(Bucket=BUCKET, Key=key, Body=body, Metadata={"sha256": sha})
        client.put_object(Bucket=BUCKET, Key=key + ".json", Body=json.dumps(side).encode())

    jobs = [(s, h) for s in range(sources) for h in hours]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, jobs))
    return 2 * len(jobs)


def rclone_list(moto: Moto, work: Path) -> tuple[float, int]:
    env = {
        "PATH": "/usr/bin:/bin",
        "RCLONE_CONFIG": str(work / "rclone.conf"),
        "RCLONE_S3_PROVIDER": "Other",
        "RCLONE_S3_ENDPOINT": moto.url,
        "RCLONE_S3_ACCESS_KEY_ID": KEY,
        "RCLONE_S3_SECRET_ACCESS_KEY": SECRET,
        "RCLONE_S3_REGION": "us-east-1",
    }
    (work / "rclone.conf").write_text("")
    t0 = time.monotonic()
    out = subprocess.run(
        [tool("rclone"), "lsf", "-R", "--files-only", f":s3:{BUCKET}/{PREFIX}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.monotonic() - t0, len(out.stdout.splitlines())


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.monotonic()
    result = fn(*args)
    return time.monotonic() - t0, result


async def web_rounds(mirror: Any, moto: Moto, rounds: int, mid: datetime) -> dict[str, float]:
    import aiohttp
    from aiohttp import web

    from isr.web.app import create_app

    before = mirror.refreshes
    app = create_app(Path("/nonexistent"), mirror=mirror, refresh_seconds=3600)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    out: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as http:
            while mirror.refreshes == before:  # the app's own first refresh (nothing new)
                await asyncio.sleep(0.1)
            await asyncio.sleep(3.5)  # a directory changed in the last 3 s is scanned again

            async def once(path: str, headers: dict[str, str] | None = None) -> float:
                t0 = time.monotonic()
                async with http.get(base + path, headers=headers) as r:
                    assert r.status in (200, 206), (path, r.status, await r.text())
                    await r.content.readany()  # the first byte
                    t = time.monotonic() - t0
                    await r.read()
                return t

            async def median(path: str, headers: dict[str, str] | None = None) -> float:
                return statistics.median([await once(path, headers) for _ in range(rounds)])

            out["list_first_page_first_ms"] = 1000 * await once("/api/files?limit=100")
            out["list_first_page_ms"] = 1000 * await median("/api/files?limit=100")
            out["list_page_500_ms"] = 1000 * await median("/api/files?limit=100&offset=50000")
            out["list_filter_ms"] = 1000 * await median(f"/api/files?limit=100&q={mid:%Y%m%d}")
            day = f"from={mid:%Y-%m-%d}T00:00:00%2B00:00&to={mid:%Y-%m-%d}T23:59:59%2B00:00"
            out["timeline_day_first_ms"] = 1000 * await once(f"/api/timeline?source=s00&{day}")
            out["timeline_day_ms"] = 1000 * await median(f"/api/timeline?source=s00&{day}")
            name = f"{RECORDER}/s00/{mid:%Y%m%d_%H%M%S}.mp3"
            ranged = {"Range": "bytes=418-"}
            out["play_first_byte_ms"] = 1000 * await median(f"/stream/{name}", ranged)
            client = moto.client()

            def direct() -> float:
                t0 = time.monotonic()
                got = client.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{name}", Range="bytes=418-")
                got["Body"].read(1)
                t = time.monotonic() - t0
                got["Body"].close()
                return t

            out["store_get_first_byte_ms"] = 1000 * statistics.median(
                [await asyncio.to_thread(direct) for _ in range(rounds)]
            )
    finally:
        await runner.cleanup()
    return {k: round(v, 1) for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--sources", type=int, default=10)
    ap.add_argument("--hours", type=int, default=HOURS, help="files per source")
    ap.add_argument("--rounds", type=int, default=20, help="requests per median")
    args = ap.parse_args()
    install_signal_handlers()
    from isr.archive.mirror import StoreMirror
    from isr.archive.store import Store
    from isr.config import ArchiveConfig

    work = Path(tempfile.mkdtemp(prefix="isr-bench-store-"))
    result: dict[str, Any] = {"sources": args.sources, "files": args.sources * args.hours}
    try:
        moto = Moto(work)
        body = mp3_body(work)
        t0 = time.monotonic()
        result["objects"] = plant(moto, args.sources, body, range(args.hours))
        print(f"planted {result['objects']} objects in {time.monotonic() - t0:.0f} s", flush=True)
        result["rclone_lsf_s"], listed = rclone_list(moto, work)
        assert listed == result["objects"], listed
        cfg = ArchiveConfig(
            bucket=BUCKET,
            prefix=PREFIX,
            endpoint_url=moto.url,
            region="us-east-1",
            access_key=KEY,
            secret_key=SECRET,
        )
        mirror = StoreMirror(Store(cfg, every_recorder=True), work / "cache")
        seconds, done = timed(mirror.refresh)
        assert done.objects == result["objects"], done
        result["mirror_first_refresh_s"] = seconds
        result["mirror_refresh_unchanged_s"], _ = timed(mirror.refresh)
        plant(moto, args.sources, body, range(args.hours, args.hours + 1))
        seconds, done = timed(mirror.refresh)
        assert done.changed == 2 * args.sources, done
        result["mirror_refresh_new_hour_s"] = seconds
        mid = START + timedelta(hours=args.hours // 2)
        result.update(asyncio.run(web_rounds(mirror, moto, args.rounds, mid)))
        result["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        result["cache_mb_on_disk"] = round(
            sum(p.stat().st_blocks * 512 for p in (work / "cache").rglob("*") if p.is_file()) / 1e6,
            1,
        )
        mirror.close()
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    result = {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}
    out = ROOT / "bench" / "results" / "store_web.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
