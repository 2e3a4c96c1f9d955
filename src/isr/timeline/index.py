"""The index by time: every recording with its start, end, gaps and titles, in SQLite.

It lives at ``<recordings>/.isr/index.sqlite`` (WAL mode) and is a cache, nothing more:
everything in it comes from the audio files and their sidecars, so deleting it loses
nothing. It is built again from them when it is missing, when its schema version is
not this code's, and when it is damaged (a file SQLite cannot read, or one that fails
``PRAGMA quick_check``, is moved aside to ``index.sqlite.damaged`` and never read
again). The web UI keeps it, and so do ``isr timeline``, ``isr report`` and
the recorder (SQLite's locking orders them). Where ``.isr/`` cannot be written
the index is kept in memory instead. The recorder keeps one too, for the coverage of
each source's last 24 hours (``isr.evidence.watch``).

It follows the directory incrementally, through the web listing's scan
(:class:`isr.web.files.FileIndex`): a directory is listed again only when its mtime
moved, and each file's ``(size, mtime)`` and its sidecar's mtime are compared with the
rows, so only new, grown, changed and vanished files cost anything, and a sidecar is
read again only when it changed (a file that merely grew gets a new size and, while its
sidecar has no end, a new end). The files being recorded are re-statted on each
refresh, since a growing file moves no directory's mtime. The rows a query returns are
checked on disk, so a file deleted behind an unchanged directory mtime is dropped.

A file without a sidecar (or whose sidecar holds no source and start) is indexed under
no source, dated by its name (the default pattern ``%Y%m%d_%H%M%S``, else its mtime);
its duration is a WAV's from its header and size, and zero for other formats (reading
a compressed file's length would cost a decode or a header walk, and no timeline shows
a file of no source).

Schema (``SCHEMA_VERSION``; times are Unix seconds)::

    meta(key, value)                          schema version
    recordings(id, path UNIQUE, source, format, start_at, end_at, open, dated,
               size, mtime_ns, sidecar_mtime_ns, sha256, check_ok)
        index (source, start_at), index (source, end_at)
    gaps(recording, source, start_at, end_at, seconds, cause)   index (source, start_at)
    titles(recording, at, byte, title)                          index (recording, at)

``open`` is 1 while the sidecar has no end (being recorded, or cut by a crash): the end
is then the file's mtime. ``dated`` says where the start came from: ``sidecar``,
``name`` or ``mtime``. ``check_ok`` is the sidecar's ``check.ok`` (1 passed, 0 failed,
NULL not checked yet). Whether a file is being recorded is never stored: it comes from
the status file (or the recorder's lock) at each query.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo
from pathlib import Path
from typing import Any, TypeVar

from isr.errors import UnknownSource
from isr.formats import of_extension
from isr.sidecar import read_ledger
from isr.sinks.files import connect_sqlite
from isr.timeline.query import (
    Gap,
    Recording,
    SourceSummary,
    Timeline,
    Title,
    make_timeline,
    recorder_of,
)
from isr.web.files import FileIndex, Stat, being_recorded, start_from_name, wav_duration_of
from isr.web.recorder_status import RecorderStatus, read_status

log = logging.getLogger("isr.timeline")

__all__ = ["INDEX_FILE", "SCHEMA_VERSION", "IndexClosed", "Refreshed", "TimelineIndex"]

SCHEMA_VERSION = 3
"""1: the first; 2: each recording's SHA-256 from its sidecar; 3: its check's result."""
INDEX_FILE = "index.sqlite"
BUSY_SECONDS = 10.0
"""How long a write waits for another process (``isr timeline``, a second web UI)."""
WAL_LIMIT = 4 << 20
"""Bytes of WAL kept after a checkpoint."""
CHECKPOINT_AFTER = 1000
"""Rows written in one refresh after which the WAL is checkpointed and truncated."""
BATCH = 2000
"""Files written per transaction."""
CLOSE_CHECK_EVERY = 500
"""Files indexed between checks whether the index is being closed (a long first build
gives way to a shutdown)."""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE recordings (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    source TEXT,
    format TEXT,
    start_at REAL NOT NULL,
    end_at REAL NOT NULL,
    open INTEGER NOT NULL,
    dated TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sidecar_mtime_ns INTEGER,
    sha256 TEXT,
    check_ok INTEGER
);
CREATE INDEX recordings_source_start ON recordings (source, start_at);
CREATE INDEX recordings_source_end ON recordings (source, end_at);
CREATE TABLE gaps (
    recording INTEGER NOT NULL,
    source TEXT,
    start_at REAL NOT NULL,
    end_at REAL NOT NULL,
    seconds REAL NOT NULL,
    cause TEXT NOT NULL
);
CREATE INDEX gaps_source_start ON gaps (source, start_at);
CREATE INDEX gaps_recording ON gaps (recording);
CREATE TABLE titles (
    recording INTEGER NOT NULL,
    at REAL NOT NULL,
    byte INTEGER NOT NULL,
    title TEXT NOT NULL
);
CREATE INDEX titles_recording ON titles (recording, at);
"""

_ROW = (
    "r.path, r.source, r.format, r.start_at, r.end_at, r.size, r.mtime_ns, r.open, r.sha256, "
    "r.check_ok"
)

_DAMAGED = {11, 26}
"""SQLITE_CORRUPT, SQLITE_NOTADB: the file is not a database we can trust."""

T = TypeVar("T")


class IndexClosed(Exception):
    """The index was closed while a refresh ran (the web UI is stopping)."""


class _Unusable(Exception):
    """The file holds another schema version or is damaged: it is not used."""

    def __init__(self, why: str, *, damaged: bool, newer: bool = False) -> None:
        super().__init__(why)
        self.damaged = damaged
        self.newer = newer


def _is_damaged(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _DAMAGED


@dataclass(frozen=True)
class Refreshed:
    """What one refresh did."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class _Facts:
    """One recording's row, worked out from its file and sidecar."""

    source: str | None
    format: str | None
    start: float
    end: float
    open: bool
    dated: str
    gaps: list[tuple[float, float, float, str]]
    titles: list[tuple[float, int, str]]
    sha256: str | None = None
    check_ok: bool | None = None


def _folder(name: str) -> str:
    return name.rpartition("/")[0]


def _row(values: Sequence[Any]) -> Recording:
    path, source, fmt, start, end, size, mtime_ns, is_open, sha256, check_ok = values
    return Recording(
        path,
        source,
        fmt,
        start,
        end,
        size,
        mtime_ns,
        bool(is_open),
        sha256,
        check_ok=None if check_ok is None else bool(check_ok),
    )


class TimelineIndex:
    """The index of the recordings under ``root``; thread-safe, every call blocking.

    The web UI calls it from worker threads (``asyncio.to_thread``), never on its loop.
    ``files`` is the web listing's scanner when there is one (they share the scans).
    ``in_memory`` keeps no file at all (tests, a read-only archive).
    """

    def __init__(
        self,
        root: Path,
        tz: tzinfo,
        files: FileIndex | None = None,
        *,
        in_memory: bool = False,
        per_recorder: bool = False,
    ) -> None:
        """``per_recorder``: the first folder of every name is a recorder's (the web UI
        over the store), and one recorder's gaps that another's files hold are filled."""
        self.root = Path(root)
        self.per_recorder = per_recorder
        self.tz = tz
        self.files = files if files is not None else FileIndex(self.root)
        self.path: Path | None = None if in_memory else self.root / ".isr" / INDEX_FILE
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._closing = False
        self._known: dict[str, dict[str, Stat]] = {}
        """The rows' (size, mtime, sidecar mtime), by folder and name."""
        self._generations: dict[str, int] = {}
        self._hot: set[str] = set()
        self._longest: dict[str | None, float] = {}
        """Per source, the longest file and the longest gap (bounds the range scans)."""
        self._longest_gap: dict[str | None, float] = {}
        self.builds = 0
        """How many times the index was built from nothing (tests, logs)."""
        self.last_refresh = Refreshed()
        self._at_once = threading.local()
        """``status``: the status file as read on entering ``at_once`` (this thread's)."""

    # -- the database file -----------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closing:
            raise IndexClosed("the index is closed")
        if self._conn is None:
            self._conn = self._open()
            self._load()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            return self._in_memory()
        for _attempt in range(2):
            try:
                self.path.parent.mkdir(exist_ok=True)
                return self._open_file(self.path)
            except _Unusable as exc:
                if exc.newer:
                    log.warning("%s: %s; keeping the index in memory", self.path, exc)
                    return self._in_memory()
                self._discard(self.path, str(exc), keep=exc.damaged)
            except (OSError, sqlite3.Error) as exc:
                log.warning("cannot use %s (%s); keeping the index in memory", self.path, exc)
                return self._in_memory()
        return self._in_memory()

    def _in_memory(self) -> sqlite3.Connection:
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        conn.executescript(_SCHEMA)
        conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        self.builds += 1
        return conn

    def _open_file(self, path: Path) -> sqlite3.Connection:
        conn = connect_sqlite(
            path, timeout=BUSY_SECONDS, check_same_thread=False, isolation_level=None
        )
        try:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # a cache: a crash may lose the end
                conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    tables = {
                        r[0] for r in conn.execute("SELECT name FROM sqlite_master").fetchall()
                    }
                    if not tables:
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                conn.execute(statement)
                        conn.execute(
                            "INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                        )
                        self.builds += 1
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                if tables:
                    self._check(conn)
            except sqlite3.DatabaseError as exc:
                if _is_damaged(exc):
                    raise _Unusable(f"damaged ({exc})", damaged=True) from None
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _check(conn: sqlite3.Connection) -> None:
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.OperationalError as exc:  # no such table: not our file
            raise _Unusable(f"not an ISR index ({exc})", damaged=True) from None
        version = int(row[0]) if row and str(row[0]).isdigit() else -1
        if version > SCHEMA_VERSION:
            raise _Unusable(f"made by a newer ISR (schema {version})", damaged=False, newer=True)
        if version != SCHEMA_VERSION:
            raise _Unusable(f"schema {version}, not {SCHEMA_VERSION}", damaged=False)
        found = conn.execute("PRAGMA quick_check").fetchall()
        if found != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in found[:3])
            raise _Unusable(f"damaged (quick_check: {problems})", damaged=True)

    def _discard(self, path: Path, why: str, *, keep: bool) -> None:
        """Move a damaged file aside (one copy is kept), or remove a stale one."""
        if keep:
            log.warning("%s is %s: moved aside to %s.damaged, rebuilding", path, why, path.name)
            os.replace(path, path.with_name(path.name + ".damaged"))
        else:
            log.info("%s is %s: rebuilding it", path, why)
            path.unlink(missing_ok=True)
        for extra in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                path.with_name(path.name + extra).unlink()

    def _load(self) -> None:
        """The rows' facts into memory, to compare with the directory scan."""
        assert self._conn is not None
        known: dict[str, dict[str, Stat]] = {}
        for path, size, mtime_ns, side_ns in self._conn.execute(
            "SELECT path, size, mtime_ns, sidecar_mtime_ns FROM recordings"
        ):
            known.setdefault(_folder(path), {})[path] = Stat(size, mtime_ns, side_ns)
        self._known = known
        self._generations = {}
        self._longest = dict(
            self._conn.execute(
                "SELECT source, MAX(end_at - start_at) FROM recordings GROUP BY source"
            ).fetchall()
        )
        self._longest_gap = dict(
            self._conn.execute(
                "SELECT source, MAX(end_at - start_at) FROM gaps GROUP BY source"
            ).fetchall()
        )

    def _reset(self) -> None:
        """Forget the connection: the next call opens (and checks) the file again."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None
        self._known, self._generations = {}, {}

    def _guarded(self, work: Callable[[], T]) -> T:
        """``work()``; when SQLite finds the file damaged meanwhile, the file is set
        aside and ``work`` runs once more on a fresh index."""
        try:
            return work()
        except sqlite3.DatabaseError as exc:
            if not _is_damaged(exc) or self.path is None:
                raise
            log.warning("%s turned out damaged (%s)", self.path, exc)
            self._reset()
            with contextlib.suppress(OSError):
                self._discard(self.path, "damaged", keep=True)
            return work()

    def close(self) -> None:
        """Stop: a refresh under way gives up (its work is rolled back) and the
        database is closed. Blocks until then; safe to call twice."""
        self._closing = True
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    # -- keeping it fresh ------------------------------------------------------

    @contextlib.contextmanager
    def at_once(self) -> Iterator[None]:
        """Within, this thread's ``timeline`` and ``sources`` questions share one
        reading of the status file and one refresh, made on entering: the coverage of
        every source, asked one after another. A refresh per question stats every
        folder and re-reads the status file each time (with 100 sources, 100 times
        over: the recorder's coverage watch cost more CPU than recording them)."""
        if getattr(self._at_once, "status", None) is not None:
            yield  # already within
            return
        status = read_status(self.root)
        with self._lock:
            self.refresh(set(status.recording))
        self._at_once.status = status
        try:
            yield
        finally:
            self._at_once.status = None

    def _status(self) -> tuple[RecorderStatus, bool]:
        """The status file as ``at_once`` read it (True: the index was refreshed
        then), else read now (False: refresh it)."""
        status: RecorderStatus | None = getattr(self._at_once, "status", None)
        if status is not None:
            return status, True
        return read_status(self.root), False

    def refresh(self, hot: Iterable[str] | None = None) -> Refreshed:
        """Bring the index up to date with the directory (the first call builds it).

        ``hot`` names the files being recorded (default: the status file's).
        """
        names = set(hot) if hot is not None else set(read_status(self.root).recording)
        with self._lock:
            result = self._guarded(lambda: self._refresh(names))
            self.last_refresh = result
            return result

    def _refresh(self, hot: set[str]) -> Refreshed:
        began = time.monotonic()
        conn = self._connection()
        first = not self._generations
        changes = self.files.changes(self._generations, hot=hot, names=hot | self._hot)
        gone: set[str] = set()
        fresh: dict[str, Stat] = {}
        for rel in self._known.keys() - changes.generations.keys():
            gone.update(self._known[rel])
        for rel, entries in changes.directories.items():
            old = self._known.get(rel, {})
            gone.update(old.keys() - entries.keys())
            fresh.update((n, s) for n, s in entries.items() if old.get(n) != s)
        for name, st in changes.named.items():
            if st is not None and self._known.get(_folder(name), {}).get(name) != st:
                fresh[name] = st
        added = sum(1 for n in fresh if n not in self._known.get(_folder(n), {}))
        if gone or fresh:
            self._write(conn, gone, fresh)
        self._generations = changes.generations
        self._hot = hot
        done = Refreshed(added, len(fresh) - added, len(gone), time.monotonic() - began)
        if first and (fresh or gone):
            log.info(
                "timeline index: %d recordings indexed, %d dropped in %.1f s",
                len(fresh),
                len(gone),
                done.seconds,
            )
        return done

    def _write(self, conn: sqlite3.Connection, gone: set[str], fresh: dict[str, Stat]) -> None:
        """Apply the changes, ``BATCH`` files a transaction: a long first build lets
        another writer (``isr timeline``) in between, and what was committed before a
        stop is kept. The rows' facts in memory follow each commit."""
        todo = sorted(fresh.items())
        for at in range(0, max(len(todo), 1), BATCH):
            batch = todo[at : at + BATCH]
            first = at == 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                for name in gone if first else ():
                    self._delete(conn, name)
                for i, (name, st) in enumerate(batch):
                    if i % CLOSE_CHECK_EVERY == 0 and self._closing:
                        raise IndexClosed("the index was closed during a refresh")
                    old = self._known.get(_folder(name), {}).get(name)
                    if self._grown(conn, name, old, st):
                        continue
                    self._delete(conn, name)
                    self._insert(conn, name, st, self._facts(name, st))
                    # Hand the GIL over after each file: the web UI's event loop (the
                    # recorder's too, in `isr run`) takes it back at once rather than
                    # after the interpreter's 5 ms switch interval, again and again.
                    time.sleep(0)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            if first:
                for name in gone:
                    folder = self._known.get(_folder(name))
                    if folder is not None:
                        folder.pop(name, None)
                        if not folder:
                            del self._known[_folder(name)]
            for name, st in batch:
                self._known.setdefault(_folder(name), {})[name] = st
        if len(fresh) + len(gone) >= CHECKPOINT_AFTER:
            # A big write (the first build) leaves a WAL as large as the database:
            # copy it in and cut it back now rather than keep both on disk.
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @staticmethod
    def _grown(conn: sqlite3.Connection, name: str, old: Stat | None, st: Stat) -> bool:
        """Update a row whose sidecar did not change (the file grew): True if done."""
        if old is None or st.sidecar_mtime_ns is None:
            return False
        if old.sidecar_mtime_ns != st.sidecar_mtime_ns:
            return False
        cur = conn.execute(
            "UPDATE recordings SET size = ?, mtime_ns = ?, "
            "end_at = CASE WHEN open THEN max(start_at, ?) ELSE end_at END "
            "WHERE path = ? AND dated = 'sidecar'",
            (st.size, st.mtime_ns, st.mtime_ns / 1e9, name),
        )
        return cur.rowcount == 1

    @staticmethod
    def _delete(conn: sqlite3.Connection, name: str) -> None:
        row = conn.execute("SELECT id FROM recordings WHERE path = ?", (name,)).fetchone()
        if row is None:
            return
        conn.execute("DELETE FROM gaps WHERE recording = ?", row)
        conn.execute("DELETE FROM titles WHERE recording = ?", row)
        conn.execute("DELETE FROM recordings WHERE id = ?", row)

    def _insert(self, conn: sqlite3.Connection, name: str, st: Stat, f: _Facts) -> None:
        cur = conn.execute(
            "INSERT INTO recordings (path, source, format, start_at, end_at, open, dated, "
            "size, mtime_ns, sidecar_mtime_ns, sha256, check_ok) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                f.source,
                f.format,
                f.start,
                f.end,
                int(f.open),
                f.dated,
                st.size,
                st.mtime_ns,
                st.sidecar_mtime_ns,
                f.sha256,
                None if f.check_ok is None else int(f.check_ok),
            ),
        )
        rid = cur.lastrowid
        if f.gaps:
            conn.executemany(
                "INSERT INTO gaps VALUES (?, ?, ?, ?, ?, ?)",
                [(rid, f.source, *g) for g in f.gaps],
            )
            self._longest_gap[f.source] = max(
                self._longest_gap.get(f.source) or 0.0, *(g[1] - g[0] for g in f.gaps)
            )
        if f.titles:
            conn.executemany(
                "INSERT INTO titles VALUES (?, ?, ?, ?)", [(rid, *t) for t in f.titles]
            )
        self._longest[f.source] = max(self._longest.get(f.source) or 0.0, f.end - f.start)

    def _facts(self, name: str, st: Stat) -> _Facts:
        path = os.path.join(self.root, name)  # a str: pathlib costs, over a year of files
        ledger = read_ledger(path) if st.sidecar_mtime_ns is not None else None
        mtime = st.mtime_ns / 1e9
        fmt = of_extension(os.path.splitext(name)[1])
        if ledger is not None:
            start = ledger.start
            is_open = ledger.end is None
            ok = ledger.check.get("ok") if ledger.check is not None else None
            end = max(start, mtime if ledger.end is None else ledger.end)
            return _Facts(
                source=ledger.source,
                format=ledger.format or (fmt.name if fmt else None),
                start=start,
                end=end,
                open=is_open,
                dated="sidecar",
                gaps=[
                    (start + g.at - g.seconds, start + g.at, g.seconds, g.cause)
                    for g in ledger.gaps
                ],
                titles=[(start + t.at, t.byte, t.title) for t in ledger.titles],
                sha256=ledger.sha256,
                check_ok=ok if type(ok) is bool else None,
            )
        duration = 0.0
        if name.lower().endswith(".wav"):
            duration = wav_duration_of(Path(path), st.size) or 0.0
        named = start_from_name(name, self.tz)
        dated = "name" if named is not None else "mtime"
        start = named if named is not None else mtime - duration
        return _Facts(
            source=None,
            format=fmt.name if fmt else None,
            start=start,
            end=start + duration,
            open=False,
            dated=dated,
            gaps=[],
            titles=[],
        )

    # -- questions -------------------------------------------------------------

    def overlapping(self, source: str | None, t0: float, t1: float) -> list[Recording]:
        """The files of ``source`` that overlap ``[t0, t1)``, by start, each with
        ``recording`` set: what a clip planner reads. Refreshes first. ``None`` asks
        for the files of no source (without a sidecar)."""
        status = read_status(self.root)
        hot = set(status.recording)
        with self._lock:
            self.refresh(hot)
            rows = self._guarded(lambda: self._overlapping(source, t0, t1))
        return self._mark(rows, hot, alive=status.alive)

    def timeline(self, source: str, t0: float, t1: float, *, titles: bool = True) -> Timeline:
        """What was recorded of ``source`` in ``[t0, t1)``; UnknownSource when it has
        no recording at all. Refreshes first. ``titles=False`` leaves the titles out
        (coverage needs none, and weeks of them cost)."""
        status, fresh = self._status()
        hot = set(status.recording)
        with self._lock:
            if not fresh:
                self.refresh(hot)

            def ask() -> tuple[list[Recording], list[Recording], list[Gap], list[Title]]:
                if not self._has(source):
                    raise UnknownSource(f"no recordings of source {source!r}")
                rows = self._overlapping(source, t0, t1)
                near = self._near(source, t0, t1, titles=titles)
                return rows, self._neighbours(source, t0, t1), *near

            rows, neighbours, gaps, found = self._guarded(ask)
        marked = self._mark(rows, hot, alive=status.alive)
        return make_timeline(
            source,
            t0,
            t1,
            marked,
            neighbours=neighbours,
            gaps=gaps,
            titles=found,
            recording={r.path for r in marked if r.recording},
            recorder=recorder_of if self.per_recorder else None,
        )

    def sources(self) -> list[SourceSummary]:
        """Every source with recordings: its latest format, first start, last end, and
        whether it is being recorded. Refreshes first."""
        status, fresh = self._status()
        hot = set(status.recording)
        with self._lock:
            if not fresh:
                self.refresh(hot)
            found = self._guarded(self._sources)
        now = time.time()
        writing = status.writing
        return [
            replace(
                s,
                recording=s.name in writing
                or being_recorded(
                    self.root, latest.path, latest.mtime_ns / 1e9, hot, now, alive=status.alive
                ),
            )
            for s, latest in found
        ]

    def _has(self, source: str) -> bool:
        conn = self._connection()
        found = conn.execute("SELECT 1 FROM recordings WHERE source = ? LIMIT 1", (source,))
        return found.fetchone() is not None

    def _overlapping(self, source: str | None, t0: float, t1: float) -> list[Recording]:
        conn = self._connection()
        longest = self._longest.get(source) or 0.0
        rows = [
            _row(v)
            for v in conn.execute(
                f"SELECT {_ROW} FROM recordings AS r WHERE source IS ? AND start_at < ? "
                "AND start_at >= ? AND end_at >= ? ORDER BY start_at, path",
                (source, t1, t0 - longest - 1.0, t0),
            )
        ]
        rows = [r for r in rows if r.end > t0 or (r.start == r.end == t0)]
        return self._existing(conn, rows)

    def _existing(self, conn: sqlite3.Connection, rows: list[Recording]) -> list[Recording]:
        """The rows whose files are still there; the others are forgotten now (a
        deletion behind an unchanged directory mtime, an NFS cache)."""
        kept = []
        for r in rows:
            try:
                os.stat(os.path.join(self.root, r.path), follow_symlinks=False)
            except FileNotFoundError:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._delete(conn, r.path)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                self._known.get(_folder(r.path), {}).pop(r.path, None)
                self.files.forget(r.path)
                continue
            except OSError:
                pass
            kept.append(r)
        return kept

    def _neighbours(self, source: str, t0: float, t1: float) -> list[Recording]:
        """The last file that ends at or before ``t0`` and the first that starts at or
        after ``t1``: holes at the span's edges are found with them."""
        conn = self._connection()
        out = []
        for sql, arg in (
            (
                f"SELECT {_ROW} FROM recordings AS r WHERE source = ? AND end_at <= ? "
                "ORDER BY end_at DESC LIMIT 1",
                t0,
            ),
            (
                f"SELECT {_ROW} FROM recordings AS r WHERE source = ? AND start_at >= ? "
                "ORDER BY start_at LIMIT 1",
                t1,
            ),
        ):
            found = conn.execute(sql, (source, arg)).fetchone()
            if found is not None:
                out.append(_row(found))
        return out

    def _near(
        self, source: str, t0: float, t1: float, *, titles: bool = True
    ) -> tuple[list[Gap], list[Title]]:
        """The sidecar gaps that overlap ``[t0, t1)`` and the titles, before ``t1``,
        of the files that overlap it (none without ``titles``)."""
        conn = self._connection()
        longest = self._longest_gap.get(source) or 0.0
        gaps = [
            Gap(a, b, seconds, cause, path)
            for a, b, seconds, cause, path in conn.execute(
                "SELECT g.start_at, g.end_at, g.seconds, g.cause, r.path FROM gaps AS g "
                "JOIN recordings AS r ON r.id = g.recording WHERE g.source = ? "
                "AND g.start_at < ? AND g.start_at >= ? AND g.end_at > ?",
                (source, t1, t0 - longest - 1.0, t0),
            )
        ]
        if not titles:
            return gaps, []
        longest = self._longest.get(source) or 0.0
        found = [
            Title(at, title, path)
            for at, title, path in conn.execute(
                "SELECT t.at, t.title, r.path FROM recordings AS r "
                "JOIN titles AS t ON t.recording = r.id WHERE r.source = ? "
                "AND r.start_at < ? AND r.start_at >= ? AND r.end_at >= ? AND t.at < ?",
                (source, t1, t0 - longest - 1.0, t0, t1),
            )
        ]
        return gaps, found

    def _sources(self) -> list[tuple[SourceSummary, Recording]]:
        conn = self._connection()
        names = [
            n
            for (n,) in conn.execute(
                "WITH RECURSIVE s(name) AS ("
                " SELECT MIN(source) FROM recordings WHERE source IS NOT NULL"
                " UNION ALL SELECT (SELECT MIN(source) FROM recordings WHERE source > s.name)"
                " FROM s WHERE s.name IS NOT NULL) "
                "SELECT name FROM s WHERE name IS NOT NULL"
            )
        ]
        out = []
        for name in names:
            first = conn.execute(
                "SELECT start_at FROM recordings WHERE source = ? ORDER BY start_at LIMIT 1",
                (name,),
            ).fetchone()
            last = conn.execute(
                f"SELECT {_ROW} FROM recordings AS r WHERE source = ? ORDER BY end_at DESC LIMIT 1",
                (name,),
            ).fetchone()
            if first is None or last is None:
                continue
            latest = _row(last)
            out.append((SourceSummary(name, latest.format, first[0], latest.end), latest))
        return out

    def _mark(self, rows: list[Recording], hot: set[str], *, alive: bool) -> list[Recording]:
        now = time.time()
        return [
            replace(r, recording=True)
            if being_recorded(self.root, r.path, r.mtime_ns / 1e9, hot, now, alive=alive)
            else r
            for r in rows
        ]
