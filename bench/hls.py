"""HLS recorders side by side: ISR against one ``ffmpeg -i URL -c copy -f segment``
per stream, for N = 1, 10 and 100 HLS sources.

One ffmpeg HLS muxer (the load generator) encodes a sine to AAC 128 kbit/s and
writes a live playlist (2 s segments, 6 listed, old ones deleted); a private nginx
on 127.0.0.1 serves it. The N sources are the same playlist under N URLs (a query
string each), so each recorder fetches every playlist and segment N times, as it
would from N stations. Then, one after another, for the same duration:

- ``isr``: one ``isr record`` process, one config with N stream sources,
  split_minutes = 1;
- ``ffmpeg``: one ``ffmpeg -i URL -c copy -f segment -segment_time 60
  -segment_atclocktime 1 -strftime 1`` per stream (ADTS files).

Measured per tool as in bench/streams.py: CPU (scheduler time of every thread of the
tool's process sessions, plus reaped children) over a steady window after a warm-up,
as CPU seconds per stream-hour; peak memory summed over the tool's processes as RSS,
PSS and private (USS); audio bytes written per stream; whether the files decode
(``ffmpeg -v error``, a sample of streams). The load generator (nginx + the muxer)
is measured beside them.

    .venv/bin/python bench/hls.py --duration 30          # N = 1, 10, 100: ~5 minutes
    .venv/bin/python bench/hls.py -n 10 --duration 30

Writes bench/results/hls.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    MIB,
    Peak,
    Procs,
    cpu_seconds,
    free_port,
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
TOOLS = ("isr", "ffmpeg")
BITRATE = 128_000

NGINX_CONF = """\
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }}
  server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def start_load(workdir: Path, load: Procs) -> int:
    """The muxer and nginx; returns nginx's port once the playlist is served."""
    www = workdir / "www"
    www.mkdir()
    muxer = [
        tool("ffmpeg"), "-nostdin", "-v", "error", "-re", "-f", "lavfi",
        "-i", "sine=f=440:r=44100:beep_factor=3", "-c:a", "aac", "-b:a", "128k",
        "-f", "hls", "-hls_time", "2", "-hls_list_size", "6",
        "-hls_flags", "delete_segments+program_date_time",
        "-hls_segment_filename", str(www / "live_%d.ts"), str(www / "live.m3u8"),
    ]  # fmt: skip
    load.start(muxer, log=workdir / "muxer.log")
    port = free_port()
    prefix = workdir / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=www))
    load.start([tool("nginx"), "-c", str(conf), "-p", str(prefix)], log=prefix / "out.log")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (www / "live.m3u8").exists() and (www / "live.m3u8").read_text().count("#EXTINF") >= 3:
            return port
        time.sleep(0.2)
    raise RuntimeError("the HLS muxer wrote no playlist")


def launch(name: str, procs: Procs, workdir: Path, out: Path, urls: list[str]) -> None:
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    if name == "isr":
        lines = [
            "[general]",
            f"output_directory = {out}",
            "split_minutes = 1",
            "filename_pattern = {source}/%Y%m%d_%H%M%S",
            "max_retries = 0",
            "retry_delay_seconds = 2",
            f"log_file = {workdir / 'isr.log'}",
            "",
        ]
        for i, url in enumerate(urls):
            lines += [f"[s{i:04d}]", "type = stream", f"url = {url}", ""]
        cfg = workdir / "isr.ini"
        cfg.write_text("\n".join(lines))
        isr = str(ROOT / ".venv" / "bin" / "isr")
        procs.start([isr, "record", "-c", str(cfg)], log=logs / "isr.out")
        return
    for i, url in enumerate(urls):
        d = out / f"s{i:04d}"
        d.mkdir(parents=True)
        args = [
            tool("ffmpeg"),
            *("-nostdin", "-hide_banner", "-loglevel", "error", "-i", url, "-c", "copy"),
            *("-f", "segment", "-segment_time", "60", "-segment_atclocktime", "1"),
            *("-strftime", "1", str(d / "%Y%m%d_%H%M%S.aac")),
        ]
        procs.start(args, log=logs / f"ffmpeg-{i:04d}.log" if i < 20 else None)


def audio_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*.aac") if p.is_file())


def stream_bytes(out: Path, n: int) -> list[int]:
    return [sum(p.stat().st_size for p in audio_files(out / f"s{i:04d}")) for i in range(n)]


def decode_errors(path: Path) -> str:
    got = subprocess.run(
        [tool("ffmpeg"), "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=False,
    )
    return got.stderr.strip()


def run_tool(
    name: str, n: int, urls: list[str], workdir: Path, load: Procs, duration: float, warmup: float
) -> dict[str, Any]:
    out = workdir / f"out-{name}"
    out.mkdir()
    procs = Procs(name)
    launch(name, procs, workdir, out, urls)
    peak = Peak()
    t_warm = time.time() + warmup
    try:
        while time.time() < t_warm:
            time.sleep(0.5)
        members = session_members(procs.pids)
        c0, l0, b0 = cpu_seconds(members), cpu_seconds(session_members(load.pids)), None
        b0 = stream_bytes(out, n)
        t0 = time.time()
        while time.time() < t0 + duration:
            time.sleep(1.0)
            peak.add(total_memory(session_members(procs.pids)))
        members = session_members(procs.pids)
        c1, l1 = cpu_seconds(members), cpu_seconds(session_members(load.pids))
        b1 = stream_bytes(out, n)
        window = time.time() - t0
        alive = procs.alive()
    finally:
        procs.stop()
    cpu = c1 - c0
    written = [b - a for a, b in zip(b0, b1, strict=True)]
    sample = [out / f"s{i:04d}" for i in sorted({0, n // 2, n - 1})]
    errors = {
        str(f.relative_to(out)): e
        for d in sample
        for f in audio_files(d)
        if (e := decode_errors(f))
    }
    return {
        "tool": name,
        "n": n,
        "window_s": round(window, 1),
        "alive_at_end": alive,
        "cpu_s": round(cpu, 3),
        "cpu_s_per_stream_hour": round(cpu / n / window * 3600, 1),
        "core_percent": round(cpu / window * 100, 1),
        "rss_mib": round(peak.rss / MIB, 1),
        "pss_mib": round(peak.pss / MIB, 1),
        "private_mib": round(peak.private / MIB, 1),
        "pss_mib_per_stream": round(peak.pss / MIB / n, 2),
        "bytes_per_stream_s": round(sum(written) / n / window),
        "expected_bytes_per_stream_s": BITRATE // 8,
        "streams_short": sum(1 for w in written if w < window * BITRATE / 8 * 0.5),
        "decode_errors": errors,
        "load_core_percent": round((l1 - l0) / window * 100, 1),
    }


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| N | tool | CPU s / stream-hour | % of a core | PSS MiB (per stream) | RSS MiB "
        "| private MiB | bytes/s per stream | files decode | load (nginx + muxer) |\n"
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |\n"
    )
    rows = [
        f"| {r['n']} | {r['tool']} | {r['cpu_s_per_stream_hour']} | {r['core_percent']} "
        f"| {r['pss_mib']} ({r['pss_mib_per_stream']}) | {r['rss_mib']} | {r['private_mib']} "
        f"| {r['bytes_per_stream_s']} | {'yes' if not r['decode_errors'] else 'NO'} "
        f"| {r['load_core_percent']} % |"
        for r in results
    ]
    return head + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--streams", type=int, action="append", help="N (repeatable)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of each window")
    ap.add_argument("--warmup", type=float, default=12.0, help="seconds before the window")
    ap.add_argument("--tools", default=",".join(TOOLS))
    args = ap.parse_args(argv)
    install_signal_handlers()
    raise_nofile()
    ns = args.streams or [1, 10, 100]
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="isr-bench-hls-") as tmp:
            workdir = Path(tmp)
            load = Procs("load")
            port = start_load(workdir, load)
            for n in ns:
                urls = [f"http://127.0.0.1:{port}/live.m3u8?s={i}" for i in range(n)]
                for name in args.tools.split(","):
                    d = workdir / f"N{n}-{name}"
                    d.mkdir()
                    log(f"N = {n}: {name} for {args.warmup:g} + {args.duration:g} s")
                    r = run_tool(name, n, urls, d, load, args.duration, args.warmup)
                    log(json.dumps(r))
                    results.append(r)
            load.stop()
    finally:
        stop_all()
    report = {
        "machine": machine(),
        "ffmpeg": version_of([tool("ffmpeg"), "-version"]),
        "nginx": version_of([tool("nginx"), "-v"]),
        "duration": args.duration,
        "warmup": args.warmup,
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hls.json").write_text(json.dumps(report, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
