"""The durable upload queue: ``.isr/archive/queue.sqlite3``.

One row a file (its name as the chain names it), written by the uploader's thread
only: ``pending`` until the store has confirmed the object, then ``done`` (kept, so
that retention and ``delete_local_after_days`` know what the store holds), ``gone``
once ``delete_local_after_days`` removed the local copy, or ``lost`` when the file
vanished locally before it was uploaded (alerted). SQLite in WAL mode with
``synchronous = FULL``: a row committed survives a SIGKILL or a power cut, and a
reader in another thread (retention) never waits on the writer.

``chains`` holds how many bytes of each source's chain the store has.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from isr.sinks.files import connect_sqlite

QUEUE_PATH = Path(".isr") / "archive" / "queue.sqlite3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    name TEXT PRIMARY KEY,
    source TEXT,
    queued REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    sha256 TEXT,
    size INTEGER,
    end_ts REAL,
    confirmed REAL
);
CREATE INDEX IF NOT EXISTS files_state ON files (state, queued);
CREATE TABLE IF NOT EXISTS chains (source TEXT PRIMARY KEY, size INTEGER NOT NULL);
"""

PENDING, DONE, GONE, LOST = "pending", "done", "gone", "lost"


@dataclass
class Row:
    name: str
    source: str | None
    queued: float
    attempts: int


def connect(root: Path) -> sqlite3.Connection:
    path = root / QUEUE_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    db = connect_sqlite(path, timeout=30.0, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.executescript(SCHEMA)
    return db


def add(db: sqlite3.Connection, items: Iterable[tuple[str, str | None, float]]) -> int:
    """Queue files (name, source, queued at) not known yet; a file already done is
    queued again only if it was lost. Returns how many were added."""
    before = db.total_changes
    db.executemany(
        "INSERT INTO files (name, source, queued, state) VALUES (?, ?, ?, 'pending') "
        "ON CONFLICT (name) DO UPDATE SET state = 'pending', queued = excluded.queued, "
        "attempts = 0, next_try = 0 WHERE files.state = 'lost'",
        list(items),
    )
    return db.total_changes - before


def known(db: sqlite3.Connection) -> set[str]:
    return {name for (name,) in db.execute("SELECT name FROM files")}


def due(db: sqlite3.Connection, now: float, limit: int = 100) -> list[Row]:
    rows = db.execute(
        "SELECT name, source, queued, attempts FROM files "
        "WHERE state = 'pending' AND next_try <= ? ORDER BY queued LIMIT ?",
        (now, limit),
    )
    return [Row(*r) for r in rows]


def failed(db: sqlite3.Connection, name: str, error: str, next_try: float) -> None:
    db.execute(
        "UPDATE files SET attempts = attempts + 1, last_error = ?, next_try = ? WHERE name = ?",
        (error, next_try, name),
    )


def confirmed(
    db: sqlite3.Connection, name: str, sha256: str, size: int, end: float | None, at: float
) -> None:
    db.execute(
        "UPDATE files SET state = 'done', sha256 = ?, size = ?, end_ts = ?, confirmed = ?, "
        "last_error = NULL WHERE name = ?",
        (sha256, size, end, at, name),
    )


def set_state(db: sqlite3.Connection, name: str, state: str, error: str | None = None) -> None:
    db.execute("UPDATE files SET state = ?, last_error = ? WHERE name = ?", (state, error, name))


def waiting(db: sqlite3.Connection) -> tuple[int, float | None]:
    """How many files wait, and when the oldest was queued."""
    count, oldest = db.execute(
        "SELECT count(*), min(queued) FROM files WHERE state = 'pending'"
    ).fetchone()
    return int(count), oldest


def expired(db: sqlite3.Connection, before: float) -> list[tuple[str, str | None, int]]:
    """Confirmed files whose end is before ``before``: (name, source, size)."""
    rows = db.execute(
        "SELECT name, source, size FROM files WHERE state = 'done' AND end_ts < ? ORDER BY end_ts",
        (before,),
    )
    return [(n, s, int(z or 0)) for n, s, z in rows]


def archived(db: sqlite3.Connection, names: Iterable[str]) -> set[str]:
    """Those of ``names`` the store has confirmed."""
    out: set[str] = set()
    batch: list[str] = []
    for name in names:
        batch.append(name)
        if len(batch) == 500:
            out |= _archived(db, batch)
            batch = []
    if batch:
        out |= _archived(db, batch)
    return out


def _archived(db: sqlite3.Connection, names: list[str]) -> set[str]:
    marks = ",".join("?" * len(names))
    rows = db.execute(
        f"SELECT name FROM files WHERE state IN ('done', 'gone') AND name IN ({marks})", names
    )
    return {n for (n,) in rows}


def chain_size(db: sqlite3.Connection, source: str) -> int:
    row = db.execute("SELECT size FROM chains WHERE source = ?", (source,)).fetchone()
    return int(row[0]) if row else -1


def set_chain_size(db: sqlite3.Connection, source: str, size: int) -> None:
    db.execute(
        "INSERT INTO chains (source, size) VALUES (?, ?) "
        "ON CONFLICT (source) DO UPDATE SET size = excluded.size",
        (source, size),
    )
