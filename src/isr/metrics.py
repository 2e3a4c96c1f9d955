"""Prometheus metrics built from the status file at scrape time.

``isr_source_coverage_ratio`` too comes from there: the recorder measures each source's
last 24 hours (``isr.evidence.watch``) and writes the figure into the status file.

A custom Collector rather than long-lived Gauges: the web UI owns no state of the
recorder, so every scrape reads what the status file says now. The recorder serves
the same metrics on ``metrics_port`` (off by default), from the same file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from isr.status import STATES
from isr.web.recorder_status import RecorderStatus, parse_time, read_status


def families(status: RecorderStatus, now: float, disk_free: int | None) -> list[Metric]:
    """Pure: the metric families for one status snapshot."""
    up = GaugeMetricFamily("isr_source_up", "1 while the source is recording", labels=["source"])
    total = CounterMetricFamily(
        "isr_source_bytes",
        "bytes recorded by the source since the recorder started",
        labels=["source"],
    )
    reconnects = CounterMetricFamily(
        "isr_source_reconnects", "reconnects of the source", labels=["source"]
    )
    since_last = GaugeMetricFamily(
        "isr_source_seconds_since_last_byte",
        "seconds since the source last delivered audio",
        labels=["source"],
    )
    state = GaugeMetricFamily(
        "isr_source_state", "1 for the state the source is in", labels=["source", "state"]
    )
    file_age = GaugeMetricFamily(
        "isr_source_file_age_seconds",
        "seconds since the source's current file was opened",
        labels=["source"],
    )
    file_bytes = GaugeMetricFamily(
        "isr_source_file_bytes", "bytes in the source's current file", labels=["source"]
    )
    coverage = GaugeMetricFamily(
        "isr_source_coverage_ratio",
        "recorded share (0..1) of what the source was expected to record in the last 24 h",
        labels=["source"],
    )
    for name, src in sorted(status.sources.items()):
        if not isinstance(src, dict):
            continue
        recording = status.alive and src.get("state") == "recording"
        up.add_metric([name], 1.0 if recording else 0.0)
        total.add_metric([name], float(src.get("bytes_total") or 0))
        reconnects.add_metric([name], float(src.get("reconnects") or 0))
        last = parse_time(src.get("last_byte"))
        if last is not None:
            since_last.add_metric([name], max(0.0, now - last))
        current = src.get("state") if status.alive else "stopped"
        for st in STATES:
            state.add_metric([name, st], 1.0 if st == current else 0.0)
        opened = parse_time(src.get("since"))
        if status.alive and src.get("file") and opened is not None:
            file_age.add_metric([name], max(0.0, now - opened))
            file_bytes.add_metric([name], float(src.get("bytes") or 0))
        ratio = src.get("coverage_24h")
        if status.alive and isinstance(ratio, int | float) and not isinstance(ratio, bool):
            coverage.add_metric([name], float(ratio))
    alive = GaugeMetricFamily(
        "isr_recorder_alive", "1 while the recorder is alive: status fresh (<15 s), lock held"
    )
    alive.add_metric([], 1.0 if status.alive else 0.0)
    out: list[Metric] = [
        up,
        total,
        reconnects,
        since_last,
        state,
        file_age,
        file_bytes,
        coverage,
        alive,
    ]
    archive = status.raw.get("archive")
    if isinstance(archive, dict):
        files = GaugeMetricFamily(
            "isr_archive_queue_files", "files waiting for upload to the off-site archive"
        )
        oldest = GaugeMetricFamily(
            "isr_archive_oldest_seconds", "age of the oldest file waiting for upload (0: none)"
        )
        count, age = archive.get("queue"), archive.get("oldest_seconds")
        files.add_metric([], float(count) if isinstance(count, int | float) else 0.0)
        oldest.add_metric([], float(age) if isinstance(age, int | float) else 0.0)
        out += [files, oldest]
    if disk_free is not None:
        disk = GaugeMetricFamily("isr_disk_free_bytes", "free bytes on the recordings disk")
        disk.add_metric([], float(disk_free))
        out.append(disk)
    return out


class StatusCollector(Collector):
    def __init__(self, root: Path) -> None:
        self.root = root

    def collect(self) -> Iterator[Metric]:
        status = read_status(self.root)
        disk: int | None = None
        if status.disk_free_mb is not None:
            disk = int(status.disk_free_mb * 1024 * 1024)
        else:
            try:
                vfs = os.statvfs(self.root)
                disk = vfs.f_bavail * vfs.f_frsize
            except OSError:
                disk = None
        yield from families(status, time.time(), disk)


def make_registry(root: Path) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(root))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


async def start_metrics_server(root: Path, host: str, port: int) -> web.AppRunner:
    """The recorder's own ``/metrics`` on ``metrics_port``."""
    registry = make_registry(root)

    async def metrics(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(render, registry)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    logging.getLogger("isr.metrics").info("metrics on http://%s:%d/metrics", host, port)
    return runner
