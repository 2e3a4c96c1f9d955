"""Closed files whose check (and, for a patched head, whose hash) is still owed.

``.isr/checks/<id>.json``, one per file, written when the file closes (or when
crash recovery repaired it) and removed once its check is in the sidecar and its
line is in the chain. It holds the write path's account of the file (``Written``),
so a check owed across a restart still compares the disk with what was written,
and ``isr verify`` can judge a file whose chain line is yet to come.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isr.evidence.digest import Written
from isr.sidecar import write_json_atomic
from isr.sinks.files import read_regular

PENDING_DIR = Path(".isr") / "checks"


@dataclass
class Pending:
    source: str
    file: str
    """As the chain names it: relative to the recordings directory, or absolute."""
    event: str
    """``closed`` or ``repaired``: the chain line its check completes."""
    written: Written | None
    """None for a repaired file (the write path's account ended with the crash)."""
    start: str | None = None
    end: str | None = None
    chained: bool = False
    """Its chain line was queued at close (the hash was final then)."""
    note: str | None = None
    path: Path | None = None
    """Where this entry is stored."""

    def to_json(self) -> dict[str, Any]:
        w = self.written
        return {
            "source": self.source,
            "file": self.file,
            "event": self.event,
            "start": self.start,
            "end": self.end,
            "chained": self.chained,
            "note": self.note,
            "written": None
            if w is None
            else {
                "size": w.size,
                "reserve": w.reserve,
                "head": base64.b64encode(w.head).decode(),
                "rest_sha256": w.rest_sha256,
                "broken": w.broken,
            },
        }

    @classmethod
    def from_json(cls, data: Any, path: Path) -> Pending | None:
        try:
            w = data["written"]
            written = (
                None
                if w is None
                else Written(
                    size=int(w["size"]),
                    reserve=int(w["reserve"]),
                    head=base64.b64decode(w["head"]),
                    rest_sha256=str(w["rest_sha256"]),
                    broken=bool(w["broken"]),
                )
            )
            return cls(
                source=str(data["source"]),
                file=str(data["file"]),
                event=str(data["event"]),
                written=written,
                start=data.get("start"),
                end=data.get("end"),
                chained=bool(data.get("chained")),
                note=data.get("note"),
                path=path,
            )
        except (KeyError, TypeError, ValueError):
            return None


def save(root: Path, entry: Pending) -> None:
    directory = root / PENDING_DIR
    directory.mkdir(parents=True, exist_ok=True)
    if entry.path is None:
        entry.path = directory / f"{secrets.token_hex(8)}.json"
    write_json_atomic(entry.path, entry.to_json())


def remove(entry: Pending) -> None:
    if entry.path is not None:
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()


def load(root: Path) -> list[Pending]:
    """Every entry, oldest first."""
    directory = root / PENDING_DIR
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".json") and n[0] != "."]
    except OSError:
        return []
    out: list[tuple[float, Pending]] = []
    for name in names:
        path = directory / name
        try:
            mtime = path.lstat().st_mtime
            entry = Pending.from_json(json.loads(read_regular(path)), path)
        except (OSError, ValueError):
            continue
        if entry is not None:
            out.append((mtime, entry))
    out.sort(key=lambda pair: pair[0])
    return [e for _, e in out]
