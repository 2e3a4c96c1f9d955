"""Peak memory and time of analysing a one-hour stereo recording.

Generates one hour of 44.1 kHz stereo (a tone switching on and off every minute) with
ffmpeg in each format asked for, then analyses each in a fresh process and prints its
peak RSS (ru_maxrss) before and after the analysis.

    .venv/bin/python bench/analysis_memory.py [--seconds 3600] [--formats mp3,flac,wav]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENCODE = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
    "aac": ["-c:a", "aac", "-b:a", "128k", "-f", "adts"],
    "ogg": ["-c:a", "libvorbis", "-b:a", "128k"],
    "opus": ["-c:a", "libopus", "-b:a", "128k", "-ar", "48000"],
    "flac": ["-c:a", "flac"],
    "wav": ["-c:a", "pcm_s16le"],
}

PROBE = """
import json, resource, sys, time
import av, numpy
from isr.web.analyse import analyse_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
a = analyse_file(sys.argv[1])
out = a.to_json(0.05)
print(json.dumps({"before_mb": before / 1024,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "seconds": time.perf_counter() - t, "duration": a.duration_s,
                  "windows": len(a.rms), "loud": len(out["loud"])}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=3600)
    ap.add_argument("--formats", default="mp3,flac,wav")
    args = ap.parse_args()
    expr = "0.5*sin(2*PI*440*t)*lt(mod(t,120),60)"
    with tempfile.TemporaryDirectory(prefix="isr-bench-") as tmp:
        for fmt in args.formats.split(","):
            path = Path(tmp) / f"hour.{fmt}"
            t = time.perf_counter()
            subprocess.run(
                [
                    "ffmpeg",
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    f"aevalsrc='{expr}|{expr}':s=44100:d={args.seconds}",
                    *ENCODE[fmt],
                    str(path),
                ],
                check=True,
            )
            made = time.perf_counter() - t
            out = subprocess.run(
                [sys.executable, "-c", PROBE, str(path)],
                check=True,
                capture_output=True,
                text=True,
            )
            m = json.loads(out.stdout)
            print(
                f"{fmt:5} {path.stat().st_size / 1e6:7.1f} MB file (made in {made:.0f} s): "
                f"analysed {m['duration']:.0f} s of audio in {m['seconds']:.1f} s, "
                f"peak RSS {m['peak_mb']:.0f} MB (after imports {m['before_mb']:.0f} MB), "
                f"{m['windows']} windows, {m['loud']} loud sections"
            )


if __name__ == "__main__":
    main()
