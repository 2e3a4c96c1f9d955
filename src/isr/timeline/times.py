"""Times as people type them, on the command line and in queries, made instants.

Pure: text and a ``tzinfo`` in, Unix seconds out (or :class:`~isr.errors.BadTime`).

Accepted (ISO 8601, as ``datetime.fromisoformat`` reads it):

- with an offset: ``2026-11-24T14:23:00+01:00``, ``…Z``, ``…+0100``: that instant;
- local time: ``2026-11-24T14:23``, ``2026-11-24 14:23:05``, ``…14:23:05.250``;
- a day: ``2026-11-24``, the local midnight that starts it.

A query string turns ``+`` into a space, so ``2026-11-24T14:23:00 01:00`` (a date, a
time, a space and ``HH:MM``) is read as the ``+01:00`` it was before it was sent.

**Daylight saving time.** A local time means *the first instant at which the local
clock showed it*, and for a time the clock never showed (skipped when it went
forward) *the instant it went forward*:

- ambiguous (the hour repeated in autumn): the first occurrence, still on summer
  time (``fold=0``): ``2026-10-25 02:30`` in Berlin is ``02:30+02:00``;
- nonexistent (the hour skipped in spring): the moment of the jump:
  ``2026-03-29 02:30`` in Berlin is ``03:00+02:00``, as are ``02:00`` and ``02:59``.

The rule is monotone (a later wall time is never an earlier instant), and both
readings of the repeated hour stay reachable with an explicit offset.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, tzinfo

from isr.errors import BadTime

__all__ = ["day_start", "local_instant", "parse_time", "resolve_span"]

_SPACED_OFFSET = re.compile(
    r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?) (\d{2}(?::?\d{2})?)$"
)
_CHARACTERS = re.compile(r"^[0-9TtZz:.,+\- ]+$")
"""All an ISO 8601 time is made of (``fromisoformat`` forgives more, a NUL included)."""
MIN_INSTANT = 0.0
MAX_INSTANT = datetime(9999, 12, 30).timestamp()
"""Outside these every zone can render an instant (1970 to the end of year 9999)."""


def _wall(t: float, tz: tzinfo) -> datetime:
    return datetime.fromtimestamp(t, tz).replace(tzinfo=None)


def local_instant(wall: datetime, tz: tzinfo) -> float:
    """The instant a naive local ``wall`` time means in ``tz`` (see the module's DST rule)."""
    wall = wall.replace(tzinfo=None, fold=0)
    shown = []
    for fold in (0, 1):
        inst = wall.replace(tzinfo=tz, fold=fold).timestamp()
        if _wall(inst, tz) == wall:
            shown.append(inst)
    if shown:
        return min(shown)
    # Skipped by a jump forward. The two folds straddle the jump (the offset before
    # and the one after): find the first whole second whose wall time is past ``wall``.
    a = wall.replace(tzinfo=tz, fold=0).timestamp()
    b = wall.replace(tzinfo=tz, fold=1).timestamp()
    lo, hi = math.floor(min(a, b)), math.ceil(max(a, b))
    if _wall(lo, tz) >= wall or _wall(hi, tz) < wall:  # no sane zone does this
        return min(a, b)
    while hi - lo > 1:  # invariant: wall(lo) < wall <= wall(hi)
        mid = (lo + hi) // 2
        if _wall(mid, tz) < wall:
            lo = mid
        else:
            hi = mid
    return float(hi)


def day_start(day: date, tz: tzinfo) -> float:
    """The instant the local ``day`` begins (its midnight, by the DST rule)."""
    return local_instant(datetime(day.year, day.month, day.day), tz)


def parse_time(text: str, tz: tzinfo) -> float:
    """Unix seconds of an ISO 8601 time, a local time or a day; BadTime if none."""
    raw = text.strip()
    shown = text if len(text) <= 64 else text[:61] + "..."
    m = _SPACED_OFFSET.match(raw)
    if m:
        raw = f"{m.group(1)}+{m.group(2)}"
    if not raw[:1].isdigit() or not _CHARACTERS.match(raw):
        raise BadTime(f"not a time: {shown!r} (expected e.g. 2026-11-24T14:23 or 2026-11-24)")
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise BadTime(
            f"not a time: {shown!r} (expected ISO 8601, e.g. 2026-11-24T14:23, "
            "2026-11-24 14:23:05, 2026-11-24T14:23:00+01:00 or 2026-11-24)"
        ) from None
    try:
        t = local_instant(parsed, tz) if parsed.tzinfo is None else parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        raise BadTime(f"time out of range: {shown!r}") from None
    if not MIN_INSTANT <= t <= MAX_INSTANT:
        raise BadTime(f"time out of range: {shown!r} (1970 to 9999)")
    return t


def resolve_span(
    start: str | None,
    end: str | None,
    tz: tzinfo,
    now: float,
    *,
    max_days: int | None = None,
) -> tuple[float, float]:
    """``(from, to)`` as asked; defaults: from the start of today (local) to ``now``.

    FROM must lie before TO. ``max_days`` limits the span in local calendar days, so
    that a month with a DST change (a day of 23 or 25 hours) still fits.
    """
    t0 = parse_time(start, tz) if start is not None else day_start(_wall(now, tz).date(), tz)
    t1 = parse_time(end, tz) if end is not None else now
    if t0 >= t1:
        raise BadTime("FROM must be before TO")
    if max_days is not None and _wall(t1, tz) - _wall(t0, tz) > timedelta(days=max_days):
        raise BadTime(f"the span is longer than {max_days} days")
    return t0, t1
