"""``isr report``: coverage per source and local day, as text, CSV or JSON.

``cli.py`` registers the command (``add_command``) and maps errors to exit codes (a
bad day, an unknown source: 2). The figures come from ``isr.timeline.coverage`` over
the index by time; this module picks the directories and the sources, and prints.

Which sources are expected: with a config (``-c``, ``$ISR_CONFIG`` or ``config.ini``)
its sources, until now, and each source recorded but no longer in the config until
its last recording ended; with only ``--dir``, every source with recordings, until
now. A configured source of which nothing at all was recorded has no day to show: the
text says so, and the JSON lists it under ``never_recorded``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from isr.config import Config
from isr.errors import QueryError, UnknownSource
from isr.timeline.coverage import Coverage, Report, coverage_json, day_bounds, resolve_days
from isr.timeline.text import amount

__all__ = [
    "DEFAULT_DAYS",
    "FORMATS",
    "MAX_DAYS",
    "add_command",
    "clock",
    "cmd_report",
    "csv_text",
    "percent",
    "text",
]

ConfigLoader = Callable[[str | None], Config]

FORMATS = ("text", "csv", "json")
DEFAULT_DAYS = 7
MAX_DAYS = 400
"""The most days one report (or ``/api/coverage``) covers."""
CSV_COLUMNS = (
    "source",
    "date",
    "expected_seconds",
    "recorded_seconds",
    "coverage",
    "gaps",
    "gap_seconds",
    "failed_checks",
)


def add_command(sub: Any, add_config: Callable[[Any], None]) -> None:
    r = sub.add_parser(
        "report",
        help="coverage per source and local day: expected, recorded, gaps, failed checks",
        description="Prints, for each source and local day, the seconds expected (a day "
        "has 23 or 25 hours when the clocks change; a source's first day counts from its "
        "first recording, today up to now), the seconds recorded (the union of its "
        "files), the coverage, every gap with its cause and the files that failed their "
        "check. With a config, a source no longer in it is expected only until its last "
        "recording; with --dir, every source with recordings is expected until now.",
    )
    where = r.add_mutually_exclusive_group()
    add_config(where)
    where.add_argument("--dir", default=None, help="recordings directory (default: the config's)")
    r.add_argument("--source", action="append", metavar="S", help="only this source (repeatable)")
    r.add_argument(
        "--from",
        dest="first",
        metavar="D",
        help=f"first local day, YYYY-MM-DD (default: {DEFAULT_DAYS - 1} days before --to)",
    )
    r.add_argument("--to", dest="last", metavar="D", help="last local day (default: today)")
    r.add_argument(
        "--format",
        default="text",
        metavar="FORMAT",
        help="text (a table for people, the default), csv or json (as /api/coverage)",
    )


def _config(args: argparse.Namespace, load_config: ConfigLoader) -> Config | None:
    """The config named, or ``config.ini`` if it exists; None when there is none
    (then ``recordings`` is read, as ``isr timeline`` does)."""
    if args.dir:
        return None
    if args.config or os.environ.get("ISR_CONFIG") or Path("config.ini").exists():
        return load_config(args.config)
    return None


def gather(
    roots: Sequence[Path],
    tz: tzinfo,
    first_text: str | None,
    last_text: str | None,
    now: float,
    *,
    configured: Collection[str] | None,
    home: dict[str, Path] | None = None,
    only: Collection[str] | None = None,
) -> tuple[Report, tuple[Any, Any]]:
    """The report over every directory in ``roots`` (the first must exist). A
    configured source is read from its own directory (``home``) only."""
    from isr.timeline.coverage import collect, local_day
    from isr.timeline.index import TimelineIndex

    first, last = resolve_days(
        first_text, last_text, local_day(now, tz), default_days=DEFAULT_DAYS, max_days=MAX_DAYS
    )
    if not roots or not roots[0].is_dir():
        raise QueryError(f"no recordings directory {str(roots[0]) if roots else ''!r}")
    days: dict[tuple[str, Any], Coverage] = {}
    never: set[str] | None = None
    unknown = 0
    for root in roots:
        if not root.is_dir():
            continue
        index = TimelineIndex(root, tz)
        try:
            found = collect(index, tz, first, last, now, configured=configured, only=only)
        except UnknownSource:
            unknown += 1
            continue
        finally:
            index.close()
        for c in found.days:
            if home is not None and c.source in home and home[c.source] != root:
                continue
            days.setdefault((c.source, c.day), c)
        never = set(found.never_recorded) if never is None else never & set(found.never_recorded)
    if unknown and not days and never is None:
        name = next(iter(only or ()), "")
        raise UnknownSource(f"no recordings of source {name!r}")
    ordered = [days[k] for k in sorted(days, key=lambda k: (k[0], k[1]))]
    return Report(ordered, sorted(never or ())), (first, last)


def cmd_report(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    from isr.clock import local_zone

    fmt = (args.format or "").lower()
    if fmt not in FORMATS:
        raise QueryError(f"--format {args.format!r}: one of {', '.join(FORMATS)}")
    cfg = _config(args, load_config)
    home: dict[str, Path] | None = None
    configured: set[str] | None = None
    if args.dir:
        roots = [Path(args.dir)]
    elif cfg is not None:
        roots = [cfg.output_directory]
        roots += sorted({s.output_directory for s in cfg.sources} - {cfg.output_directory})
        home = {s.name: s.output_directory for s in cfg.sources}
        configured = set(home)
    else:
        roots = [Path("recordings")]
    tz = local_zone()
    report, (first, last) = gather(
        roots,
        tz,
        args.first,
        args.last,
        time.time(),
        configured=configured,
        home=home,
        only=set(args.source) if args.source else None,
    )
    if fmt == "json":
        data = coverage_json(report.days, tz)
        if configured is not None:
            data["never_recorded"] = report.never_recorded
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=1) + "\n")
    elif fmt == "csv":
        sys.stdout.write(csv_text(report.days))
    else:
        zone = getattr(tz, "key", "")
        sys.stdout.write(
            text(report, tz, first, last, zone_name=zone if zone != "localtime" else "")
        )
    sys.stdout.flush()
    return 0


# -- rendering ------------------------------------------------------------------------


def percent(c: Coverage) -> str:
    """Floored to a hundredth: 99.999 % is never shown as 100 %."""
    ratio = c.coverage
    if ratio is None:
        return "-"
    if ratio >= 1.0:
        return "100 %"
    return f"{math.floor(ratio * 10000) / 100:.2f} %"


def _shown(text: str) -> str:
    """Control characters escaped (a source name is anyone's section name)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _table(rows: Sequence[Sequence[str]], right: Collection[int] = ()) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


def clock(t: float, c: Coverage, tz: tzinfo) -> str:
    """A gap's time on its day's line: the date only for the next midnight, the
    offset only on a day the clocks change."""
    d = datetime.fromtimestamp(t, tz)
    shown = d.strftime("%H:%M:%S")
    if c.day is not None:
        t0, t1 = day_bounds(c.day, tz)
        if datetime.fromtimestamp(t0, tz).utcoffset() != datetime.fromtimestamp(t1, tz).utcoffset():
            shown += d.isoformat()[-6:]  # the day the clocks change: which 02:30
    if d.date() != c.day:
        shown = d.strftime("%Y-%m-%d ") + shown  # the next midnight
    return shown


def text(report: Report, tz: tzinfo, first: Any, last: Any, *, zone_name: str = "") -> str:
    """The table a person reads, the gaps and failed checks listed under it, and one
    line per source over all its days."""
    head = f"Coverage from {first} to {last}" + (f" ({zone_name})" if zone_name else "")
    lines = [head, ""]
    if not report.days:
        lines.append("No source was expected on these days.")
    else:
        rows = [["source", "day", "expected", "recorded", "coverage", "gaps", "failed checks"]]
        for c in report.days:
            rows.append(
                [
                    _shown(c.source),
                    str(c.day),
                    amount(c.expected_seconds),
                    amount(c.recorded_seconds),
                    percent(c),
                    str(len(c.gaps)),
                    str(len(c.failed_checks)),
                ]
            )
        lines += _table(rows, right={4, 5, 6})
        gaps = [
            [
                _shown(c.source),
                str(c.day),
                clock(g.start, c, tz),
                clock(g.end, c, tz),
                amount(g.seconds),
                _shown(g.cause),
            ]
            for c in report.days
            for g in c.gaps
        ]
        if gaps:
            lines += [
                "",
                "Gaps",
                *_table([["source", "day", "from", "to", "length", "cause"], *gaps]),
            ]
        filled = [
            [
                _shown(c.source),
                str(c.day),
                clock(g.start, c, tz),
                clock(g.end, c, tz),
                amount(g.seconds),
                _shown(g.cause),
                _shown(g.file or ""),
            ]
            for c in report.days
            for g in c.filled
        ]
        if filled:
            lines += [
                "",
                "Filled by another recorder",
                *_table([["source", "day", "from", "to", "length", "cause", "from file"], *filled]),
            ]
        failed = [
            [_shown(c.source), str(c.day), _shown(f)] for c in report.days for f in c.failed_checks
        ]
        if failed:
            lines += ["", "Failed checks", *_table([["source", "day", "file"], *failed])]
        lines.append("")
        for source in sorted({c.source for c in report.days}):
            mine = [c for c in report.days if c.source == source]
            whole = Coverage(
                source,
                None,
                mine[0].start,
                mine[-1].end,
                sum(c.expected_seconds for c in mine),
                sum(c.recorded_seconds for c in mine),
                tuple(g for c in mine for g in c.gaps),
                tuple(dict.fromkeys(f for c in mine for f in c.failed_checks)),
            )
            n, f = len(whole.gaps), len(whole.failed_checks)
            lines.append(
                f"{_shown(source)}: {percent(whole)} of {len(mine)} day"
                f"{'s' if len(mine) != 1 else ''} ({amount(whole.missing_seconds)} missing), "
                f"{n} gap{'s' if n != 1 else ''}, "
                f"{f or 'no'} failed check{'s' if f != 1 else ''}"
            )
    for name in report.never_recorded:
        lines.append(f"{_shown(name)}: configured, but nothing of it was ever recorded")
    return "\n".join(lines) + "\n"


def csv_text(days: Sequence[Coverage]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for c in days:
        ratio = c.coverage
        w.writerow(
            [
                c.source,
                str(c.day),
                f"{c.expected_seconds:.3f}",
                f"{c.recorded_seconds:.3f}",
                "" if ratio is None else f"{math.floor(ratio * 1e6) / 1e6:.6f}",
                len(c.gaps),
                f"{sum(g.seconds for g in c.gaps):.3f}",
                len(c.failed_checks),
            ]
        )
    return out.getvalue()
