"""ISR alone on one Icecast load, in variants patched in at start-up: where its CPU goes.

Starts the load of ``bench/streams.py`` once (N mounts, or 20 fanned out above
N = 100), then runs ``isr record`` on it once per variant, one after another, and
prints each run's user and system CPU seconds per stream-hour over a window after
a warm-up. A variant is a ``+``-joined list of patches applied in the child before
ISR starts (nothing in ``src/`` changes):

- ``base``: ISR as it is;
- ``linger=S``: read paced streams every S seconds instead of ``LINGER_SECONDS``;
- ``noop``: throw every read away (what the loop and the network cost alone);
- ``trust-granules``: Ogg pages take their sample count from the granule positions,
  no packet is counted (the variant measured and not adopted);
- ``nohash``: no SHA-256 in the write path (``WriteHash.update`` and ``patch`` do
  nothing): with ``nocheck``, against ``nocheck`` alone, what hashing costs;
- ``nocheck``: no check of closed files (the bench splits every minute, so checks
  would run 60 times as often as with hourly files: ``bench/checks.py`` measures them);
- ``src=PATH``: ISR from another checkout (``PATH/src``), first in the list;
- ``archive``: not a patch but an ``[archive]`` section in the variant's config: its
  closed files go up to an S3 server the bench starts (moto's, on 127.0.0.1), so that
  ``base archive`` with ``--together`` says what uploads cost recording.

    .venv/bin/python bench/isr_variants.py --format ogg -n 100 --duration 40 \\
        base noop linger=2+noop trust-granules

This is how the Ogg figures of docs/benchmarks.md ("Ogg Vorbis: profile and what
was fixed") were taken. With ``--together`` the variants record side by side on the
same load and are measured over the same window, so what else the machine does falls
on all of them alike (on a shared machine, runs one after another differ by more
than a change does); "The Ogg page module" there was measured so:

    .venv/bin/python bench/isr_variants.py --format ogg -n 100 --together \\
        src=/tmp/before nocheck
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Procs, install_signal_handlers, raise_nofile, stop_all
from streams import boundaries_between, isr_config, make_media, start_load, wait_for_second

VARIANTS = (
    "base",
    "linger=S",
    "noop",
    "trust-granules",
    "nohash",
    "nocheck",
    "src=PATH",
    "archive",
)


def apply(variant: str) -> None:
    """Patch the ISR modules of this (child) process for ``variant``."""
    for part in variant.split("+"):
        if part in ("base", "archive"):
            continue
        if part.startswith("src="):
            if any(m == "isr" or m.startswith("isr.") for m in sys.modules):
                raise SystemExit("src=PATH must come first in a variant")
            sys.path.insert(0, str(Path(part.split("=", 1)[1]) / "src"))
        elif part.startswith("linger="):
            from isr.sources import http

            period = float(part.split("=", 1)[1])
            start = http.StreamResponse._start

            def _start(self: Any, start: Any = start, period: float = period) -> None:
                self.linger = period
                start(self)

            http.StreamResponse._start = _start  # type: ignore[method-assign]
        elif part == "noop":
            from isr.sources import stream

            def on_audio(self: Any, audio: bytes, now: float, final: bool = False) -> None:
                return None

            stream._Connection.on_audio = on_audio  # type: ignore[method-assign]
        elif part == "trust-granules":
            from isr.framing import ogg

            def _audio_page(
                self: Any, link: Any, page: bytes, flags: int, granule: int, out: list[Any]
            ) -> None:
                prev = self._prev_granule
                n = granule - prev if prev is not None and granule != -1 else 0
                if granule != -1:
                    self._prev_granule = granule
                cut = not flags & ogg.CONTINUED and not self._no_cut
                out.append(
                    ogg.OggFrame(
                        page,
                        n,
                        link.codec.sample_rate,
                        cut=cut,
                        link=link,
                        flags=flags,
                        granule=granule,
                        counted=(n, n),
                    )
                )
                self._no_cut = False

            ogg.OggFramer._audio_page = _audio_page  # type: ignore[method-assign]
        elif part == "nohash":
            from isr.evidence import digest

            def nothing(self: Any, *args: Any) -> None:
                return None

            digest.WriteHash.update = nothing  # type: ignore[method-assign,assignment]
            digest.WriteHash.patch = nothing  # type: ignore[method-assign,assignment]
        elif part == "nocheck":
            from isr.evidence import service

            def no_checker(self: Any) -> None:
                return None

            service.Evidence.start_checker = no_checker  # type: ignore[method-assign]
        else:
            raise SystemExit(f"unknown variant part {part!r}; known: {', '.join(VARIANTS)}")


def user_sys(pid: int) -> tuple[float, float]:
    """utime and stime of ``pid`` (one busy process: the clock ticks sample it fairly)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        apply(sys.argv[2])
        from isr.cli import main as isr_main

        return isr_main(sys.argv[3:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--format", choices=("mp3", "ogg"), default="ogg")
    ap.add_argument("-n", "--streams", type=int, default=100)
    ap.add_argument("--duration", type=float, default=40.0, help="seconds measured per variant")
    ap.add_argument("--warmup", type=float, default=12.0)
    ap.add_argument(
        "--together", action="store_true", help="all variants at once, in the same window"
    )
    ap.add_argument(
        "--launch-second",
        type=float,
        default=None,
        help="start ISR this many seconds into a minute (it splits every minute): e.g. 5 "
        "keeps the roll out of a 20 s window after a 10 s warm-up",
    )
    ap.add_argument("variants", nargs="+", help=f"e.g. {' '.join(VARIANTS)}")
    args = ap.parse_args()
    install_signal_handlers()
    raise_nofile()
    n = args.streams
    work = Path(tempfile.mkdtemp(prefix="isr-bench-variants-"))
    runs = 1 if args.together else len(args.variants)
    media, _ = make_media(args.format, 120 + (args.duration + 20) * runs, work)
    mounts = n if n <= 100 else 20
    load = start_load(args.format, media, mounts, n * (len(args.variants) - runs + 1), 65535)
    try:
        urls = [load.icecast.url(load.mounts[i % mounts]) for i in range(n)]
        store = None
        if any("archive" in v.split("+") for v in args.variants):
            from archive import BUCKET, KEY, SECRET, Moto

            store = Moto(work)
        groups = [args.variants] if args.together else [[v] for v in args.variants]
        for group in groups:
            procs = Procs("isr")
            pids = []
            if args.launch_second is not None:
                wait_for_second(args.launch_second)
            for v in group:
                out = Path(tempfile.mkdtemp(prefix="out-", dir=work))
                cfg = isr_config(Path(tempfile.mkdtemp(prefix="cfg-", dir=work)), out, urls)
                if store is not None and "archive" in v.split("+"):
                    with cfg.open("a") as fh:
                        fh.write(
                            f"\n[archive]\nurl = s3://{BUCKET}/{out.name}\n"
                            f"endpoint_url = {store.url}\nregion = us-east-1\n"
                            f"access_key = {KEY}\nsecret_key = {SECRET}\n"
                        )
                me = [sys.executable, str(Path(__file__).resolve()), "--child", v]
                pids.append(procs.start([*me, "record", "-c", str(cfg)], log=work / "isr.out").pid)
            time.sleep(args.warmup)
            before, t0, w0 = [user_sys(pid) for pid in pids], time.monotonic(), time.time()
            time.sleep(args.duration)
            after, t1, w1 = [user_sys(pid) for pid in pids], time.monotonic(), time.time()
            procs.stop()
            k = 3600 / (n * (t1 - t0))
            print(
                f"window {time.strftime('%H:%M:%S', time.localtime(w0))}-"
                f"{time.strftime('%H:%M:%S', time.localtime(w1))}, "
                f"{boundaries_between(w0, w1)} minute boundaries in it",
                flush=True,
            )
            for v, (u0, s0), (u1, s1) in zip(group, before, after, strict=True):
                print(
                    f"{v:24s} user {(u1 - u0) * k:5.2f}  sys {(s1 - s0) * k:5.2f}  "
                    f"total {(u1 - u0 + s1 - s0) * k:5.2f} CPU-s per stream-hour",
                    flush=True,
                )
    finally:
        load.feeders.stop()
        load.icecast.close()
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
