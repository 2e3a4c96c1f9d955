"""Coverage per source and local day: pure, over synthetic index rows, and through the
index over archives the recorder's own segmenter wrote, in Berlin time across both
DST changes of 2026. Every fault has a known length; the answer must match it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from isr.errors import BadTime, UnknownSource
from isr.timeline.coverage import (
    Expected,
    collect,
    collect_window,
    coverage_json,
    day_bounds,
    measure,
    measure_days,
    parse_day,
    resolve_days,
)
from isr.timeline.index import TimelineIndex
from isr.timeline.query import HOLE_CAUSE, Gap, Recording, SourceSummary, make_timeline
from tests.support.archive import Archive, local

BERLIN = ZoneInfo("Europe/Berlin")
SPRING = date(2026, 3, 29)  # 02:00 -> 03:00: 23 hours
AUTUMN = date(2026, 10, 25)  # 03:00 -> 02:00: 25 hours
PLAIN = date(2026, 11, 24)


def rec(path: str, start: float, end: float, **kw: object) -> Recording:
    return Recording(path, "radio1", "mp3", start, end, 100, int(end * 1e9), **kw)  # type: ignore[arg-type]


def hourly(t0: float, t1: float, prefix: str = "radio1/") -> list[Recording]:
    out, t = [], t0
    while t < t1:
        out.append(rec(f"{prefix}{int(t)}.mp3", t, min(t + 3600, t1)))
        t += 3600
    return out


def exp(since: float, until: float, last: float | None = None, recording: bool = True) -> Expected:
    return Expected("radio1", since, until, last if last is not None else until, recording)


def day_of(
    rows: Sequence[Recording],
    day: date,
    e: Expected,
    gaps: Sequence[Gap] = (),
) -> tuple[float, float, list[Gap], tuple[str, ...]]:
    t0, t1 = day_bounds(day, BERLIN)
    tl = make_timeline("radio1", t0 - 86400, t1 + 86400, rows, gaps=gaps)
    c = measure(e, tl, t0, t1, day)
    return c.expected_seconds, c.recorded_seconds, list(c.gaps), c.failed_checks


def test_a_dst_day_lasts_23_or_25_hours() -> None:
    for day, hours in ((SPRING, 23), (AUTUMN, 25), (PLAIN, 24)):
        t0, t1 = day_bounds(day, BERLIN)
        assert t1 - t0 == hours * 3600
        rows = hourly(t0 - 7200, t1 + 7200)
        expected, recorded, gaps, failed = day_of(rows, day, exp(t0 - 7200, t1 + 7200))
        assert (expected, recorded, gaps, failed) == (hours * 3600, hours * 3600, [], ())


def test_the_hour_repeated_in_autumn_counts_twice() -> None:
    """A stop of 10 minutes in the second 02:00-03:00 (on winter time): one gap, and
    recorded is the 25 hours less 10 minutes."""
    t0, t1 = day_bounds(AUTUMN, BERLIN)
    stop = local("2026-10-25T02:30", BERLIN) + 3600  # the second 02:30 (+01:00)
    assert local("2026-10-25T02:30", BERLIN) < stop < local("2026-10-25T03:00", BERLIN)
    rows = [rec("a.mp3", t0, stop), rec("b.mp3", stop + 600, t1)]
    expected, recorded, gaps, _ = day_of(rows, AUTUMN, exp(t0, t1 + 1))
    assert expected == 90000 and recorded == 90000 - 600
    assert gaps == [Gap(stop, stop + 600, 600, HOLE_CAUSE)]


def test_the_first_day_counts_from_the_first_recording_and_today_up_to_now() -> None:
    first, now = local("2026-11-24T10:00", BERLIN), local("2026-11-24T15:30", BERLIN)
    rows = [rec("a.mp3", first, now - 0.2, open=True)]
    expected, recorded, gaps, _ = day_of(rows, PLAIN, exp(first, now, now - 0.2))
    assert expected == 5.5 * 3600 and recorded == pytest.approx(5.5 * 3600 - 0.2)
    assert gaps == []  # 0.2 s behind now while it is being recorded is no gap


def test_nothing_recorded_since_the_last_file_is_a_gap_up_to_now() -> None:
    first, end = local("2026-11-24T10:00", BERLIN), local("2026-11-24T12:00", BERLIN)
    now = local("2026-11-24T13:00", BERLIN)
    rows = [rec("a.mp3", first, end)]
    expected, recorded, gaps, _ = day_of(rows, PLAIN, exp(first, now, end, recording=False))
    assert (expected, recorded) == (3 * 3600, 2 * 3600)
    assert gaps == [Gap(end, now, 3600, HOLE_CAUSE)]


def test_overlapping_files_count_once() -> None:
    a = local("2026-11-24T10:00", BERLIN)
    rows = [rec("a.mp3", a, a + 3600), rec("a_1.mp3", a + 1800, a + 5400)]
    _, recorded, gaps, _ = day_of(rows, PLAIN, exp(a, a + 5400))
    assert recorded == 5400 and gaps == []


def test_a_gap_across_midnight_is_listed_on_both_days_each_with_its_part() -> None:
    _, midnight = day_bounds(PLAIN, BERLIN)
    a = midnight - 7200
    rows = [rec("a.mp3", a, midnight - 600), rec("b.mp3", midnight + 900, midnight + 7200)]
    gap = Gap(midnight - 600, midnight + 900, 1500, "connection reset", "b.mp3")
    e = exp(a, midnight + 7200)
    _, rec1, gaps1, _ = day_of(rows, PLAIN, e, [gap])
    _, rec2, gaps2, _ = day_of(rows, date(2026, 11, 25), e, [gap])
    assert gaps1 == [Gap(midnight - 600, midnight, 600, "connection reset", "b.mp3")]
    assert gaps2 == [Gap(midnight, midnight + 900, 900, "connection reset", "b.mp3")]
    assert (rec1, rec2) == (7200 - 600, 7200 - 900)


def test_a_gap_inside_a_file_is_not_recorded_and_a_reconnects_is_before_its_file() -> None:
    a = local("2026-11-24T10:00", BERLIN)
    rows = [rec("a.mp3", a, a + 3600), rec("b.mp3", a + 3604, a + 7200)]
    gaps = [
        Gap(a + 1000, a + 1030, 30, "segment expired", "a.mp3"),  # inside: HLS
        Gap(a + 3600, a + 3604, 4, "connection reset", "b.mp3"),  # before b
    ]
    _, recorded, listed, _ = day_of(rows, PLAIN, exp(a, a + 7200), gaps)
    assert recorded == 7200 - 30 - 4
    assert [g.cause for g in listed] == ["segment expired", "connection reset"]


def test_failed_checks_are_named_on_the_days_their_files_overlap() -> None:
    a = local("2026-11-24T10:00", BERLIN)
    rows = [
        rec("a.mp3", a, a + 3600, check_ok=True),
        rec("b.mp3", a + 3600, a + 7200, check_ok=False),
        rec("c.mp3", a + 7200, a + 9000),  # not checked yet
    ]
    *_, failed = day_of(rows, PLAIN, exp(a, a + 9000))
    assert failed == ("b.mp3",)


def test_days_outside_the_expected_span_are_left_out() -> None:
    a = local("2026-11-24T10:00", BERLIN)
    rows = [rec("a.mp3", a, a + 3600)]
    tl = make_timeline("radio1", a - 5 * 86400, a + 5 * 86400, rows)
    wanted = [date(2026, 11, d) for d in range(22, 28)]
    removed = Expected("radio1", a, a + 3600, a + 3600, recording=False)
    assert [c.day for c in measure_days(removed, tl, wanted, BERLIN)] == [PLAIN]
    now = local("2026-11-26T06:00", BERLIN)
    still = Expected("radio1", a, now, a + 3600, recording=False)
    got = measure_days(still, tl, wanted, BERLIN)
    assert [c.day for c in got] == [PLAIN, date(2026, 11, 25), date(2026, 11, 26)]
    assert [c.recorded_seconds for c in got] == [3600, 0, 0]
    assert [c.expected_seconds for c in got] == [14 * 3600 - 3600 * 0, 86400, 6 * 3600]
    assert got[1].gaps[0].cause == HOLE_CAUSE and got[1].gaps[0].seconds == 86400


def test_json_shape() -> None:
    a = local("2026-11-24T10:00", BERLIN)
    rows = [rec("a.mp3", a, a + 3600, check_ok=False), rec("b.mp3", a + 3605, a + 7200)]
    gap = Gap(a + 3600, a + 3605, 5, "connection reset", "b.mp3")
    t0, t1 = day_bounds(PLAIN, BERLIN)
    c = measure(exp(a, a + 7200), make_timeline("radio1", t0, t1, rows, gaps=[gap]), t0, t1, PLAIN)
    assert coverage_json([c], BERLIN) == {
        "days": [
            {
                "source": "radio1",
                "date": "2026-11-24",
                "expected_seconds": 7200,
                "recorded_seconds": 7195,
                "coverage": 0.999305,
                "gaps": [
                    {
                        "start": "2026-11-24T11:00:00.000+01:00",
                        "end": "2026-11-24T11:00:05.000+01:00",
                        "seconds": 5,
                        "cause": "connection reset",
                    }
                ],
                "failed_checks": ["a.mp3"],
            }
        ]
    }


def test_days_as_typed() -> None:
    today = PLAIN
    assert resolve_days(None, None, today, default_days=7, max_days=400) == (
        date(2026, 11, 18),
        today,
    )
    assert resolve_days("2026-11-01", None, today, default_days=7, max_days=400) == (
        date(2026, 11, 1),
        today,
    )
    assert resolve_days(None, "2026-10-03", today, default_days=7, max_days=400) == (
        date(2026, 9, 27),
        date(2026, 10, 3),
    )
    assert parse_day("2026-02-28") == date(2026, 2, 28)
    for bad in ("2026-02-30", "20261124", "2026-W48-2", "yesterday", "2026-11-24T10:00", ""):
        with pytest.raises(BadTime):
            parse_day(bad)
    with pytest.raises(BadTime, match="after"):
        resolve_days("2026-11-24", "2026-11-20", today, default_days=7, max_days=400)
    with pytest.raises(BadTime, match="at most 400"):
        resolve_days("2025-01-01", "2026-11-24", today, default_days=7, max_days=400)


# -- through the index, over archives the segmenter wrote ---------------------------------


def _by_day(root: Path, first: date, last: date, now: float, **kw: object) -> dict[str, object]:
    index = TimelineIndex(root, BERLIN, in_memory=True)
    try:
        report = collect(index, BERLIN, first, last, now, **kw)  # type: ignore[arg-type]
    finally:
        index.close()
    return {f"{c.source} {c.day}": c for c in report.days} | {"never": report.never_recorded}


def test_a_plan_of_faults_across_both_dst_changes(tmp_path: Path) -> None:
    """radio1 records from 2026-03-28 12:00 to 2026-03-30 12:00, but: a reconnect that
    lost 4.2 s at 01:30 on the short day, the recorder stopped from 03:10 to 03:25 (just
    after the jump); and the whole 25-hour day with a drop of 7 s in the second 02:xx."""
    a = Archive(tmp_path, BERLIN)
    start = local("2026-03-28T12:00", BERLIN)
    drop = local("2026-03-29T01:30", BERLIN)
    a.record("radio1", start, int(drop - start))
    a.record("radio1", drop + 4.2, int(local("2026-03-29T03:10", BERLIN) - drop - 4.2))
    a.segmenters.pop("radio1").close()  # the recorder stops: a new process knows nothing
    back = local("2026-03-29T03:25", BERLIN)
    a.record("radio1", back, int(local("2026-03-30T12:00", BERLIN) - back))
    autumn0, autumn1 = day_bounds(AUTUMN, BERLIN)
    second = local("2026-10-25T02:40", BERLIN) + 3600
    a.record("radio1", autumn0 - 3600, int(second - autumn0 + 3600))
    a.record("radio1", second + 7, int(autumn1 + 3600 - second - 7), cause="connection reset")
    a.close()
    now = autumn1 + 3600
    got = _by_day(tmp_path, date(2026, 3, 27), AUTUMN, now)
    short = got["radio1 2026-03-29"]
    assert short.expected_seconds == 23 * 3600  # type: ignore[attr-defined]
    gaps = short.gaps  # type: ignore[attr-defined]
    assert len(gaps) == 2, gaps
    assert gaps[0].seconds == pytest.approx(4.2, abs=1)
    assert gaps[0].start == pytest.approx(drop, abs=1)
    assert gaps[1].seconds == pytest.approx(900, abs=1)
    assert gaps[1].cause == HOLE_CAUSE  # the new process knew of no earlier file
    assert short.recorded_seconds == pytest.approx(23 * 3600 - 4.2 - 900, abs=2)  # type: ignore[attr-defined]
    first = got["radio1 2026-03-28"]
    assert first.expected_seconds == 12 * 3600 == first.recorded_seconds  # type: ignore[attr-defined]
    long = got["radio1 2026-10-25"]
    assert long.expected_seconds == 25 * 3600  # type: ignore[attr-defined]
    (g,) = long.gaps  # type: ignore[attr-defined]
    assert g.seconds == pytest.approx(7, abs=1) and g.start == pytest.approx(second, abs=1)
    assert long.recorded_seconds == pytest.approx(25 * 3600 - 7, abs=1)  # type: ignore[attr-defined]
    # Between March and October nothing was recorded: each day is expected and empty.
    summer = got["radio1 2026-07-01"]
    assert summer.recorded_seconds == 0 and summer.expected_seconds == 86400  # type: ignore[attr-defined]
    # the first file after the stop tells the gap since March (the segmenter knew it)
    assert summer.gaps[0].seconds == 86400  # type: ignore[attr-defined]
    assert summer.gaps[0].cause == "the recorder was not running"  # type: ignore[attr-defined]
    assert "radio1 2026-03-27" not in got  # before the first recording


def test_removed_sources_and_sources_never_recorded(tmp_path: Path) -> None:
    a = Archive(tmp_path, BERLIN)
    a.record("old", local("2026-11-20T10:00", BERLIN), 3600)
    a.record("radio1", local("2026-11-20T10:00", BERLIN), 3600)
    a.close()
    now = local("2026-11-24T12:00", BERLIN)
    first, last = date(2026, 11, 18), PLAIN
    both = _by_day(tmp_path, first, last, now)
    assert "old 2026-11-24" in both and "radio1 2026-11-24" in both  # no config: expected
    configured = _by_day(tmp_path, first, last, now, configured={"radio1", "radio2"})
    assert "old 2026-11-20" in configured and "old 2026-11-21" not in configured
    assert configured["old 2026-11-20"].expected_seconds == 3600  # type: ignore[attr-defined]
    assert "radio1 2026-11-24" in configured
    assert configured["never"] == ["radio2"]
    with pytest.raises(UnknownSource):
        _by_day(tmp_path, first, last, now, only={"nope"})
    only = _by_day(tmp_path, first, last, now, configured={"radio2"}, only={"radio2"})
    assert only == {"never": ["radio2"]}


def test_the_last_24_hours_as_the_recorder_sees_them(tmp_path: Path) -> None:
    a = Archive(tmp_path, BERLIN)
    now = local("2026-11-24T12:00", BERLIN)
    a.record("radio1", now - 30 * 3600, 20 * 3600)
    a.record("radio1", now - 10 * 3600 + 60, 10 * 3600 - 61, cause="connection reset")
    a.close()
    index = TimelineIndex(tmp_path, BERLIN, in_memory=True)
    try:
        got = collect_window(
            index, ["radio1", "radio2"], now - 86400, now, expected_since=now - 600
        )
    finally:
        index.close()
    r1, r2 = got["radio1"], got["radio2"]
    assert r1.expected_seconds == 86400
    assert r1.recorded_seconds == pytest.approx(86400 - 60 - 1, abs=0.01)
    assert [g.cause for g in r1.gaps] == ["connection reset", HOLE_CAUSE]  # and 1 s now
    assert (r2.expected_seconds, r2.recorded_seconds, r2.coverage) == (600, 0, 0)


def test_the_recorders_window_reads_the_status_and_refreshes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every source's coverage from one reading of the status file and one refresh
    (``TimelineIndex.at_once``), and the same figures as asked source by source."""
    from isr.timeline import index as index_module
    from isr.web.recorder_status import read_status

    a = Archive(tmp_path, BERLIN)
    now = local("2026-11-24T12:00", BERLIN)
    names = [f"radio{i}" for i in range(5)]
    for i, name in enumerate(names):
        a.record(name, now - 7200 + 60 * i, 3600)
    a.close()
    reads = []

    def counted(root: Path, now: float | None = None) -> object:
        reads.append(root)
        return read_status(root, now)

    index = TimelineIndex(tmp_path, BERLIN, in_memory=True)
    try:
        one_by_one = {
            n: collect_window(index, [n], now - 86400, now, expected_since=now - 600)[n]
            for n in [*names, "never"]
        }
        monkeypatch.setattr(index_module, "read_status", counted)
        refreshes = []
        refresh = index._refresh

        def counted_refresh(hot: set[str]) -> object:
            refreshes.append(hot)
            return refresh(hot)

        monkeypatch.setattr(index, "_refresh", counted_refresh)
        got = collect_window(index, [*names, "never"], now - 86400, now, expected_since=now - 600)
    finally:
        index.close()
    assert got == one_by_one
    assert len(reads) == 1
    assert len(refreshes) == 1


def test_sources_listed_by_the_index_summary() -> None:
    s = SourceSummary("radio1", "mp3", 10.0, 20.0, recording=True)
    from isr.timeline.coverage import expected

    assert expected(s, 100.0, configured=None).until == 100.0
    assert expected(s, 100.0, configured={"radio1"}).until == 100.0
    assert expected(s, 100.0, configured=set()).until == 20.0
