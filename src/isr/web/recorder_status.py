"""Reading ``.isr/status.json`` as the web UI sees it: who is alive, what is recording.

The web UI may run in another container than the recorder, so it never asks the
recorder anything: the status file's ``updated`` time is the heartbeat.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

STALE_SECONDS = 15.0


@dataclass(frozen=True)
class RecorderStatus:
    alive: bool
    updated: float | None
    sources: dict[str, Any] = field(default_factory=dict)
    disk_free_mb: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def recording(self) -> list[str]:
        """Relative names of the files being written, when the recorder is alive."""
        if not self.alive:
            return []
        names = []
        for src in self.sources.values():
            f = src.get("file") if isinstance(src, dict) else None
            if isinstance(f, str) and f and not os.path.isabs(f):
                names.append(f)
        return sorted(names)


def parse_time(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def interpret(data: dict[str, Any], now: float) -> RecorderStatus:
    """Pure: the status file's JSON and the current time -> what the UI shows."""
    updated = parse_time(data.get("updated"))
    alive = updated is not None and now - updated <= STALE_SECONDS
    sources = data.get("sources")
    disk = data.get("disk_free_mb")
    return RecorderStatus(
        alive=alive,
        updated=updated,
        sources=sources if isinstance(sources, dict) else {},
        disk_free_mb=float(disk) if isinstance(disk, int | float) else None,
        raw=data,
    )


def read_status(root: Path, now: float | None = None) -> RecorderStatus:
    """The status file of ``root``; a missing or half-written one means no recorder."""
    now = time.time() if now is None else now
    try:
        data = json.loads((root / ".isr" / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return RecorderStatus(alive=False, updated=None)
    if not isinstance(data, dict):
        return RecorderStatus(alive=False, updated=None)
    return interpret(data, now)
