"""Stream recorders side by side: ISR against one ffmpeg, streamripper or curl per stream.

A private Icecast 2 on 127.0.0.1 serves N listener URLs. Its mounts are fed by
``ffmpeg -re -stream_loop -1 -c copy`` re-streaming one pre-encoded file (no
encoding, so a feeder costs ~0.3 % of a core). Up to ``--mounts`` (default: N when
N <= 100, else 20) feeders run; beyond that the N listeners are spread round-robin
over the mounts, so one Icecast mount fans out to many listeners (Icecast sends
every listener its own copy, so each recorder connection is a real, independent
stream at real-time pace). The load generator (Icecast + feeders) is measured and
reported separately from each recorder.

Then, one after another, for the same duration on the same mounts:

- ``isr``: one ``isr record`` process, one config with N sources, split_minutes = 1;
- ``ffmpeg``: one ``ffmpeg -i URL -c copy -f segment -segment_time 60
  -segment_atclocktime 1 -strftime 1`` per stream;
- ``streamripper``: one ``streamripper URL -d DIR -s -a -A -i --quiet`` per stream
  (the raw stream to one file, no ID3 tags, no per-track files);
- ``curl``: one ``curl -s URL -o FILE`` per stream (just moving the bytes).

Measured per tool: CPU (utime+stime of every process in the tool's sessions, all
threads, plus reaped children) over a steady window after a warm-up, and in total
including start-up; peak memory, summed over the tool's processes, as RSS, PSS and
private (USS) from /proc/PID/smaps_rollup; bytes written per stream against
bytes expected (elapsed × bitrate + the server's burst on connect); whether every
file decodes (``ffmpeg -v error -i F -f null -``; a sample at large N).

    .venv/bin/python bench/streams.py --format mp3 -n 100 --duration 60
    .venv/bin/python bench/streams.py --all     # mp3 and ogg, N = 1 ... 1000, ~9 min

Writes bench/results/streams-<format>-N<n>.json and prints a table and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MIB,
    Icecast,
    Peak,
    Procs,
    busy_cpu_seconds,
    cpu_seconds,
    install_signal_handlers,
    machine,
    raise_nofile,
    session_members,
    stop_all,
    tool,
    total_memory,
    version_of,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOOLS = ("isr", "ffmpeg", "streamripper", "curl")
STATS_INTERVAL = 5.0
"""Seconds between Icecast's updates of a mount's ``total_bytes_read`` statistic."""

FORMATS: dict[str, dict[str, Any]] = {
    "mp3": {
        "ext": ".mp3",
        "encode": ["-c:a", "libmp3lame", "-b:a", "128k", "-id3v2_version", "0"],
        "mux": ["-write_xing", "0", "-id3v2_version", "0", "-f", "mp3"],
        "content_type": "audio/mpeg",
    },
    "ogg": {
        "ext": ".ogg",
        "encode": ["-c:a", "libvorbis", "-b:a", "128k"],
        "mux": ["-f", "ogg"],
        "content_type": "audio/ogg",
    },
}

SIGNAL = (
    "aevalsrc=0.25*sin(2*PI*(330+110*sin(2*PI*0.2*t))*t)+0.05*(random(0)-0.5)"
    "|0.25*sin(2*PI*220*t)+0.05*(random(1)-0.5):s=44100"
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_media(fmt: str, seconds: float, where: Path) -> tuple[Path, float]:
    """A pre-encoded file of ``seconds`` of a varying tone; (path, bytes per second)."""
    spec = FORMATS[fmt]
    path = where / f"media-{fmt}-{int(seconds)}{spec['ext']}"
    if not path.exists():
        subprocess.run(
            [
                tool("ffmpeg"),
                *("-nostdin", "-hide_banner", "-loglevel", "error", "-y"),
                *("-f", "lavfi", "-i", f"{SIGNAL}:d={seconds}"),
                *spec["encode"],
                *spec["mux"],
                str(path),
            ],
            check=True,
        )
    probe = subprocess.run(
        [
            tool("ffprobe"),
            *("-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"),
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    duration = float(probe.stdout.strip())
    return path, path.stat().st_size / duration


# -- the load generator -------------------------------------------------------------------


@dataclass
class Load:
    icecast: Icecast
    feeders: Procs
    mounts: list[str]

    def pids(self) -> list[int]:
        return self.icecast.procs.pids + self.feeders.pids

    def bytes_read(self) -> dict[str, int]:
        """Bytes each mount has received from its feeder so far."""
        stats = self.icecast.stats()
        return {
            m: int(stats.get("/" + m, {}).get("total_bytes_read", "0") or 0) for m in self.mounts
        }

    def keep(self, k: int) -> None:
        """Stop the feeders of every mount past the first ``k`` (their listeners go)."""
        for proc in self.feeders.procs[k:]:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        del self.mounts[k:]

    def listeners(self) -> int:
        stats = self.icecast.stats()
        return sum(int(stats.get("/" + m, {}).get("listeners", "0") or 0) for m in self.mounts)


def start_load(fmt: str, media: Path, n_mounts: int, n_listeners: int, burst: int) -> Load:
    spec = FORMATS[fmt]
    ice = Icecast(sources=n_mounts + 10, clients=n_listeners + n_mounts + 100, burst_size=burst)
    ice.start()
    feeders = Procs("feeders")
    load = Load(ice, feeders, [f"m{i:04d}{spec['ext']}" for i in range(n_mounts)])
    for mount in load.mounts:
        feeders.start(
            [
                tool("ffmpeg"),
                *("-nostdin", "-hide_banner", "-loglevel", "error", "-re"),
                *("-stream_loop", "-1", "-i", str(media), "-map", "0:a", "-c", "copy"),
                *spec["mux"],
                *("-content_type", spec["content_type"], ice.source_url(mount)),
            ]
        )
    deadline = time.monotonic() + 30
    while True:
        stats = ice.stats()
        live = sum(1 for m in load.mounts if "/" + m in stats)
        if live == n_mounts:
            break
        if time.monotonic() > deadline or feeders.alive() < n_mounts:
            raise RuntimeError(f"only {live}/{n_mounts} mounts live; see {ice.dir}")
        time.sleep(0.2)
    # Let every mount fill its burst buffer, so each listener gets the same burst.
    time.sleep(max(2.0, 1.5 * burst / 16000))
    return load


# -- the tools ----------------------------------------------------------------------------


SPLIT_MINUTES = 1
"""ISR's files in the bench: each stream closes one and opens the next every minute,
sixty times as often as the default hourly split. ``bounds`` in the table counts the
minute boundaries in ISR's CPU window (0 or 1 in a window under a minute): a roll of
every stream starts at each, when the media clock reaches it, and its checks and the
coverage measure follow seconds later, so a window that ends just after a boundary
holds little of its cost (docs/benchmarks.md, "The cost of one split, alone")."""


def isr_config(workdir: Path, out: Path, urls: list[str]) -> Path:
    lines = [
        "[general]",
        f"output_directory = {out}",
        f"split_minutes = {SPLIT_MINUTES}",
        "filename_pattern = {source}/%Y%m%d_%H%M%S",
        "max_retries = 0",
        "retry_delay_seconds = 2",
        f"log_file = {workdir / 'isr.log'}",
        "",
    ]
    for i, url in enumerate(urls):
        lines += [f"[s{i:04d}]", "type = stream", f"url = {url}", ""]
    path = workdir / "isr.ini"
    path.write_text("\n".join(lines))
    return path


def launch(name: str, procs: Procs, workdir: Path, out: Path, urls: list[str], ext: str) -> None:
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    if name == "isr":
        cfg = isr_config(workdir, out, urls)
        procs.start(
            [str(ROOT / ".venv" / "bin" / "isr"), "record", "-c", str(cfg)], log=logs / "isr.out"
        )
        return
    for i, url in enumerate(urls):
        d = out / f"s{i:04d}"
        d.mkdir(parents=True)
        if name == "ffmpeg":
            args = [
                tool("ffmpeg"),
                *("-nostdin", "-hide_banner", "-loglevel", "error", "-i", url, "-c", "copy"),
                *("-f", "segment", "-segment_time", "60", "-segment_atclocktime", "1"),
                *("-strftime", "1", str(d / f"%Y%m%d_%H%M%S{ext}")),
            ]
        elif name == "streamripper":
            args = [tool("streamripper"), url, "-d", str(d), "-s", "-a", "-A", "-i", "--quiet"]
        elif name == "curl":
            args = [tool("curl"), "-s", "-o", str(d / f"stream{ext}"), url]
        else:
            raise ValueError(name)
        procs.start(args, log=logs / f"{name}-{i:04d}.log" if i < 20 else None)


def stream_sizes(out: Path, n: int, ext: str) -> list[int]:
    """Bytes in each stream's audio files so far."""
    sizes = []
    for i in range(n):
        total = 0
        d = out / f"s{i:04d}"
        if d.is_dir():
            for entry in os.scandir(d):
                if entry.name.endswith(ext) and entry.is_file():
                    total += entry.stat().st_size
        sizes.append(total)
    return sizes


def wait_for_second(second: float) -> None:
    """Wait until the wall clock is ``second`` seconds into a split period: where the
    roll falls in the CPU window is then chosen, not left to when the run started."""
    period = SPLIT_MINUTES * 60
    time.sleep((second - time.time()) % period)


def boundaries_between(t0: float, t1: float) -> int:
    """Split boundaries (wall clock) in ``(t0, t1]``."""
    period = SPLIT_MINUTES * 60
    return int(t1 // period) - int(t0 // period)


def _mid_tick() -> None:
    """Wait for the middle of a second of the monotonic clock. ISR reads every paced
    stream on whole seconds of it (the loop clock), so a window whose ends are both
    mid-tick holds whole reads only: its pace is not off by a read (1/window)."""
    time.sleep((0.5 - time.monotonic() % 1.0) % 1.0)


def _first_byte(out: Path, i: int, ext: str, first: list[float | None], now: float) -> bool:
    """Note ``now`` as stream ``i``'s first-byte time once a file of it holds audio."""
    d = out / f"s{i:04d}"
    try:
        with os.scandir(d) as it:
            for e in it:
                if e.name.endswith(ext) and e.stat().st_size > 0:
                    first[i] = now
                    return True
    except OSError:
        pass
    return False


def audio_files(d: Path, ext: str) -> list[Path]:
    return sorted(p for p in d.rglob(f"*{ext}") if p.is_file() and ".isr" not in p.parts)


def decode_errors(path: Path) -> str:
    """ "" when ``ffmpeg -v error`` decodes the file silently, else its first lines."""
    proc = subprocess.run(
        [tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    text = proc.stderr.strip()
    if proc.returncode != 0 and not text:
        text = f"exit {proc.returncode}"
    return "\n".join(text.splitlines()[:3])


def run_tool(
    name: str,
    load: Load,
    urls: list[str],
    *,
    fmt: str,
    rate: float,
    burst: int,
    duration: float,
    warmup: float,
    sample_every: float,
    decode_sample: int,
    workdir: Path,
    profile: Path | None = None,
    launch_second: float | None = None,
) -> dict[str, Any]:
    ext = FORMATS[fmt]["ext"]
    n = len(urls)
    tdir = workdir / name
    out = tdir / "out"
    out.mkdir(parents=True)
    procs = Procs(name)
    peak = Peak()
    result: dict[str, Any] = {"tool": name, "streams": n, "launch_second": launch_second}
    try:
        if launch_second is not None:
            wait_for_second(launch_second)
        t_launch = time.time()
        launch(name, procs, tdir, out, urls, ext)
        t_ready = time.time()
        result["launch_seconds"] = round(t_ready - t_launch, 2)
        sids = procs.pids
        t_warm = t_ready + warmup
        t_end = t_ready + duration
        cpu_a = load_a = bench_a = busy_a = 0.0
        bytes_a: dict[str, int] = {}
        sizes_a: list[int] = []
        next_sample = 0.0
        warmed = False
        spy: subprocess.Popen[bytes] | None = None
        first: list[float | None] = [None] * n
        pending = list(range(n))
        while True:
            now = time.time()
            if pending:  # when each stream's first audio byte reached the disk
                pending = [i for i in pending if not _first_byte(out, i, ext, first, now)]
            if not warmed and now >= t_warm:
                _mid_tick()
                members = session_members(sids)
                cpu_a = cpu_seconds(members)
                load_a = cpu_seconds(load.pids())
                ru = resource.getrusage(resource.RUSAGE_SELF)
                bench_a = ru.ru_utime + ru.ru_stime
                busy_a = busy_cpu_seconds()
                bytes_a = load.bytes_read()
                sizes_a = stream_sizes(out, n, ext)
                t_warm = time.time()
                warmed = True
                if profile is not None and name == "isr":
                    profile.parent.mkdir(parents=True, exist_ok=True)
                    spy = procs.start(
                        [
                            str(ROOT / ".venv" / "bin" / "py-spy"),
                            *("record", "--nonblocking", "--rate", "50", "--format", "raw"),
                            *("-d", str(int(t_end - t_warm)), "-o", str(profile)),
                            *("-p", str(sids[0])),
                        ],
                        log=tdir / "py-spy.log",
                    )
            if now >= t_end:
                break
            if now >= next_sample:
                peak.add(total_memory(session_members(sids)))
                next_sample = now + sample_every
            time.sleep(max(0.0, min(0.5 if pending else sample_every, t_end - time.time())))
        _mid_tick()
        members = session_members(sids)
        peak.add(total_memory(members))
        cpu_b = cpu_seconds(members)
        t_b = time.time()
        load_b = cpu_seconds(load.pids())
        ru = resource.getrusage(resource.RUSAGE_SELF)
        bench_b = ru.ru_utime + ru.ru_stime
        busy_b = busy_cpu_seconds()
        loadavg = os.getloadavg()[0]
        bytes_b = load.bytes_read()
        sizes_b = stream_sizes(out, n, ext)
        listeners = load.listeners()
        alive = procs.alive()
        status: dict[str, Any] = {}
        if name == "isr":
            status_path = out / ".isr" / "status.json"
            try:
                status = json.loads(status_path.read_text())
            except (OSError, ValueError):
                status = {}
        t_stop = time.time()
        if spy is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(15)
    finally:
        procs.stop(timeout=15.0)
    window = t_b - t_warm
    result.update(
        processes_started=len(sids),
        processes_alive_at_end=alive,
        listeners_at_end=listeners,
        window_seconds=round(window, 2),
        cpu_window_seconds=round(cpu_b - cpu_a, 3),
        cpu_total_seconds=round(cpu_b, 3),
        cpu_s_per_stream_hour=round((cpu_b - cpu_a) / n / window * 3600, 3),
        cpu_s_per_stream_hour_incl_start=round(cpu_b / n / (t_b - t_launch) * 3600, 3),
        cores=round((cpu_b - cpu_a) / window, 4),
        peak_rss_mib=round(peak.rss / MIB, 2),
        peak_pss_mib=round(peak.pss / MIB, 2),
        peak_private_mib=round(peak.private / MIB, 2),
        rss_per_stream_mib=round(peak.rss / MIB / n, 3),
        pss_per_stream_mib=round(peak.pss / MIB / n, 3),
        private_per_stream_mib=round(peak.private / MIB / n, 3),
        memory_samples=peak.samples,
        load_cores=round((load_b - load_a) / window, 4),
        bench_cores=round((bench_b - bench_a) / window, 4),
        # Everything else on the machine (other users' jobs) over the same window.
        other_cores=round(
            ((busy_b - busy_a) - (cpu_b - cpu_a) - (load_b - load_a) - (bench_b - bench_a))
            / window,
            4,
        ),
        loadavg_1min_at_end=round(loadavg, 2),
        boundaries_in_window=boundaries_between(t_warm, t_b) if name == "isr" else None,
    )
    # The load generator kept real time when every mount received bitrate x window.
    src_ratios = [(bytes_b[m] - bytes_a.get(m, 0)) / (rate * window) for m in load.mounts]
    result["feeders_realtime_min"] = round(min(src_ratios), 4) if src_ratios else None
    # Icecast refreshes a mount's byte count in its statistics every 5 s, so a short
    # window can miss up to 5 s of it: late only when short by more than that.
    slack = STATS_INTERVAL / window if window > 0 else 1.0
    result["feeders_late"] = sum(1 for r in src_ratios if r + slack < 0.95)

    # Keeping real time: what each stream's files grew by over the window, against
    # bitrate x window (buffered writers such as ffmpeg's 32 KiB avio lag a little).
    pace = [(b - a) / (rate * window) for a, b in zip(sizes_a, sizes_b, strict=True)]
    result.update(
        window_rate_min=round(min(pace), 4),
        window_rate_median=round(statistics.median(pace), 4),
    )
    # Bytes written against expected, per stream.
    expected = rate * (t_stop - t_launch) + burst
    per_stream: list[int] = []
    files: list[Path] = []
    for i in range(n):
        d = out / f"s{i:04d}"
        fs = audio_files(d, ext) if d.exists() else []
        files += fs
        per_stream.append(sum(f.stat().st_size for f in fs))
    ratios = [b / expected for b in per_stream]
    # The same from each stream's first byte on disk: tells a late start (connects
    # queued, or a recorder holding its first second) from bytes lost later.
    firsts = [f - t_launch for f in first if f is not None]
    since_all = [
        b / (rate * (t_stop - f) + burst) if f is not None and t_stop > f else 0.0
        for b, f in zip(per_stream, first, strict=True)
    ]
    since = [r for r, f in zip(since_all, first, strict=True) if f is not None]
    result.update(
        streams_started=len(firsts),
        first_byte_seconds_median=round(statistics.median(firsts), 2) if firsts else None,
        first_byte_seconds_max=round(max(firsts), 2) if firsts else None,
        written_since_first_min=round(min(since), 4) if since else None,
        written_since_first_median=round(statistics.median(since), 4) if since else None,
    )
    result.update(
        bytes_written=sum(per_stream),
        bytes_expected=round(expected * n),
        written_ratio_total=round(sum(per_stream) / (expected * n), 4),
        written_ratio_min=round(min(ratios), 4),
        written_ratio_median=round(statistics.median(ratios), 4),
        streams_below_95pct=sum(1 for r in ratios if r < 0.95),
        # Late: behind both over the window and since its first byte (a writer that
        # buffers shifts bytes between the two, a recorder that falls behind loses both).
        streams_not_realtime=sum(
            1 for p, r in zip(pace, since_all, strict=True) if p < 0.95 and r < 0.95
        ),
        files=len(files),
        empty_files=sum(1 for f in files if f.stat().st_size == 0),
    )
    if status:
        srcs = status.get("sources", {})
        result["isr_status"] = {
            "states": _count(s.get("state") for s in srcs.values()),
            "reconnects": sum(int(s.get("reconnects") or 0) for s in srcs.values()),
            "errors": sorted({s["last_error"] for s in srcs.values() if s.get("last_error")})[:5],
        }
    # Decoding: every file when few, else an even sample.
    chosen = files
    if decode_sample and len(files) > decode_sample:
        step = len(files) / decode_sample
        chosen = [files[int(i * step)] for i in range(decode_sample)]
    with ThreadPoolExecutor(2) as pool:
        errors = list(pool.map(decode_errors, chosen))
    bad = [(str(f.relative_to(out)), e) for f, e in zip(chosen, errors, strict=True) if e]
    result.update(decoded=len(chosen), decode_failures=len(bad), decode_examples=bad[:3])
    return result


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def isr_can_record(fmt: str, media: Path, workdir: Path) -> tuple[bool, str]:
    """Try ISR on one mount for a few seconds: does it write a file of ``fmt``?"""
    load = start_load(fmt, media, 1, 1, 65535)
    d = workdir / f"probe-{fmt}"
    d.mkdir()
    procs = Procs("isr-probe")
    try:
        cfg = isr_config(d, d / "out", [load.icecast.url(load.mounts[0])])
        procs.start(
            [str(ROOT / ".venv" / "bin" / "isr"), "record", "-c", str(cfg)], log=d / "isr.out"
        )
        time.sleep(8)
        try:
            status = json.loads((d / "out" / ".isr" / "status.json").read_text())
            src = next(iter(status["sources"].values()))
        except (OSError, ValueError, StopIteration, KeyError):
            src = {}
    finally:
        procs.stop()
        load.feeders.stop()
        load.icecast.close()
    files = audio_files(d / "out", FORMATS[fmt]["ext"])
    if files and any(f.stat().st_size > 0 for f in files):
        return True, "recorded"
    return False, str(src.get("last_error") or src.get("state") or "no file written")


# -- report -------------------------------------------------------------------------------

COLUMNS = [
    ("tool", "tool", "{}"),
    ("processes_started", "procs", "{}"),
    ("cpu_s_per_stream_hour", "CPU-s/str-h", "{:.2f}"),
    ("cpu_s_per_stream_hour_incl_start", "incl.start", "{:.2f}"),
    ("cores", "cores", "{:.3f}"),
    ("peak_rss_mib", "RSS MiB", "{:.1f}"),
    ("rss_per_stream_mib", "RSS/str", "{:.2f}"),
    ("pss_per_stream_mib", "PSS/str", "{:.2f}"),
    ("private_per_stream_mib", "USS/str", "{:.2f}"),
    ("window_rate_min", "pace min", "{:.3f}"),
    ("window_rate_median", "med", "{:.3f}"),
    ("written_ratio_median", "written/exp", "{:.3f}"),
    ("files", "files", "{}"),
    ("boundaries_in_window", "bounds", "{}"),
    ("decode_failures", "dec.err", "{}"),
    ("decoded", "of", "{}"),
    ("load_cores", "load cores", "{:.3f}"),
    ("other_cores", "other", "{:.2f}"),
]


def table(results: list[dict[str, Any]]) -> str:
    rows = [[h for _, h, _ in COLUMNS]]
    for r in results:
        rows.append([f.format(r[k]) if r.get(k) is not None else "-" for k, _, f in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratios(results: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    by = {r["tool"]: r for r in results}
    isr = by.get("isr")
    out: dict[str, dict[str, float | None]] = {}
    if isr is None:
        return out
    for other in ("ffmpeg", "streamripper", "curl"):
        o = by.get(other)
        if o is None:
            continue
        out[f"isr/{other}"] = {
            k: (round(isr[k] / o[k], 3) if o[k] else None)
            for k in (
                "cpu_s_per_stream_hour",
                "rss_per_stream_mib",
                "pss_per_stream_mib",
                "private_per_stream_mib",
            )
        }
    return out


def summary(reports: list[dict[str, Any]]) -> list[str]:
    """Per format, one row per tool and one column per N: the headline tables."""
    out: list[str] = []
    for fmt in sorted({r["format"] for r in reports}):
        reps = [r for r in reports if r["format"] == fmt]
        ns = [r["streams"] for r in reps]
        out.append(f"{fmt.upper()} ({reps[0].get('bytes_per_second', 0) * 8 / 1000:.0f} kbps)\n")
        out.append("| tool | " + " | ".join(f"N = {n:,}" for n in ns) + " |")
        out.append("|---" * (len(ns) + 1) + "|")
        for tool_name in TOOLS:
            cells = []
            for rep in reps:
                r = next((x for x in rep["results"] if x["tool"] == tool_name), None)
                if r is None:
                    cells.append("—")
                    continue
                late = r["streams_not_realtime"]
                cells.append(
                    f"{r['cpu_s_per_stream_hour']:.2f} CPU-s · {r['pss_per_stream_mib']:.2f} MiB"
                    f" · {r['decode_failures']}/{r['decoded']} bad"
                    + (f" · **{late} late**" if late else "")
                )
            out.append(f"| {tool_name} | " + " | ".join(cells) + " |")
        out.append("")
    return out


def _pair(
    r: dict[str, Any], key: str, digits: int, ends: tuple[str, str] = ("min", "median")
) -> str:
    a, b = r.get(f"{key}_{ends[0]}"), r.get(f"{key}_{ends[1]}")
    if a is None or b is None:
        return "—"
    return f"{a:.{digits}f} / {b:.{digits}f}"


def markdown(results_dir: Path) -> str:
    """Markdown tables of every results file (for docs/benchmarks.md)."""
    out: list[str] = []
    files = sorted(
        results_dir.glob("streams-*-N*.json"),
        key=lambda p: (p.stem.split("-")[1], int(p.stem.rsplit("N", 1)[1])),
    )
    out += summary([json.loads(p.read_text()) for p in files])
    for path in files:
        rep = json.loads(path.read_text())
        out.append(
            f"### {rep['format'].upper()}, N = {rep['streams']} "
            f"({rep['duration_per_tool']:g} s per tool, {rep['date']})\n"
        )
        out.append(f"Load: {rep['load']}.")
        if rep.get("isr_supported") is False:
            out.append(f"ISR could not record this format: {rep.get('isr_unsupported_reason')}.")
        out.append("")
        out.append(
            "| tool | procs | CPU-s / stream-h | incl. start | cores | peak RSS MiB | "
            "RSS / stream | PSS / stream | USS / stream | pace min / med | written / exp. | "
            "since 1st byte min / med | 1st byte s med / max | files | decode errors | "
            "load cores | other cores |"
        )
        out.append("|---" * 17 + "|")
        for r in rep["results"]:
            out.append(
                f"| {r['tool']} | {r['processes_started']} | {r['cpu_s_per_stream_hour']:.2f} | "
                f"{r['cpu_s_per_stream_hour_incl_start']:.2f} | {r['cores']:.3f} | "
                f"{r['peak_rss_mib']:.1f} | {r['rss_per_stream_mib']:.2f} | "
                f"{r['pss_per_stream_mib']:.2f} | {r['private_per_stream_mib']:.2f} | "
                f"{r['window_rate_min']:.3f} / {r['window_rate_median']:.3f} | "
                f"{r['written_ratio_median']:.3f} | {_pair(r, 'written_since_first', 3)} | "
                f"{_pair(r, 'first_byte_seconds', 1, ('median', 'max'))} | {r['files']} | "
                f"{r['decode_failures']} / {r['decoded']} | {r['load_cores']:.3f} | "
                f"{r.get('other_cores', '?')} |"
            )
        if rep.get("ratios"):
            out.append("")
            for k, v in rep["ratios"].items():
                out.append(
                    f"- {k}: CPU {v['cpu_s_per_stream_hour']}, RSS {v['rss_per_stream_mib']}, "
                    f"PSS {v['pss_per_stream_mib']}, USS {v['private_per_stream_mib']}"
                )
        out.append("")
    return "\n".join(out)


ALL: tuple[tuple[int, float, float], ...] = ((1, 8, 2), (10, 8, 2), (100, 15, 5), (1000, 22, 12))
"""``--all``: (N, seconds per tool, warm-up) for each format; ~9 minutes in all. CPU is
read to the nanosecond, so short windows do; 1,000 connections need the warm-up."""


@dataclass
class Run:
    """One N of one format: its settings, then its report."""

    n: int
    duration: float
    warmup: float
    tools: list[str]
    report: dict[str, Any]


def default_tools(n: int) -> list[str]:
    return list(TOOLS) if n <= 100 else ["isr", "streamripper", "curl"]


def mounts_for(n: int, wanted: int | None) -> int:
    return min(wanted or (n if n <= 100 else 20), n)


def run_format(fmt: str, runs: list[Run], args: argparse.Namespace, workdir: Path) -> None:
    """Every run of one format on one load: Icecast and as many feeders as the
    largest run wants (fewer are kept for the fan-out runs, to spare the cores)."""
    cache = Path(tempfile.gettempdir()) / "isr-bench-media"
    cache.mkdir(exist_ok=True)
    # Long enough that Ogg feeders never loop inside the runs (looped Ogg -c copy
    # restarts granules); MP3 loops cleanly.
    busy = sum((r.duration + 15) * len(r.tools) for r in runs)
    media, rate = make_media(fmt, 120 if fmt == "mp3" else busy + 120, cache)
    isr_ok, why = (True, "")
    if any("isr" in r.tools for r in runs):
        isr_ok, why = isr_can_record(fmt, media, workdir)
        if not isr_ok:
            log(f"isr cannot record {fmt} here: {why}; running the others only")
    max_mounts = max(mounts_for(r.n, args.mounts) for r in runs)
    max_n = max(r.n for r in runs)
    log(f"load: {max_mounts} mounts ({fmt}, {rate * 8 / 1000:.0f} kbps)")
    load = start_load(fmt, media, max_mounts, max_n, args.burst)
    try:
        for run in runs:
            n_mounts = mounts_for(run.n, args.mounts)
            if n_mounts < run.n:  # fan-out: keep the feeders it uses, spare the cores
                load.keep(n_mounts)
            fanned = "" if n_mounts == run.n else f"; {run.n} listeners over {n_mounts} mounts"
            rep = run.report
            rep.update(
                mounts=n_mounts,
                load="icecast2 + one `ffmpeg -re -stream_loop -1 -c copy` per mount" + fanned,
                bytes_per_second=round(rate, 1),
                isr_supported=isr_ok,
            )
            if not isr_ok:
                rep["isr_unsupported_reason"] = why
            tools = [t for t in run.tools if isr_ok or t != "isr"]
            urls = [load.icecast.url(load.mounts[i % n_mounts]) for i in range(run.n)]
            sample_every = args.sample_every or (2.0 if run.n <= 100 else 5.0)
            for t in tools:
                log(f"{t}: {run.n} streams for {run.duration:g} s")
                r = run_tool(
                    t,
                    load,
                    urls,
                    fmt=fmt,
                    rate=rate,
                    burst=args.burst,
                    duration=run.duration,
                    warmup=run.warmup,
                    sample_every=sample_every,
                    decode_sample=args.decode_sample,
                    workdir=workdir / f"{fmt}-N{run.n}",
                    profile=args.profile,
                    launch_second=args.launch_second,
                )
                rep["results"].append(r)
                log(
                    f"{t}: {r['cpu_s_per_stream_hour']:.2f} CPU-s/stream-h, "
                    f"{r['rss_per_stream_mib']:.2f} MiB RSS/stream, pace "
                    f"{r['window_rate_min']:.3f}..{r['window_rate_median']:.3f}, written/exp "
                    f"{r['written_ratio_min']:.3f}..{r['written_ratio_median']:.3f}, first byte "
                    f"{r['first_byte_seconds_median']}..{r['first_byte_seconds_max']} s, "
                    f"decode errors {r['decode_failures']}/{r['decoded']}"
                )
                time.sleep(1)  # let Icecast drop the listeners
            rep["ratios"] = ratios(rep["results"])
            write_report(rep, args.results)
    finally:
        load.feeders.stop()
        load.icecast.close()


def write_report(rep: dict[str, Any], results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    n = rep["streams"]
    path = results / f"streams-{rep['format']}-N{n}.json"
    path.write_text(json.dumps(rep, indent=1) + "\n")
    print()
    print(f"{rep['format']}, N = {n}:")
    print(table(rep["results"]))
    print()
    for k, v in rep["ratios"].items():
        print(f"{k}: " + ", ".join(f"{m} {x}" for m, x in v.items()))
    for r in rep["results"]:
        if r["streams_not_realtime"]:
            print(f"NOT real time: {r['tool']}: {r['streams_not_realtime']} of {n} streams late")
        if r.get("feeders_late"):
            print(
                f"load generator late during {r['tool']}: a mount got "
                f"{r['feeders_realtime_min']:.3f} of real time from its feeder"
            )
    print(f"wrote {path}\n", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--all",
        action="store_true",
        help="the whole matrix: mp3 and ogg at N = 1, 10, 100, 1000 (~9 minutes)",
    )
    ap.add_argument("--format", choices=sorted(FORMATS), default="mp3")
    ap.add_argument("-n", "--streams", type=int, default=10)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per tool")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds before the CPU window")
    ap.add_argument(
        "--tools",
        default=None,
        help="comma-separated; default: all at N <= 100, else isr,streamripper,curl",
    )
    ap.add_argument(
        "--mounts",
        type=int,
        default=None,
        help="feeders/mounts (default N, or 20 "
        "above N = 100: then mounts fan out to many listeners)",
    )
    ap.add_argument("--burst", type=int, default=65535, help="Icecast burst-size")
    ap.add_argument("--decode-sample", type=int, default=40, help="files to decode (0 = all)")
    ap.add_argument("--sample-every", type=float, default=None, help="memory sampling seconds")
    ap.add_argument("--workdir", type=Path, default=None, help="kept when given")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy (collapsed stacks) of isr over the CPU window into this file; its own "
        "sampling then counts in the load, not in isr's CPU",
    )
    ap.add_argument(
        "--launch-second",
        type=float,
        default=None,
        help="start each tool this many seconds into a minute (ISR splits every minute): "
        "e.g. 15 keeps the roll out of a 30 s run's window (at 2 the burst dates the first "
        "audio before the minute), 45 puts it inside",
    )
    ap.add_argument(
        "--markdown", action="store_true", help="print the results as Markdown tables and exit"
    )
    args = ap.parse_args(argv)
    if args.markdown:
        print(markdown(args.results))
        return 0

    base: dict[str, Any] = {
        "bench": "streams",
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {
            "icecast2": version_of(["icecast2", "-v"]),
            "ffmpeg": version_of(["ffmpeg", "-version"]),
            "streamripper": version_of(["streamripper", "-v"]),
            "curl": version_of(["curl", "--version"]),
        },
        "command": "bench/streams.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    chosen = args.tools.split(",") if args.tools else None
    for t in chosen or ():
        if t not in TOOLS:
            ap.error(f"unknown tool {t!r}")
    plan: dict[str, list[tuple[int, float, float]]] = (
        {fmt: list(ALL) for fmt in FORMATS}
        if args.all
        else {args.format: [(args.streams, args.duration, args.warmup)]}
    )
    runs = {
        fmt: [
            Run(
                n,
                duration,
                warmup,
                chosen or default_tools(n),
                {
                    **base,
                    "format": fmt,
                    "streams": n,
                    "duration_per_tool": duration,
                    "warmup": warmup,
                    "results": [],
                },
            )
            for n, duration, warmup in configs
        ]
        for fmt, configs in plan.items()
    }
    largest = max(r.n for rs in runs.values() for r in rs)
    install_signal_handlers()
    nofile = raise_nofile()
    if nofile < 2 * largest + 100:
        raise SystemExit(f"open-files limit {nofile} is too low for {largest} streams")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="isr-bench-streams-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        for fmt, fmt_runs in runs.items():
            run_format(fmt, fmt_runs, args, workdir)
    finally:
        stop_all()
    log(f"done in {time.monotonic() - t0:.0f} s (work files in {workdir})")
    if args.workdir is None:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
