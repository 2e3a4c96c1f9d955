"""One clip, end to end: the question checked, the index asked, the files' unit
tables fetched, the plan made, the pieces assembled and the manifest written.

Everything here blocks (SQLite, ``stat``, walks, an edge frame decoded): the web UI
calls :meth:`Clipper.make` in a worker thread; ``isr clip`` calls it directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from isr import formats
from isr.clips.body import Body
from isr.clips.cutter import Cutter
from isr.clips.manifest import download_name, manifest, sidecar_sha256
from isr.clips.plan import Plan, plan_clip
from isr.clips.tables import UnitTables
from isr.clips.units import UnitTable
from isr.errors import BadTime, NotClippable, QueryError
from isr.evidence.lines import chain_refs
from isr.overlap import frame_key
from isr.timeline.index import TimelineIndex
from isr.timeline.query import Recording, Timeline, recorder_of

__all__ = ["MAX_SOURCE_NAME", "Clip", "Clipper", "check_source", "check_span"]

MAX_SOURCE_NAME = 200


def check_span(t0: float, t1: float, max_hours: float) -> None:
    """A clip's span must run forward and last at most ``max_hours``."""
    if t0 >= t1:
        raise BadTime("FROM must be before TO")
    if t1 - t0 > max_hours * 3600 + 1e-6:
        raise BadTime(
            f"a clip may span at most {max_hours:g} hours ([web] max_clip_hours); "
            f"this one spans {(t1 - t0) / 3600:.2f}"
        )


def check_source(name: str) -> None:
    """A source name as the config can give one: not empty, not too long, nothing a
    terminal or a file name would choke on (a 400)."""
    if not name or not name.strip():
        raise QueryError("the source is missing")
    if len(name) > MAX_SOURCE_NAME:
        raise QueryError(f"a source name is at most {MAX_SOURCE_NAME} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in name) or "/" in name:
        raise QueryError("a source name holds no control characters and no '/'")


@dataclass(frozen=True)
class Clip:
    plan: Plan
    manifest: dict[str, Any]
    filename: str
    """The download name (``<source>_<start>-<end>.<ext>``)."""
    content_type: str
    body: Body | None
    """None when only the manifest was asked for."""

    @property
    def length(self) -> int:
        return self.body.length if self.body is not None else 0


class Clipper:
    """Makes the clips of the recordings under ``root``."""

    def __init__(
        self,
        root: Path,
        tz: tzinfo,
        index: TimelineIndex,
        tables: UnitTables | None = None,
        *,
        max_hours: float = 24.0,
        fetch: Callable[[str], object] | None = None,
        per_recorder: bool = False,
    ) -> None:
        """``fetch(name)`` makes a file's bytes present before it is read (the web UI
        over the store: a file there may be a placeholder). ``per_recorder``: the
        first folder of every name is a recorder's directory with its own chains."""
        self.root = Path(root)
        self.fetch = fetch
        self.per_recorder = per_recorder
        self.tz = tz
        self.index = index
        self.tables = tables if tables is not None else UnitTables(self.root)
        self.max_hours = max_hours

    def check(self, source: str, t0: float, t1: float) -> None:
        """Whether the question can be asked at all (QueryError: a 400)."""
        check_source(source)
        check_span(t0, t1, self.max_hours)

    def make(self, source: str, t0: float, t1: float, *, body: bool = True) -> Clip:
        """The clip of ``source`` from ``t0`` to ``t1``. Raises QueryError and its
        kinds (400, 404, 409 in the web UI), OSError when a file cannot be read."""
        self.check(source, t0, t1)
        return self.cut(self.index.timeline(source, t0, t1), body=body)

    def cut(self, timeline: Timeline, *, body: bool = True) -> Clip:
        """The clip of what ``timeline`` (the index's answer for the span) holds;
        ``body=False`` plans it and writes its manifest only."""
        source, t0, t1 = timeline.source, timeline.start, timeline.end
        rows = list(timeline.segments)
        if self.fetch is not None:
            for row in rows:
                self.fetch(row.path)
        cutters = {r.path: _cutter(r) for r in rows}

        def table(row: Recording) -> UnitTable:
            final = not (row.open or row.recording)
            return self.tables.get(row.path, cutters[row.path], final=final)

        chains = any(getattr(c, "chains", False) for c in cutters.values())
        plan = plan_clip(
            source,
            t0,
            t1,
            rows,
            table,
            root=self.root,
            gaps=timeline.gaps,
            tz=self.tz,
            chains=chains,
            recorder=(lambda r: recorder_of(r.path)) if self.per_recorder else None,
            keys=self._unit_keys,
            noted=timeline.noted or None,
        )
        live = {r.path for r in rows if r.open or r.recording}
        sha = {p.name: None if p.name in live else sidecar_sha256(p.path) for p in plan.parts}
        refs = self._chain_refs(source, [n for n, v in sha.items() if v is not None])
        extension = os.path.splitext(plan.parts[0].name)[1].lower()
        pieces = cutters[plan.parts[0].name].assemble(plan.parts) if body else None
        return Clip(
            plan,
            manifest(plan, self.tz, sha, refs),
            download_name(source, plan.start, plan.end, extension, self.tz),
            formats.served_type(extension) or "application/octet-stream",
            Body(pieces) if pieces is not None else None,
        )

    def _unit_keys(self, name: str, table: UnitTable, a: int, b: int) -> list[int]:
        """What identifies units ``a..b-1`` of a recording: their bytes (an Ogg page's
        body), as the overlap detector keys frames."""
        lo, hi = table.offset(a), table.offset(b)
        with (self.root / name).open("rb") as f:
            f.seek(lo)
            data = f.read(hi - lo)
        return [
            frame_key(data[table.offset(k) - lo : table.offset(k + 1) - lo]) for k in range(a, b)
        ]

    def _chain_refs(self, source: str, names: list[str]) -> dict[str, dict[str, Any] | None]:
        if not self.per_recorder:
            return chain_refs(self.root, source, names)
        by_recorder: dict[str, list[str]] = {}
        for name in names:
            recorder, _, rel = name.partition("/")
            by_recorder.setdefault(recorder, []).append(rel)
        refs: dict[str, dict[str, Any] | None] = {}
        for recorder, rels in by_recorder.items():
            found = chain_refs(self.root / recorder, source, rels)
            refs.update((f"{recorder}/{rel}", ref) for rel, ref in found.items())
        return refs

    def close(self) -> None:
        self.tables.close()


def _cutter(row: Recording) -> Cutter:
    fmt = formats.of_extension(os.path.splitext(row.path)[1])
    cutter = fmt.clip_cutter() if fmt is not None else None
    if cutter is None:
        name = fmt.name if fmt is not None else os.path.splitext(row.path)[1]
        raise NotClippable(f"clips of {name} recordings are not made yet ({row.path})")
    return cutter
