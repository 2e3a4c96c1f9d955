"""The synchronous Ogg path without the network: framer, segmenter with the Ogg
writer, and the repeat keys, on 300 s of Vorbis in 8 KiB reads. Prints its CPU per
stream-hour and a profile, to tell the framing cost from the loop's and network's.

    .venv/bin/python bench/ogg_path.py
    .venv/bin/python bench/ogg_path.py --media FILE   # 300 s of another Ogg file

The default is a 440 Hz sine (ffmpeg's pages of 1 s, ~2.7 KB); what
``bench/streams.py`` records from Icecast is 128 kbps in pages of ~4.4 KB, three a
second (see docs/benchmarks.md, "The Ogg page module", for a file like it).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import subprocess
import tempfile
import time
from datetime import UTC
from pathlib import Path

from isr.framing.ogg import OggFramer
from isr.overlap import RecentFrames
from isr.segment import Segmenter
from isr.sinks.base import Sink

SECONDS = 300
READ = 8192


def media() -> bytes:
    path = Path(tempfile.gettempdir()) / "isr-bench-ogg-path.ogg"
    if not path.exists():
        sine = f"sine=frequency=440:duration={SECONDS}"
        args = ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", sine, "-ac", "2"]
        subprocess.run([*args, "-c:a", "libvorbis", "-b:a", "100k", str(path)], check=True)
    return path.read_bytes()


def run(data: bytes, out: Path) -> None:
    framer = OggFramer()
    recent = RecentFrames()
    seg = Segmenter(
        source="s",
        directory=out,
        base_dir=out,
        pattern="%H%M%S_%f",
        split_seconds=60,
        tz=UTC,
        log=logging.getLogger("bench"),
    )

    def make_sink(directory: Path, stem: str, ext: str | None = None) -> Sink:
        return Sink(directory, stem, framer.extension)

    t = 1e9
    for i in range(0, len(data), READ):
        frames = framer.feed(data[i : i + READ])
        if frames:
            seg.write_frames(frames, t, make_sink, "ogg", framer.file_writer)
            recent.add(frames)
            t += sum(f.samples / f.sample_rate for f in frames)
    seg.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--media", type=Path, help="an Ogg file of 300 s (default: a sine)")
    args = ap.parse_args()
    data = args.media.read_bytes() if args.media else media()
    with tempfile.TemporaryDirectory() as out:
        start = time.process_time()
        run(data, Path(out))
        cpu = time.process_time() - start
    print(f"{cpu:.3f} CPU-s for {SECONDS} s = {cpu / SECONDS * 3600:.2f} CPU-s per stream-hour")
    with tempfile.TemporaryDirectory() as out:
        profile = cProfile.Profile()
        profile.runcall(run, data, Path(out))
    pstats.Stats(profile).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
