"""Each recording's ledger: ``<file name>.json`` beside the audio file.

It tells what is and is not in the file (start, end, titles, gaps, overlaps
removed), so a station can prove what its archive holds.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any


def iso(t: float, tz: tzinfo) -> str:
    """ISO 8601 with milliseconds and the local offset."""
    return datetime.fromtimestamp(round(t, 3), tz).isoformat(timespec="milliseconds")


@dataclass
class Ledger:
    source: str
    file: str
    """Path relative to the output directory, '/'-separated."""
    format: str
    start: float
    end: float | None = None
    titles: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    overlaps_removed: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, tz: tzinfo) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "file": self.file,
            "format": self.format,
            "start": iso(self.start, tz),
            "end": iso(self.end, tz) if self.end is not None else None,
            "titles": self.titles,
            "gaps": self.gaps,
            "overlaps_removed": self.overlaps_removed,
        }
        out.update(self.extra)
        return out


def sidecar_path(audio: Path) -> Path:
    return audio.with_name(audio.name + ".json")


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so a reader sees the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)  # one write: json.dump would write piece by piece
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_sidecar(audio: Path, ledger: Ledger, tz: tzinfo) -> None:
    write_json_atomic(sidecar_path(audio), ledger.to_json(tz))
