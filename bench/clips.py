"""A one-hour MP3 clip across two files against ``/download`` of a file of that size.

Writes two one-hour MP3 recordings of one source (13:00 and 14:00, 128 kbit/s, as the
recorder's own segmenter writes them: ffmpeg encodes a minute, its frames are aired
again and again), runs the real ``isr web`` on 127.0.0.1 and fetches with curl:

- ``/api/clip?source=radio&from=13:30&to=14:30``: the second half of one file and the
  first half of the next, ~57.6 MB;
- ``/download/radio/20261124_140000.mp3``: a whole file, ~57.6 MB, by aiohttp's
  FileResponse (sendfile);

and reports each one's first-byte latency (curl's ``time_starttransfer``) and
throughput: the clip cold (no unit table: both files walked first), warm from
``.isr/units.sqlite`` (a new ``isr web``), and warm in memory (the same one again).
The files are in the page cache throughout (they were just written).

    .venv/bin/python bench/clips.py [--rounds 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from _common import Procs, free_port, install_signal_handlers, machine, stop_all, tool

from isr.framing.mp3 import Mp3Framer
from isr.segment import Segmenter
from isr.sidecar import Ledger
from isr.sinks.base import Sink

TZ = "Europe/Berlin"
RESULTS = Path(__file__).parent / "results" / "clips.json"


def _release(sink: Sink, ledger: Ledger, ok: bool) -> None:
    if sink.sync_fd is not None:
        os.close(sink.sync_fd)
        sink.sync_fd = None


def write_archive(root: Path) -> list[Path]:
    """Two hours of MP3 from 13:00 local, split at the hour: two files."""
    tz = ZoneInfo(TZ)
    minute = root.parent / "minute.mp3"
    subprocess.run(
        [
            tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-f", "lavfi",
            "-i", "sine=frequency=440:sample_rate=44100:duration=60",
            "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k", str(minute),
        ],
        check=True,
    )  # fmt: skip
    framer = Mp3Framer()
    frames = framer.feed(minute.read_bytes()) + framer.flush()
    seg = Segmenter(
        source="radio",
        directory=root,
        base_dir=root,
        pattern="{source}/%Y%m%d_%H%M%S",
        split_seconds=3600,
        tz=tz,
        log=logging.getLogger("bench"),
        on_close=_release,
    )
    t = datetime(2026, 11, 24, 13, 0, tzinfo=tz).timestamp()
    end = t + 7200
    step = frames[0].samples / frames[0].sample_rate
    while t < end - step:
        for i in range(0, len(frames), 100):
            batch = frames[i : i + min(100, int((end - t) / step))]
            if not batch:
                break
            seg.write_frames(batch, t, _sink, "mp3", framer.file_writer)
            t += len(batch) * step
    seg.close()
    return sorted((root / "radio").glob("*.mp3"))


def _sink(directory: Path, stem: str, ext: str | None) -> Sink:
    return Sink(directory, stem, ext or ".mp3")


def curl(url: str) -> dict[str, float]:
    fmt = "%{http_code} %{size_download} %{time_starttransfer} %{time_total}"
    out = subprocess.run(
        [tool("curl"), "-s", "-o", "/dev/null", "-w", fmt, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    code, size, first, total = int(out[0]), int(out[1]), float(out[2]), float(out[3])
    if code != 200:
        raise SystemExit(f"{url}: HTTP {code}")
    return {"bytes": size, "first_byte_ms": first * 1000, "seconds": total}


class Web:
    """``isr web`` on a free port of 127.0.0.1, in its own process."""

    def __init__(self, root: Path, log: Path) -> None:
        self.port = free_port()
        self.procs = Procs("isr web")
        env = {**os.environ, "TZ": TZ}
        env.pop("ISR_CONFIG", None)
        args = [sys.executable, "-m", "isr", "web", "--dir", str(root)]
        self.procs.start([*args, "--port", str(self.port)], log=log, env=env, cwd=root.parent)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.base + "/api/sources", timeout=30) as r:
                    r.read()  # the timeline index is built: only the clip is measured
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"isr web did not start; see {log}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.procs.stop()


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "bytes": runs[0]["bytes"],
        "first_byte_ms_median": round(statistics.median(r["first_byte_ms"] for r in runs), 2),
        "first_byte_ms_max": round(max(r["first_byte_ms"] for r in runs), 2),
        "mb_per_s_median": round(
            statistics.median(r["bytes"] / r["seconds"] / 1e6 for r in runs), 1
        ),
        "runs": len(runs),
    }


def plan_times(root: Path) -> dict[str, float]:
    """Milliseconds to plan the clip in this process (index answer excluded): with no
    unit table, with the tables in SQLite only, with them in memory."""
    from isr.clips.clip import Clipper
    from isr.clips.tables import UnitTables
    from isr.timeline.index import TimelineIndex
    from isr.timeline.times import parse_time

    tz = ZoneInfo(TZ)
    for leftover in (root / ".isr").glob("units.sqlite*"):
        leftover.unlink()
    index = TimelineIndex(root, tz)
    timeline = index.timeline(
        "radio", parse_time("2026-11-24T13:30", tz), parse_time("2026-11-24T14:30", tz)
    )
    out = {}
    clipper = Clipper(root, tz, index, UnitTables(root))
    for name in ("cold", "sqlite", "memory"):
        if name == "sqlite":  # a new process would start so: tables on disk only
            clipper.close()
            clipper = Clipper(root, tz, index, UnitTables(root))
        t = time.perf_counter()
        clipper.cut(timeline)
        out[name] = round((time.perf_counter() - t) * 1000, 2)
    clipper.close()
    index.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--keep", type=Path, default=None, help="write the archive here, keep it")
    args = ap.parse_args()
    install_signal_handlers()
    with tempfile.TemporaryDirectory(prefix="isr-bench-clips-") as tmp:
        base = args.keep or Path(tmp)
        root = base / "recordings"
        root.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        files = write_archive(root)
        print(f"wrote {[f.name for f in files]} in {time.perf_counter() - t:.1f} s")
        clip = "/api/clip?source=radio&from=2026-11-24T13:30&to=2026-11-24T14:30"
        download = "/download/radio/20261124_140000.mp3"
        log = base / "web.log"
        results: dict[str, Any] = {"machine": machine()}
        results["plan_ms"] = plan_times(root)
        print(f"planning in-process (ms): {results['plan_ms']}")
        try:
            cold = []
            for _ in range(3):  # a new process and no .isr/units.sqlite: both files walked
                for leftover in (root / ".isr").glob("units.sqlite*"):
                    leftover.unlink()
                web = Web(root, log)
                cold.append(curl(web.base + clip))
                web.stop()
            results["clip_cold"] = summary(cold)
            web = Web(root, log)
            curl(web.base + clip)
            results["clip_warm_memory"] = summary(
                [curl(web.base + clip) for _ in range(args.rounds)]
            )
            results["download"] = summary([curl(web.base + download) for _ in range(args.rounds)])
            web.stop()
            cold_disk = []
            for _ in range(3):  # a new process each time: the tables come from SQLite
                web = Web(root, log)
                cold_disk.append(curl(web.base + clip))
                web.stop()
            results["clip_warm_sqlite"] = summary(cold_disk)
        finally:
            stop_all()
        ratio = (
            results["download"]["mb_per_s_median"] / results["clip_warm_memory"]["mb_per_s_median"]
        )
        results["download_over_clip_throughput"] = round(ratio, 2)
        for name in ("clip_cold", "clip_warm_sqlite", "clip_warm_memory", "download"):
            r = results[name]
            first, worst = r["first_byte_ms_median"], r["first_byte_ms_max"]
            print(
                f"{name:18} {r['bytes'] / 1e6:6.1f} MB  first byte {first:7.1f} ms"
                f" (max {worst:.1f})  {r['mb_per_s_median']:7.1f} MB/s  x{r['runs']}"
            )
        print(f"/download is {ratio:.2f}x the clip's throughput")
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
