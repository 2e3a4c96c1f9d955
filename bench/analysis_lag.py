"""How long analyses hold the web server's event loop (the loop `isr run` shares with the
recorder), and how late `/healthz` answers meanwhile.

Serves a directory with ISR's own server (``start_web``) on one asyncio loop, and on
that loop a ticker sleeps 5 ms again and again: how late it wakes is the loop's lag,
the longest anything held it. Client threads (off the loop) meanwhile make four
parallel ``/api/analyse`` requests, once on fresh files and once answered from the
cache, while another thread asks ``/healthz`` every 100 ms. Scenarios:

* ``pathological``: four 3 MB WAVs whose header says 1 Hz (3 million windows each
  before the fix; refused as not audio after it);
* ``mp3``: four one-hour 128 kbps stereo MP3s (one minute encoded, its frames
  repeated; hard links, so four files, four jobs).

``--src DIR`` measures another checkout's ``src`` (e.g. a ``git worktree`` of the commit
before the fix) with the same files and code here. Prints a table and writes
``bench/results/analysis_lag.json``.

    .venv/bin/python bench/analysis_lag.py [--scenarios pathological,mp3]
        [--dir /tmp/isr-bench-lag] [--src DIR] [--out bench/results/analysis_lag.json]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine as common_machine  # noqa: E402


def wav_1hz(path: Path, size: int) -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 1, 1, 8)
    head = (
        b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", size)
    )  # fmt: skip
    path.write_bytes(head + os.urandom(size))


def mp3_hour(path: Path, scratch: Path) -> None:
    minute = scratch / "minute.mp3"
    if not minute.exists():
        subprocess.run(
            [
                "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                "sine=frequency=440:duration=60:sample_rate=44100", "-ac", "2",
                "-c:a", "libmp3lame", "-b:a", "128k", "-write_xing", "0",
                "-id3v2_version", "0", "-f", "mp3", str(minute),
            ],
            check=True,
        )  # fmt: skip
    data = minute.read_bytes()
    with open(path, "wb") as fh:
        for _ in range(60):
            fh.write(data)


def make_files(scenario: str, base: Path) -> list[str]:
    d = base / scenario
    d.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(4):
        if scenario == "pathological":
            name = f"one_hz_{i}.wav"
            if not (d / name).exists():
                wav_1hz(d / name, 3_000_000 + i)
        else:
            name = f"hour_{i}.mp3"
            if not (d / name).exists():
                if i == 0:
                    mp3_hour(d / name, base)
                else:
                    os.link(d / "hour_0.mp3", d / name)
        names.append(name)
    return names


def get(url: str) -> tuple[int, int, float]:
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=600) as r:
            body = r.read()
            return r.status, len(body), time.monotonic() - t0
    except urllib.error.HTTPError as exc:
        return exc.code, len(exc.read()), time.monotonic() - t0


async def measure(directory: Path, names: list[str], rounds: list[str]) -> list[dict[str, Any]]:
    from isr.web.app import start_web

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    runner = await start_web(directory, host="127.0.0.1", port=port)
    loop = asyncio.get_running_loop()
    out = []
    try:
        for label in rounds:
            lags: list[float] = []
            health: list[float] = []
            stop = threading.Event()

            async def tick(lags: list[float] = lags) -> None:
                while True:
                    t = loop.time()
                    await asyncio.sleep(0.005)
                    lags.append(loop.time() - t - 0.005)

            def probe(health: list[float] = health, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    health.append(get(base + "/healthz")[2])
                    stop.wait(0.1)

            ticker = asyncio.ensure_future(tick())
            prober = threading.Thread(target=probe)
            prober.start()
            t0 = time.monotonic()
            answers = await asyncio.gather(
                *(asyncio.to_thread(get, f"{base}/api/analyse/{n}") for n in names)
            )
            wall = time.monotonic() - t0
            stop.set()
            await asyncio.to_thread(prober.join)
            ticker.cancel()
            lags.sort()
            out.append(
                {
                    "round": label,
                    "wall_s": round(wall, 2),
                    "statuses": [a[0] for a in answers],
                    "body_bytes": [a[1] for a in answers],
                    "max_lag_ms": round(1000 * lags[-1], 1),
                    "p99_lag_ms": round(1000 * lags[int(0.99 * (len(lags) - 1))], 1),
                    "ticks": len(lags),
                    "healthz_max_ms": round(1000 * max(health), 1),
                }
            )
    finally:
        await runner.cleanup()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="pathological,mp3")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/isr-bench-lag"))
    ap.add_argument("--src", type=Path, default=None, help="another checkout's src/")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/analysis_lag.json")
    args = ap.parse_args()
    src = (args.src or ROOT / "src").resolve()
    sys.path.insert(0, str(src))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(src), os.environ.get("PYTHONPATH")) if p
    )
    import isr

    print(f"measuring {Path(isr.__file__).parent}")
    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "src": str(src),
        "machine": common_machine(),
        "scenarios": {},
    }
    for scenario in args.scenarios.split(","):
        names = make_files(scenario, args.dir)
        # each round clears the cache first so "fresh" means decoded now
        cache = args.dir / scenario / ".isr"
        subprocess.run(["rm", "-rf", str(cache)], check=True)
        rows = asyncio.run(measure(args.dir / scenario, names, ["fresh", "cached"]))
        results["scenarios"][scenario] = rows
        for r in rows:
            print(
                f"{scenario:13} {r['round']:6} wall {r['wall_s']:6.2f} s  statuses "
                f"{r['statuses']}  max lag {r['max_lag_ms']:7.1f} ms  p99 "
                f"{r['p99_lag_ms']:6.1f} ms  /healthz max {r['healthz_max_ms']:7.1f} ms"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
