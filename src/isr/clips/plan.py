"""Which units of which recordings a clip from FROM to TO holds: pure, no I/O.

Given the recordings of one source that overlap ``[FROM, TO)`` (the index's rows, by
start), each with its unit table, the planner picks per file the units the clip holds:

- **Stream formats** (whole units): the first is the unit that holds FROM, the last
  the one that holds the instant just before TO, so a clip starts at most one unit
  before FROM and ends at most one unit after TO. A unit of a file that starts at
  ``S`` is aired from ``S + samples before it / rate``. A file that begins before the
  last one ended (an overlap) contributes only what the clip does not hold yet.
- **PCM** (``exact`` tables): samples, not units. Files that abut (no gap in the
  sidecar and less than a second between one's end and the next's start) are one
  *run*, the captured signal in one piece; in a run the clip holds the sample at
  FROM (rounded to the nearest) and ``round((TO - FROM) x rate)`` samples from there,
  wherever the file boundaries fall. Across a gap the next run is placed by its own
  start.

The clip holds no audio: :class:`~isr.errors.NoAudio`. Its files do not all share
the codec parameters of the first (``UnitTable.key``), or their format:
:class:`~isr.errors.FormatChanged` naming the moment the change is aired. The gaps a
clip lists are those of the timeline (sidecar gaps and unexplained holes) that lie
inside what it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from isr.clips.cutter import Part
from isr.clips.pair import Keys, pair_parts
from isr.clips.units import UnitTable
from isr.errors import FormatChanged, NoAudio
from isr.timeline.query import Gap, Recording, covered_seconds

__all__ = ["RUN_SLACK", "TIME_ROUNDING", "Plan", "plan_clip"]

RUN_SLACK = 1.0
"""PCM files whose start is within this of the previous one's end, with no gap noted
in the sidecar, continue its capture (the times differ by rounding and re-anchoring)."""


TIME_ROUNDING = 0.001
"""Sidecar times are written to the millisecond: a file that seems to begin up to this
much before the previous one ended follows it."""


@dataclass(frozen=True)
class Plan:
    """What a clip holds."""

    source: str
    format: str
    asked: tuple[float, float]
    parts: tuple[Part, ...]
    gaps: tuple[Gap, ...]

    @property
    def start(self) -> float:
        return self.parts[0].start

    @property
    def end(self) -> float:
        return self.parts[-1].stop

    @property
    def exact(self) -> bool:
        return self.parts[0].table.exact

    @property
    def samples(self) -> int:
        return sum(p.samples for p in self.parts)


def plan_clip(
    source: str,
    t0: float,
    t1: float,
    rows: Sequence[Recording],
    tables: Callable[[Recording], UnitTable],
    *,
    root: Path,
    gaps: Sequence[Gap] = (),
    tz: tzinfo | None = None,
    chains: bool = False,
    recorder: Callable[[Recording], str] | None = None,
    keys: Keys | None = None,
    noted: Sequence[Gap] | None = None,
) -> Plan:
    """The plan of the clip of ``source`` from ``t0`` to ``t1`` (Unix seconds).

    ``rows`` are the recordings that overlap the span; ``tables(row)`` gives a row's
    unit table (walking it if it must); ``gaps`` are the timeline's gaps near it.
    ``chains``: the cutter writes a change of codec parameters as a new link (Ogg),
    so only a change of cutter is refused. ``recorder(row)`` names the recorder of a
    row when rows may come from several (a redundant pair, over the store); with
    ``keys`` their stream files are spliced by content (:mod:`isr.clips.pair`), each
    recorder's files broken where ``noted`` (the sidecars' own gaps; default ``gaps``).
    """
    ordered = sorted(rows, key=lambda r: (r.start, r.path))
    with_tables = [(r, tables(r)) for r in ordered]
    with_tables = [(r, t) for r, t in with_tables if t.count and t.rate]
    recorders = {recorder(r) for r, _ in with_tables} if recorder is not None else set()
    if with_tables and with_tables[0][1].exact:
        if recorder is not None and len(recorders) > 1:
            with_tables = _best_recorder(with_tables, recorder, t0, t1)
        parts = _pcm_parts(t0, t1, with_tables, gaps, root)
    elif recorder is not None and keys is not None and len(recorders) > 1:
        parts = pair_parts(
            t0,
            t1,
            with_tables,
            root,
            recorder=recorder,
            keys=keys,
            gaps=gaps if noted is None else noted,
        )
    else:
        parts = _frame_parts(t0, t1, with_tables, root)
    if not parts:
        raise NoAudio(f"nothing of {source!r} was recorded from {_show(t0, tz)} to {_show(t1, tz)}")
    first = parts[0]
    formats = {r.path: r.format for r, _ in with_tables}
    for p in parts[1:]:
        if chains:
            same = p.table.cutter == first.table.cutter
        else:
            same = p.table.key == first.table.key and formats[p.name] == formats[first.name]
        if not same:
            raise FormatChanged(
                f"the format changes at {_show(p.start, tz)} ({first.table.describe} before, "
                f"{p.table.describe} from then on): export each side as its own clip",
                p.start,
            )
    start, end = first.start, parts[-1].stop
    inside = tuple(
        g for g in sorted(gaps, key=lambda g: (g.start, g.end)) if g.end > start and g.start < end
    )
    return Plan(source, formats[first.name] or "", (t0, t1), tuple(parts), inside)


def _best_recorder(
    rows: Sequence[tuple[Recording, UnitTable]],
    recorder: Callable[[Recording], str],
    t0: float,
    t1: float,
) -> list[tuple[Recording, UnitTable]]:
    """PCM from several recorders: the files of the one that holds most of the span.
    Two soundcards never capture the same samples, so there is no splice by content:
    the clip is one recorder's (its gaps stay gaps)."""
    by: dict[str, list[tuple[Recording, UnitTable]]] = {}
    for r, t in rows:
        by.setdefault(recorder(r), []).append((r, t))
    best = max(sorted(by), key=lambda k: covered_seconds([r for r, _ in by[k]], t0, t1))
    return by[best]


def _show(t: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(t, tz).isoformat(timespec="milliseconds")


def _frame_parts(
    t0: float, t1: float, rows: Sequence[tuple[Recording, UnitTable]], root: Path
) -> list[Part]:
    parts: list[Part] = []
    reach = -float("inf")  # the end of what the clip holds so far
    for r, t in rows:
        # An overlap within the sidecars' rounding (ms) is none: a unit of no samples (an
        # Ogg Vorbis file's first packet) would be left out for it.
        since = max(t0, reach) if reach > r.start + TIME_ROUNDING else t0
        first = t.unit_at((since - r.start) * t.rate)
        end = t.unit_end((t1 - r.start) * t.rate)
        if end <= first:
            continue
        part = Part(
            r.path,
            root / r.path,
            t,
            first,
            end,
            r.start + t.sample(first) / t.rate,
            r.start + t.sample(end) / t.rate,
        )
        parts.append(part)
        reach = part.stop
    return parts


def _runs(
    rows: Sequence[tuple[Recording, UnitTable]], gaps: Sequence[Gap]
) -> list[list[tuple[Recording, UnitTable]]]:
    """PCM files grouped by capture: each run's files abut, sample after sample."""
    gap_at = {(g.file, round(g.end, 3)) for g in gaps if g.file is not None}
    runs: list[list[tuple[Recording, UnitTable]]] = []
    for r, t in rows:
        if runs:
            last_r, last_t = runs[-1][-1]
            last_end = last_r.start + last_t.seconds
            noted = (r.path, round(r.start, 3)) in gap_at  # a new capture began here
            if (
                not noted
                and abs(r.start - last_end) < RUN_SLACK
                and t.key == last_t.key
                and t.rate == last_t.rate
            ):
                runs[-1].append((r, t))
                continue
        runs.append([(r, t)])
    return runs


def _pcm_parts(
    t0: float,
    t1: float,
    rows: Sequence[tuple[Recording, UnitTable]],
    gaps: Sequence[Gap],
    root: Path,
) -> list[Part]:
    parts: list[Part] = []
    reach = -float("inf")
    for run in _runs(rows, gaps):
        origin = run[0][0].start
        rate = run[0][1].rate
        want = round((t1 - t0) * rate)
        g0 = round((t0 - origin) * rate)
        lo = max(g0, 0, round((reach - origin) * rate) if reach > origin else 0)
        hi = g0 + want
        before = 0  # samples of the run in earlier files
        for r, t in run:
            a, b = max(lo - before, 0), min(hi - before, t.total_samples)
            if b > a:
                part = Part(
                    r.path,
                    root / r.path,
                    t,
                    a,
                    b,
                    r.start + a / t.rate,
                    r.start + b / t.rate,
                )
                parts.append(part)
                reach = part.stop
            before += t.total_samples
    return parts
