"""Speed and memory of ISR's waveform analysis against ffmpeg decoding the same file.

Generates (once, cached under ``--dir``) a test recording of ``--seconds`` (default one
hour) of 44.1 kHz stereo with level changes, in WAV (s16), FLAC, MP3 128 kbps, Opus
(48 kHz) and ADTS AAC, then for each file measures, best of ``--runs`` (default 3):

* ISR: ``isr.web.analyse.analyse_file`` in a fresh Python process that does only that:
  the wall and CPU time of the call itself (imports excluded, as in the web UI's warm
  worker), the wall time of the whole process, its peak RSS (ru_maxrss) and its RSS after
  importing PyAV, numpy and ISR;
* ``ffmpeg -v error -i F -f null -``: a plain decode;
* ``ffmpeg -v error -i F -af asetnsamples=N,astats=metadata=1:reset=1 -f null -``: the
  same RMS per 100 ms window computed by FFmpeg (N = samples per 100 ms; astats' ``reset``
  counts frames, so asetnsamples makes each frame one window).

Every child's own rusage comes from ``os.wait4``. It prints a table with the ratio
ISR / ffmpeg plain decode per format and writes ``bench/results/analysis.json``.

    .venv/bin/python bench/analysis.py [--seconds 3600] [--dir /tmp/isr-bench-media]
        [--formats wav,flac,mp3,opus,aac] [--runs 3] [--out bench/results/analysis.json]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine as common_machine

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 44100

#: format -> (extension, ffmpeg encoder arguments); all are encoded from the WAV.
FORMATS: dict[str, tuple[str, list[str]]] = {
    "wav": (".wav", ["-c:a", "pcm_s16le", "-f", "wav"]),
    "flac": (".flac", ["-c:a", "flac", "-f", "flac"]),
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"]),
    "opus": (".opus", ["-c:a", "libopus", "-b:a", "128k", "-ar", "48000", "-f", "opus"]),
    "aac": (".aac", ["-c:a", "aac", "-b:a", "128k", "-f", "adts"]),
}

#: Left and right differ; the level steps every 20 s through loud, quiet, silent and
#: medium, so both the RMS values and the loud sections have something to show.
_LEVEL = "(0.7*lt(mod(t,80),20)+0.02*gte(mod(t,80),20)*lt(mod(t,80),40)+0.3*gte(mod(t,80),60))"
EXPRESSION = f"{_LEVEL}*sin(2*PI*440*t)|{_LEVEL}*sin(2*PI*660*t+1)"

PROBE = """
import json, resource, sys, time
import av, numpy
from isr.web.analyse import analyse_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
w, c = time.perf_counter(), time.process_time()
a = analyse_file(sys.argv[1])
w, c = time.perf_counter() - w, time.process_time() - c
loud = a.to_json(0.05)["loud"]
print(json.dumps({"wall_s": w, "cpu_s": c, "rss_before_kb": before,
                  "duration_s": a.duration_s, "windows": len(a.rms), "loud": len(loud),
                  "rms_sum": sum(a.rms)}))
"""


class ChildFailed(RuntimeError):
    pass


def run_child(args: list[str], *, capture: bool = False) -> tuple[float, float, int, str]:
    """Run ``args``; return its wall seconds, CPU seconds, peak RSS in KiB and stdout.

    The child is started in its own session and killed with its group on any exit path.
    """
    with tempfile.TemporaryFile() as errfile:
        start = time.perf_counter()
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
            stderr=errfile,
            start_new_session=True,
        )
        try:
            out = proc.stdout.read() if proc.stdout else b""
            _, status, usage = os.wait4(proc.pid, 0)  # not proc.wait(): wait4 gives rusage
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proc.pid, 0)
            raise
        finally:
            if proc.stdout:
                proc.stdout.close()
        wall = time.perf_counter() - start
        errfile.seek(0)
        err = errfile.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise ChildFailed(f"{shlex.join(args)} exited {proc.returncode}: {err.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, out.decode()


def make_media(directory: Path, seconds: int, formats: list[str]) -> dict[str, Path]:
    """The test files, generated once per length and cached in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    wav = directory / f"bench-{seconds}s.wav"
    for fmt in ["wav", *[f for f in formats if f != "wav"]]:
        ext, enc = FORMATS[fmt]
        path = directory / f"bench-{seconds}s{ext}"
        if not path.exists():
            if fmt == "wav":
                source = [
                    "-f",
                    "lavfi",
                    "-i",
                    f"aevalsrc='{EXPRESSION}':s={SAMPLE_RATE}:d={seconds}",
                ]
            else:
                source = ["-i", str(wav)]
            tmp = path.with_name(f".{path.name}.part")
            t = time.perf_counter()
            print(f"making {path} ...", file=sys.stderr, flush=True)
            run_child(["ffmpeg", "-v", "error", "-y", *source, *enc, str(tmp)])
            tmp.rename(path)
            print(f"  made in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        if fmt in formats:
            paths[fmt] = path
    return paths


def sample_rate_of(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=sample_rate", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return int(out.stdout.strip())


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    """Shortest wall and CPU time of the runs; the highest peak RSS."""
    out: dict[str, float] = {}
    for key in runs[0]:
        pick = max if "rss" in key else min
        out[key] = pick(r[key] for r in runs)
    return out


def measure(path: Path, runs: int) -> dict[str, Any]:
    rate = sample_rate_of(path)
    isr_runs: list[dict[str, float]] = []
    isr_info: dict[str, Any] = {}
    decode_runs: list[dict[str, float]] = []
    astats_runs: list[dict[str, float]] = []
    decode = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"]
    window = rate // 10
    astats = [
        *decode[:6],
        "-af",
        f"asetnsamples=n={window}:p=0,astats=metadata=1:reset=1",
        "-f",
        "null",
        "-",
    ]
    env_python = [sys.executable, "-c", PROBE, str(path)]
    # Read the file once first: whoever ran first would otherwise pay for the disk.
    with path.open("rb") as fh:
        while fh.read(1 << 22):
            pass
    for _ in range(runs):
        wall, cpu, rss, out = run_child(env_python, capture=True)
        m = json.loads(out)
        isr_runs.append(
            {
                "wall_s": m["wall_s"],
                "cpu_s": m["cpu_s"],
                "process_wall_s": wall,
                "process_cpu_s": cpu,
                "peak_rss_mb": rss / 1024,
                "rss_after_imports_mb": m["rss_before_kb"] / 1024,
            }
        )
        isr_info = {k: m[k] for k in ("duration_s", "windows", "loud", "rms_sum")}
        wall, cpu, rss, _ = run_child(decode)
        decode_runs.append({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss / 1024})
        wall, cpu, rss, _ = run_child(astats)
        astats_runs.append({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss / 1024})
    isr, dec, ast = best(isr_runs), best(decode_runs), best(astats_runs)
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "sample_rate": rate,
        "isr": {**isr, **isr_info},
        "ffmpeg_decode": dec,
        "ffmpeg_astats": ast,
        "ratio_isr_to_decode": isr["wall_s"] / dec["wall_s"],
        "ratio_isr_process_to_decode": isr["process_wall_s"] / dec["wall_s"],
        "ratio_isr_to_astats": isr["wall_s"] / ast["wall_s"],
        "commands": {
            "isr": f"{shlex.quote(sys.executable)} -c <probe> {shlex.quote(str(path))}",
            "ffmpeg_decode": shlex.join(decode),
            "ffmpeg_astats": shlex.join(astats),
        },
    }


def machine() -> dict[str, Any]:
    """The machine as bench/_common.py describes it, plus the decoders' versions."""
    versions: dict[str, str] = {}
    with contextlib.suppress(Exception):
        import av

        versions["pyav"] = str(av.__version__)
        versions["pyav_ffmpeg"] = ".".join(map(str, av.ffmpeg_version_info.split(".")[:3]))
    with contextlib.suppress(Exception):
        versions["numpy"] = __import__("numpy").__version__
    with contextlib.suppress(Exception):
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, timeout=10)
        versions["ffmpeg"] = out.stdout.split("\n")[0]
    return {**common_machine(), **versions}


def print_table(results: dict[str, dict[str, Any]]) -> None:
    head = (
        f"{'format':6} {'MB':>6} {'ISR s':>7} {'ISR cpu':>7} {'proc s':>7} {'RSS MB':>7}"
        f" {'dec s':>6} {'dec cpu':>7} {'astats s':>8} {'ISR/dec':>7} {'ISR/astats':>10}"
    )
    print(head)
    print("-" * len(head))
    for fmt, r in results.items():
        i, d, a = r["isr"], r["ffmpeg_decode"], r["ffmpeg_astats"]
        print(
            f"{fmt:6} {r['bytes'] / 1e6:6.1f} {i['wall_s']:7.2f} {i['cpu_s']:7.2f}"
            f" {i['process_wall_s']:7.2f} {i['peak_rss_mb']:7.1f}"
            f" {d['wall_s']:6.2f} {d['cpu_s']:7.2f} {a['wall_s']:8.2f}"
            f" {r['ratio_isr_to_decode']:7.2f} {r['ratio_isr_to_astats']:10.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=3600, help="length of the test files")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/isr-bench-media"), help="media cache")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--runs", type=int, default=3, help="best of this many runs")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "analysis.json")
    args = ap.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise SystemExit(f"unknown formats {sorted(unknown)}; known: {list(FORMATS)}")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    paths = make_media(args.dir, args.seconds, formats)
    results: dict[str, dict[str, Any]] = {}
    for fmt in formats:
        print(f"measuring {fmt} ...", file=sys.stderr, flush=True)
        results[fmt] = measure(paths[fmt], args.runs)
    print_table(results)
    doc = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "seconds": args.seconds,
        "runs": args.runs,
        "timing": "best (lowest) of the runs for times, highest of the runs for peak RSS",
        "machine": machine(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
