"""A timeline as ``isr timeline`` prints it: aligned columns, local times, a summary.

Pure: a :class:`~isr.timeline.query.Timeline` and a zone in, text out. Times show the
date only when the listing spans more than one local day, and their UTC offset only
when it changes within the listing (a DST day); otherwise the heading says both.
Control characters in names and titles (a stream's title is anyone's text) are shown
escaped, never sent to the terminal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, tzinfo

from isr.timeline.query import Timeline

__all__ = ["amount", "render", "summary"]


def amount(seconds: float) -> str:
    """A length for people: ``4.2 s``, ``3 min 20 s``, ``23 h 58 min``, ``24 h``.
    Rounded down, so that a hair short of a whole is never shown as the whole."""
    if seconds < 60:
        return f"{math.floor(max(0.0, seconds) * 10) / 10:.1f} s"
    whole = math.floor(seconds)
    if whole < 3600:
        m, s = divmod(whole, 60)
        return f"{m} min" if s == 0 else f"{m} min {s:02d} s"
    h, m = divmod(whole // 60, 60)
    return f"{h} h" if m == 0 else f"{h} h {m:02d} min"


def _clock(seconds: float) -> str:
    whole = math.floor(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _percent(part: float, whole: float) -> str:
    if whole <= 0:
        return "0.0 %"
    if part >= whole:
        return "100 %"
    return f"{math.floor(part / whole * 1000) / 10:.1f} %"


def summary(tl: Timeline) -> str:
    n = len(tl.gaps)
    gaps = "no gaps" if n == 0 else "1 gap" if n == 1 else f"{n} gaps"
    return (
        f"Recorded {amount(tl.covered_seconds)} of {amount(tl.span_seconds)} "
        f"({_percent(tl.covered_seconds, tl.span_seconds)}); {gaps}"
    )


def _shown(text: str) -> str:
    """``text`` with control characters escaped (``\\x1b``, ``\\n``...)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return [
        indent + "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    ]


def render(tl: Timeline, tz: tzinfo, *, zone_name: str = "") -> str:
    """The whole listing, ending with the summary line."""
    starts = [tl.start, *(r.start for r in tl.segments), *(g.start for g in tl.gaps)]
    starts += [t.at for t in tl.titles]
    ends = [tl.end, *(r.end for r in tl.segments), *(g.end for g in tl.gaps)]
    local = [datetime.fromtimestamp(t, tz) for t in [*starts, *ends]]
    # an end at midnight closes the day before: a day's listing needs no dates
    days = {datetime.fromtimestamp(t, tz).date() for t in starts}
    days |= {datetime.fromtimestamp(max(t - 1e-3, tl.start), tz).date() for t in ends}
    one_day = len(days) == 1
    offsets = {d.strftime("%z") for d in local}
    one_offset = len(offsets) == 1

    def when(t: float) -> str:
        d = datetime.fromtimestamp(t, tz)
        text = d.strftime("%H:%M:%S" if one_day else "%Y-%m-%d %H:%M:%S")
        return text if one_offset else text + d.isoformat()[-6:]

    fmt = "%Y-%m-%d %H:%M:%S"
    zone = [zone_name] if zone_name else []
    if one_offset:
        zone.append("UTC" + local[0].isoformat()[-6:])
    lines = [
        f"{_shown(tl.source)}: {local[0].strftime(fmt)} to "
        f"{datetime.fromtimestamp(tl.end, tz).strftime(fmt)}"
        + (f" ({', '.join(zone)})" if zone else ""),
        "",
    ]
    if tl.segments:
        rows = [["start", "end", "length", "file"]]
        for r in tl.segments:
            name = _shown(r.path) + ("  (recording)" if r.recording else "")
            rows.append([when(r.start), when(r.end), _clock(r.seconds), name])
        lines += ["Files", *_table(rows), ""]
    else:
        lines += ["No files in this span.", ""]
    if tl.gaps:
        rows = [["start", "end", "length", "cause"]]
        rows += [[when(g.start), when(g.end), amount(g.seconds), _shown(g.cause)] for g in tl.gaps]
        lines += ["Gaps", *_table(rows), ""]
    if tl.titles:
        rows = [["at", "title"]] + [[when(t.at), _shown(t.title)] for t in tl.titles]
        lines += ["Titles", *_table(rows), ""]
    lines.append(summary(tl))
    return "\n".join(lines) + "\n"
