"""``.isr/status.json``: what the recorder is doing, for the web UI and for people.

The file is replaced atomically at least every ``interval`` seconds (a heartbeat:
an ``updated`` older than 15 s means the recorder is gone) and soon after every
file open or close. Beside ``updated`` it carries ``boot_id`` and ``uptime``, a
clock that no wall-clock step moves, by which a reader on the same machine judges
the heartbeat (``isr.liveness``). Writes are coalesced, so a thousand sources rolling over on
the hour cost one write, not a thousand.

At a thousand sources the file is ~270 KB, rewritten every 1.9 s (DESIGN: at
least every 2 s), so a beat is kept cheap: the document is encoded in one C call
and written with one write(2) (not streamed through ``json.dump``'s many small
writes), and timestamps are formatted once, not per source and beat: those that
rarely change (``since``, ``last_end``) are cached, and ``last_byte`` is given to
the second, which a thousand sources share.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from isr.liveness import boot_id, uptime
from isr.sidecar import iso, write_json_atomic
from isr.sinks.base import Sink

STATES = ("connecting", "recording", "retrying", "failed", "stopped")
STALE_SECONDS = 15.0


@dataclass
class SourceStatus:
    type: str
    format: str
    state: str = "connecting"
    file: str | None = None
    since: float | None = None
    reconnects: int = 0
    """Times a recording was lost and the source started again."""
    failures: int = 0
    """Failed attempts since the source last recorded (what max_retries counts)."""
    last_byte: float | None = None
    last_error: str | None = None
    title: str | None = None
    bytes_total: int = 0
    last_file: str | None = None
    """The file closed last; a restarted recorder drops what repeats it."""
    last_end: float | None = None
    """When that file's audio ended; a restarted recorder notes the gap from here."""
    sink: Sink | None = None
    """The open file, whose size is ``bytes`` in the status file."""
    coverage: float | None = None
    """Recorded share of the last 24 hours (``isr.evidence.watch``); None until known."""

    def to_json(self, tz: tzinfo) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "state": self.state,
            "file": self.file,
            "since": _iso_cached(self.since, tz) if self.since is not None else None,
            "bytes": self.sink.bytes_written if self.sink is not None else 0,
            "bytes_total": self.bytes_total,
            "reconnects": self.reconnects,
            "failures": self.failures,
            "last_file": self.last_file,
            "last_end": _iso_cached(self.last_end, tz) if self.last_end is not None else None,
            "last_byte": _iso_second(int(self.last_byte), tz)
            if self.last_byte is not None
            else None,
            "last_error": self.last_error,
            "format": self.format,
            "title": self.title,
            "coverage_24h": None if self.coverage is None else int(self.coverage * 1e6) / 1e6,
        }
        return out


class StatusBoard:
    """Holds every source's status and writes the status file."""

    def __init__(self, directory: Path, tz: tzinfo, interval: float = 1.9) -> None:
        self.path = directory / ".isr" / "status.json"
        self.directory = directory
        self.tz = tz
        self.interval = interval
        self.started = time.time()
        self.sources: dict[str, SourceStatus] = {}
        self._dirty = asyncio.Event()
        self.writes = 0
        self.archive: Callable[[], dict[str, Any]] | None = None
        """The off-site archive's health (``{"queue", "oldest_seconds", "last_error"}``),
        when ``[archive]`` is configured."""

    def add(self, name: str, type_: str, fmt: str) -> SourceStatus:
        st = SourceStatus(type=type_, format=fmt)
        self.sources[name] = st
        return st

    def changed(self) -> None:
        """Ask for a write soon (file opened or closed, state changed)."""
        self._dirty.set()

    def snapshot(self) -> dict[str, Any]:
        try:
            vfs = os.statvfs(self.directory)
            free_mb: int | None = vfs.f_bavail * vfs.f_frsize // (1024 * 1024)
        except OSError:
            free_mb = None
        out: dict[str, Any] = {
            "version": 1,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _iso_seconds(self.started, self.tz),
            "updated": _iso_seconds(time.time(), self.tz),
            "disk_free_mb": free_mb,
            "boot_id": boot_id(),
            "uptime": None if (up := uptime()) is None else round(up, 3),
            "sources": {name: st.to_json(self.tz) for name, st in self.sources.items()},
        }
        if self.archive is not None:
            out["archive"] = self.archive()
        return out

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.snapshot())
        self.writes += 1

    async def run(self) -> None:
        """Heartbeat until cancelled; a failed write is retried on the next beat."""
        log = logging.getLogger("isr.status")
        failing = False
        while True:
            try:
                self.write()
                if failing:
                    log.info("status file writable again")
                failing = False
            except Exception as exc:  # the heartbeat must outlive any one bad write
                if not failing:
                    log.error("cannot write %s: %s", self.path, exc)
                failing = True
            self._dirty.clear()
            try:
                async with asyncio.timeout(self.interval):
                    await self._dirty.wait()
                await asyncio.sleep(0.2)  # coalesce a burst of changes
            except TimeoutError:
                pass


@functools.lru_cache(maxsize=8192)
def _iso_cached(t: float, tz: tzinfo) -> str:
    """``iso`` of a time that stays the same for many beats (a file's start)."""
    return iso(t, tz)


@functools.lru_cache(maxsize=64)
def _iso_second(t: int, tz: tzinfo) -> str:
    """A whole second, formatted once for every source that got bytes in it."""
    return _iso_seconds(t, tz)


def _iso_seconds(t: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")
