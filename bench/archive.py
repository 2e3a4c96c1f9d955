"""The off-site archive's upload throughput, side by side with rclone.

One S3 server (moto's standalone server in a process of its own on 127.0.0.1 — the
only S3 server installable here; MinIO is not packaged) and a recordings directory
of closed files with final sidecars, as a recorder leaves them: by default 100 files
of 4 MiB and 2 of 72 MiB (multipart). Then, one after another, each into an empty
prefix of the same bucket:

- ``isr``: ``isr record`` with one 8 kHz tone source and ``[archive]``: at start its
  uploader queues every closed file it finds and uploads it (one file at a time, two
  part connections, SHA-256 checksums, a HEAD to confirm each); timed from the
  start until every file and sidecar is in the store;
- ``rclone``: ``rclone copy`` of the same directory (``--s3-provider Other``, its
  default four transfers, parts of 16 MiB above 64 MiB as ISR's), the tool an
  archivist would script instead.

Measured per tool: wall seconds, MB/s of audio, the client's CPU seconds per GB
(every thread, from the scheduler), and the S3 server's CPU in the same window (it
bounds the rate for both).

    .venv/bin/python bench/archive.py                 # ~1 minute
    .venv/bin/python bench/archive.py --files 100 --size-mb 8

Writes bench/results/archive.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
import urllib.request
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Procs, cpu_seconds, free_port, install_signal_handlers, stop_all, tool

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "isr-bench"
KEY, SECRET = "bench", "bench-secret"


def plant(directory: Path, index: int, size: int) -> int:
    """A closed WAV recording of about ``size`` bytes and its final sidecar."""
    name = f"tone/2026110{1 + index // 1000}_{index % 1000:06d}.wav"
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = (size - 44) // 4
    pattern = hashlib.sha256(str(index).encode()).digest() * 2048  # 64 KiB, per file
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(48000)
        left = frames * 4
        while left > 0:
            out.writeframes(pattern[: min(left, len(pattern))])
            left -= len(pattern)
    data = path.read_bytes()
    start = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=index)
    side = {
        "source": "tone",
        "file": name,
        "format": "wav",
        "start": start.isoformat(timespec="milliseconds"),
        "end": (start + timedelta(seconds=frames / 48000)).isoformat(timespec="milliseconds"),
        "titles": [],
        "gaps": [],
        "overlaps_removed": [],
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
    }
    (directory / (name + ".json")).write_text(json.dumps(side))
    return len(data)


class Moto:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs = Procs("moto")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
        self.proc = self.procs.start(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env,
            log=work / "moto.log",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto did not start") from None
                time.sleep(0.1)
        self.client().create_bucket(Bucket=BUCKET)

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )

    def count(self, prefix: str) -> int:
        n = 0
        for page in (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        ):
            n += len(page.get("Contents", []))
        return n

    def cpu(self) -> float:
        return cpu_seconds([self.proc.pid])


def run_isr(moto: Moto, recordings: Path, work: Path, objects: int) -> tuple[float, float]:
    cfg = work / "isr.ini"
    cfg.write_text(
        f"[general]\noutput_directory = {recordings}\nsplit_minutes = 60\n"
        f"log_file = {work / 'isr.log'}\n"
        "[tone]\ntype = tone\nsample_rate = 8000\nchannels = 1\n"
        f"[archive]\nurl = s3://{BUCKET}/isr\nendpoint_url = {moto.url}\n"
        f"region = us-east-1\naccess_key = {KEY}\nsecret_key = {SECRET}\nrecorder_id = r\n"
    )
    procs = Procs("isr")
    t0 = time.monotonic()
    proc = procs.start(
        [str(ROOT / ".venv" / "bin" / "isr"), "record", "-c", str(cfg)], log=work / "isr.out"
    )
    try:
        while moto.count("isr/r/tone/") < objects:
            if proc.poll() is not None:
                raise RuntimeError("isr record stopped: " + (work / "isr.out").read_text())
            time.sleep(0.2)
        wall = time.monotonic() - t0
        cpu = cpu_seconds([proc.pid])
    finally:
        procs.stop()
    return wall, cpu


def run_rclone(moto: Moto, recordings: Path, work: Path, objects: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}  # http here
    env.update(
        RCLONE_CONFIG=str(work / "rclone.conf"),
        RCLONE_S3_PROVIDER="Other",
        RCLONE_S3_ENDPOINT=moto.url,
        RCLONE_S3_ACCESS_KEY_ID=KEY,
        RCLONE_S3_SECRET_ACCESS_KEY=SECRET,
        RCLONE_S3_REGION="us-east-1",
    )
    (work / "rclone.conf").write_text("")
    procs = Procs("rclone")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = procs.start(
        [
            tool("rclone"),
            "copy",
            str(recordings),
            f":s3:{BUCKET}/rclone",
            "--s3-upload-cutoff",
            "64M",
            "--s3-chunk-size",
            "16M",
            "--exclude",
            ".isr/**",
        ],
        env=env,
        log=work / "rclone.out",
    )
    try:
        proc.wait()
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # rclone, reaped
        cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    finally:
        procs.stop()
    if proc.returncode != 0 or moto.count("rclone/tone/") < objects:
        raise RuntimeError("rclone failed: " + (work / "rclone.out").read_text()[-2000:])
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--files", type=int, default=100, help="small files")
    ap.add_argument("--size-mb", type=float, default=4.0, help="size of each small file")
    ap.add_argument("--large", type=int, default=2, help="72 MiB files (multipart)")
    args = ap.parse_args()
    install_signal_handlers()
    work = Path(tempfile.mkdtemp(prefix="isr-bench-archive-"))
    rows = []
    try:
        recordings = work / "recordings"
        total = 0
        sizes = [int(args.size_mb * (1 << 20))] * args.files + [72 << 20] * args.large
        for i, size in enumerate(sizes):
            total += plant(recordings, i, size)
        objects = 2 * len(sizes)  # each file and its sidecar
        moto = Moto(work)
        for name, run in (("isr", run_isr), ("rclone", run_rclone)):
            server0 = moto.cpu()
            wall, cpu = run(moto, recordings, work, objects)
            server = moto.cpu() - server0
            rows.append(
                {
                    "tool": name,
                    "files": len(sizes),
                    "mb": round(total / 1e6, 1),
                    "wall_s": round(wall, 2),
                    "mb_per_s": round(total / 1e6 / wall, 1),
                    "client_cpu_s_per_gb": round(cpu / (total / 1e9), 2),
                    "server_cpu_s": round(server, 2),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    out = ROOT / "bench" / "results" / "archive.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("\n| tool | files | MB | wall s | MB/s | client CPU-s per GB | S3 server CPU-s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['tool']} | {r['files']} | {r['mb']} | {r['wall_s']} | {r['mb_per_s']} "
            f"| {r['client_cpu_s_per_gb']} | {r['server_cpu_s']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
