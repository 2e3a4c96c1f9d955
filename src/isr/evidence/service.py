"""The recorder's evidence: chain lines, and the one check of every closed file.

Two threads, so that nothing here runs on the event loop or holds it up:

- the **chain writer** appends lines in batches (whatever queued while the last
  batch was written), one write and one fsync per chain and batch
  (``isr.evidence.chain``);
- the **checker** reads each closed file once (``isr.evidence.check``), FIFO, one
  file at a time, pausing between chunks, so that a thousand files closing on the
  hour are checked one after another over the next minutes and the loop's thread
  always gets the GIL back within a chunk.

The loop only queues work: at a close it writes the small pending entry
(``isr.evidence.pending``) and queues the check, plus the ``closed`` line when the
hash was final at close. Results come back to the loop with
``call_soon_threadsafe``: the sidecar (through its ledger) and the alert
``file_check_failed``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, tzinfo
from datetime import time as wall_time
from pathlib import Path
from typing import Any

from isr.alerts import Alerter
from isr.evidence import chain, pending
from isr.evidence.check import Result, check_file
from isr.evidence.digest import Written
from isr.sidecar import Ledger, iso, sidecar_path, write_json_atomic, write_sidecar
from isr.sinks.files import read_regular

log = logging.getLogger("isr.evidence")

CHECK_PAUSE = 0.001
"""Seconds the checker sleeps after each MiB it reads."""
STOP_TIMEOUT = 1.5
"""Seconds a stop waits for the chain writer's last batch, or the check under way."""
APPLY_WAIT = 10.0
"""Seconds the checker waits for the loop to put a check into its file's sidecar."""
MAX_MISSED_DAYS = 400
"""More local days than this without a ``day`` line since a chain's last line, and
the clock is more likely wrong than the recorder down: none are written."""
CHECK_DRAIN = 1.5
"""Seconds a stop lets the checker go on with the checks owed; the rest wait in
``.isr/checks/`` for the next start (the recorder must stop within 5 s)."""

_Job = tuple[pending.Pending, Ledger | None, Callable[[], None] | None]
"""A check owed: its entry, the ledger to write it into (None: read the sidecar), and
what to call once it is written."""


def missed_days(
    last_day: dict[str, Any] | None, first: dict[str, Any] | None, tz: tzinfo, today: date
) -> list[date]:
    """The local days no ``day`` line seals: from the day after the chain's last
    ``day`` line (or, with none, from its first line's day) to yesterday. Each gets
    its line at the next start (the head has not moved since), so every day of the
    record is sealed, not only those the recorder was running at midnight. Counted
    from the last ``day`` line, not the last line: a file closed on the stroke of
    midnight may be chained just before the day's line, or just after it."""
    try:
        if last_day is not None:
            since = date.fromisoformat(str(last_day.get("date"))) + timedelta(days=1)
        elif first is not None:
            since = datetime.fromisoformat(str(first.get("at"))).astimezone(tz).date()
        else:
            return []
    except ValueError:
        return []
    return [since + timedelta(days=i) for i in range((today - since).days)]


def chain_name(root: Path, path: Path) -> str:
    """A file's name in the chain: relative to the recordings directory, '/'-separated;
    absolute for a file outside it (as in sidecars and the status file)."""
    try:
        rel = Path(os.path.relpath(path, root))
    except ValueError:
        return path.absolute().as_posix()
    return path.absolute().as_posix() if rel.parts[:1] == ("..",) else rel.as_posix()


def file_of(root: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else root / path


class ChainWriter:
    """Appends chain lines from a thread of its own, in batches."""

    def __init__(self, root: Path, sign: chain.Signer | None) -> None:
        self.root = root
        self.sign = sign
        self._queue: queue.SimpleQueue[tuple[str, dict[str, Any]] | Callable[[], None] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self.failed = 0
        self._retry: dict[str, list[dict[str, Any]]] = {}
        self._after_retry: list[Callable[[], None]] = []

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="isr-chain", daemon=True)
            self._thread.start()

    def add(self, source: str, line: dict[str, Any]) -> None:
        self._queue.put((source, line))

    def then(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the writer's thread once every line queued before is written."""
        self._queue.put(fn)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self._thread is None:
            self.flush_now()
            return
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("the chain writer did not finish within %.0f s", timeout)
        self._thread = None

    def flush_now(self) -> None:
        """Write what is queued, in the caller's thread (no writer thread runs)."""
        items = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                items.append(item)
        self._write(items)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            items = [item]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            done = None in items
            self._write([i for i in items if i is not None])
            if done:
                return

    def _write(self, items: list[tuple[str, dict[str, Any]] | Callable[[], None]]) -> None:
        """Append a batch; lines that could not be written (a full disk) are tried
        again with the next batch, and what waits on them (the removal of a check's
        entry) waits too."""
        batch: dict[str, list[dict[str, Any]]] = self._retry
        self._retry = {}
        after: list[Callable[[], None]] = self._after_retry
        self._after_retry = []
        for item in items:
            if callable(item):
                after.append(item)
            else:
                batch.setdefault(item[0], []).append(item[1])
        for source, lines in batch.items():
            try:
                chain.append(
                    chain.chain_path(self.root, source), lines, source=source, sign=self.sign
                )
            except OSError as exc:
                self.failed += len(lines)
                self._retry[source] = lines
                log.error(
                    "cannot append %d line(s) to the chain of %s: %s", len(lines), source, exc
                )
        if self._retry:
            self._after_retry = after
            return
        for fn in after:
            try:
                fn()
            except Exception:
                log.exception("after a chain batch")


class Evidence:
    """What the recorder does for the evidence of its archive."""

    def __init__(
        self,
        root: Path,
        tz: tzinfo,
        alerter: Alerter | None = None,
        sign: chain.Signer | None = None,
        *,
        check_pause: float = CHECK_PAUSE,
    ) -> None:
        self.root = root
        self.tz = tz
        self.alerter = alerter
        self.chain = ChainWriter(root, sign)
        self.check_pause = check_pause
        self._checks: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._checker: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self.checked = 0
        """Files checked by this run (for tests and the bench)."""
        self.failed_checks: list[str] = []
        self.checking_enabled = True
        self._owed = 0
        self._idle = threading.Condition()
        self._started = False
        self.listeners: list[Callable[[str, str], None]] = []
        """Told (on the loop or recovery's thread) of each file closed or repaired,
        as (source, chain name): the off-site archive queues it."""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, sources: list[str]) -> None:
        """Recording starts: a ``started`` line per source, then the checks a previous
        run left owed, and the threads."""
        self._started = True
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        facts = {"pid": os.getpid(), "host": socket.gethostname()}
        today = datetime.now(self.tz).date()
        for source in sources:
            missed = missed_days(*self._last_day(source), self.tz, today)
            if len(missed) > MAX_MISSED_DAYS:
                log.warning(
                    "%s: %d days since its chain's last day line: the clock looks wrong, "
                    "no day lines written for them",
                    source,
                    len(missed),
                )
                missed = []
            for day in missed:
                self.chain.add(source, chain.entry("day", at=self.now(), date=day.isoformat()))
            self.chain.add(source, chain.entry("started", at=self.now(), **facts))
        self.chain.start()
        if self.checking_enabled:
            self.start_checker()
        for entry in pending.load(self.root):
            self._queue_check(entry, None)

    def _last_day(self, source: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        try:
            return chain.last_day(chain.chain_path(self.root, source))
        except OSError as exc:  # the writer will say so too, with the first line
            log.error("cannot read the chain of %s: %s", source, exc)
            return None, None

    def start_checker(self) -> None:
        if self._checker is None:
            self._checker = threading.Thread(target=self._check_loop, name="isr-check", daemon=True)
            self._checker.start()

    def stop(self, sources: list[str]) -> None:
        """Recording stopped (every file is closed): a ``stopped`` line per source;
        the checks still owed stay in ``.isr/checks/`` for the next start."""
        if not self._started:
            return
        self._started = False
        self._checks.put(None)  # after the checks queued so far
        if self._checker is not None:
            self._checker.join(CHECK_DRAIN)  # small files are checked now, big ones later
            self._stopping.set()
            self._checker.join(STOP_TIMEOUT)
            self._checker = None
        facts = {"pid": os.getpid(), "host": socket.gethostname()}
        for source in sources:
            self.chain.add(source, chain.entry("stopped", at=self.now(), **facts))
        self._stopping.set()
        self.chain.stop()
        self._loop = None

    def now(self) -> str:
        return iso(time.time(), self.tz)

    # -- events ------------------------------------------------------------------------

    def closed(
        self,
        source: str,
        path: Path,
        ledger: Ledger,
        written: Written,
        *,
        then: Callable[[], None] | None = None,
    ) -> None:
        """A file closed (on the loop): queue its line if its hash is final, its check.
        ``then`` is called on the loop just after the check is written into the
        sidecar: the segmenter writes at once the sidecars a settling clock moved since
        their last rewrite, so the closed file's new times do not sit on the disk beside
        the open file's old ones until the next throttled rewrite."""
        name = chain_name(self.root, path)
        entry = pending.Pending(
            source=source,
            file=name,
            event="closed",
            written=written,
            start=iso(ledger.start, self.tz),
            end=iso(ledger.end, self.tz) if ledger.end is not None else None,
            chained=written.sha256 is not None,
        )
        try:
            pending.save(self.root, entry)
        except OSError as exc:
            log.error("cannot note the check owed for %s: %s", name, exc)
        if entry.chained:
            self.chain.add(source, self._closed_line(entry, written.sha256, written.size))
        self._queue_check(entry, ledger, then)
        self._tell(source, name)

    def _tell(self, source: str, name: str) -> None:
        for listener in self.listeners:
            try:
                listener(source, name)
            except Exception:
                log.exception("telling of %s", name)

    def repaired(self, source: str, path: Path, note: str) -> None:
        """Crash recovery finished ``path``: hash it (in the checker) and chain it."""
        name = chain_name(self.root, path)
        data = read_sidecar_json(path) or {}
        entry = pending.Pending(
            source=source,
            file=name,
            event="repaired",
            written=None,
            start=data.get("start"),
            end=data.get("end"),
            note=note,
        )
        try:
            pending.save(self.root, entry)
        except OSError as exc:
            log.error("cannot note the check owed for %s: %s", name, exc)
        self._queue_check(entry, None)
        self._tell(source, name)

    def deleted(self, source: str, path: Path, size: int, by: str, why: str, **who: Any) -> None:
        """A file was deleted (by retention, from its thread; or the web UI)."""
        self.chain.add(
            source,
            chain.entry(
                "deleted",
                at=self.now(),
                file=chain_name(self.root, path),
                bytes=size,
                by=by,
                why=why,
                **who,
            ),
        )

    def day(self, sources: list[str], date: str) -> None:
        """The local day ``date`` ended: a ``day`` line, signed, in every chain."""
        for source in sources:
            self.chain.add(source, chain.entry("day", at=self.now(), date=date))

    async def run(self, sources: list[str]) -> None:
        """Day lines at each local midnight."""
        while True:
            today = datetime.now(self.tz).date()
            midnight = datetime.combine(today + timedelta(days=1), wall_time(0), tzinfo=self.tz)
            while (left := midnight.timestamp() - time.time()) > 0:
                await asyncio.sleep(min(left, 60.0))  # a suspended machine wakes late
            self.day(sources, today.isoformat())

    def _queue_check(
        self, entry: pending.Pending, ledger: Ledger | None, then: Callable[[], None] | None = None
    ) -> None:
        with self._idle:
            self._owed += 1
        self._checks.put((entry, ledger, then))

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every check queued so far is done and its lines are written
        (tests, the bench); False on timeout."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._owed == 0, timeout):
                return False
        done = threading.Event()
        self.chain.then(done.set)
        if self.chain._thread is None:
            self.chain.flush_now()
        return done.wait(timeout)

    # -- the checker's thread ----------------------------------------------------------

    def _closed_line(self, entry: pending.Pending, sha256: str | None, size: int) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "at": self.now(),
            "file": entry.file,
            "sha256": sha256,
            "bytes": size,
            "start": entry.start,
            "end": entry.end,
        }
        if entry.note:
            facts["note"] = entry.note
        return chain.entry(entry.event, **facts)

    def _check_loop(self) -> None:
        while not self._stopping.is_set():
            job = self._checks.get()
            if job is None:
                return
            try:
                self._check(*job)
            except Exception:  # a check must never take the recorder down
                log.exception("checking %s failed", job[0].file)
            finally:
                with self._idle:
                    self._owed -= 1
                    self._idle.notify_all()

    def _check(
        self, entry: pending.Pending, ledger: Ledger | None, then: Callable[[], None] | None
    ) -> None:
        path = file_of(self.root, entry.file)
        try:
            result = check_file(path, entry.written, pause=self.check_pause)
        except FileNotFoundError:
            log.warning("%s was deleted before its check", entry.file)
            self.chain.then(lambda: pending.remove(entry))
            return
        except OSError as exc:
            log.error("cannot check %s: %s", entry.file, exc)
            return
        self.checked += 1
        written = entry.written
        sha256 = written.sha256 if written is not None and written.sha256 else result.sha256
        if not entry.chained:
            self.chain.add(entry.source, self._closed_line(entry, sha256, result.size))
        check = result.to_json(lambda t: iso(t, self.tz))
        self._deliver(path, entry, ledger, sha256, result, check, then)

    def _settled(self, entry: pending.Pending) -> None:
        """The check is in the sidecar: its entry goes once the chain line is written
        too. Never before the sidecar: the uploader takes a file whose check is no
        longer owed as final, and a sidecar rewritten after its upload would leave the
        store with an older one (a SIGKILL between the two re-checks the file)."""
        self.chain.then(lambda: pending.remove(entry))

    def _deliver(
        self,
        path: Path,
        entry: pending.Pending,
        ledger: Ledger | None,
        sha256: str,
        result: Result,
        check: dict[str, Any],
        then: Callable[[], None] | None,
    ) -> None:
        loop = self._loop
        if ledger is not None and loop is not None and not loop.is_closed():
            applied = threading.Event()
            try:
                loop.call_soon_threadsafe(
                    self._apply, path, entry, ledger, sha256, result, check, then, applied
                )
            except RuntimeError:
                pass  # the loop closed meanwhile
            else:
                # Waited for, so that a stop (which joins this thread) finds the entry's
                # removal queued before the chain writer's end; never forever.
                applied.wait(APPLY_WAIT)
                return
        if self._update_sidecar(path, sha256, result.size, check):
            self._settled(entry)
        if not result.ok:
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._failed, entry, result)
                    return
                except RuntimeError:
                    pass
            self.failed_checks.append(entry.file)
            log.error("check of %s failed: %s", entry.file, "; ".join(result.problems))

    def _apply(
        self,
        path: Path,
        entry: pending.Pending,
        ledger: Ledger,
        sha256: str,
        result: Result,
        check: dict[str, Any],
        then: Callable[[], None] | None,
        applied: threading.Event,
    ) -> None:
        """On the loop: the result into the ledger and its sidecar, and the alert."""
        try:
            ledger.sha256 = sha256
            ledger.bytes = result.size
            ledger.check = check
            try:
                write_sidecar(path, ledger, self.tz)
            except OSError as exc:  # the check stays owed: the next start does it again
                log.error("cannot write the sidecar of %s: %s", entry.file, exc)
            else:
                self._settled(entry)
            if not result.ok:
                self._failed(entry, result)
            if then is not None:
                then()  # last: nothing that goes wrong in it may cost the alert
        finally:
            applied.set()

    def _failed(self, entry: pending.Pending, result: Result) -> None:
        self.failed_checks.append(entry.file)
        message = f"{entry.file}: " + "; ".join(result.problems)
        log.error("check failed: %s", message)
        if self.alerter is not None:
            self.alerter.fire("file_check_failed", entry.source, message, file=entry.file)

    def _update_sidecar(self, path: Path, sha256: str, size: int, check: dict[str, Any]) -> bool:
        """False if the sidecar could not be written (it stays owed); a file without
        a readable sidecar has nothing to hold the check and owes nothing."""
        data = read_sidecar_json(path)
        if data is None:
            return True
        data["sha256"] = sha256
        data["bytes"] = size
        data["check"] = check
        try:
            write_json_atomic(sidecar_path(path), data)
        except OSError as exc:
            log.error("cannot write the sidecar of %s: %s", path, exc)
            return False
        return True


def read_sidecar_json(audio: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_regular(sidecar_path(audio), limit=16 << 20))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
