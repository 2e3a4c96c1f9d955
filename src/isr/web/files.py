"""The listing of recordings: scanned once, cached per directory, paged on the server.

A year of hourly files from ten sources is 87,600 files. Statting them all on every
page view would cost most of a second, so each directory's scan is kept with the
directory's mtime: a file created, renamed or deleted changes its directory's mtime,
and only that directory is scanned again (and only its entries that changed are moved
in the sorted list). What a directory mtime does not reveal is a file growing, so the
files the recorder reports as being written ("hot") are re-statted on each call.
Sidecars and WAV headers are read only for the rows of the page being shown.

Each entry also carries its sidecar's mtime, and each directory a generation that
changes with its entries, so that the timeline index (``isr.timeline.index``) follows
the same scans instead of making its own (:meth:`FileIndex.changes`).
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import re
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, NamedTuple

from isr.sinks.files import is_locked
from isr.timeline.times import local_instant
from isr.web.paths import is_audio

LOCK_CHECK_SECONDS = 30.0
"""Files modified this recently are also checked for the recorder's lock."""
RACY_NS = 3_000_000_000
"""A directory modified less than this before its scan is scanned again next time."""


class Stat(NamedTuple):
    """What tells whether a recording changed: its size and mtime, and its sidecar's."""

    size: int
    mtime_ns: int
    sidecar_mtime_ns: int | None
    """None: no sidecar."""


@dataclass
class Entry:
    name: str
    folder: str
    size: int
    mtime_ns: int
    sidecar_mtime_ns: int | None = None

    @property
    def has_sidecar(self) -> bool:
        return self.sidecar_mtime_ns is not None

    @property
    def stat(self) -> Stat:
        return Stat(self.size, self.mtime_ns, self.sidecar_mtime_ns)

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    @property
    def key(self) -> tuple[int, str]:
        return (self.mtime_ns, self.name)


@dataclass
class _Dir:
    mtime_ns: int
    files: list[Entry]
    subdirs: list[str]
    scanned_ns: int = 0
    """Wall-clock time the scan started."""
    generation: int = 0
    """Changes whenever the directory's entries do (see :meth:`FileIndex.changes`)."""

    def trusted(self, mtime_ns: int) -> bool:
        """The scan still holds: the mtime is unchanged and was not "racy".

        A directory changed within the filesystem's timestamp granularity of the scan
        (a jiffy on ext4, 2 s on FAT, the server's say on NFS) may change again without
        its mtime moving, as Git's "racily clean" index entries do; such a directory
        is scanned again until its mtime is safely older than the scan.
        """
        return mtime_ns == self.mtime_ns and self.scanned_ns - mtime_ns >= RACY_NS


@dataclass(frozen=True)
class Changes:
    """The listing since a consumer last looked (see :meth:`FileIndex.changes`)."""

    generations: dict[str, int]
    """Every directory listed now, with its generation."""
    directories: dict[str, dict[str, Stat]]
    """The entries of each directory whose generation the consumer did not know."""
    named: dict[str, Stat | None]
    """The names asked for: their facts now, None when they are not listed."""


@dataclass
class _Facts:
    sidecar_mtime_ns: int
    data: dict[str, Any] = field(default_factory=dict)


class FileIndex:
    """All audio files under ``root`` sorted by mtime; thread-safe, refreshed cheaply."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._dirs: dict[str, _Dir] = {}
        self._sorted: list[Entry] = []  # ascending by (mtime_ns, name)
        self._by_name: dict[str, Entry] = {}
        self._hot: set[str] = set()
        self._facts: dict[str, _Facts] = {}
        self._filter_key: tuple[int, str, str] | None = None
        self._filtered: list[Entry] = []
        self.version = 0
        self.scans = 0
        self._generations = itertools.count(1)

    # -- scanning ---------------------------------------------------------------

    def _scan_dir(self, rel: str, mtime_ns: int) -> _Dir:
        scanned_ns = time.time_ns()
        files: list[Entry] = []
        subdirs: list[str] = []
        audio: list[os.DirEntry[str]] = []
        sidecars: dict[str, os.DirEntry[str]] = {}
        path = os.path.join(self.root, rel) if rel else str(self.root)
        with os.scandir(path) as it:
            for de in it:
                if de.name.startswith("."):
                    continue  # .isr/, temporary files, editors' droppings
                if not _utf8(de.name):
                    continue  # no URL can name it (names are UTF-8), no page can show it
                try:
                    if de.is_dir(follow_symlinks=False):
                        subdirs.append(f"{rel}/{de.name}" if rel else de.name)
                    elif de.is_file(follow_symlinks=False) and is_audio(de.name):
                        audio.append(de)
                    elif de.name.endswith(".json"):
                        sidecars[de.name] = de
                except OSError:
                    continue
        for de in audio:
            try:
                st = de.stat(follow_symlinks=False)
            except OSError:
                continue  # deleted meanwhile
            side = sidecars.get(de.name + ".json")
            side_ns: int | None = None
            if side is not None:
                try:
                    side_ns = side.stat(follow_symlinks=False).st_mtime_ns
                except OSError:
                    side_ns = None
            name = f"{rel}/{de.name}" if rel else de.name
            files.append(Entry(name, rel, st.st_size, st.st_mtime_ns, side_ns))
        self.scans += 1
        return _Dir(mtime_ns, files, subdirs, scanned_ns, next(self._generations))

    def _refresh(self, hot: set[str]) -> None:
        changed = False
        seen: dict[str, _Dir] = {}
        gone: list[Entry] = []
        new: list[Entry] = []
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                st = os.stat(os.path.join(self.root, rel) if rel else self.root)
            except OSError:
                continue
            cached = self._dirs.get(rel)
            if cached is None or not cached.trusted(st.st_mtime_ns):
                try:
                    fresh = self._scan_dir(rel, st.st_mtime_ns)
                except OSError:
                    continue
                if cached is not None and (cached.files, cached.subdirs) == (
                    fresh.files,
                    fresh.subdirs,
                ):
                    # same content (a racy directory re-checked): keep the entries
                    cached.mtime_ns, cached.scanned_ns = fresh.mtime_ns, fresh.scanned_ns
                else:
                    self._merge(cached, fresh, gone, new)
                    cached = fresh
                    changed = True
            seen[rel] = cached
            stack.extend(cached.subdirs)
        for rel in self._dirs.keys() - seen.keys():
            gone.extend(self._dirs[rel].files)
        if changed or seen.keys() != self._dirs.keys():
            self._dirs = seen
            if len(gone) + len(new) > len(self._sorted) // 8:
                self._sorted = sorted(
                    (e for d in seen.values() for e in d.files), key=lambda e: e.key
                )
                self._by_name = {e.name: e for e in self._sorted}
            else:  # a few files came or went: move only them (a year is 87,600)
                for e in gone:
                    self._unsort(e)
                    if self._by_name.get(e.name) is e:
                        del self._by_name[e.name]
                for e in new:
                    bisect.insort(self._sorted, e, key=lambda e: e.key)
                    self._by_name[e.name] = e
            self.version += 1
        for name in hot | self._hot:
            self._restat(name)
        self._hot = hot

    @staticmethod
    def _merge(cached: _Dir | None, fresh: _Dir, gone: list[Entry], new: list[Entry]) -> None:
        """Keep in ``fresh`` the entries of ``cached`` that did not change (they stay
        where they are sorted); note those that went and came."""
        old = {e.name: e for e in cached.files} if cached is not None else {}
        files = []
        for e in fresh.files:
            before = old.pop(e.name, None)
            if before is not None and before == e:
                files.append(before)
                continue
            files.append(e)
            new.append(e)
            if before is not None:
                gone.append(before)
        gone.extend(old.values())
        fresh.files = files

    def _unsort(self, entry: Entry) -> None:
        i = bisect.bisect_left(self._sorted, entry.key, key=lambda e: e.key)
        if i < len(self._sorted) and self._sorted[i] is entry:
            del self._sorted[i]

    def _restat(self, name: str) -> None:
        entry = self._by_name.get(name)
        if entry is None:
            return
        try:
            st = os.stat(os.path.join(self.root, name), follow_symlinks=False)
        except OSError:
            return
        if (st.st_size, st.st_mtime_ns) == (entry.size, entry.mtime_ns):
            return
        self._unsort(entry)
        entry.size, entry.mtime_ns = st.st_size, st.st_mtime_ns
        bisect.insort(self._sorted, entry, key=lambda e: e.key)
        self.version += 1

    def forget(self, name: str) -> None:
        """Drop a deleted file now (its directory's mtime will say so too)."""
        with self._lock:
            self._forget(name)

    def _forget(self, name: str) -> None:
        entry = self._by_name.pop(name, None)
        if entry is None:
            return
        self._unsort(entry)
        d = self._dirs.get(entry.folder)
        if d is not None:
            d.files = [e for e in d.files if e is not entry]
            d.generation = next(self._generations)
        self._facts.pop(name, None)
        self.version += 1

    def _vanished(self, page: list[Entry]) -> list[str]:
        """Names on ``page`` that are no longer on disk (one lstat each)."""
        gone = []
        for e in page:
            try:
                os.stat(os.path.join(self.root, e.name), follow_symlinks=False)
            except FileNotFoundError:
                gone.append(e.name)
            except OSError:
                continue
        return gone

    # -- queries ----------------------------------------------------------------

    def changes(
        self, known: Mapping[str, int], *, hot: set[str], names: Iterable[str] = ()
    ) -> Changes:
        """Refresh, then what a consumer that mirrors the listing needs to catch up.

        ``known`` maps each directory to the generation the consumer last saw; only
        the directories whose generation differs come back with their entries. A
        growing file changes no directory: the consumer asks for it by name (``hot``
        files are re-statted first, as for a page).
        """
        with self._lock:
            self._refresh(hot)
            generations = {rel: d.generation for rel, d in self._dirs.items()}
            changed = {
                rel: {e.name: e.stat for e in d.files}
                for rel, d in self._dirs.items()
                if known.get(rel) != d.generation
            }
            named = {n: (e.stat if (e := self._by_name.get(n)) else None) for n in names}
        return Changes(generations, changed, named)

    def query(
        self, *, q: str = "", folder: str = "", offset: int = 0, limit: int = 100, hot: set[str]
    ) -> tuple[int, list[Entry], list[str]]:
        """``(total, page, folders)``: newest first, filtered by substring and folder."""
        with self._lock:
            self._refresh(hot)
            # A directory's mtime can lag behind a deletion (see _Dir.trusted, and NFS
            # caches attributes): the rows about to be shown are checked on disk, and
            # any gone are dropped before the page is cut again.
            for _ in range(3):
                total, page = self._page(q, folder, offset, limit)
                gone = self._vanished(page)
                if not gone:
                    break
                for name in gone:
                    self._forget(name)
            folders = sorted(rel for rel, d in self._dirs.items() if d.files and rel)
        return total, page, folders

    def _page(self, q: str, folder: str, offset: int, limit: int) -> tuple[int, list[Entry]]:
        key = (self.version, q.lower(), folder)
        if key != self._filter_key:
            needle = q.lower()
            rows = self._sorted
            if needle or folder:
                rows = [
                    e
                    for e in rows
                    if (not needle or needle in e.name.lower())
                    and (not folder or e.folder == folder)
                ]
            self._filter_key, self._filtered = key, rows
        rows = self._filtered
        total = len(rows)
        # rows ascend; page from the end
        hi = max(0, total - offset)
        lo = max(0, hi - limit)
        return total, list(reversed(rows[lo:hi]))

    def describe(
        self, entry: Entry, recording: set[str], now: float, *, alive: bool = True
    ) -> dict[str, Any]:
        """One row for the API and the page: the entry plus its sidecar's facts
        (``recording`` as :func:`being_recorded` judges it)."""
        out: dict[str, Any] = {
            "name": entry.name,
            "folder": entry.folder,
            "size": entry.size,
            "mtime": entry.mtime,
        }
        rec = being_recorded(self.root, entry.name, entry.mtime, recording, now, alive=alive)
        out["recording"] = rec
        facts = self._sidecar(entry) if entry.has_sidecar else {}
        start = _ts(facts.get("start"))
        end = _ts(facts.get("end"))
        duration: float | None = None
        if start is not None and end is not None:
            duration = max(0.0, end - start)
        elif entry.name.lower().endswith(".wav"):
            duration = wav_duration_of(self.root / entry.name, entry.size)
        elif start is not None and rec:
            duration = max(0.0, entry.mtime - start)
        if start is None:
            start = start_from_name(entry.name)
        out["start"] = (
            datetime.fromtimestamp(start).astimezone().isoformat(timespec="seconds")
            if start is not None
            else None
        )
        out["duration"] = round(duration, 3) if duration is not None else None
        out["source"] = facts.get("source") or (entry.name.split("/")[0] if entry.folder else None)
        out["format"] = facts.get("format")
        titles = facts.get("titles")
        out["titles"] = titles if isinstance(titles, list) else []
        gaps = facts.get("gaps")
        out["gaps"] = len(gaps) if isinstance(gaps, list) else 0
        return out

    def _sidecar(self, entry: Entry) -> dict[str, Any]:
        path = self.root / (entry.name + ".json")
        try:
            mtime_ns = os.stat(path).st_mtime_ns
        except OSError:
            return {}
        cached = self._facts.get(entry.name)
        if cached is not None and cached.sidecar_mtime_ns == mtime_ns:
            return cached.data
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        self._facts[entry.name] = _Facts(mtime_ns, data)
        return data


def being_recorded(
    root: Path, name: str, mtime: float, recording: set[str], now: float, *, alive: bool
) -> bool:
    """Whether the file ``name`` is being recorded.

    While the recorder's heartbeat is fresh its status file says (``recording``); the
    lock is asked only when it is not, and only for a file written lately (the
    recorder keeps a closed file's descriptor until its next fsync, so a lock
    outlives the recording).
    """
    if name in recording:
        return True
    return not alive and now - mtime < LOCK_CHECK_SECONDS and is_locked(root / name)


def _utf8(name: str) -> bool:
    """False for a name the filesystem gave with undecodable bytes (surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _ts(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


_STAMP = re.compile(r"(\d{8})[_T-]?(\d{6})")


def start_from_name(name: str, tz: tzinfo | None = None) -> float | None:
    """The default pattern ``%Y%m%d_%H%M%S`` read back as local time, when it fits
    (in ``tz`` by the timeline's DST rule, else in the system's zone)."""
    m = _STAMP.search(name.rsplit("/", 1)[-1])
    if m is None:
        return None
    try:
        wall = datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S")
        return local_instant(wall, tz) if tz is not None else wall.timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def wav_duration(head: bytes, size: int) -> float | None:
    """Seconds of PCM in a WAV of ``size`` bytes, from its first bytes (pure).

    Counts the bytes actually present after the ``data`` chunk's start rather than the
    header's size field, which lags behind a file still being written.
    """
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    byte_rate = 0
    while pos + 8 <= len(head):
        cid, clen = struct.unpack_from("<4sI", head, pos)
        if cid == b"fmt " and pos + 8 + 12 <= len(head):
            byte_rate = struct.unpack_from("<I", head, pos + 16)[0]
        elif cid == b"data":
            if byte_rate <= 0:
                return None
            return max(0, size - (pos + 8)) / byte_rate
        pos += 8 + clen + (clen & 1)
    return None


def wav_duration_of(path: Path, size: int) -> float | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    return wav_duration(head, size)
