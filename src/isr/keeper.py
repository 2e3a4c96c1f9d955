"""Keeps the archive for months: retention at start and hourly, and a disk guard.

Below ``min_free_mb`` the keeper first deletes what retention would delete
anyway (oldest first), then, if space is still short, raises ``disk_low`` and
keeps recording: it never deletes anything retention would keep.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from isr import retention
from isr.alerts import Alerter
from isr.config import Config
from isr.sinks.files import is_locked

log = logging.getLogger("isr.keeper")

RETENTION_INTERVAL = 3600.0
DISK_INTERVAL = 30.0
ARCHIVED_SETTLE = 1.0
"""After the store confirms a file the disk guard held, wait this long for more before
looking again: one look for a burst of uploads, not one per file."""
ARCHIVED_GAP = 5.0
"""At most one such look this often: a backlog drained after an outage confirms a file
after another, and each look scans every folder."""


def free_bytes(path: Path) -> int | None:
    try:
        vfs = os.statvfs(path)
    except OSError:
        return None
    return vfs.f_bavail * vfs.f_frsize


class Keeper:
    def __init__(
        self,
        cfg: Config,
        alerter: Alerter,
        recording: Callable[[], set[Path]],
        *,
        retention_interval: float = RETENTION_INTERVAL,
        disk_interval: float = DISK_INTERVAL,
        on_delete: Callable[[retention.Recording, str], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.alerter = alerter
        self.recording = recording
        """The files open right now: never deleted."""
        self.retention_interval = retention_interval
        self.disk_interval = disk_interval
        self.guard = retention.ClockGuard()
        self.roots = sorted({s.output_directory for s in cfg.sources} | {cfg.output_directory})
        self.days = {s.name: s.retention_days for s in cfg.sources}
        self.default_days = 0.0
        """A file without a sidecar is not known to be ours: it is kept."""
        self.min_free = min((s.min_free_mb for s in cfg.sources), default=0) * 1024 * 1024
        self.deleted = 0
        self.low = False
        self.on_delete = on_delete
        """Told of each file retention deleted, and why (for the hash chain)."""
        self.unarchived: Callable[[list[Path]], set[Path]] | None = None
        """With ``[archive]``: which of these files the store has not confirmed yet.
        Retention never deletes them."""
        self.held = 0
        """Expired files the last pass kept because the archive lacks them."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._said_held = False
        self._archived = asyncio.Event()

    def _on_loop(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the event loop (the checks run in a worker thread, where the
        alerter could not start a delivery), or here when no loop runs (tests)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn)
                return
            except RuntimeError:
                pass  # the loop closed meanwhile
        fn()

    @property
    def active(self) -> bool:
        return any(d > 0 for d in self.days.values())

    def sweep(self, reason: str = "older than retention_days", limit_bytes: int = 0) -> int:
        """One retention pass (blocking I/O: run it in a thread). With
        ``limit_bytes``, stop once that much was freed. Returns bytes freed."""
        if not self.active:
            return 0
        found = [r for root in self.roots for r in retention.scan(root)]
        newest = max((r.mtime for r in found), default=None)
        why_not = self.guard.check(time.time(), time.monotonic(), newest)
        if why_not is not None:
            log.warning("retention waits: %s", why_not)
            return 0
        doomed = retention.plan(found, time.time(), self.days, self.default_days, self.recording())
        if self.unarchived is not None and doomed:
            try:
                keep = self.unarchived([rec.path for rec in doomed])
            except Exception as exc:  # cannot tell: keep everything
                log.error("retention waits: cannot read the archive's queue: %s", exc)
                keep = {rec.path for rec in doomed}
            self.held = len(keep)
            if keep:
                log.warning("retention keeps %d expired file(s) not yet in the archive", len(keep))
            doomed = [rec for rec in doomed if rec.path not in keep]
        freed = 0
        for rec in doomed:
            root = next((r for r in self.roots if rec.path.is_relative_to(r)), self.roots[0])
            if rec.path in self.recording() or is_locked(rec.path):
                continue  # opened since the plan was made, or written by someone
            if retention.delete(rec, root, reason):
                self.deleted += 1
                if self.on_delete is not None:
                    self.on_delete(rec, reason)
                freed += rec.size
                if limit_bytes and freed >= limit_bytes:
                    break
        return freed

    def check_disk(self) -> None:
        """Blocking: free space against ``min_free_mb`` for every output disk."""
        if not self.min_free:
            return
        short = 0
        for root in self.roots:
            free = free_bytes(root)
            if free is not None and free < self.min_free:
                short = max(short, self.min_free - free)
        if short:
            freed = self.sweep("disk below min_free_mb; expired anyway", limit_bytes=short)
            if freed < short:
                if not self.low:
                    log.warning("free disk space is below min_free_mb; still recording")
                self.low = True
                mb = self.min_free // (1024 * 1024)
                held = (
                    f"; {self.held} expired file(s) wait for the archive before they may go"
                    if self.held
                    else ""
                )
                message = f"free space below {mb} MiB and nothing more may be deleted{held}"
                news = bool(self.held) and not self._said_held  # say it, rate limit or not
                self._said_held = self._said_held or bool(self.held)

                def fire() -> None:
                    if news:
                        self.alerter.clear("disk_low")
                    self.alerter.fire("disk_low", message=message)

                self._on_loop(fire)
                return
        if self.low:
            log.info("free disk space is above min_free_mb again")
            self._on_loop(lambda: self.alerter.clear("disk_low"))
        self.low = False
        self._said_held = False

    def archived(self) -> None:
        """The store confirmed a file (any thread). When the disk is low and expired
        files wait for the archive, look again soon rather than at the next interval:
        the space they free is wanted now. (Retention alone waits for its next pass.)"""
        loop = self._loop
        if self.low and self.held and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._archived.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        next_sweep = 0.0
        while True:
            now = time.monotonic()
            try:
                if now >= next_sweep:
                    next_sweep = now + self.retention_interval
                    await asyncio.to_thread(self.sweep)
                await asyncio.to_thread(self.check_disk)
            except Exception:  # the keeper must never stop the recorder
                log.exception("retention or disk check failed")
            looked = time.monotonic()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.disk_interval):
                    await self._archived.wait()
                    # Files the disk guard held were confirmed: look again soon.
                    await asyncio.sleep(
                        max(ARCHIVED_SETTLE, looked + ARCHIVED_GAP - time.monotonic())
                    )
            self._archived.clear()
