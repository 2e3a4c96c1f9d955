"""``isr timeline``'s listing: amounts for people, aligned columns, offsets on a DST day."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from isr.timeline.query import Gap, Recording, Title, make_timeline
from isr.timeline.text import amount, render, summary

BERLIN = ZoneInfo("Europe/Berlin")
T = datetime.fromisoformat("2026-11-24T00:00:00+01:00").timestamp()
H = 3600.0


def rec(start: float, end: float) -> Recording:
    return Recording(f"radio1/{int(start)}.mp3", "radio1", "mp3", start, end, 100, 0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0.0 s"),
        (4.25, "4.2 s"),
        (59.99, "59.9 s"),
        (60, "1 min"),
        (200, "3 min 20 s"),
        (3600, "1 h"),
        (86399, "23 h 59 min"),
        (86400, "24 h"),
        (90000, "25 h"),
    ],
)
def test_amounts_round_down(seconds: float, text: str) -> None:
    assert amount(seconds) == text


def test_summary_and_listing() -> None:
    rows = [rec(T, T + 14 * H), rec(T + 14 * H + 4.2, T + 24 * H - 115.8)]
    tl = make_timeline(
        "radio1",
        T,
        T + 24 * H,
        rows,
        gaps=[Gap(T + 14 * H, T + 14 * H + 4.2, 4.2, "connection\x1b[2J reset")],
        titles=[Title(T + 5, "Artist\n- Song", rows[0].path)],
    )
    assert summary(tl) == "Recorded 23 h 58 min of 24 h (99.8 %); 1 gap"
    text = render(tl, BERLIN, zone_name="Europe/Berlin")
    lines = text.splitlines()
    assert (
        lines[0] == "radio1: 2026-11-24 00:00:00 to 2026-11-25 00:00:00 (Europe/Berlin, UTC+01:00)"
    )
    assert lines[-1] == summary(tl)
    assert "  00:00:00  14:00:00  14:00:00  radio1/" in text  # one day: times only
    assert "connection\\x1b[2J reset" in text and "\x1b" not in text
    assert "Artist\\n- Song" in text
    # columns line up: every row of the files table has its file at the same column
    files = [ln for ln in lines if "radio1/" in ln or ln.strip().startswith("start ")][:3]
    assert len({ln.index("radio1/") if "radio1/" in ln else ln.index("file") for ln in files}) == 1


def test_listing_of_a_dst_day_shows_offsets() -> None:
    fall = datetime.fromisoformat("2026-10-25T00:00:00+02:00").timestamp()
    rows = [rec(fall, fall + 25 * H)]
    tl = make_timeline("radio1", fall, fall + 25 * H, rows)
    text = render(tl, BERLIN)
    assert "00:00:00+02:00" in text and "+01:00" in text
    assert summary(tl) == "Recorded 25 h of 25 h (100 %); no gaps"


def test_nothing_recorded() -> None:
    tl = make_timeline("radio1", T, T + H, [])
    assert "No files in this span." in render(tl, BERLIN)
    assert summary(tl) == "Recorded 0.0 s of 1 h (0.0 %); no gaps"
