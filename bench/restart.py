"""How long a restart after a crash keeps the recorder from recording, over an archive.

Creates a year of hourly WAV files with sidecars from ten sources (87,600 of each,
``src{N}/YYYY/MM/DD/YYYYmmdd_HHMMSS.wav`` with ``--layout dated``, directories
dated as an archive has them; ``src{N}/YYYYmmdd_HHMMSS.wav`` with ``--layout flat``,
the default ``filename_pattern``), plus, per source, one file that a crashed run
(started ten minutes ago) left with stale WAV sizes and an unfinished sidecar.
Then times, warm and (when ``/proc/sys/vm/drop_caches`` is writable, i.e. as
root) cold:

- ``recover()``: what runs before recording starts (the directories changed since
  the crashed run started, and the files in them);
- ``sweep()``: every unfinished sidecar and every WAV header of the archive
  checked, about what each start did before recovery looked only where the crash
  could have written, and what now runs in the background when there is no
  readable status file.

    .venv/bin/python bench/restart.py [--sources 10] [--days 365] [--layout dated|flat]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import date_directories

from isr.recovery import recover, sweep
from isr.sinks.wav import wav_header

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
FRAMES = 8  # a few frames each: the scan's cost is per file, not per byte


def populate(root: Path, sources: int, days: int, layout: str) -> int:
    now = time.time()
    start = datetime.fromtimestamp(now, UTC) - timedelta(days=days)
    start = start.replace(minute=0, second=0, microsecond=0)
    body = wav_header(8000, 2, FRAMES * 4) + bytes(FRAMES * 4)
    n = 0
    made: set[Path] = set()
    for s in range(sources):
        for h in range(days * 24):
            t = start + timedelta(hours=h)
            d = root / f"src{s}" / (t.strftime("%Y/%m/%d") if layout == "dated" else "")
            if d not in made:
                d.mkdir(parents=True, exist_ok=True)
                made.add(d)
            p = d / t.strftime("%Y%m%d_%H%M%S.wav")
            p.write_bytes(body)
            side = p.with_name(p.name + ".json")
            end = (t + timedelta(hours=1)).isoformat()
            side.write_text(json.dumps({"source": f"src{s}", "start": t.isoformat(), "end": end}))
            ts = t.timestamp() + 3600
            os.utime(p, (ts, ts))
            os.utime(side, (ts, ts))
            n += 1
    date_directories(root, start.timestamp())
    # The crashed run: started ten minutes ago, each source's last file left open.
    crashed_at = datetime.fromtimestamp(now - 600, UTC)
    for s in range(sources):
        d = root / f"src{s}" / (crashed_at.strftime("%Y/%m/%d") if layout == "dated" else "")
        d.mkdir(parents=True, exist_ok=True)
        p = d / crashed_at.strftime("%Y%m%d_%H%M%S_crash.wav")
        p.write_bytes(wav_header(8000, 2, 0) + bytes(4000 * 4))
        side = p.with_name(p.name + ".json")
        start_iso = crashed_at.isoformat()
        side.write_text(json.dumps({"source": f"src{s}", "start": start_iso, "end": None}))
        n += 1
    (root / ".isr").mkdir()
    status = {"started": crashed_at.isoformat(), "sources": {}}
    (root / ".isr" / "status.json").write_text(json.dumps(status))
    return n


def stale(root: Path) -> int:
    """The crashed files still to repair (their data size field is 0)."""
    out = 0
    for p in root.rglob("*_crash.wav"):
        with open(p, "rb") as fh:
            head = fh.read(80)
        out += struct.unpack_from("<I", head, 76)[0] == 0
    return out


def reset(root: Path) -> None:
    """Put the crashed files back as the crash left them."""
    for p in root.rglob("*_crash.wav"):
        with open(p, "r+b") as fh:
            fh.write(wav_header(8000, 2, 0))
        side = p.with_name(p.name + ".json")
        data = json.loads(side.read_text())
        data["end"] = None
        data.pop("recovered", None)
        side.write_text(json.dumps(data))


def timed(label: str, fn: Callable[[], object], cold: bool) -> float:
    if cold:
        os.sync()
        DROP_CACHES.write_text("3\n")
    t = time.perf_counter()
    fn()
    took = time.perf_counter() - t
    print(f"{label:<46} {'cold' if cold else 'warm'}: {took * 1000:9.1f} ms")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=10)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--layout", choices=("dated", "flat"), default="dated")
    args = ap.parse_args()
    logging.getLogger("isr").setLevel(logging.ERROR)  # one line per repair otherwise
    can_drop = os.access(DROP_CACHES, os.W_OK)
    with tempfile.TemporaryDirectory(prefix="isr-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        n = populate(root, args.sources, args.days, args.layout)
        took = time.perf_counter() - t
        print(f"created {n} WAV files and their sidecars ({args.layout}) in {took:.1f} s")
        for cold in (False, True) if can_drop else (False,):
            reset(root)
            assert stale(root) == args.sources
            timed("recover() before recording starts", lambda: recover(root, []), cold)
            assert stale(root) == 0, "recover() left a crashed file unrepaired"
            reset(root)
            halt = threading.Event()
            whole = functools.partial(sweep, root, [root], time.time(), halt)
            timed("sweep(): the whole archive checked", whole, cold)
            assert stale(root) == 0
        if not can_drop:
            print("(cold figures need root: /proc/sys/vm/drop_caches is not writable)")


if __name__ == "__main__":
    main()
