"""The uploader: closed files, their sidecars and the chains to the store.

One thread of its own (``isr-archive``), one file at a time, so uploads never run
on the event loop and never take more than one thread and two part connections
from recording. The loop only hands it names (``closed``), through a queue; the
thread writes them into the durable queue (``isr.archive.queue``). What a SIGKILL
loses between the two, the next start finds again: it queues every recording that
has a final sidecar and that the queue does not know.

A file is uploaded once its sidecar is final: not being recorded, no check owed
for it in ``.isr/checks/``, and its sidecar holding its SHA-256. The file goes
first, then its sidecar; the row is ``done`` only when a HEAD confirmed the file.
Before uploading, a HEAD tells whether a previous run already put it (a SIGKILL
after the PUT, before the row was marked): then nothing is sent twice.

Errors back off (2 s doubling to 5 min, for the store as a whole); the first
error after a success raises the alert ``archive_error``; a file deleted locally
before it was uploaded raises ``archive_lost``; the oldest waiting file older than
``max_lag_minutes`` raises ``archive_behind``, cleared when the queue catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue as thread_queue
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from isr.alerts import Alerter
from isr.archive import queue
from isr.archive.store import Store, StoreError
from isr.config import Config
from isr.evidence import chain, pending
from isr.evidence.service import chain_name, file_of, read_sidecar_json
from isr.retention import ClockGuard, Recording, delete, scan
from isr.sidecar import sidecar_path
from isr.sinks.files import is_locked, read_regular

log = logging.getLogger("isr.archive")

BACKOFF_FIRST = 2.0
BACKOFF_MAX = 300.0
IDLE = 1.0
"""Seconds the thread sleeps when nothing is due."""
CHAIN_INTERVAL = 5.0
"""Seconds between looks at the chains."""
DELETE_INTERVAL = 5.0
"""Seconds between looks for local copies to remove (one indexed query)."""
SIDECAR_WATCH = 120.0
"""Seconds after an upload during which a changed sidecar goes up again: a young
session's settling clock redates its closed files' sidecars for up to
``segment.SESSION_YOUNG`` (60 s) after the session began."""
STOP_TIMEOUT = 1.0
"""Seconds a stop lets the uploader go on; the rest waits for the next start."""


def parse_end(data: dict[str, Any]) -> float | None:
    end = data.get("end")
    if not isinstance(end, str):
        return None
    try:
        return datetime.fromisoformat(end).timestamp()
    except ValueError:
        return None


class Archive:
    def __init__(
        self,
        cfg: Config,
        alerter: Alerter | None,
        recording: Callable[[], set[Path]],
        on_delete: Callable[[Recording, str], None] | None = None,
        *,
        store: Store | None = None,
    ) -> None:
        assert cfg.archive is not None
        self.cfg = cfg
        self.acfg = cfg.archive
        self.root = cfg.output_directory
        self.roots = sorted({s.output_directory for s in cfg.sources} | {self.root})
        self.alerter = alerter
        self.recording = recording
        self.on_delete = on_delete
        self._store = store
        self._inbox: thread_queue.SimpleQueue[tuple[str, str | None]] = thread_queue.SimpleQueue()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline = 0.0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._queue_len = 0
        self._oldest: float | None = None
        self.last_error: str | None = None
        self._recent: dict[str, tuple[bytes, float]] = {}
        """Sidecars uploaded lately (chain name -> bytes sent, when): sent again if
        they change while ``SIDECAR_WATCH`` lasts."""
        self.uploaded = 0
        """Files this run uploaded (tests)."""
        self.on_confirmed: Callable[[], None] | None = None
        """Told (in this thread) each time the store confirms a file: the keeper."""
        self._failures = 0
        self._pause_until = 0.0
        self._behind = False
        self._erring = False
        self._guard = ClockGuard()

    # -- the loop's side ---------------------------------------------------------------

    def start(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._thread = threading.Thread(target=self._run, name="isr-archive", daemon=True)
        self._thread.start()

    def closed(self, source: str, name: str) -> None:
        """A file closed (or was repaired): upload it once its sidecar is final."""
        self._inbox.put((name, source))
        self._wake.set()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Blocking: upload what can be within ``timeout``; the rest stays queued."""
        if self._thread is None:
            return
        self._deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout + 0.2)  # a call under way is left to finish or die
        if self._thread.is_alive():
            log.info("the archive's upload under way continues at the next start")
        self._thread = None

    def status(self) -> dict[str, Any]:
        """For the status file: ``{"queue", "oldest_seconds", "last_error"}``."""
        with self._lock:
            count, oldest, error = self._queue_len, self._oldest, self.last_error
        age = None if oldest is None else round(max(0.0, time.time() - oldest), 1)
        return {"queue": count, "oldest_seconds": age, "last_error": error}

    def unarchived(self, paths: list[Path]) -> set[Path]:
        """Those of ``paths`` the store has not confirmed (any thread): retention
        keeps them."""
        names = {chain_name(self.root, p): p for p in paths}
        db = queue.connect(self.root)
        try:
            done = queue.archived(db, names)
        finally:
            db.close()
        return {p for n, p in names.items() if n not in done}

    # -- the thread --------------------------------------------------------------------

    def _alert(self, event: str, message: str, *, clear: bool = False, **extra: Any) -> None:
        alerter, loop = self.alerter, self._loop
        if alerter is None:
            return

        def fn() -> None:
            if clear:
                alerter.clear(event)
            else:
                alerter.fire(event, "", message, **extra)

        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)
                return
        fn()

    def _run(self) -> None:
        try:
            db = queue.connect(self.root)
        except (OSError, sqlite3.Error) as exc:
            log.error("cannot open the archive's queue: %s", exc)
            self._set_error(f"cannot open the queue: {exc}")
            return
        try:
            if self._store is None:
                self._store = Store(self.acfg)
            self._reconcile(db)
            self._loop_body(db, self._store)
        except Exception:
            log.exception("the archive's uploader stopped")
        finally:
            db.close()

    def _loop_body(self, db: sqlite3.Connection, store: Store) -> None:
        next_chain = 0.0
        next_delete = 0.0
        while True:
            self._take_inbox(db)
            self._refresh(db)
            if self._stopping.is_set() and time.monotonic() >= self._deadline:
                return
            now = time.monotonic()
            progressed = False
            if now >= self._pause_until:
                progressed = self._upload_due(db, store)
                self._upload_changed_sidecars(store)
                if now >= next_chain and time.monotonic() >= self._pause_until:
                    next_chain = now + CHAIN_INTERVAL
                    self._upload_chains(db, store)
            if self.acfg.delete_local_after_days > 0 and now >= next_delete:
                next_delete = now + DELETE_INTERVAL
                self._delete_local(db)
            self._refresh(db)
            if self._stopping.is_set():
                if not progressed:
                    self._upload_chains(db, store)
                    return
                continue
            if not progressed:
                self._wake.wait(IDLE)
                self._wake.clear()

    def _take_inbox(self, db: sqlite3.Connection) -> None:
        items = []
        while True:
            try:
                name, source = self._inbox.get_nowait()
            except thread_queue.Empty:
                break
            items.append((name, source, time.time()))
        if items:
            queue.add(db, items)

    def _reconcile(self, db: sqlite3.Connection) -> None:
        """Queue every closed recording the queue does not know (a first start with
        an archive, or a close a SIGKILL took before it reached the queue)."""
        seen = queue.known(db)
        items = []
        for root in self.roots:
            for rec in scan(root):
                name = chain_name(self.root, rec.path)
                if name in seen:
                    continue
                data = read_sidecar_json(rec.path)
                if data is None or not isinstance(data.get("sha256"), str):
                    continue  # not ours, or still open / to be repaired (then queued)
                items.append((name, rec.source, parse_end(data) or rec.mtime))
        if items:
            added = queue.add(db, items)
            log.info("archive: queued %d file(s) found unarchived", added)

    def _refresh(self, db: sqlite3.Connection) -> None:
        count, oldest = queue.waiting(db)
        with self._lock:
            self._queue_len, self._oldest = count, oldest
        lag = self.acfg.max_lag_minutes * 60
        age = 0.0 if oldest is None else time.time() - oldest
        if age > lag and not self._behind:
            self._behind = True
            self._alert(
                "archive_behind",
                f"{count} file(s) wait for the archive; the oldest for {age / 60:.0f} min"
                + (f" (last error: {self.last_error})" if self.last_error else ""),
                queue=count,
                oldest_seconds=round(age),
            )
        elif age <= lag and self._behind:
            self._behind = False
            log.info("the archive caught up (%d file(s) waiting)", count)
            self._alert("archive_behind", "", clear=True)

    def _set_error(self, error: str | None) -> None:
        with self._lock:
            self.last_error = error

    def _failed(self, db: sqlite3.Connection, name: str, error: str) -> None:
        self._failures += 1
        wait = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (self._failures - 1))
        self._pause_until = time.monotonic() + wait
        queue.failed(db, name, error, time.time() + wait)
        self._set_error(error)
        log.error("archive: cannot upload %s: %s (next try in %.0f s)", name, error, wait)
        if not self._erring:
            self._erring = True
            self._alert("archive_error", f"uploads to {self.acfg.url} fail: {error}", file=name)

    def _succeeded(self) -> None:
        self._failures = 0
        if self._erring:
            self._erring = False
            self._set_error(None)
            log.info("archive: uploads work again")
            self._alert("archive_error", "", clear=True)

    def _upload_due(self, db: sqlite3.Connection, store: Store) -> bool:
        """Upload what is due and ready; True if anything was done."""
        owed = {e.file for e in pending.load(self.root)}
        open_now = {chain_name(self.root, p) for p in self.recording()}
        progressed = False
        for row in queue.due(db, time.time()):
            if self._stopping.is_set() and time.monotonic() >= self._deadline:
                break
            if time.monotonic() < self._pause_until:
                break
            if row.name in owed or row.name in open_now:
                continue
            path = file_of(self.root, row.name)
            data = read_sidecar_json(path)
            if not os.path.lexists(path):
                queue.set_state(db, row.name, queue.LOST, "deleted locally before its upload")
                message = f"{row.name} was deleted locally before it was uploaded"
                log.error("archive: %s", message)
                self._alert("archive_lost", message, file=row.name)
                progressed = True
                continue
            if data is None or not isinstance(data.get("sha256"), str):
                continue  # not final yet
            if self._upload_one(db, store, row, path, data):
                progressed = True
        return progressed

    def _upload_one(
        self,
        db: sqlite3.Connection,
        store: Store,
        row: queue.Row,
        path: Path,
        data: dict[str, Any],
    ) -> bool:
        sha256 = str(data["sha256"])
        try:
            size = path.stat().st_size
            if not store.confirm(row.name, sha256, size, path):
                store.put_file(row.name, path, sha256)
                if not store.confirm(row.name, sha256, size, path):
                    raise StoreError("the store does not hold the object whole after its upload")
                self.uploaded += 1
            side = sidecar_path(path)
            body = read_regular(side, limit=16 << 20)
            store.put_bytes(chain_name(self.root, side), body)
            self._recent[chain_name(self.root, side)] = (body, time.monotonic())
        except FileNotFoundError:
            return True  # deleted meanwhile: found lost at the next pass
        except (StoreError, OSError) as exc:
            self._failed(db, row.name, str(exc))
            return False
        queue.confirmed(db, row.name, sha256, size, parse_end(data), time.time())
        log.debug("archive: %s uploaded", row.name)
        if self.on_confirmed is not None:
            self.on_confirmed()
        self._succeeded()
        return True

    def _upload_changed_sidecars(self, store: Store) -> None:
        """A sidecar rewritten after its upload (its times moved with a settling
        clock) goes up again, so the store's copy says what the local one says."""
        now = time.monotonic()
        for name, (sent, when) in list(self._recent.items()):
            try:
                body = read_regular(file_of(self.root, name), limit=16 << 20)
            except OSError:
                del self._recent[name]  # deleted meanwhile: nothing to follow
                continue
            if body != sent:
                try:
                    store.put_bytes(name, body)
                except StoreError as exc:  # the uploads' own errors say if the store is away
                    log.warning("archive: cannot send %s again: %s", name, exc)
                    return  # tried again at the next pass
                self._recent[name] = (body, when)
                log.debug("archive: %s changed after its upload: sent again", name)
            if now - when > SIDECAR_WATCH:  # compared once more before it is let go
                del self._recent[name]

    def _upload_chains(self, db: sqlite3.Connection, store: Store) -> None:
        for source, path in chain.chain_files(self.root).items():
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size == queue.chain_size(db, source):
                continue
            try:
                data = read_regular(path, limit=1 << 30)
            except OSError as exc:
                log.warning("archive: cannot read the chain of %s: %s", source, exc)
                continue
            data = data[: data.rfind(b"\n") + 1]  # whole lines only
            try:
                store.put_bytes(
                    chain_name(self.root, path), data, content_type="application/x-ndjson"
                )
            except StoreError as exc:
                self._set_error(str(exc))
                log.warning("archive: cannot upload the chain of %s: %s", source, exc)
                return
            queue.set_chain_size(db, source, len(data))

    def _delete_local(self, db: sqlite3.Connection) -> None:
        """Remove local copies the store confirmed, older than delete_local_after_days."""
        now = time.time()
        why_not = self._guard.check(now, time.monotonic(), None)
        if why_not is not None:
            log.warning("archive: local deletions wait: %s", why_not)
            return
        before = now - self.acfg.delete_local_after_days * 86400
        open_now = self.recording()
        for name, source, size in queue.expired(db, before):
            path = file_of(self.root, name)
            if path in open_now or is_locked(path):
                continue
            root = next((r for r in self.roots if path.is_relative_to(r)), self.root)
            rec = Recording(path, now, size, source)
            why = "in the archive; older than delete_local_after_days"
            if delete(rec, root, why) and self.on_delete is not None:
                self.on_delete(rec, why)
            queue.set_state(db, name, queue.GONE)
