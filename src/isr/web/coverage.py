"""``GET /api/coverage`` and ``GET /coverage``: coverage per source and local day.

Both ask the index through the app's timeline gate (one index job at a time, off the
loop) and compute with ``isr.timeline.coverage``; the page is rendered in a worker
thread too. The page needs no script: each source is a calendar of 42 days, a table
whose cells are links to that day's timeline (``/timeline?source=S&day=D``), coloured
by coverage and saying it in text, then the same days as a list.

Statuses: 400 for days that do not parse, FROM after TO or more than
``MAX_DAYS`` days; 404 for a source neither configured nor recorded.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from typing import Protocol, TypeVar
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from isr.errors import BadTime
from isr.evidence.report import DEFAULT_DAYS, MAX_DAYS, clock, percent
from isr.timeline.coverage import (
    Coverage,
    Report,
    collect,
    local_day,
    parse_day,
    resolve_days,
)
from isr.timeline.index import TimelineIndex
from isr.timeline.text import amount

__all__ = ["COVERAGE", "PAGE_DAYS", "CoverageRoutes", "band", "setup"]

T = TypeVar("T")

PAGE_DAYS = 42
"""Days per source on the page: six weeks at a glance."""
ENCODE_DAYS = 300


class OnIndex(Protocol):
    def __call__(self, work: Callable[[TimelineIndex], T]) -> Awaitable[T]: ...


@dataclass
class CoverageRoutes:
    on_index: OnIndex
    templates: jinja2.Environment
    tz: tzinfo
    configured: frozenset[str] | None
    """The config's sources when the config is known (``isr run``, ``isr web -c``)."""
    min_coverage: float
    now: Callable[[], float] = time.time


COVERAGE = web.AppKey("isr_coverage", CoverageRoutes)


def setup(
    app: web.Application,
    on_index: OnIndex,
    templates: jinja2.Environment,
    tz: tzinfo,
    *,
    configured: Iterable[str] | None,
    min_coverage: float,
) -> None:
    app[COVERAGE] = CoverageRoutes(
        on_index,
        templates,
        tz,
        None if configured is None else frozenset(configured),
        min_coverage,
    )
    app.router.add_get("/api/coverage", api_coverage)
    app.router.add_get("/coverage", coverage_page)


def _error(cls: type[web.HTTPError], message: str) -> web.HTTPError:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


async def api_coverage(request: web.Request) -> web.Response:
    routes = request.app[COVERAGE]
    q = request.query
    source = q.get("source") or None
    now = routes.now()
    try:
        first, last = resolve_days(
            q.get("from") or None,
            q.get("to") or None,
            local_day(now, routes.tz),
            default_days=DEFAULT_DAYS,
            max_days=MAX_DAYS,
        )
    except BadTime as exc:
        raise _error(web.HTTPBadRequest, str(exc)) from None

    def answer(index: TimelineIndex) -> list[Coverage]:
        only = {source} if source is not None else None
        report = collect(
            index, routes.tz, first, last, now, configured=routes.configured, only=only
        )
        return report.days

    days = await routes.on_index(answer)
    body = await asyncio.to_thread(_encode, days, routes.tz)
    response = web.Response(body=body, content_type="application/json")
    response.enable_compression()  # when asked for: a year of 100 sources is megabytes
    return response


def _encode(days: list[Coverage], tz: tzinfo) -> bytes:
    """``{"days": [...]}`` a few hundred days at a time, the GIL handed over in
    between: 4,200 days of JSON made by one ``json.dumps`` would hold the loop."""
    parts = []
    for i in range(0, len(days), ENCODE_DAYS):
        parts.append(json.dumps([d.to_json(tz) for d in days[i : i + ENCODE_DAYS]])[1:-1])
        time.sleep(0)
    return ('{"days": [' + ", ".join(p for p in parts if p) + "]}").encode()


# -- the page -------------------------------------------------------------------------


def band(c: Coverage | None, min_coverage: float) -> str:
    """The colour class of a day: ``full`` (no gap at all), ``ok`` (at least
    ``min_coverage``), ``part`` (90 %), ``low`` (something), ``none``, or ``na``
    (not expected: before the first recording, after a removed source's last)."""
    ratio = c.coverage if c is not None else None
    if c is None or ratio is None:
        return "na"
    if not c.gaps and c.missing_seconds < 1.0:
        return "full"
    if ratio >= min_coverage:
        return "ok"
    if ratio >= 0.9:
        return "part"
    return "low" if ratio > 0 else "none"


@dataclass(frozen=True)
class Cell:
    day: date
    shown: bool
    """Inside the 42 days (the grid's first and last weeks are padded)."""
    coverage: Coverage | None
    band: str
    href: str
    today: bool

    @property
    def percent(self) -> str:
        return percent(self.coverage) if self.coverage is not None else ""

    @property
    def note(self) -> str:
        """What colour alone would say, for a screen reader and a tooltip."""
        c = self.coverage
        if c is None:
            return "not expected"
        parts = [f"{self.percent} recorded" + (" so far" if self.today else "")]
        n = len(c.gaps)
        parts.append("no gaps" if n == 0 else f"{n} gap{'s' if n != 1 else ''}")
        f = len(c.failed_checks)
        if f:
            parts.append(f"{f} failed check{'s' if f != 1 else ''}")
        return ", ".join(parts)


@dataclass(frozen=True)
class SourceView:
    name: str
    weeks: list[list[Cell]]
    days: list[Coverage]
    summary: str
    flawed: list[Coverage]
    """The days with a gap or a failed check: listed in full under the calendar."""


def _href(source: str, day: date) -> str:
    return "/timeline?" + urlencode({"source": source, "day": day.isoformat()})


def _summary(days: list[Coverage], min_coverage: float) -> str:
    if not days:
        return "Not expected on these days."
    expected = sum(c.expected_seconds for c in days)
    recorded = sum(c.recorded_seconds for c in days)
    whole = Coverage("", None, 0, 0, expected, recorded, (), ())
    short = [c for c in days if band(c, min_coverage) not in ("full", "na")]
    failed = sum(len(c.failed_checks) for c in days)
    n = len(days)
    text = f"{n} day{'s' if n != 1 else ''} expected: {percent(whole)} recorded"
    text += f" ({amount(whole.missing_seconds)} missing)" if whole.missing_seconds >= 0.05 else ""
    if short:
        listed = ", ".join(f"{c.day} ({percent(c)})" for c in short)
        text += f"; {len(short)} with gaps: {listed}"
    else:
        text += "; no gaps"
    if failed:
        text += f"; {failed} failed check{'s' if failed != 1 else ''}"
    return text + "."


def views(
    report: Report,
    names: Collection[str],
    first: date,
    last: date,
    today: date,
    min_coverage: float,
) -> list[SourceView]:
    """One calendar per source: weeks from Monday to Sunday, the days outside
    ``first..last`` left blank."""
    by: dict[str, dict[date, Coverage]] = {}
    for c in report.days:
        if c.day is not None:
            by.setdefault(c.source, {})[c.day] = c
    begin = first - timedelta(days=first.weekday())
    end = last + timedelta(days=6 - last.weekday())
    out = []
    for name in sorted(names):
        mine = by.get(name, {})
        weeks: list[list[Cell]] = []
        day = begin
        while day <= end:
            found = mine.get(day)
            cell = Cell(
                day,
                first <= day <= last,
                found,
                band(found, min_coverage),
                _href(name, day),
                day == today,
            )
            if day.weekday() == 0:
                weeks.append([])
            weeks[-1].append(cell)
            day += timedelta(days=1)
        days = [mine[d] for d in sorted(mine)]
        flawed = [c for c in days if c.gaps or c.failed_checks or c.missing_seconds >= 1.0]
        out.append(SourceView(name, weeks, days, _summary(days, min_coverage), flawed))
    return out


async def coverage_page(request: web.Request) -> web.Response:
    routes = request.app[COVERAGE]
    q = request.query
    source = q.get("source", "")[:200] or None
    now = routes.now()
    today = local_day(now, routes.tz)
    try:
        last = parse_day(q["to"], "to") if q.get("to") else today
    except BadTime:
        last = today  # a bookmark with a bad day still shows something
    last = min(last, today)
    first = last - timedelta(days=PAGE_DAYS - 1)

    def ask(index: TimelineIndex) -> tuple[Report, list[str]]:
        names = {s.name for s in index.sources()} | set(routes.configured or ())
        only = {source} if source is not None else None
        report = collect(
            index, routes.tz, first, last, now, configured=routes.configured, only=only
        )
        return report, sorted(names)

    status = 200
    message = ""
    try:
        report, names = await routes.on_index(ask)
    except web.HTTPNotFound:
        status, message = 404, f"No recordings of source {source!r}."
        report, names = Report([], []), []

    def render() -> str:
        shown = [source] if source is not None and not message else names
        return routes.templates.get_template("coverage.html").render(
            sources=views(report, shown, first, last, today, routes.min_coverage),
            names=names,
            source=source or "",
            first=first,
            last=last,
            today=today,
            earlier=(last - timedelta(days=PAGE_DAYS)).isoformat(),
            later=min(today, last + timedelta(days=PAGE_DAYS)).isoformat() if last < today else "",
            never=report.never_recorded,
            percent=percent,
            amount=amount,
            clock=lambda t, c: clock(t, c, routes.tz),
            message=message,
            min_coverage=f"{math.floor(routes.min_coverage * 10000) / 100:g} %",
            api="/api/coverage?"
            + urlencode(
                {**({"source": source} if source else {}), "from": str(first), "to": str(last)}
            ),
        )

    html = await asyncio.to_thread(render)
    response = web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )
    response.enable_compression()  # when asked for: 100 sources' calendars are ~2 MB
    return response
