"""The store seen as a recordings directory, for ``isr web --archive``.

The web UI reads a directory: its listing, timeline, coverage and clips read names,
sizes, times and sidecars. The mirror keeps such a directory (a cache of its own) for
every recording under the store's prefix, from every recorder, named
``<recorder id>/<relative path>`` as DESIGN.md says. Each sidecar is a copy of its
object, each recorder's chain a copy of its chain objects (grown by ranged GETs of
their new tails), and each audio file a *placeholder*: a sparse file of the object's
size and time that holds no data (and no disk) until the file is needed whole, for an
analysis or a clip, when :meth:`StoreMirror.local` fetches the object, checks it
against the SHA-256 its recorder computed and puts it in the placeholder's place.
Playing or downloading a file that is not here is a ranged GET passed through
(:meth:`StoreMirror.open`): the first second plays without fetching an hour.

A refresh lists the prefix once (1,000 keys a request) and touches only what changed
since the last: an object whose ETag is the same costs nothing more, so the pages
never wait on the store, and a restart of the web UI fetches nothing it already
holds. What the mirror knows of each object sits in ``.isr/mirror.sqlite3``.

Fetched files count against ``cache_bytes``; beyond it, the least recently used go
back to being placeholders (replaced, never truncated in place, so a reader that
has one open keeps its bytes; none used in the last ``PIN_SECONDS``). Everything
here blocks: the web UI calls it in worker threads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from isr.archive.store import Got, Listed, Store, StoreError, describe_error
from isr.sidecar import read_ledger
from isr.web.paths import is_audio

log = logging.getLogger("isr.archive.mirror")

STATE_FILE = ".isr/mirror.sqlite3"
DEFAULT_CACHE_BYTES = 4 << 30
PIN_SECONDS = 3 * 3600.0
"""A file fetched or read this recently stays (a clip or an analysis may be reading
it by its path, a long clip for a long time): the cache may outgrow its size for
that long."""
MAX_CHAIN_TAIL = 64 << 20
"""More new bytes than this at once is not a chain that grew (a year of one source's
lines is ~3 MB)."""
CHUNK = 256 * 1024
FETCHERS = 8
"""Sidecars and chains fetched at once by a refresh."""
MAX_SIDECAR = 16 << 20
"""A sidecar larger than this is not a sidecar (a year of titles is ~2 MB)."""

AUDIO, SIDECAR, CHAIN = "audio", "sidecar", "chain"


class NotInStore(FileNotFoundError):
    """The name is no recording the mirror knows (a 404, as a file deleted meanwhile)."""


@dataclass(frozen=True)
class Refreshed:
    objects: int
    """Objects listed that the mirror keeps."""
    changed: int
    """Objects new or changed since the last refresh (fetched or placeheld)."""
    gone: int
    seconds: float


def kind_of(name: str) -> str | None:
    """What a name under the prefix is to the mirror (None: not kept).

    ``<recorder>/<path to audio>``, its ``.json`` sidecar, or
    ``<recorder>/.isr/chain/<source>.jsonl``. Keys come from the store, which anyone
    with write access to it fills: a name that could step outside the mirror, or
    that no file system or URL could carry, is not kept.
    """
    parts = name.split("/")
    if len(parts) < 2 or not all(_safe_segment(p) for p in parts):
        return None
    if parts[0].startswith("."):
        return None  # the mirror's own .isr/
    if parts[1] == ".isr":
        if len(parts) == 4 and parts[2] == "chain" and parts[3].endswith(".jsonl"):
            return CHAIN
        return None
    if any(p.startswith(".") for p in parts):
        return None  # hidden: the listing would not show it
    last = parts[-1]
    if is_audio(last):
        return AUDIO
    if last.endswith(".json") and is_audio(last[: -len(".json")]):
        return SIDECAR
    return None


def _safe_segment(seg: str) -> bool:
    return (
        seg not in ("", ".", "..")
        and len(seg.encode("utf-8", "surrogatepass")) <= 255
        and not any(ord(c) < 32 or ord(c) == 127 or c == "\\" for c in seg)
    )


class StoreMirror:
    def __init__(self, store: Store, root: Path, *, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.store = store
        self.root = Path(root)
        self.cache_bytes = cache_bytes
        (self.root / ".isr").mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / STATE_FILE, check_same_thread=False)
        # A lost commit costs a refetch at most: no fsync per object (a first view of
        # a year of files records 175,200 of them).
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (name TEXT PRIMARY KEY, kind TEXT NOT NULL,"
            " etag TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
            " fetched INTEGER NOT NULL DEFAULT 0, used REAL NOT NULL DEFAULT 0)"
        )
        self._db.commit()
        self._db_lock = threading.Lock()
        self._name_locks: dict[str, threading.Lock] = {}
        self._fetch_locks: dict[str, threading.Lock] = {}
        self._forget_emptied()
        self._refresh_lock = threading.Lock()
        self.refreshes = 0

    def _forget_emptied(self) -> None:
        """A file noted as fetched whose blocks are gone (a crash between a placeholder
        and its note, on a file system that lost a write) is a placeholder again."""
        for name, size in self._query(
            "SELECT name, size FROM objects WHERE kind = ? AND fetched = 1", (AUDIO,)
        ):
            try:
                emptied = size > 0 and self.path(name).stat().st_blocks == 0
            except OSError:
                emptied = True
            if emptied:
                self._mark(name, fetched=False)

    def close(self) -> None:
        with self._db_lock:
            self._db.close()

    # -- the database ------------------------------------------------------------

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._db_lock:
            return self._db.execute(sql, args).fetchall()

    def _change(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._db_lock:
            self._db.executemany(sql, rows)
            self._db.commit()

    def _lock(self, name: str) -> threading.Lock:
        with self._db_lock:
            return self._name_locks.setdefault(name, threading.Lock())

    def path(self, name: str) -> Path:
        return self.root.joinpath(*name.split("/"))

    # -- refreshing --------------------------------------------------------------

    def refresh(self) -> Refreshed:
        """List the store once and bring the directory to what it holds."""
        with self._refresh_lock:
            return self._refresh()

    def _refresh(self) -> Refreshed:
        began = time.monotonic()
        listed: dict[str, Listed] = {}
        for obj in self.store.listing():
            if kind_of(obj.name) is not None:
                listed[obj.name] = obj
        known = {
            name: (kind, etag, size)
            for name, kind, etag, size in self._query("SELECT name, kind, etag, size FROM objects")
        }
        gone = [name for name in known if name not in listed]
        for name in gone:
            self._remove(name)
        changed = [o for name, o in listed.items() if known.get(name, (0, None))[1] != o.etag]
        fetched = [o for o in changed if kind_of(o.name) != AUDIO]
        audio = [o for o in changed if kind_of(o.name) == AUDIO]

        def mirror(obj: Listed) -> bool:
            try:
                if kind_of(obj.name) == SIDECAR:
                    self._fetch_sidecar(obj)
                elif kind_of(obj.name) == CHAIN:
                    old = known.get(obj.name)
                    self._fetch_chain(obj, old[2] if old is not None else 0)
                elif not self._placehold(obj):
                    return False
            except (StoreError, OSError) as exc:
                log.warning("store: %s not mirrored: %s", obj.name, exc)
                return False
            return True

        # Sidecars first (a placeholder takes its time from its sidecar's end), several
        # at once: the first view of a year of files is 87,600 small GETs, each a
        # round trip to the store.
        with ThreadPoolExecutor(FETCHERS, thread_name_prefix="isr-mirror") as pool:
            done = sum(pool.map(mirror, fetched))
        done += sum(map(mirror, audio))
        self.refreshes += 1
        return Refreshed(len(listed), done, len(gone), time.monotonic() - began)

    def _remove(self, name: str) -> None:
        with self._lock(name):
            try:
                self.path(name).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("store: cannot remove the copy of %s: %s", name, exc)
                return
            self._change("DELETE FROM objects WHERE name = ?", [(name,)])

    def _record(self, obj: Listed, kind: str, mtime_ns: int, fetched: bool) -> None:
        self._change(
            "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(obj.name, kind, obj.etag, obj.size, mtime_ns, int(fetched), time.time())],
        )

    def _fetch_sidecar(self, obj: Listed) -> None:
        if obj.size > MAX_SIDECAR:
            raise StoreError(f"{obj.size} bytes is too large for a sidecar")
        data = self._read_all(obj.name)
        path = self.path(obj.name)
        _install(path, data, int(obj.modified * 1e9))
        self._record(obj, SIDECAR, int(obj.modified * 1e9), True)

    def _fetch_chain(self, obj: Listed, held: int) -> None:
        """A chain only grows: fetch the bytes after those held (all, if it shrank)."""
        path = self.path(obj.name)
        try:
            have = path.stat().st_size
        except FileNotFoundError:
            have = 0
        if have != held or obj.size < held:
            have = 0
        if obj.size > have:
            if obj.size - have > MAX_CHAIN_TAIL:
                raise StoreError(f"{obj.size - have} new bytes is too much for a chain")
            tail = self._read_all(obj.name, have)
            if have:
                with path.open("r+b") as f:
                    f.seek(have)
                    f.write(tail)
                    f.truncate()
            else:
                _install(path, tail, int(obj.modified * 1e9))
        self._record(obj, CHAIN, int(obj.modified * 1e9), True)

    def _placehold(self, obj: Listed) -> bool:
        """A placeholder for a new or changed object; False (left for the next
        refresh) while a fetched copy of its old version is in use."""
        path = self.path(obj.name)
        ledger = read_ledger(path)
        end = ledger.end if ledger is not None and ledger.end is not None else obj.modified
        mtime_ns = int(end * 1e9)
        with self._lock(obj.name):
            now = self._query("SELECT fetched, used FROM objects WHERE name = ?", (obj.name,))
            if now and now[0][0] and now[0][1] > time.time() - PIN_SECONDS:
                return False
            self._record(obj, AUDIO, mtime_ns, False)
            _placeholder(path, obj.size, mtime_ns)
        return True

    def _read_all(self, name: str, first: int | None = None) -> bytes:
        got = self.store.get(name, first)
        try:
            return b"".join(_chunks(got, name, got.length))
        finally:
            got.body.close()

    # -- reading -----------------------------------------------------------------

    def _row(self, name: str) -> tuple[int, int, int]:
        rows = self._query(
            "SELECT size, mtime_ns, fetched FROM objects WHERE name = ? AND kind = ?",
            (name, AUDIO),
        )
        if not rows:
            raise NotInStore(name)
        size, mtime_ns, fetched = rows[0]
        return int(size), int(mtime_ns), int(fetched)

    def is_local(self, name: str) -> bool:
        """Whether the file's bytes are here (else its copy is a placeholder)."""
        return self._row(name)[2] == 1

    def local(self, name: str) -> Path:
        """The file, fetched whole if it is not here yet: checked against the SHA-256
        its recorder computed (StoreError if the store's copy differs). It stays for
        at least ``PIN_SECONDS``. The download holds only this name's fetch lock:
        a reader of the name (:meth:`open`) never waits for it."""
        with self._fetching(name):
            size, mtime_ns, fetched = self._row(name)
            path = self.path(name)
            if not fetched:
                tmp = self._download(name, path, size, mtime_ns)
                try:
                    with self._lock(name):
                        if self._row(name)[:2] != (size, mtime_ns):
                            raise StoreError(f"{name} changed in the store meanwhile")
                        os.replace(tmp, path)
                        self._mark(name, fetched=True)
                finally:
                    tmp.unlink(missing_ok=True)
                log.info("store: fetched %s (%d bytes)", name, size)
            else:
                with self._lock(name):
                    self._mark(name, fetched=True)
        self._evict(keep=name)
        return path

    def _mark(self, name: str, *, fetched: bool) -> None:
        """Fetched (and used now), or a placeholder again."""
        if fetched:
            self._change(
                "UPDATE objects SET fetched = 1, used = ? WHERE name = ?", [(time.time(), name)]
            )
        else:
            self._change("UPDATE objects SET fetched = 0 WHERE name = ?", [(name,)])

    def _fetching(self, name: str) -> threading.Lock:
        with self._db_lock:
            return self._fetch_locks.setdefault(name, threading.Lock())

    def _download(self, name: str, path: Path, size: int, mtime_ns: int) -> Path:
        """The object in a temporary file beside ``path``, checked and synced."""
        ledger = read_ledger(path)
        got = self.store.get(name)
        expected = got.sha256 or (ledger.sha256 if ledger is not None else None)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        h = hashlib.sha256()
        n = 0
        try:
            with tmp.open("xb") as out:
                for chunk in _chunks(got, name, size):
                    h.update(chunk)
                    out.write(chunk)
                    n += len(chunk)
                out.flush()
                os.fsync(out.fileno())  # "fetched" must never name a file a crash emptied
            if n != size:
                raise StoreError(f"{name}: the store sent {n} bytes of {size}")
            if expected is not None and h.hexdigest() != expected:
                raise StoreError(
                    f"{name}: the store's copy has SHA-256 {h.hexdigest()}, "
                    f"its recorder computed {expected}"
                )
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            got.body.close()
        return tmp

    def _evict(self, keep: str) -> None:
        rows = self._query(
            "SELECT name, size, mtime_ns, used FROM objects WHERE kind = ? AND fetched = 1"
            " ORDER BY used DESC",
            (AUDIO,),
        )
        total = 0
        for name, size, mtime_ns, _ in rows:
            total += size
            if total <= self.cache_bytes or name == keep:
                continue
            with self._lock(name):
                # Asked again under the lock: a local() or open() since the snapshot
                # may have just handed the file out.
                now = self._query("SELECT fetched, used FROM objects WHERE name = ?", (name,))
                if not now or not now[0][0] or now[0][1] > time.time() - PIN_SECONDS:
                    continue
                self._mark(name, fetched=False)  # first: a crash leaves it refetched
                _placeholder(self.path(name), size, mtime_ns)

    def open(self, name: str, first: int, last: int) -> Generator[bytes, None, None]:
        """Bytes ``first..last`` (inclusive) of a file, from here if it is here, else
        by a ranged GET. The generator must be closed (it holds a file or a
        connection). A file here is opened at once: an eviction meanwhile replaces
        the name, not the bytes this reads."""
        with self._lock(name):
            fetched = self._row(name)[2]
            f = self.path(name).open("rb") if fetched else None
            if fetched:
                self._mark(name, fetched=True)  # in use: not evicted for a while
        if f is not None:
            return _read_local(f, first, last)
        return _read_remote(self.store, name, first, last)


def _read_local(f: BinaryIO, first: int, last: int) -> Generator[bytes, None, None]:
    with f:
        f.seek(first)
        left = last - first + 1
        while left > 0 and (chunk := f.read(min(CHUNK, left))):
            left -= len(chunk)
            yield chunk


def _read_remote(store: Store, name: str, first: int, last: int) -> Generator[bytes, None, None]:
    """Exactly the bytes asked for, or StoreError before the first (an object
    replaced since the listing must not break the length the response promised)."""
    got = store.get(name, first, last)
    try:
        yield from _chunks(got, name, last - first + 1)
    finally:
        got.body.close()


def _chunks(got: Got, name: str, length: int) -> Generator[bytes, None, None]:
    """``length`` bytes of a GET's body; a length that differs, or a body that breaks
    off, is a StoreError (botocore's read errors are not OSErrors)."""
    if got.length != length:
        raise StoreError(f"{name}: the store has {got.length} bytes where {length} were listed")
    left = length
    while left > 0:
        try:
            chunk = got.body.read(min(CHUNK, left))
        except Exception as exc:
            raise StoreError(f"{name}: {describe_error(exc)}") from exc
        if not chunk:
            raise StoreError(f"{name}: the store's answer broke off {left} bytes short")
        left -= len(chunk)
        yield chunk


def _install(path: Path, data: bytes, mtime_ns: int) -> None:
    """Write ``data`` at ``path`` whole or not at all."""
    _replace(path, lambda f: f.write(data), mtime_ns)


def _placeholder(path: Path, size: int, mtime_ns: int) -> None:
    """A sparse file of ``size`` bytes in ``path``'s place (a new inode: whoever has
    the old one open keeps reading its bytes)."""
    _replace(path, lambda f: f.truncate(size), mtime_ns)


def _replace(path: Path, fill: Callable[[BinaryIO], object], mtime_ns: int) -> None:
    """A new file at ``path``: ``fill`` writes a temporary one beside it, which then
    takes the name (a reader sees the old file or the new, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        with tmp.open("xb") as f:
            fill(f)
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
