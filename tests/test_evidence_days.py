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
    assert missed_days(None, BERLIN, today) == []  # a new chain: nothing to seal
    stopped = line("stopped", "2026-11-20T22:00:00.000+01:00")
    assert missed_days(stopped, BERLIN, today) == [date(2026, 11, d) for d in (20, 21, 22)]
    # The at of the last line is read in the recorder's zone: 23:30 UTC is the next day.
    late = line("stopped", "2026-11-20T23:30:00.000+00:00")
    assert missed_days(late, BERLIN, today) == [date(2026, 11, 21), date(2026, 11, 22)]
    sealed = line("day", "2026-11-22T00:00:00.004+01:00", date="2026-11-21")
    assert missed_days(sealed, BERLIN, today) == [date(2026, 11, 22)]
    assert missed_days(line("closed", "2026-11-23T09:00:00.000+01:00"), BERLIN, today) == []
    assert missed_days(line("stopped", "2026-11-24T09:00:00.000+01:00"), BERLIN, today) == []
    assert missed_days(line("stopped", "yesterday"), BERLIN, today) == []


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
        ev.stop(["radio"])
    events = [x.obj["event"] for x in chain.read_lines(path) if x.obj is not None]
    assert events == ["stopped", "started", "stopped"]
    assert "the clock looks wrong, no day lines written for them" in caplog.text
