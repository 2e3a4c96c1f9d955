"""Times as people type them: ISO 8601 with an offset, local times, days, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isr.errors import BadTime, QueryError
from isr.timeline.times import day_start, local_instant, parse_time, resolve_span

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def shown(t: float, tz: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T14:23:00+01:00", "2026-11-24T13:23:00"),
        ("2026-11-24T14:23:00+0100", "2026-11-24T13:23:00"),
        ("2026-11-24T13:23:00Z", "2026-11-24T13:23:00"),
        ("2026-11-24T14:23:00-05:00", "2026-11-24T19:23:00"),
        # a query string turned the '+' of the offset into a space
        ("2026-11-24T14:23:00 01:00", "2026-11-24T13:23:00"),
        ("2026-11-24 14:23 01:00", "2026-11-24T13:23:00"),
        # local times, in the recorder's zone (CET in November)
        ("2026-11-24T14:23", "2026-11-24T13:23:00"),
        ("2026-11-24 14:23:05", "2026-11-24T13:23:05"),
        ("2026-11-24T14:23:05.250", "2026-11-24T13:23:05.250"),
        ("  2026-11-24T14:23  ", "2026-11-24T13:23:00"),
        # a day is its local midnight; CEST in July
        ("2026-11-24", "2026-11-23T23:00:00"),
        ("2026-07-01", "2026-06-30T22:00:00"),
    ],
)
def test_accepted_forms(text: str, expected: str) -> None:
    assert parse_time(text, BERLIN) == pytest.approx(utc(expected))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "now",
        "14:23",
        "yesterday",
        "2026-13-01",
        "2026-11-31",
        "2026-11-24T25:00",
        "2026-11-24T14:23:00+25:00",
        "2026/11/24",
        "24.11.2026",
        "2026-11-24T14:23\x00",
        "1969-12-31T23:00:00Z",
        "0001-01-01",
        "x" * 10_000,
    ],
)
def test_refused_with_a_clear_error(text: str) -> None:
    with pytest.raises(BadTime) as caught:
        parse_time(text, BERLIN)
    message = str(caught.value)
    assert "time" in message and len(message) < 200  # one short line, even for 10 kB
    assert isinstance(caught.value, QueryError) and isinstance(caught.value, ValueError)


def test_ambiguous_local_time_is_its_first_occurrence() -> None:
    # 2026-10-25 in Berlin: 03:00 CEST goes back to 02:00 CET; 02:30 shows twice.
    first = parse_time("2026-10-25T02:30", BERLIN)
    assert shown(first) == "2026-10-25T02:30:00+02:00"
    assert first == utc("2026-10-25T00:30:00")
    # the second one stays reachable with its offset, an hour later
    assert parse_time("2026-10-25T02:30+01:00", BERLIN) - first == 3600
    # the edges of the repeated hour are taken the same way
    assert shown(parse_time("2026-10-25T02:00", BERLIN)) == "2026-10-25T02:00:00+02:00"
    assert shown(parse_time("2026-10-25T02:59:59", BERLIN)) == "2026-10-25T02:59:59+02:00"
    assert shown(parse_time("2026-10-25T03:00", BERLIN)) == "2026-10-25T03:00:00+01:00"


def test_nonexistent_local_time_is_the_moment_the_clock_went_forward() -> None:
    # 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:00..02:59 never show.
    jump = utc("2026-03-29T01:00:00")
    for text in ("2026-03-29T02:00", "2026-03-29T02:30", "2026-03-29 02:59:59.9"):
        assert parse_time(text, BERLIN) == jump, text
    assert shown(jump) == "2026-03-29T03:00:00+02:00"
    assert parse_time("2026-03-29T01:59:59", BERLIN) == jump - 1
    assert parse_time("2026-03-29T03:00", BERLIN) == jump
    assert parse_time("2026-03-29T03:00:01", BERLIN) == jump + 1


def test_new_york_dst_both_ways() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST
    assert parse_time("2026-03-08T02:15", NEW_YORK) == utc("2026-03-08T07:00:00")
    assert parse_time("2026-11-01T01:30", NEW_YORK) == utc("2026-11-01T05:30:00")  # EDT


def test_a_day_whose_midnight_the_clock_skipped_starts_when_it_went_forward() -> None:
    # Santiago de Chile moves its clocks at midnight: 2026-09-06 00:00 never shows.
    santiago = ZoneInfo("America/Santiago")
    start = day_start(date(2026, 9, 6), santiago)
    assert datetime.fromtimestamp(start, santiago).isoformat() == "2026-09-06T01:00:00-03:00"
    assert parse_time("2026-09-06", santiago) == start


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)),
)
def test_a_later_wall_time_is_never_an_earlier_instant(a: datetime, b: datetime) -> None:
    a, b = min(a, b), max(a, b)
    assert local_instant(a, BERLIN) <= local_instant(b, BERLIN)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31)))
def test_a_wall_time_comes_back_as_itself_or_as_the_jump_past_it(wall: datetime) -> None:
    t = local_instant(wall, BERLIN)
    back = datetime.fromtimestamp(t, BERLIN).replace(tzinfo=None)
    if back != wall:  # skipped: t is the first instant past it, within the hour
        assert wall < back <= wall + timedelta(hours=1)
        assert datetime.fromtimestamp(t - 1e-3, BERLIN).replace(tzinfo=None) < wall


NOW = utc("2026-11-24T13:37:12")  # 14:37:12 in Berlin


def test_span_defaults_are_today_from_midnight_until_now() -> None:
    assert resolve_span(None, None, BERLIN, NOW) == (utc("2026-11-23T23:00:00"), NOW)
    t0, t1 = resolve_span("2026-11-24T14:00", None, BERLIN, NOW)
    assert (t0, t1) == (utc("2026-11-24T13:00:00"), NOW)


def test_span_order_and_limit() -> None:
    with pytest.raises(BadTime, match="FROM must be before TO"):
        resolve_span("2026-11-24T15:00", "2026-11-24T14:00", BERLIN, NOW)
    with pytest.raises(BadTime, match="before"):
        resolve_span("2026-11-24T15:00", "2026-11-24T15:00", BERLIN, NOW)
    with pytest.raises(BadTime, match="before"):
        resolve_span("2026-11-25", None, BERLIN, NOW)  # a future FROM and TO = now
    # 31 local days, across the end of summer time (31 days and one hour) fit...
    t0, t1 = resolve_span("2026-10-01", "2026-11-01", BERLIN, NOW, max_days=31)
    assert t1 - t0 == 31 * 86400 + 3600
    # ...a second more does not
    with pytest.raises(BadTime, match="31 days"):
        resolve_span("2026-10-01", "2026-11-01T00:00:01", BERLIN, NOW, max_days=31)
    # across the start of summer time: 31 days are an hour short
    t0, t1 = resolve_span("2026-03-01", "2026-04-01", BERLIN, NOW, max_days=31)
    assert t1 - t0 == 31 * 86400 - 3600
