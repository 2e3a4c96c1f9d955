"""The CPU of a split: what closing one file and opening the next costs a recorder
of Ogg Vorbis, with everything done then (writer close, sidecars, the chain line,
the check of the closed file, the last fsync), without the network.

N streams of the same 300 s of Vorbis go through the framer and the segmenter as a
source feeds them, once split every ``--split`` seconds and once not at all; the
difference in the process's CPU (every thread), over the number of files closed,
is the cost of one split. (No event loop runs here, so each check writes its sidecar
from the checker's thread, as a recorder does for the checks a last run left owed.)

    .venv/bin/python bench/roll.py
    .venv/bin/python bench/roll.py --profile     # cProfile of the splitting run
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import tempfile
import time
from datetime import UTC
from pathlib import Path

from ogg_path import READ, SECONDS, media

from isr.evidence.service import Evidence
from isr.framing.ogg import OggFramer
from isr.recorder import _sync_fds
from isr.segment import Segmenter, SinkFactory
from isr.sidecar import Ledger
from isr.sinks.base import Sink

START = 1_800_000_000.0
"""A whole minute, so every split lands where the run says."""


def sinks_for(framer: OggFramer) -> SinkFactory:
    def make_sink(directory: Path, stem: str, ext: str | None = None) -> Sink:
        return Sink(directory, stem, ext or framer.extension)

    return make_sink


def run(data: bytes, out: Path, streams: int, split: float) -> int:
    """Record ``streams`` copies of ``data``; the number of files closed."""
    evidence = Evidence(out, UTC)
    evidence.start([f"s{i}" for i in range(streams)])
    retired: list[int] = []
    closed = 0

    def on_close(sink: Sink, ledger: Ledger, kept: bool) -> None:
        nonlocal closed
        if kept:
            closed += 1
            evidence.closed(ledger.source, sink.path, ledger, sink.digest.result())
        if sink.sync_fd is not None:
            retired.append(sink.sync_fd)
            sink.sync_fd = None

    for i in range(streams):
        framer = OggFramer()
        seg = Segmenter(
            source=f"s{i}",
            directory=out / f"s{i}",
            base_dir=out,
            pattern="%H%M%S",
            split_seconds=split,
            tz=UTC,
            log=logging.getLogger("bench"),
            on_close=on_close,
        )
        (out / f"s{i}").mkdir()

        make_sink = sinks_for(framer)
        t = START
        for j in range(0, len(data), READ):
            frames = framer.feed(data[j : j + READ])
            if frames:
                seg.write_frames(frames, t, make_sink, "ogg", framer.file_writer)
                t += sum(f.samples / f.sample_rate for f in frames)
        seg.close()
        if seg.sink is None and retired:
            _sync_fds([], retired[:])
            del retired[:]
    if not evidence.drain(300):
        raise SystemExit("the checks did not finish in 300 s")
    evidence.stop([f"s{i}" for i in range(streams)])
    return closed


def measure(data: bytes, streams: int, split: float) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.process_time()
        closed = run(data, Path(tmp), streams, split)
        return time.process_time() - start, closed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("-n", "--streams", type=int, default=20)
    ap.add_argument("--split", type=float, default=10.0, help="seconds per file")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data = media()
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            profile = cProfile.Profile()
            profile.runcall(run, data, Path(tmp), args.streams, args.split)
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        return
    whole, split = [], []
    rolls = 0
    for _ in range(args.repeat):
        whole.append(measure(data, args.streams, 86400.0)[0])
        cpu, closed = measure(data, args.streams, args.split)
        split.append(cpu)
        rolls = closed - args.streams  # one file per stream closes either way
    base, cut = min(whole), min(split)
    per = (cut - base) / rolls
    hours = args.streams * SECONDS / 3600
    print(f"{args.streams} streams x {SECONDS} s of Ogg Vorbis, {os.cpu_count()} CPUs")
    print(f"  no split:        {base:.3f} CPU-s ({base / hours:.3f} per stream-hour)")
    print(f"  split {args.split:g} s: {cut:.3f} CPU-s, {rolls} splits")
    print(f"  one split:       {per * 1000:.2f} ms of CPU")


if __name__ == "__main__":
    main()
