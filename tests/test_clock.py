"""Boundary maths on the local wall clock, including DST changes, and the media clock."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isr.clock import MediaClock, current_boundary, next_boundary

BERLIN = ZoneInfo("Europe/Berlin")


def ts(s: str, tz: ZoneInfo = BERLIN, fold: int = 0) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=tz, fold=fold).timestamp()


def wall(t: float, tz: ZoneInfo = BERLIN) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S.%f")


def test_hourly_boundary_is_the_next_full_hour() -> None:
    assert wall(next_boundary(ts("2026-11-24 14:00:00.3"), 3600, BERLIN)) == (
        "2026-11-24 15:00:00.000000"
    )


def test_a_boundary_instant_is_not_its_own_next_boundary() -> None:
    b = ts("2026-11-24 15:00:00")
    assert wall(next_boundary(b, 3600, BERLIN)) == "2026-11-24 16:00:00.000000"


def test_fractional_split_counts_from_local_midnight() -> None:
    # 0.1 min = 6 s; 00:00:06 is a boundary, so 00:00:07 goes to 00:00:12
    assert wall(next_boundary(ts("2026-11-24 00:00:07"), 6, BERLIN)).endswith("00:00:12.000000")
    # 7 min does not divide an hour: multiples of 7 min from midnight, 14:00 -> 14:07
    assert wall(next_boundary(ts("2026-11-24 14:00:00"), 420, BERLIN)) == (
        "2026-11-24 14:07:00.000000"
    )


def test_split_that_does_not_divide_a_day_ends_at_midnight() -> None:
    # 7 h: 00, 07, 14, 21, then midnight (a 3 h slot), not 04:00 the next day
    assert wall(next_boundary(ts("2026-11-24 22:00:00"), 7 * 3600, BERLIN)) == (
        "2026-11-25 00:00:00.000000"
    )


def test_spring_forward_skips_the_missing_hour() -> None:
    # 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST; 02:00 and 02:30 never show.
    t = ts("2026-03-29 01:45:00")
    b = next_boundary(t, 1800, BERLIN)
    assert wall(b) == "2026-03-29 03:00:00.000000"
    assert b - t == 15 * 60  # only a quarter of an hour of real time passes
    assert wall(next_boundary(b, 1800, BERLIN)) == "2026-03-29 03:30:00.000000"


def test_fall_back_repeats_the_hour_as_boundaries() -> None:
    # 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET; 02:00-03:00 shows twice.
    t = ts("2026-10-25 02:30:00", fold=0)
    b1 = next_boundary(t, 3600, BERLIN)
    assert b1 - t == 30 * 60  # the second 02:00, 30 real minutes later
    assert datetime.fromtimestamp(b1, BERLIN).strftime("%H:%M %Z") == "02:00 CET"
    b2 = next_boundary(b1, 3600, BERLIN)
    assert b2 - b1 == 3600
    assert datetime.fromtimestamp(b2, BERLIN).strftime("%H:%M %Z") == "03:00 CET"


def test_every_hour_is_one_hour_long_across_a_whole_year_in_utc() -> None:
    t = ts("2026-01-01 00:00:00", UTC)  # type: ignore[arg-type]
    for _ in range(24 * 40):
        nt = next_boundary(t, 3600, UTC)
        assert nt - t == 3600
        t = nt


@settings(max_examples=300, deadline=None)
@given(
    t=st.floats(min_value=1.7e9, max_value=1.9e9),
    split=st.sampled_from([6.0, 60.0, 180.0, 900.0, 1800.0, 3600.0, 7200.0, 5400.0]),
    zone=st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]),
)
def test_next_boundary_properties(t: float, split: float, zone: str) -> None:
    tz = ZoneInfo(zone)
    b = next_boundary(t, split, tz)
    assert b > t
    assert b - t <= split + 1e-6  # never later than one split of real time ahead
    local = datetime.fromtimestamp(b, tz)
    since_midnight = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    k = round(since_midnight / split)
    assert abs(since_midnight - k * split) < 1e-3 or since_midnight < 1e-3
    # Exact, not near: a sample-exact cut at rate x (boundary - origin) must not
    # move by a frame from one file to the next with t's float residue.
    assert b == math.floor(b)
    assert current_boundary(b, split, tz) == b
    assert current_boundary(t, split, tz) <= t


def test_media_clock_burst_on_connect_names_the_aired_moment() -> None:
    clock = MediaClock()
    connect = 1000.0
    # 4 s of old audio arrive within 50 ms, then real time
    clock.observe(0.5, connect)
    clock.observe(4.0, connect + 0.05)
    for i in range(1, 20):
        clock.observe(4.0 + i, connect + 0.05 + i)
    assert clock.aired(0.0) == pytest.approx(connect - 3.95, abs=0.01)
    assert clock.reanchors == 0


def test_media_clock_ignores_a_stall_that_catches_up() -> None:
    clock = MediaClock(drift_limit=1.0, settle=5.0)
    for i in range(10):
        clock.observe(float(i), 100.0 + i)
    clock.observe(13.0, 100.0 + 13 + 3.0)  # 3 s late after a stall
    clock.observe(20.0, 100.0 + 20.2)  # the catch-up burst
    assert clock.aired(0.0) == pytest.approx(100.0)
    assert clock.reanchors == 0


def test_media_clock_reanchors_when_audio_stays_late() -> None:
    clock = MediaClock(drift_limit=1.0, settle=5.0)
    for i in range(10):
        clock.observe(float(i), 100.0 + i)
    jumps = [clock.observe(float(i), 100.0 + i + 4.0) for i in range(10, 20)]
    assert clock.reanchors == 1
    assert [j for j in jumps if j is not None] == [pytest.approx(4.0)]
    assert clock.aired(19.0) == pytest.approx(123.0)


def test_media_clock_reanchors_by_the_least_lateness_it_saw() -> None:
    """Late by 3 s after a stall, with arrivals up to half a second later still in the
    settle window (a busy machine): the clock moves by the 3 s the audio was surely
    late, not by the 3.3 of the arrival that ends the window."""
    clock = MediaClock(drift_limit=1.0, settle=5.0)
    for i in range(10):
        clock.observe(float(i), 100.0 + i)
    late = [3.2, 3.0, 3.5, 3.1, 3.4, 3.3, 3.5]
    jumps = [clock.observe(float(i), 100.0 + i + x) for i, x in enumerate(late, start=10)]
    assert [j for j in jumps if j is not None] == [pytest.approx(3.0)]
    assert clock.aired(0.0) == pytest.approx(103.0)


@pytest.mark.parametrize("split", [6.0, 60.0, 1800.0])
@pytest.mark.parametrize("around", ["2026-03-29 02:00:00", "2026-10-25 02:30:00"])
def test_current_boundary_near_dst_changes_is_exact(split: float, around: str) -> None:
    centre = ts(around)
    for step in range(-40, 40):
        t = centre + step * 293.3
        b = current_boundary(t, split, BERLIN)
        assert b <= t
        assert next_boundary(b - 1e-3, split, BERLIN) == pytest.approx(b)  # b is a boundary
        assert next_boundary(b, split, BERLIN) > t  # and the last one before t


def test_an_instant_just_before_a_boundary_is_not_taken_for_it() -> None:
    """Only float residue (a microsecond) counts as on the boundary: 10 us before
    midnight is 0.4 samples at 44.1 kHz, and still belongs to the day before."""
    midnight = 1795564800.0  # 2026-11-25T00:00:00Z
    assert next_boundary(midnight - 1e-5, 86400, UTC) == midnight
    assert current_boundary(midnight - 1e-5, 86400, UTC) == midnight - 86400
    assert next_boundary(midnight - 1e-7, 86400, UTC) == midnight + 86400
    assert current_boundary(midnight - 1e-7, 86400, UTC) == midnight
