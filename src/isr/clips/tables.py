"""Unit tables kept between clips: in memory, and in ``<recordings>/.isr/units.sqlite``.

A table costs one walk over its file (~0.1 s for an hour of MP3 from the page cache,
more from a cold disk); after that a clip of the file is planned in milliseconds. A
table is valid for the file it was walked from (same device and inode) while the
file is no shorter than what was walked: a file only grows while it is recorded, and
a grown file's table is extended from its last whole unit, never walked again from
the start. A file replaced or cut (crash repair) is walked afresh.

The SQLite file is a cache like the timeline index: deleting it loses nothing, a
damaged one is replaced, and where ``.isr/`` cannot be written the tables stay in
memory. It keeps the ``MAX_ROWS`` tables used last (a year of hourly recordings of
one source, for instance, once each was clipped). Uniform tables (WAV) need no walk
and are not kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from isr.clips.cutter import Cutter
from isr.clips.units import UnitTable
from isr.sinks.files import connect_sqlite

__all__ = ["MAX_ROWS", "TABLES_FILE", "UnitTables"]

log = logging.getLogger("isr.clips")

TABLES_FILE = "units.sqlite"
VERSION = 2
"""Tables of another version are walked again (the cutters' facts may differ; 2: Ogg
tables count packets from their first byte)."""
MAX_ROWS = 10_000
MEMORY = 48
"""Tables kept in memory (an hour of MP3 takes ~1 MB there)."""
TOUCH_SECONDS = 3600.0
"""A kept table's last use is written again at most this often."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    path TEXT PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    version INTEGER NOT NULL,
    used REAL NOT NULL,
    meta TEXT NOT NULL,
    sizes BLOB NOT NULL,
    samples BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS units_used ON units (used);
"""

Identity = tuple[int, int]


class UnitTables:
    """The tables of the recordings under ``root``; thread-safe, every call blocking."""

    def __init__(self, root: Path, *, persist: bool = True, memory: int = MEMORY) -> None:
        self.root = Path(root)
        self.path: Path | None = self.root / ".isr" / TABLES_FILE if persist else None
        self.memory = memory
        self._lock = threading.Lock()
        self._mem: OrderedDict[str, tuple[Identity, int, UnitTable]] = OrderedDict()
        self._conn: sqlite3.Connection | None = None
        self._db_failed = False
        self.walks = 0
        """Walks made (tests, benchmarks): a warm table needs none."""

    def get(self, name: str, cutter: Cutter, *, final: bool) -> UnitTable:
        """The table of the recording ``name`` (relative to the root), walked or
        extended now if it must be. ``final``: the file is no longer written."""
        path = self.root / name
        st = os.stat(path, follow_symlinks=False)
        ident = (st.st_dev, st.st_ino)
        size = st.st_size
        with self._lock:
            found = self._mem.get(name)
            if found is not None:
                self._mem.move_to_end(name)
        if found is None:
            found = self._load(name)
        previous: UnitTable | None = None
        if found is not None:
            f_ident, f_size, table = found
            if f_ident == ident and size == f_size and (table.final or not final):
                self._remember(name, ident, size, table, store=False)
                return table
            if f_ident == ident and size >= table.walked and not table.final:
                previous = table  # it grew: go on from its last whole unit
        table = cutter.walk(path, previous, final=final, name=name)
        self.walks += 1
        self._remember(name, ident, size, table, store=True)
        return table

    def _remember(
        self, name: str, ident: Identity, size: int, table: UnitTable, *, store: bool
    ) -> None:
        with self._lock:
            self._mem[name] = (ident, size, table)
            self._mem.move_to_end(name)
            while len(self._mem) > self.memory:
                self._mem.popitem(last=False)
        if store and table.count and not table.uniform:
            self._store(name, ident, size, table)

    # -- the SQLite file ---------------------------------------------------------------

    def _db(self) -> sqlite3.Connection | None:
        if self.path is None or self._db_failed:
            return None
        if self._conn is None:
            for attempt in range(2):
                try:
                    self.path.parent.mkdir(exist_ok=True)
                    conn = connect_sqlite(
                        self.path, timeout=5.0, check_same_thread=False, isolation_level=None
                    )
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.executescript(_SCHEMA)
                    self._conn = conn
                    break
                except sqlite3.DatabaseError as exc:
                    if attempt == 0 and _damaged(exc):
                        log.warning("%s is damaged (%s): starting it afresh", self.path, exc)
                        self._discard()
                        continue
                    log.warning("cannot keep unit tables in %s (%s): memory only", self.path, exc)
                    self._db_failed = True
                    return None
                except OSError as exc:
                    log.warning("cannot keep unit tables in %s (%s): memory only", self.path, exc)
                    self._db_failed = True
                    return None
        return self._conn

    def _discard(self) -> None:
        assert self.path is not None
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")

    def _load(self, name: str) -> tuple[Identity, int, UnitTable] | None:
        with self._lock:
            conn = self._db()
            if conn is None:
                return None
            try:
                row = conn.execute(
                    "SELECT dev, ino, size, version, used, meta, sizes, samples FROM units "
                    "WHERE path = ?",
                    (name,),
                ).fetchone()
                if row is None or row[3] != VERSION:
                    return None
                if time.time() - row[4] > TOUCH_SECONDS:
                    conn.execute("UPDATE units SET used = ? WHERE path = ?", (time.time(), name))
            except sqlite3.Error as exc:
                self._failed(exc)
                return None
        try:
            table = _decode(json.loads(row[5]), row[6], row[7])
        except (ValueError, KeyError, TypeError, zlib.error) as exc:
            log.warning("unit table of %s unreadable (%s): walking it again", name, exc)
            return None
        return (row[0], row[1]), row[2], table

    def _store(self, name: str, ident: Identity, size: int, table: UnitTable) -> None:
        meta, sizes, samples = _encode(table)
        with self._lock:
            conn = self._db()
            if conn is None:
                return
            try:
                conn.execute(
                    "INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, *ident, size, VERSION, time.time(), meta, sizes, samples),
                )
                (count,) = conn.execute("SELECT COUNT(*) FROM units").fetchone()
                if count > MAX_ROWS:
                    conn.execute(
                        "DELETE FROM units WHERE path IN "
                        "(SELECT path FROM units ORDER BY used LIMIT ?)",
                        (count - MAX_ROWS,),
                    )
            except sqlite3.Error as exc:
                self._failed(exc)

    def _failed(self, exc: sqlite3.Error) -> None:
        """A failed statement: a damaged file is replaced at the next use; any other
        failure (a full disk) leaves the tables in memory for now."""
        log.warning("unit tables in %s: %s", self.path, exc)
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if isinstance(exc, sqlite3.DatabaseError) and _damaged(exc):
            self._discard()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (11, 26)  # CORRUPT, NOTADB


def _encode(t: UnitTable) -> tuple[str, bytes, bytes]:
    meta: dict[str, Any] = {
        "cutter": t.cutter,
        "key": t.key,
        "describe": t.describe,
        "rate": t.rate,
        "data_start": t.data_start,
        "exact": t.exact,
        "walked": t.walked,
        "final": t.final,
        "facts": dict(t.facts),
    }
    pack = zlib.compress
    return (
        json.dumps(meta),
        pack(t.sizes.astype("<u4").tobytes(), 1),
        pack(t.samples.astype("<u4").tobytes(), 1),
    )


def _decode(meta: dict[str, Any], sizes: bytes, samples: bytes) -> UnitTable:
    s = np.frombuffer(zlib.decompress(sizes), dtype="<u4").astype(np.uint32)
    n = np.frombuffer(zlib.decompress(samples), dtype="<u4").astype(np.uint32)
    if len(s) != len(n):
        raise ValueError("sizes and samples differ in length")
    return UnitTable(
        str(meta["cutter"]),
        str(meta["key"]),
        str(meta["describe"]),
        int(meta["rate"]),
        int(meta["data_start"]),
        s,
        n,
        exact=bool(meta["exact"]),
        walked=int(meta["walked"]),
        final=bool(meta["final"]),
        facts=dict(meta["facts"]),
    )
