"""Reading ``.isr/status.json`` as the web UI sees it: who is alive, what is recording.

The web UI may run in another container than the recorder, so it never asks the
recorder anything: the status file is the heartbeat and the directory's lock the
second witness, judged by ``isr.liveness`` (a clock step fools neither).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from isr.liveness import STALE_SECONDS, Reader, judge, parse_time
from isr.sinks.files import read_regular

__all__ = ["STALE_SECONDS", "RecorderStatus", "interpret", "parse_time", "read_status"]


@dataclass(frozen=True)
class RecorderStatus:
    alive: bool
    updated: float | None
    sources: dict[str, Any] = field(default_factory=dict)
    disk_free_mb: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    why: str = ""
    """Why the recorder is judged alive or gone, for people."""

    @cached_property
    def recording(self) -> list[str]:
        """Relative names of the files being written, when the recorder is alive.
        (Worked out once per status read: a coverage measure asks it once per source.)"""
        if not self.alive:
            return []
        names = []
        for src in self.sources.values():
            f = src.get("file") if isinstance(src, dict) else None
            if isinstance(f, str) and f and not os.path.isabs(f):
                names.append(f)
        return sorted(names)

    @cached_property
    def writing(self) -> set[str]:
        """Names of the sources with a file open, when the recorder is alive: unlike
        a file name, true across a split (the status may name the new file before or
        after an index has seen it)."""
        if not self.alive:
            return set()
        return {
            name
            for name, src in self.sources.items()
            if isinstance(src, dict) and isinstance(src.get("file"), str) and src["file"]
        }


def interpret(data: dict[str, Any], now: float, reader: Reader | None = None) -> RecorderStatus:
    """Pure: the status file's JSON and what the reader knows (by default only the
    time ``now``) -> what the UI shows."""
    verdict = judge(data, reader if reader is not None else Reader(now=now))
    sources = data.get("sources")
    disk = data.get("disk_free_mb")
    return RecorderStatus(
        alive=verdict.alive,
        updated=parse_time(data.get("updated")),
        sources=sources if isinstance(sources, dict) else {},
        disk_free_mb=float(disk) if isinstance(disk, int | float) else None,
        raw=data,
        why=verdict.why,
    )


def read_status(root: Path, now: float | None = None) -> RecorderStatus:
    """The status file of ``root``; a missing or half-written one means no recorder.
    Read without following a symlink or blocking on a FIFO planted in its place."""
    path = root / ".isr" / "status.json"
    try:
        data = json.loads(read_regular(path))
    except (OSError, ValueError) as exc:
        return RecorderStatus(alive=False, updated=None, why=f"no readable {path}: {exc}")
    if not isinstance(data, dict):
        return RecorderStatus(alive=False, updated=None, why=f"{path} holds no JSON object")
    reader = Reader.here(root, now)
    return interpret(data, reader.now, reader)
