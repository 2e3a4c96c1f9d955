"""The timeline of a span from index rows: segments, gaps, holes, titles, coverage."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from isr.timeline.query import (
    HOLE_CAUSE,
    Gap,
    Recording,
    SourceSummary,
    Title,
    covered_seconds,
    holes,
    make_timeline,
    recorder_of,
    sources_json,
    titles_in_span,
)

BERLIN = ZoneInfo("Europe/Berlin")
T = datetime.fromisoformat("2026-11-24T00:00:00+01:00").timestamp()
H = 3600.0


def rec(start: float, end: float, name: str = "", **kw: object) -> Recording:
    path = name or f"radio1/{int(start)}.mp3"
    return Recording(path, "radio1", "mp3", start, end, 100, int(end * 1e9), **kw)  # type: ignore[arg-type]


def test_covered_seconds_is_the_clipped_union() -> None:
    rows = [rec(T, T + H), rec(T + H, T + 2 * H), rec(T + 1.5 * H, T + 2.5 * H)]
    assert covered_seconds(rows, T, T + 3 * H) == 2.5 * H
    assert covered_seconds(rows, T + 0.5 * H, T + 2 * H) == 1.5 * H
    assert covered_seconds(rows, T + 5 * H, T + 6 * H) == 0.0
    assert covered_seconds([], T, T + H) == 0.0


def test_holes_between_files_that_no_gap_explains() -> None:
    rows = [rec(T, T + H), rec(T + H + 5, T + 2 * H), rec(T + 3 * H, T + 4 * H)]
    reconnect = Gap(T + H, T + H + 5, 5.0, "connection reset")
    found = holes(rows, [reconnect], T, T + 4 * H)
    assert found == [Gap(T + 2 * H, T + 3 * H, H, HOLE_CAUSE)]
    # without the sidecar's gap, its hole is listed too
    assert len(holes(rows, [], T, T + 4 * H)) == 2
    # a hole outside the span is not; one that reaches into it is, whole
    assert holes(rows, [], T + 3.5 * H, T + 4 * H) == []
    assert holes(rows, [], T + 2.5 * H, T + 4 * H) == [Gap(T + 2 * H, T + 3 * H, H, HOLE_CAUSE)]
    # files that abut to the millisecond leave no hole
    assert holes([rec(T, T + H + 0.012), rec(T + H + 0.5, T + 2 * H)], [], T, T + 2 * H) == []


def test_titles_in_force_and_changes() -> None:
    titles = [
        Title(T + 10, "A", "f1"),
        Title(T + 600, "B", "f1"),
        Title(T + H, "B", "f2"),  # the next file starts with the title in force
        Title(T + H + 60, "C", "f2"),
        Title(T + 2 * H, "D", "f3"),
    ]
    assert [t.title for t in titles_in_span(titles, T + 700, T + 2 * H)] == ["B", "C"]
    assert titles_in_span(titles, T + 700, T + 2 * H)[0].at == T + 600
    assert [t.title for t in titles_in_span(titles, T, T + 3 * H)] == ["A", "B", "C", "D"]
    assert [t.title for t in titles_in_span(titles, T + 600, T + 601)] == ["B"]
    assert titles_in_span(titles, T, T + 5) == []


def test_timeline_whole_files_gaps_and_marks() -> None:
    rows = [rec(T + 13 * H, T + 14 * H), rec(T + 14 * H + 4.2, T + 15 * H, recording=False)]
    gap = Gap(T + 14 * H, T + 14 * H + 4.2, 4.2, "connection reset", rows[1].path)
    far = Gap(T, T + 1, 1.0, "far away")
    tl = make_timeline(
        "radio1",
        T + 13.5 * H,
        T + 14.5 * H,
        rows,
        gaps=[gap, far],
        titles=[Title(T + 13 * H, "X", rows[0].path)],
        recording={rows[1].path},
    )
    assert [s.start for s in tl.segments] == [T + 13 * H, T + 14 * H + 4.2]  # not cut
    assert [s.recording for s in tl.segments] == [False, True]
    assert tl.gaps == (gap,)
    assert tl.covered_seconds == pytest.approx(H - 4.2)
    data = tl.to_json(BERLIN)
    assert data["from"] == "2026-11-24T13:30:00.000+01:00"
    assert data["segments"][1] == {
        "file": rows[1].path,
        "start": "2026-11-24T14:00:04.200+01:00",
        "end": "2026-11-24T15:00:00.000+01:00",
        "recording": True,
        "format": "mp3",
        "size": 100,
    }
    assert data["gaps"] == [
        {
            "start": "2026-11-24T14:00:00.000+01:00",
            "end": "2026-11-24T14:00:04.200+01:00",
            "seconds": 4.2,
            "cause": "connection reset",
        }
    ]
    assert data["titles"] == [{"at": "2026-11-24T13:00:00.000+01:00", "title": "X"}]
    assert data["covered_seconds"] == 3595.8


def test_sources_json_carries_the_local_offset() -> None:
    data = sources_json([SourceSummary("radio1", "mp3", T, T + 200 * 86400, True)], BERLIN)
    assert data == {
        "sources": [
            {
                "name": "radio1",
                "format": "mp3",
                "first": "2026-11-24T00:00:00.000+01:00",
                "last": "2027-06-12T01:00:00.000+02:00",
                "recording": True,
            }
        ]
    }


@pytest.mark.parametrize("n", [0, 1, 499, 500, 1234])
def test_encoded_in_pieces_is_the_same_json(n: int) -> None:
    rows = [rec(T, T + 31 * 86400)]
    titles = [Title(T + i, f'"{i}" \\ ü\x00 {"x" * (i % 7)}', rows[0].path) for i in range(n)]
    tl = make_timeline('radio "1" \u2028', T, T + 31 * 86400, rows, titles=titles)
    body = tl.encode(BERLIN)
    assert json.loads(body) == tl.to_json(BERLIN)
    assert len(json.loads(body)["titles"]) == n


def test_only_another_recorders_files_fill_a_gap() -> None:
    """A crash-cut file ends at its last write, after its audio, and so overlaps the
    gap its recorder's next file notes: that is no fill, in a local directory or over
    the store. Another recorder's file that holds the time is one."""
    cut = rec(T, T + 100.8, "rec1/radio1/a.mp3")
    after = rec(T + 102, T + H, "rec1/radio1/b.mp3")
    gap = Gap(T + 100.0, T + 102, 2.0, "the recorder was not running", after.path)
    for recorder in (None, recorder_of):
        tl = make_timeline("radio1", T, T + H, [cut, after], gaps=[gap], recorder=recorder)
        assert tl.gaps == (gap,) and tl.filled == () and tl.noted == ()
    other = rec(T + 50, T + 101.0, "rec2/radio1/c.mp3")
    tl = make_timeline("radio1", T, T + H, [cut, after, other], gaps=[gap], recorder=recorder_of)
    assert tl.gaps == (Gap(T + 101.0, T + 102, 1.0, gap.cause, after.path),)
    assert tl.filled == (Gap(T + 100.0, T + 101.0, 1.0, gap.cause, other.path),)
    assert tl.noted == (gap,)
    local = make_timeline("radio1", T, T + H, [cut, after, other], gaps=[gap])
    assert local.gaps == (gap,) and local.filled == ()  # one recorder: nothing is filled
