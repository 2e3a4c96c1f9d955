"""What the evidence costs besides the write path: the check of closed files and
``isr verify``.

1. The check (``isr.evidence.check``) of one-hour files as ISR writes them: an hour
   of 128 kbps MP3 (lavfi + libmp3lame, CBR) and of Ogg Vorbis (``-b:a 128k``) is
   encoded once, passed through ISR's framer and segmenter into one file with its
   write-path account, then checked ``--runs`` times (CPU time of this process:
   the check is one thread). Times 1,000 gives the CPU per hour of a recorder with
   1,000 hourly streams, to be set against recording's (``--recording-cpu``, CPU-s
   per stream-hour from docs/benchmarks.md).
2. ``isr verify`` over a year of one source's hourly files: 8,760 files of
   ``--verify-kib`` KiB each (random bytes: the cost per file, and the hashing per
   byte, are what is measured) with their chain, verified once (wall and CPU).

    .venv/bin/python bench/checks.py            # both (~2 minutes, most of it encoding)
    .venv/bin/python bench/checks.py --no-verify

Results go to bench/results/checks.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import segmenting  # noqa: E402

from isr import formats  # noqa: E402
from isr.evidence import chain  # noqa: E402
from isr.evidence.check import check_file  # noqa: E402
from isr.evidence.digest import Written  # noqa: E402
from isr.evidence.verify import verify  # noqa: E402
from isr.sinks.base import Sink  # noqa: E402

ENCODE = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"],
    "ogg": ["-c:a", "libvorbis", "-b:a", "128k", "-f", "ogg"],
}


def encode(kind: str, seconds: int, out: Path) -> Path:
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    expr = "0.3*sin(2*PI*440*t)+0.2*sin(2*PI*(660+200*sin(t/7))*t)+0.02*(random(0)-0.5)"
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"aevalsrc='{expr}|{expr}':s=44100:d={seconds}",
            *ENCODE[kind], str(tmp),
        ],
        check=True,
    )  # fmt: skip
    tmp.rename(out)
    return out


def isr_file(kind: str, media: Path, workdir: Path) -> tuple[Path, Written]:
    """The media as ISR records it: one file, and its write path's account."""
    entry = formats.by_name(kind)
    assert entry is not None
    cls = entry.framer_class()
    assert cls is not None
    framer = cls()
    out = workdir / f"isr-{kind}"
    out.mkdir(exist_ok=True)
    seg = segmenting.make_segmenter(out, split_seconds=86400.0)
    closed: list[tuple[Path, Written]] = []
    seg.on_close = lambda sink, ledger, kept: closed.append((sink.path, sink.digest.result()))

    def make_sink(d: Path, stem: str, ext: str | None) -> Sink:
        return Sink(d, stem, ext or framer.extension)

    t = 1_790_000_000.0
    with media.open("rb") as fh:
        while chunk := fh.read(8192):
            frames = framer.feed(chunk)
            seg.write_frames(frames, t, make_sink, kind, framer.file_writer)
            t += sum(f.samples / f.sample_rate for f in frames)
    seg.write_frames(framer.flush(), t, make_sink, kind, framer.file_writer)
    seg.close()
    assert len(closed) == 1
    return closed[0]


def bench_check(kind: str, workdir: Path, seconds: int, runs: int) -> dict[str, Any]:
    media = encode(kind, seconds, workdir / f"{kind}-{seconds}.{kind}")
    path, written = isr_file(kind, media, workdir)
    cpu = []
    wall = []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        result = check_file(path, written)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        assert result.ok and result.attested, result.problems
    per_hour = statistics.median(cpu) * 3600 / seconds
    return {
        "format": kind,
        "file_bytes": written.size,
        "file_seconds": seconds,
        "reserve": written.reserve,
        "cpu_s_per_file_hour": per_hour,
        "wall_s_per_file_hour": statistics.median(wall) * 3600 / seconds,
        "cpu_runs": cpu,
    }


def bench_verify(workdir: Path, kib: int) -> dict[str, Any]:
    root = workdir / "year"
    rng = os.urandom
    lines = []
    t0 = 1_767_225_600.0  # 2026-01-01 UTC
    for h in range(8760):
        when = time.gmtime(t0 + h * 3600)
        name = time.strftime("radio/%Y%m%d_%H%M%S.mp3", when)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        data = rng(kib * 1024)
        path.write_bytes(data)
        start = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", when)
        lines.append(
            chain.entry(
                "closed",
                at=start,
                file=name,
                sha256=hashlib.sha256(data).hexdigest(),
                bytes=len(data),
                start=start,
            )
        )
    chain.append(chain.chain_path(root, "radio"), lines, source="radio")
    c0, w0 = time.process_time(), time.perf_counter()
    report = verify(root)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    assert report.ok, report.problems[:3]
    return {
        "files": report.files,
        "file_kib": kib,
        "chain_lines": report.lines,
        "cpu_s": cpu,
        "wall_s": wall,
        "ms_per_file": wall / report.files * 1000,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=int, default=3600, help="length of the checked files")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--formats", nargs="*", default=["mp3", "ogg"])
    ap.add_argument("--recording-cpu", type=float, default=0.77, help="CPU-s per stream-hour")
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--verify-kib", type=int, default=64)
    ap.add_argument("--workdir", default=None, help="keep the media here (default: a temp dir)")
    args = ap.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="isr-bench-checks-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "command": " ".join(sys.argv),
        "recording_cpu_s_per_stream_hour": args.recording_cpu,
        "checks": [],
    }
    for kind in args.formats:
        r = bench_check(kind, workdir, args.seconds, args.runs)
        r["n1000_cpu_s_per_hour"] = r["cpu_s_per_file_hour"] * 1000
        r["share_of_recording"] = r["cpu_s_per_file_hour"] / args.recording_cpu
        out["checks"].append(r)
        print(
            f"check {kind}: {r['file_bytes'] / 1e6:.1f} MB per file-hour, "
            f"{r['cpu_s_per_file_hour']:.3f} CPU-s per file-hour (wall "
            f"{r['wall_s_per_file_hour']:.3f} s); N = 1,000 hourly: "
            f"{r['n1000_cpu_s_per_hour']:.0f} CPU-s per hour = "
            f"{r['share_of_recording']:.1%} of recording's {args.recording_cpu:g} CPU-s "
            "per stream-hour",
            flush=True,
        )
    if not args.no_verify:
        v = bench_verify(workdir, args.verify_kib)
        out["verify_year"] = v
        print(
            f"verify: {v['files']} files of {v['file_kib']} KiB, {v['chain_lines']} chain "
            f"lines: {v['wall_s']:.1f} s wall, {v['cpu_s']:.1f} CPU-s "
            f"({v['ms_per_file']:.2f} ms per file)",
            flush=True,
        )
    results = ROOT / "bench" / "results" / "checks.json"
    results.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
