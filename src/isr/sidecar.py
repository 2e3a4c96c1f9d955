"""Each recording's ledger: ``<file name>.json`` beside the audio file.

It tells what is and is not in the file (start, end, titles, gaps, overlaps
removed), so a station can prove what its archive holds.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from isr.sinks.files import read_regular, replace_atomic


def iso(t: float, tz: tzinfo) -> str:
    """ISO 8601 with milliseconds and the local offset."""
    return datetime.fromtimestamp(round(t, 3), tz).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Gap:
    """Aired time missing before ``at`` (seconds of audio into the file)."""

    at: float
    seconds: float
    cause: str

    def to_json(self) -> dict[str, Any]:
        return {"at": round(self.at, 3), "seconds": round(self.seconds, 3), "cause": self.cause}


@dataclass(frozen=True, slots=True)
class Overlap:
    """Audio a server sent again (a reconnect's burst), dropped before ``at``."""

    at: float
    bytes: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"at": round(self.at, 3), "bytes": self.bytes, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True, slots=True)
class Title:
    """A title in force from ``at`` seconds (``byte`` bytes) into the file."""

    at: float
    byte: int
    title: str

    def to_json(self) -> dict[str, Any]:
        return {"at": round(self.at, 3), "byte": self.byte, "title": self.title}


@dataclass
class Ledger:
    source: str
    file: str
    """Path relative to the output directory, '/'-separated."""
    format: str
    start: float
    end: float | None = None
    titles: list[Title] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    overlaps_removed: list[Overlap] = field(default_factory=list)
    sha256: str | None = None
    """The file's SHA-256, once known: at close when the write path hashed every
    byte in order, else after its check (``isr.evidence.digest``)."""
    bytes: int | None = None
    """The file's size at close."""
    check: dict[str, Any] | None = None
    """The check of the closed file: ``{"ok", "problems", "at"}``."""
    dated: float | None = None
    """The start the file was first given, once a settling media clock has moved it
    back (``isr.segment``): a clip made between the two times took its times from a
    start in that span, and ``isr verify --clip`` must not call it tampered."""

    @classmethod
    def from_json(cls, data: object) -> Ledger | None:
        """The ledger a sidecar's JSON holds; None when it holds none (no source or no
        readable start). Malformed titles, gaps and overlaps are left out, not fatal:
        a sidecar edited by hand or cut short still dates its file."""
        if not isinstance(data, dict):
            return None
        source, start = data.get("source"), _time(data.get("start"))
        if not isinstance(source, str) or not source or start is None:
            return None
        fmt, file = data.get("format"), data.get("file")
        return cls(
            source=source,
            file=file if isinstance(file, str) else "",
            format=fmt if isinstance(fmt, str) else "",
            start=start,
            end=_time(data.get("end")),
            titles=[
                Title(at, _int(t.get("byte")), title)
                for t in _objects(data.get("titles"))
                if (at := _number(t.get("at"))) is not None and type(title := t.get("title")) is str
            ],
            gaps=[
                Gap(at, seconds, cause if isinstance(cause := g.get("cause"), str) else "")
                for g in _objects(data.get("gaps"))
                if (at := _number(g.get("at"))) is not None
                and (seconds := _number(g.get("seconds"))) is not None
            ],
            overlaps_removed=[
                Overlap(at, _int(o.get("bytes")), _number(o.get("seconds")) or 0.0)
                for o in _objects(data.get("overlaps_removed"))
                if (at := _number(o.get("at"))) is not None
            ],
            sha256=sha if isinstance(sha := data.get("sha256"), str) else None,
            bytes=size if isinstance(size := data.get("bytes"), int) else None,
            check=check if isinstance(check := data.get("check"), dict) else None,
            dated=_time(data.get("dated")),
        )

    def to_json(self, tz: tzinfo) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "file": self.file,
            "format": self.format,
            "start": iso(self.start, tz),
            "end": iso(self.end, tz) if self.end is not None else None,
            "titles": [t.to_json() for t in self.titles],
            "gaps": [g.to_json() for g in self.gaps],
            "overlaps_removed": [o.to_json() for o in self.overlaps_removed],
            "sha256": self.sha256,
            "bytes": self.bytes,
        }
        if self.check is not None:
            out["check"] = self.check
        if self.dated is not None:
            out["dated"] = iso(self.dated, tz)
        return out


def _time(value: object) -> float | None:
    """Unix seconds of an ISO 8601 time with an offset (a sidecar always has one)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


def _number(value: object) -> float | None:
    # JSON gives exactly int or float (type() is a fraction of isinstance's cost here,
    # where a year of sidecars is read at once, and it leaves bool out)
    if type(value) is float:
        return value if math.isfinite(value) else None
    return float(value) if type(value) is int else None


def _int(value: object) -> int:
    return value if type(value) is int else 0


def _objects(value: object) -> list[dict[str, Any]]:
    return [v for v in value if type(v) is dict] if type(value) is list else []


def sidecar_path(audio: Path) -> Path:
    return audio.with_name(audio.name + ".json")


def read_ledger(audio: Path | str) -> Ledger | None:
    """The ledger in ``audio``'s sidecar; None when there is none or it holds none.

    Read without following a symlink or blocking on a FIFO planted in its place.
    """
    try:
        data = json.loads(read_regular(os.fspath(audio) + ".json", limit=16 << 20))
    except (OSError, ValueError):
        return None
    return Ledger.from_json(data)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so a reader sees the old or the new file, never half of one, and
    never through a link planted at its name (``replace_atomic``)."""
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"
    replace_atomic(path, data.encode())


def write_sidecar(audio: Path, ledger: Ledger, tz: tzinfo) -> None:
    write_json_atomic(sidecar_path(audio), ledger.to_json(tz))
