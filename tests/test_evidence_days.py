"""Every local day is sealed by a `day` line, also the days that ended while the
recorder was down: the next start writes theirs, the head unchanged since the stop."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from isr.evidence import chain
from isr.evidence.keys import generate, load_signer
from isr.evidence.service import MAX_MISSED_DAYS, Evidence, missed_days
from isr.evidence.verify import verify
from isr.sidecar import iso

BERLIN = ZoneInfo("Europe/Berlin")


def line(event: str, at: str, **facts: object) -> dict[str, object]:
    return {"seq": 9, "event": event, "at": at, "prev": None, **facts}


def test_the_days_a_chain_missed() -> None:
    today = date(2026, 11, 23)
    assert missed_days(None, None, BERLIN, today) == []  # a new chain: nothing to seal
    sealed = line("day", "2026-11-21T00:00:00.004+01:00", date="2026-11-20")
    assert missed_days(sealed, None, BERLIN, today) == [date(2026, 11, 21), date(2026, 11, 22)]
    yesterday = line("day", "2026-11-23T00:00:00.004+01:00", date="2026-11-22")
    assert missed_days(yesterday, None, BERLIN, today) == []
    # No day line yet: from the day of the first line, read in the recorder's zone
    # (23:30 UTC is the next day in Berlin).
    first = line("started", "2026-11-20T23:30:00.000+00:00")
    assert missed_days(None, first, BERLIN, today) == [date(2026, 11, 21), date(2026, 11, 22)]
    assert missed_days(None, line("started", "2026-11-23T09:00:00.000+01:00"), BERLIN, today) == []
    assert missed_days(line("day", "x", date="yesterday"), None, BERLIN, today) == []


def written(event: str, at: str) -> dict[str, object]:
    """A chain entry; a day line's date is the day that ended, the one before its at."""
    if event != "day":
        return chain.entry(event, at=at)
    ended = date.fromisoformat(at[:10]) - timedelta(days=1)
    return chain.entry(event, at=at, date=ended.isoformat())


@pytest.mark.parametrize(
    ("lines", "missed"),
    [
        # Killed on the stroke of midnight: a file closed at 00:00:00.1 was chained,
        # the 20th's day line was not. The 20th is sealed at the next start.
        (
            [("day", "2026-11-20T00:00:00.002+00:00"), ("closed", "2026-11-21T00:00:00.100+00:00")],
            ["2026-11-20", "2026-11-21", "2026-11-22"],
        ),
        # A file closed at 23:59:59.9 was chained after the day line: not sealed twice.
        (
            [("day", "2026-11-22T00:00:00.002+00:00"), ("closed", "2026-11-21T23:59:59.900+00:00")],
            ["2026-11-22"],
        ),
    ],
)
def test_a_file_chained_on_the_stroke_of_midnight(
    tmp_path: Path, lines: list[tuple[str, str]], missed: list[str]
) -> None:
    path = chain.chain_path(tmp_path, "radio")
    chain.append(path, [written(e, a) for e, a in lines], source="radio")
    got = missed_days(*chain.last_day(path), UTC, date(2026, 11, 23))
    assert [d.isoformat() for d in got] == missed


def test_the_last_day_line_is_found_far_back(tmp_path: Path) -> None:
    """Read back from the end in blocks: a day line 200 kB before the end is found,
    and a chain with none gives its first line."""
    path = chain.chain_path(tmp_path, "radio")
    chain.append(path, [chain.entry("started", at="2026-11-01T10:00:00.000+00:00")], source="r")
    many = [chain.entry("closed", at="2026-11-01T11:00:00.000+00:00", file="x" * 900)] * 250
    chain.append(path, many, source="r")
    assert chain.last_day(path) == (None, next(chain.read_lines(path)).obj)
    chain.append(
        path,
        [chain.entry("day", at="2026-11-02T00:00:00.001+00:00", date="2026-11-01")],
        source="r",
    )
    chain.append(path, many, source="r")
    day, first = chain.last_day(path)
    assert day is not None and day["date"] == "2026-11-01" and first is None
    assert path.stat().st_size > 4 * chain.TAIL_BLOCK


def test_a_start_after_days_down_signs_each_missed_day(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    key = tmp_path / "isr.key"
    generate(key)
    sign = load_signer(key)
    down = datetime.now(UTC) - timedelta(days=3)
    path = chain.chain_path(root, "radio")
    chain.append(
        path,
        [
            chain.entry("started", at=iso(down.timestamp() - 60, UTC), pid=1, host="h"),
            chain.entry("stopped", at=iso(down.timestamp(), UTC), pid=1, host="h"),
        ],
        source="radio",
        sign=sign,
    )
    ev = Evidence(root, UTC, sign=sign, check_pause=0.0)
    ev.start(["radio"])
    assert ev.drain()  # the lines are written, however slow the disk
    ev.stop(["radio"])
    lines = [chain.parse(x.raw) for x in chain.read_lines(path)]
    events = [x["event"] for x in lines if x is not None]
    started = datetime.fromisoformat(lines[-2]["at"]).date()  # type: ignore[index]
    first = datetime.fromisoformat(lines[1]["at"]).date()  # type: ignore[index]
    days = [(first + timedelta(days=i)).isoformat() for i in range((started - first).days)]
    assert len(days) in (3, 4)  # stopped 3 days ago: 4 dates if midnight passed meanwhile
    assert events == ["started", "stopped"] + ["day"] * len(days) + ["started", "stopped"]
    assert [x["date"] for x in lines if x is not None and x["event"] == "day"] == days
    public = (tmp_path / "isr.key.pub").read_text().strip()
    report = verify(root, public_key=public)
    assert report.problems == []
    assert report.signed_days == len(days)


def test_a_clock_years_ahead_writes_no_day_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "recordings"
    long_ago = datetime.now(UTC) - timedelta(days=MAX_MISSED_DAYS + 30)
    path = chain.chain_path(root, "radio")
    chain.append(path, [chain.entry("stopped", at=iso(long_ago.timestamp(), UTC))], source="radio")
    ev = Evidence(root, UTC, check_pause=0.0)
    with caplog.at_level(logging.WARNING, "isr.evidence"):
        ev.start(["radio"])
        assert ev.drain()
        ev.stop(["radio"])
    events = [x.obj["event"] for x in chain.read_lines(path) if x.obj is not None]
    assert events == ["stopped", "started", "stopped"]
    assert "the clock looks wrong, no day lines written for them" in caplog.text
