"""What the index's rows say about a span of time: pure functions, no I/O.

The index (``index.py``) hands over the rows of one source around a span; this
module turns them into the timeline the web UI and ``isr timeline`` show:

- **segments**: the whole files that overlap ``[from, to)`` (not cut to it), by start;
- **gaps**: each sidecar gap that overlaps the span, dated absolutely (a gap at ``at``
  seconds into a file that starts at ``S`` ends at ``S + at`` and started ``seconds``
  before), and each *hole* between two consecutive files of the source that no sidecar
  gap explains (the recorder was stopped, say), with the cause ``not recorded``;
- **titles**: the title in force at ``from`` and each title set before ``to``;
- **covered_seconds**: how much of the span the files cover (their union, clipped).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any, NamedTuple

from isr.sidecar import iso

__all__ = [
    "HOLE_CAUSE",
    "MIN_HOLE_SECONDS",
    "Gap",
    "Recording",
    "SourceSummary",
    "Timeline",
    "Title",
    "covered_seconds",
    "holes",
    "make_timeline",
    "sources_json",
    "titles_in_span",
]

ENCODE_TITLES = 500
"""Titles encoded at a time by :meth:`Timeline.encode`."""
HOLE_CAUSE = "not recorded"
"""The cause of a hole between two files that no sidecar gap explains."""
MIN_HOLE_SECONDS = 1.0
"""Shorter holes between consecutive files are the rounding of their times (ms) and
frame alignment at a split, not missing audio; a sidecar gap is listed at any length."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One audio file as the index knows it: the row a clip planner reads."""

    path: str
    """Relative to the recordings directory, ``/``-separated."""
    source: str | None
    """From the sidecar; None for a file without a (readable) sidecar."""
    format: str | None
    start: float
    end: float
    """Unix seconds. A file whose sidecar has no end yet (being recorded, or cut by a
    crash not yet recovered) ends at its last write (its mtime)."""
    size: int
    mtime_ns: int
    open: bool = False
    """The sidecar has no end yet."""
    sha256: str | None = None
    """The file's SHA-256 as its sidecar records it (None while it is recorded, or
    when the sidecar has none)."""
    recording: bool = False
    """Being recorded now (the status file, or the recorder's lock): set per query."""
    check_ok: bool | None = None
    """The check of the closed file (its sidecar's ``check.ok``): None until checked."""

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)


class Gap(NamedTuple):
    """Aired time missing from ``start`` to ``end`` (Unix seconds)."""

    start: float
    end: float
    seconds: float
    cause: str
    file: str | None = None
    """The file whose sidecar lists it (None for a hole between files)."""


class Title(NamedTuple):
    """A title in force from ``at`` (Unix seconds)."""

    at: float
    title: str
    file: str


@dataclass(frozen=True, slots=True)
class SourceSummary:
    name: str
    format: str | None
    """The format of its latest file."""
    first: float
    last: float
    recording: bool = False


@dataclass(frozen=True)
class Timeline:
    source: str
    start: float
    end: float
    segments: tuple[Recording, ...]
    gaps: tuple[Gap, ...]
    titles: tuple[Title, ...]
    covered_seconds: float
    filled: tuple[Gap, ...] = ()
    """Gaps in one recorder's files that another recorder's files hold (a redundant
    pair): not gaps of the source; each names the file that fills it."""
    noted: tuple[Gap, ...] = ()
    """When some were filled: the sidecars' gaps as they list them (where each
    recorder's files break: :mod:`isr.clips.pair`)."""

    @property
    def span_seconds(self) -> float:
        return self.end - self.start

    def to_json(self, tz: tzinfo) -> dict[str, Any]:
        return {**self._head_json(tz), "titles": _titles_json(self.titles, tz)}

    def encode(self, tz: tzinfo) -> bytes:
        """:meth:`to_json` as UTF-8 JSON, made a few hundred titles at a time with the
        GIL handed over in between: a month of titles is a megabyte of JSON, which
        ``json.dumps`` would make in one go while the web UI's event loop waits."""
        parts = []
        for i in range(0, len(self.titles), ENCODE_TITLES):
            chunk = json.dumps(_titles_json(self.titles[i : i + ENCODE_TITLES], tz))
            parts.append(chunk[1:-1])
            time.sleep(0)  # let a thread that waits for the GIL (the loop) take it
        head = json.dumps(self._head_json(tz))
        return f'{head[:-1]}, "titles": [{", ".join(parts)}]}}'.encode()

    def _head_json(self, tz: tzinfo) -> dict[str, Any]:
        """All of :meth:`to_json` but the titles."""
        return {
            "source": self.source,
            "from": iso(self.start, tz),
            "to": iso(self.end, tz),
            "segments": [
                {
                    "file": r.path,
                    "start": iso(r.start, tz),
                    "end": iso(r.end, tz),
                    "recording": r.recording,
                    "format": r.format,
                    "size": r.size,
                }
                for r in self.segments
            ],
            "gaps": [
                {
                    "start": iso(g.start, tz),
                    "end": iso(g.end, tz),
                    "seconds": round(g.seconds, 3),
                    "cause": g.cause,
                }
                for g in self.gaps
            ],
            "covered_seconds": round(self.covered_seconds, 3),
        } | filled_json(self.filled, tz)


def filled_json(filled: Sequence[Gap], tz: tzinfo) -> dict[str, Any]:
    """``{"filled": [...]}`` when a pair filled something (``by``: the filling file);
    nothing otherwise, so a single recorder's answers keep their shape."""
    if not filled:
        return {}
    return {
        "filled": [
            {
                "start": iso(g.start, tz),
                "end": iso(g.end, tz),
                "seconds": round(g.seconds, 3),
                "cause": g.cause,
                "by": g.file,
            }
            for g in filled
        ]
    }


def _titles_json(titles: Sequence[Title], tz: tzinfo) -> list[dict[str, Any]]:
    return [{"at": iso(t.at, tz), "title": t.title} for t in titles]


def covered_seconds(rows: Iterable[Recording], t0: float, t1: float) -> float:
    """Seconds of ``[t0, t1)`` that the rows cover: their union, clipped to the span."""
    spans = sorted((max(r.start, t0), min(r.end, t1)) for r in rows)
    total = 0.0
    cur_a = cur_b = None
    for a, b in spans:
        if b <= a:
            continue
        if cur_b is None or a > cur_b:
            if cur_a is not None and cur_b is not None:
                total += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None and cur_b is not None:
        total += cur_b - cur_a
    return total


def holes(
    rows: Sequence[Recording],
    gaps: Iterable[Gap],
    t0: float,
    t1: float,
    *,
    min_seconds: float = MIN_HOLE_SECONDS,
) -> list[Gap]:
    """Holes between consecutive rows (sorted by start) that overlap ``[t0, t1)`` and
    that no gap in ``gaps`` overlaps. ``rows`` may include the file just before the
    span and the one just after it, so a hole at the span's edge is found too. Before
    a source's first file and after its last there is no hole: it was not recorded
    yet, or no longer (or it is recording now)."""
    known = list(gaps)
    out = []
    reach: float | None = None
    for r in sorted(rows, key=lambda r: r.start):
        if reach is not None and r.start - reach >= min_seconds:
            a, b = reach, r.start
            explained = any(g.start < b and g.end > a for g in known)
            if not explained and a < t1 and b > t0:
                out.append(Gap(a, b, b - a, HOLE_CAUSE))
        reach = r.end if reach is None else max(reach, r.end)
    return out


def titles_in_span(titles: Iterable[Title], t0: float, t1: float) -> list[Title]:
    """The title in force at ``t0`` (the last set at or before it), then each change
    in ``(t0, t1)``, by time. A title that repeats the one before it is no change: each
    file starts with the title in force, so a split repeats it."""
    out: list[Title] = []
    for t in sorted(titles, key=lambda t: (t.at, t.file)):
        if t.at >= t1:
            break
        if out and out[-1].title == t.title:
            continue
        if t.at <= t0:
            out = [t]
        else:
            out.append(t)
    return out


def make_timeline(
    source: str,
    t0: float,
    t1: float,
    rows: Sequence[Recording],
    *,
    neighbours: Sequence[Recording] = (),
    gaps: Iterable[Gap] = (),
    titles: Iterable[Title] = (),
    recording: frozenset[str] | set[str] = frozenset(),
    recorder: Callable[[str], str] | None = None,
) -> Timeline:
    """The timeline of ``source`` over ``[t0, t1)`` from the index's rows.

    ``rows`` are the files that overlap the span, ``neighbours`` the last file before
    it and the first after (for holes at its edges), ``gaps`` the sidecar gaps near it
    and ``titles`` those of ``rows``; ``recording`` names the files being recorded.
    ``recorder(path)`` names the recorder of a file when the rows may come from
    several (over the store): one's gap that another's files hold is then filled.
    """
    segments = tuple(
        r if r.recording == (r.path in recording) else replace(r, recording=r.path in recording)
        for r in sorted(rows, key=lambda r: (r.start, r.path))
        if (r.start < t1 and r.end > t0) or (r.start == r.end and t0 <= r.start < t1)
    )
    listed = sorted({g for g in gaps if g.start < t1 and g.end > t0}, key=lambda g: g.start)
    found = holes([*segments, *neighbours], listed, t0, t1)
    noted = tuple(listed)
    filled: list[Gap] = []
    if recorder is not None:
        listed, filled = unfilled(listed, [*segments, *neighbours], recorder)
    all_gaps = tuple(sorted([*listed, *found], key=lambda g: (g.start, g.end)))
    return Timeline(
        source=source,
        start=t0,
        end=t1,
        segments=segments,
        gaps=all_gaps,
        titles=tuple(titles_in_span(titles, t0, t1)),
        covered_seconds=covered_seconds(segments, t0, t1),
        filled=tuple(filled),
        noted=noted if filled else (),
    )


FILL_SLACK = 0.01
"""Less than this of a gap held by another file is rounding (sidecar times are in
milliseconds, a split's files abut), not a fill."""


def unfilled(
    gaps: Sequence[Gap], rows: Sequence[Recording], recorder: Callable[[str], str]
) -> tuple[list[Gap], list[Gap]]:
    """Each sidecar gap less what other recorders' files hold of it, and what they
    hold (a redundant pair). Only another recorder's files fill: one recorder's own
    may overlap its gap by a crash-cut file's end (its last write). Returns the
    gaps left (a gap held in its middle leaves two) and the fills, each with the
    file that fills it as its ``file``. Gaps left that overlap are one.
    """
    left: list[Gap] = []
    filled: list[Gap] = []
    for g in gaps:
        cover = sorted(
            (max(r.start, g.start), min(r.end, g.end), r.path)
            for r in rows
            if g.file is not None
            and recorder(r.path) != recorder(g.file)
            and min(r.end, g.end) - max(r.start, g.start) >= FILL_SLACK
        )
        if not cover:
            left.append(g)
            continue
        at = g.start
        for a, b, path in cover:
            if a - at >= FILL_SLACK:
                left.append(Gap(at, a, a - at, g.cause, g.file))
            if b > at:
                filled.append(Gap(max(a, at), b, b - max(a, at), g.cause, path))
                at = b
        if g.end - at >= FILL_SLACK:
            left.append(Gap(at, g.end, g.end - at, g.cause, g.file))
    return _merged(left), filled


def _merged(gaps: list[Gap]) -> list[Gap]:
    """Gaps that overlap as one (both recorders of a pair were out: each sidecar
    lists the time neither recorded), with the cause of the first."""
    out: list[Gap] = []
    for g in sorted(gaps, key=lambda g: (g.start, g.end)):
        if out and g.start < out[-1].end - FILL_SLACK:
            last = out[-1]
            if g.end > last.end:
                out[-1] = Gap(last.start, g.end, g.end - last.start, last.cause, last.file)
            continue
        out.append(g)
    return out


def sources_json(sources: Iterable[SourceSummary], tz: tzinfo) -> dict[str, Any]:
    return {
        "sources": [
            {
                "name": s.name,
                "format": s.format,
                "first": iso(s.first, tz),
                "last": iso(s.last, tz),
                "recording": s.recording,
            }
            for s in sources
        ]
    }


def recorder_of(path: str) -> str:
    """Over the store a recording is named ``<recorder id>/<path>``."""
    return path.split("/", 1)[0]
