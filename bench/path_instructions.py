"""Instructions per unit on the per-read paths, counted by valgrind (callgrind).

Timings on these shared machines swing by tens of per cent from run to run;
instruction counts repeat to a fraction of a per cent whatever else runs, so a
change to the hot path is judged by them. For each source tree given (default:
this one), and each path:

- ``mp3``/``aac``: the framer alone, 120 s of 128 kbps audio three times over in
  16 KiB reads (what a paced stream reads per tick): instructions per frame;
- ``stream``: ``bench/stream_path.py``'s whole per-read path (ICY, framer, media
  sums, segmenter with real files, repeat keys), 120 s of MP3 in 16 KiB reads:
  instructions per stream-second;
- ``ogg``: ``bench/ogg_path.py``'s Ogg path, 300 s of Vorbis in 8 KiB reads (its
  sine, or ``--ogg-media FILE``): instructions per stream-second.

Each figure is a run minus the same run doing nothing (start-up and imports).

    .venv/bin/python bench/path_instructions.py                  # this tree
    .venv/bin/python bench/path_instructions.py --src /tmp/old   # another checkout
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FRAMER = """
import sys
from pathlib import Path
kind, path, run = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
from isr.framing.mp3 import Mp3Framer
from isr.framing.adts import AdtsFramer
data = Path(path).read_bytes()
framer = Mp3Framer() if kind == "mp3" else AdtsFramer()
n = 0
for _ in range(3 if run else 0):
    for pos in range(0, len(data), 16384):
        n += len(framer.feed(data[pos:pos + 16384]))
    n += len(framer.flush())
print("frames", n)
"""

OGG = """
import sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1] + "/bench")
import ogg_path
data = Path(sys.argv[3]).read_bytes() if len(sys.argv) > 3 else ogg_path.media()
if sys.argv[2] == "1":
    with tempfile.TemporaryDirectory() as d:
        ogg_path.run(data, Path(d))
"""


def instructions(cmd: list[str], src: Path, cwd: Path) -> tuple[int, str]:
    with tempfile.NamedTemporaryFile(suffix=".cg") as out:
        env = {**os.environ, "PYTHONPATH": str(src / "src")}
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", *cmd],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    m = re.search(r"Collected : (\d+)", run.stderr)
    assert m, run.stderr[-2000:]
    return int(m.group(1)), run.stdout


def media(kind: str, where: Path) -> Path:
    path = where / f"path-instructions.{kind}"
    if not path.exists():
        codec = ["-c:a", "libmp3lame"] if kind == "mp3" else ["-c:a", "aac", "-f", "adts"]
        sine = "sine=frequency=440:duration=120"
        cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", sine, "-ac", "2"]
        subprocess.run([*cmd, *codec, "-b:a", "128k", str(path)], check=True)
    return path


def measure(src: Path, where: Path, ogg_media: Path | None = None) -> dict[str, float]:
    py = sys.executable
    out: dict[str, float] = {}
    for kind in ("mp3", "aac"):
        path = str(media(kind, where))
        base, _ = instructions([py, "-c", FRAMER, kind, path, "0"], src, where)
        full, text = instructions([py, "-c", FRAMER, kind, path, "1"], src, where)
        out[kind] = (full - base) / int(text.split()[-1])
    bench = ["bench/stream_path.py", "--repeat", "1", "--chunk", "16384", "--seconds"]
    base, _ = instructions([py, *bench, "2"], src, src)
    full, _ = instructions([py, *bench, "120"], src, src)
    out["stream"] = (full - base) / 118
    extra = [str(ogg_media.resolve())] if ogg_media else []
    base, _ = instructions([py, "-c", OGG, str(src), "0", *extra], src, where)
    full, _ = instructions([py, "-c", OGG, str(src), "1", *extra], src, where)
    out["ogg"] = (full - base) / 300
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--src", type=Path, action="append", help="a checkout (repeatable)")
    ap.add_argument("--ogg-media", type=Path, help="an Ogg file of 300 s for the Ogg path")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for src in args.src or [ROOT]:
            got = measure(src.resolve(), Path(tmp), args.ogg_media)
            print(
                f"{src}: MP3 framer {got['mp3']:,.0f} instr/frame, ADTS framer "
                f"{got['aac']:,.0f} instr/frame, stream path {got['stream']:,.0f} "
                f"instr/stream-s, Ogg path {got['ogg']:,.0f} instr/stream-s"
            )


if __name__ == "__main__":
    main()
