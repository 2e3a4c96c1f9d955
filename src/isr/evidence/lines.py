"""Which chain line recorded a file: what a clip's manifest names for each part.

A part's ``chain`` is ``{"seq": N, "line_sha256": "…"}``: the ``seq`` of the last
``closed`` or ``repaired`` line of the source's chain that names the file, and the
SHA-256 of that line's bytes (as ``prev`` links name lines), so that the line can
be found again and shown to be the one that was there when the clip was made. None
when no line names the file yet (it is being recorded, or its check is owed).

Reads only; the lines that name a file are parsed once per process (a year of
hourly lines is a few MB), those appended since at each later call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from isr.evidence import chain
from isr.sinks.files import open_regular

__all__ = ["RECORDING_EVENTS", "chain_refs", "file_of"]

RECORDING_EVENTS = ("closed", "repaired")
"""The events whose line gives a file's SHA-256."""

_NAMED = b'"file":"'
"""In every line that names a file: lines without one (started, stopped, day) are
not parsed."""


def file_of(root: Path, name: str) -> Path:
    """A chain's (or manifest's) file name as a path: relative to the recordings
    directory, or absolute for a file outside it."""
    path = Path(name)
    return path if path.is_absolute() else root / path


@dataclass
class _Scanned:
    dev: int
    ino: int
    offset: int
    """Where the next line to read starts (after the last whole line read)."""
    refs: dict[str, tuple[int, str] | None] = field(default_factory=dict)
    """Each file's recording line, compact (a year of hourly files: ~1.5 MB)."""


_cache: dict[Path, _Scanned] = {}
_lock = threading.Lock()
CACHED_CHAINS = 16
"""Chains kept, the least recently used dropped (a web UI clips few sources at once)."""


def chain_refs(root: Path, source: str, names: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """For each of ``names``, the chain line (``seq``, ``line_sha256``) of ``source``
    that last recorded it, or None.

    Chains only grow: what was read of one is kept (per chain file, by device and
    inode) and only the lines appended since are read at the next call, so a clip
    of a long-recorded source costs no whole read of its chain.
    """
    wanted = list(names)
    if not wanted:
        return {}
    path = chain.chain_path(root, source)
    try:
        fd = open_regular(path, os.O_RDONLY, single_link=False)
    except OSError:
        return dict.fromkeys(wanted)
    with _lock, os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        seen = _cache.get(path)
        if (
            seen is None
            or (seen.dev, seen.ino) != (st.st_dev, st.st_ino)
            or st.st_size < seen.offset
        ):
            seen = _Scanned(st.st_dev, st.st_ino, 0)
        fh.seek(seen.offset)
        _scan(fh, seen)
        _cache.pop(path, None)
        _cache[path] = seen
        while len(_cache) > CACHED_CHAINS:
            del _cache[next(iter(_cache))]
        return {name: _ref(seen.refs.get(name)) for name in wanted}


def _ref(value: tuple[int, str] | None) -> dict[str, Any] | None:
    return {"seq": value[0], "line_sha256": value[1]} if value is not None else None


def _scan(fh: BinaryIO, seen: _Scanned) -> None:
    for data in fh:
        if not data.endswith(b"\n"):
            break  # a torn last line (or one being written) records nothing yet
        seen.offset += len(data)
        raw = data[:-1]
        if _NAMED not in raw:
            continue
        obj = chain.parse(raw)
        if obj is None or not isinstance(name := obj.get("file"), str):
            continue
        if obj["event"] in RECORDING_EVENTS:
            seen.refs[name] = (int(obj["seq"]), chain.line_hash(raw))
        elif obj["event"] == "deleted":
            seen.refs[name] = None
