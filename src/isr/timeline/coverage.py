"""Coverage: how much of what should have been recorded of a source was, per local day.

The index answers (``index.py``: a source's timeline over the days asked, its first
recording, its last end, whether it is being recorded now); this module turns them
into days. Everything but :func:`collect` is pure.

For a source and a span (a local day, or the last 24 hours):

- **expected** is the part of the span from the source's first recording (a source
  is not expected before it began) up to ``until``: now for a source that is
  expected now, the end of its last recording for one removed from the config. A
  local day lasts from its midnight to the next (``times.day_start``): 23 hours on
  the day the clocks go forward, 25 on the day they go back.
- **recorded** is the union of its files within the expected part
  (``query.covered_seconds``: two files that overlap count once), less the gaps a
  sidecar lists inside its own file (aired time missing while the connection held).
- **gaps** are the timeline's (each sidecar gap, each hole between two files that no
  sidecar explains: ``query.make_timeline``), and the time since the last file
  when nothing is being recorded now, each cut to the expected part: a gap across
  midnight is listed on both days, each with its own part.
- **failed checks** are the files overlapping the expected part whose check (the
  sidecar's ``check``, kept in the index) failed.

A day before the source's first recording, or after a removed source's last, is no
day of that source and is left out; so is a day after today.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
import time
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, Protocol

from isr.errors import BadTime, UnknownSource
from isr.sidecar import iso
from isr.timeline.query import (
    HOLE_CAUSE,
    MIN_HOLE_SECONDS,
    Gap,
    Recording,
    SourceSummary,
    Timeline,
    covered_seconds,
    filled_json,
)
from isr.timeline.times import day_start

__all__ = [
    "Coverage",
    "Expected",
    "Report",
    "collect",
    "collect_window",
    "coverage_json",
    "day_bounds",
    "days",
    "expected",
    "measure",
    "parse_day",
    "resolve_days",
]

INSIDE_EPSILON = 1e-3
"""A sidecar gap that ends this close to its file's start is a reconnect's (before the
file), not one inside it."""

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Expected:
    """When a source is expected to be recorded, and how it stands now."""

    source: str
    since: float
    """Its first recording's start (or when a configured source began to be expected)."""
    until: float
    """Now, or the end of a removed source's last recording."""
    last_end: float | None
    """The end of its latest file (None: nothing recorded yet)."""
    recording: bool
    """A file of it is being recorded now."""


@dataclass(frozen=True)
class Coverage:
    """One source over one span (a local day, or a window such as the last 24 h)."""

    source: str
    day: date | None
    start: float
    end: float
    expected_seconds: float
    recorded_seconds: float
    gaps: tuple[Gap, ...]
    failed_checks: tuple[str, ...]
    filled: tuple[Gap, ...] = ()
    """A recorder's gaps that another recorder filled (a redundant pair): each names
    the filling file (``file``); counted as recorded."""

    @property
    def coverage(self) -> float | None:
        """recorded / expected (at most 1); None when nothing was expected."""
        if self.expected_seconds <= 0:
            return None
        return min(1.0, self.recorded_seconds / self.expected_seconds)

    @property
    def missing_seconds(self) -> float:
        return max(0.0, self.expected_seconds - self.recorded_seconds)

    def to_json(self, tz: tzinfo) -> dict[str, Any]:
        ratio = self.coverage
        return {
            "source": self.source,
            "date": self.day.isoformat() if self.day is not None else None,
            "expected_seconds": round(self.expected_seconds, 3),
            "recorded_seconds": round(self.recorded_seconds, 3),
            "coverage": None if ratio is None else math.floor(ratio * 1e6) / 1e6,
            "gaps": [
                {
                    "start": iso(g.start, tz),
                    "end": iso(g.end, tz),
                    "seconds": round(g.seconds, 3),
                    "cause": g.cause,
                }
                for g in self.gaps
            ],
            "failed_checks": list(self.failed_checks),
        } | filled_json(self.filled, tz)


def coverage_json(days: Iterable[Coverage], tz: tzinfo) -> dict[str, Any]:
    """``/api/coverage``'s answer (and ``isr report --format json``)."""
    return {"days": [d.to_json(tz) for d in days]}


# -- days -----------------------------------------------------------------------------


def parse_day(text: str, what: str = "day") -> date:
    """A local day as ``YYYY-MM-DD``; BadTime for anything else."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    if not _DAY.match(text):
        raise BadTime(f"{what} {shown!r} is not a day (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadTime(f"{what} {shown!r} is not a day of the calendar") from None


def resolve_days(
    first: str | None, last: str | None, today: date, *, default_days: int, max_days: int
) -> tuple[date, date]:
    """``(first, last)`` local days, both included. Defaults: the ``default_days``
    ending today, or ending ``last``, or from ``first`` to today."""
    end = parse_day(last, "--to") if last else None
    begin = parse_day(first, "--from") if first else None
    if end is None:
        end = today if begin is None or begin <= today else begin
    if begin is None:
        begin = end - timedelta(days=default_days - 1)
    if begin > end:
        raise BadTime(f"FROM ({begin}) is after TO ({end})")
    if (end - begin).days + 1 > max_days:
        raise BadTime(f"{(end - begin).days + 1} days asked; at most {max_days} at a time")
    return begin, end


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_bounds(day: date, tz: tzinfo) -> tuple[float, float]:
    """The instants a local day starts and ends (23 or 25 hours apart on DST days)."""
    return _day_start(day, tz), _day_start(day + timedelta(days=1), tz)


@functools.lru_cache(maxsize=4096)
def _day_start(day: date, tz: tzinfo) -> float:
    return day_start(day, tz)


def local_day(t: float, tz: tzinfo) -> date:
    return datetime.fromtimestamp(t, tz).date()


# -- one source over one span ---------------------------------------------------------


def expected(summary: SourceSummary, now: float, *, configured: Collection[str] | None) -> Expected:
    """How ``summary``'s source is expected: from its first recording, until now while
    it is configured (or no config is known), else until its last recording ended."""
    gone = configured is not None and summary.name not in configured
    return Expected(
        source=summary.name,
        since=summary.first,
        until=max(summary.first, summary.last) if gone else now,
        last_end=summary.last,
        recording=summary.recording,
    )


def _pieces(rows: Sequence[Recording], gaps: Iterable[Gap]) -> list[Recording]:
    """The files, each less the gaps its own sidecar lists inside it."""
    inside: dict[str, list[Gap]] = {}
    for g in gaps:
        if g.file is not None:
            inside.setdefault(g.file, []).append(g)
    out: list[Recording] = []
    for r in rows:
        holes = [
            g
            for g in inside.get(r.path, ())
            if g.end > r.start + INSIDE_EPSILON and g.start < r.end
        ]
        if not holes:
            out.append(r)
            continue
        at = r.start
        for g in sorted(holes):
            if g.start > at:
                out.append(replace(r, start=at, end=g.start))
            at = max(at, g.end)
        if r.end > at:
            out.append(replace(r, start=at, end=r.end))
    return out


def _cut(g: Gap, a: float, b: float) -> Gap | None:
    start, end = max(g.start, a), min(g.end, b)
    if end <= start:
        return None
    if (start, end) == (g.start, g.end):
        return g
    return g._replace(start=start, end=end, seconds=end - start)


def trailing_gap(exp: Expected) -> Gap | None:
    """The time since the source's last file (or since it was expected, when it has
    none) while nothing of it is being recorded."""
    if exp.recording:
        return None
    since = exp.last_end if exp.last_end is not None else exp.since
    if exp.until - since < MIN_HOLE_SECONDS:
        return None
    return Gap(since, exp.until, exp.until - since, HOLE_CAUSE)


class _Spans:
    """A source's timeline made ready to be measured over many spans: its files less
    their inside gaps, its gaps with the trailing one, each sorted by start, so that a
    span looks only at what may overlap it (a month of files is measured day by day
    in time linear in the files, not days times files)."""

    def __init__(self, exp: Expected, timeline: Timeline) -> None:
        self.exp = exp
        self.pieces = sorted(_pieces(timeline.segments, timeline.gaps), key=lambda r: r.start)
        self.starts = [r.start for r in self.pieces]
        self.longest = max((r.end - r.start for r in self.pieces), default=0.0)
        listed = list(timeline.gaps)
        tail = trailing_gap(exp)
        if tail is not None and not any(g.start < tail.end and g.end > tail.start for g in listed):
            listed.append(tail)
        self.gaps = sorted(listed, key=lambda g: (g.start, g.end))
        self.gap_starts = [g.start for g in self.gaps]
        self.longest_gap = max((g.end - g.start for g in self.gaps), default=0.0)
        self.failed = [r for r in timeline.segments if r.check_ok is False]
        self.filled = sorted(timeline.filled, key=lambda g: (g.start, g.end))

    def measure(self, t0: float, t1: float, day: date | None = None) -> Coverage:
        exp = self.exp
        a, b = max(t0, exp.since), min(t1, exp.until)
        if b <= a:
            return Coverage(exp.source, day, t0, t1, 0.0, 0.0, (), ())
        lo = bisect.bisect_left(self.starts, a - self.longest - 1.0)
        hi = bisect.bisect_left(self.starts, b)
        recorded = covered_seconds(self.pieces[lo:hi], a, b)
        lo = bisect.bisect_left(self.gap_starts, a - self.longest_gap - 1.0)
        hi = bisect.bisect_left(self.gap_starts, b)
        gaps = tuple(
            sorted(
                (c for g in self.gaps[lo:hi] if (c := _cut(g, a, b)) is not None),
                key=lambda g: (g.start, g.end),
            )
        )
        failed = tuple(r.path for r in self.failed if r.start < b and r.end > a)
        filled = tuple(c for g in self.filled if (c := _cut(g, a, b)) is not None)
        return Coverage(exp.source, day, t0, t1, b - a, recorded, gaps, failed, filled)


def measure(
    exp: Expected, timeline: Timeline, t0: float, t1: float, day: date | None = None
) -> Coverage:
    """The coverage of ``exp.source`` over ``[t0, t1)``, from its ``timeline`` over a
    span that holds it (asked with its neighbours, so holes at the edges are found)."""
    return _Spans(exp, timeline).measure(t0, t1, day)


def measure_days(
    exp: Expected, timeline: Timeline, wanted: Iterable[date], tz: tzinfo
) -> list[Coverage]:
    """Each of the ``wanted`` days on which the source was expected at all."""
    spans = _Spans(exp, timeline)
    out = []
    for d in wanted:
        t0, t1 = day_bounds(d, tz)
        c = spans.measure(t0, t1, d)
        if c.expected_seconds > 0:
            out.append(c)
    return out


# -- asking an index ------------------------------------------------------------------


class Index(Protocol):
    """What :func:`collect` asks (``TimelineIndex`` answers it)."""

    def sources(self) -> list[SourceSummary]: ...

    def timeline(self, source: str, t0: float, t1: float, *, titles: bool = True) -> Timeline: ...

    def at_once(self) -> AbstractContextManager[None]:
        """Questions asked inside it share one refresh of the index."""
        ...


@dataclass(frozen=True)
class Report:
    days: list[Coverage]
    """By source, then day."""
    never_recorded: list[str]
    """Configured sources of which nothing at all was recorded (no day to show)."""


def collect(
    index: Index,
    tz: tzinfo,
    first: date,
    last: date,
    now: float,
    *,
    configured: Collection[str] | None = None,
    only: Collection[str] | None = None,
) -> Report:
    """Every source's days from ``first`` to ``last`` (local, both included).
    ``configured`` names the sources the config records (None: unknown, and every
    source with recordings is expected until now); ``only`` narrows the sources, and
    one that is neither configured nor recorded is UnknownSource."""
    summaries = index.sources()
    known = {s.name for s in summaries}
    if only is not None:
        for name in only:
            if name not in known and (configured is None or name not in configured):
                raise UnknownSource(f"no recordings of source {name!r}")
    today = local_day(now, tz)
    out: list[Coverage] = []
    for summary in sorted(summaries, key=lambda s: s.name):
        if only is not None and summary.name not in only:
            continue
        exp = expected(summary, now, configured=configured)
        begin = max(first, local_day(exp.since, tz))
        end = min(last, today, local_day(max(exp.since, exp.until - 1e-3), tz))
        if begin > end:
            continue
        t0, _ = day_bounds(begin, tz)
        _, t1 = day_bounds(end, tz)
        timeline = index.timeline(summary.name, t0, t1, titles=False)
        out.extend(measure_days(exp, timeline, days(begin, end), tz))
        time.sleep(0)  # a thread waiting for the GIL (the web UI's loop) takes it now
    missing = sorted(set(configured or ()) - known)
    if only is not None:
        missing = [m for m in missing if m in only]
    return Report(out, missing)


def collect_window(
    index: Index, names: Iterable[str], t0: float, t1: float, *, expected_since: float
) -> dict[str, Coverage]:
    """The coverage of each source named over ``[t0, t1)`` (``t1`` is now): the
    recorder's view of its configured sources, each expected since its first
    recording or ``expected_since`` (when the recorder started), whichever came first;
    a source with no recording at all has recorded nothing since then. All of them
    from one refresh of the index (``Index.at_once``)."""
    with index.at_once():
        return _window(index, names, t0, t1, expected_since)


def _window(
    index: Index, names: Iterable[str], t0: float, t1: float, expected_since: float
) -> dict[str, Coverage]:
    summaries = {s.name: s for s in index.sources()}
    out = {}
    for name in names:
        summary = summaries.get(name)
        if summary is None:
            exp = Expected(name, expected_since, t1, None, recording=False)
            timeline = Timeline(name, t0, t1, (), (), (), 0.0)
        else:
            exp = replace(
                expected(summary, t1, configured=None), since=min(summary.first, expected_since)
            )
            timeline = index.timeline(name, t0, t1, titles=False)
        out[name] = measure(exp, timeline, t0, t1)
    return out
