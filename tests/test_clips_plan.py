"""The clip planner, pure: which units of which files, gaps, format changes, PCM runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from isr.clips.plan import Plan, plan_clip
from isr.clips.units import UnitTable
from isr.errors import FormatChanged, NoAudio
from isr.timeline.query import Gap, Recording

ROOT = Path("/archive")
T = 1_800_000_000.0


def frames(n: int, *, key: str = "k", rate: int = 1000, samples: int = 100) -> UnitTable:
    """``n`` units of 0.1 s (100 samples at 1 kHz), 10 bytes each, after 4 bytes."""
    return UnitTable(
        "mp3",
        key,
        f"test {key}",
        rate,
        4,
        np.full(n, 10, dtype=np.uint32),
        np.full(n, samples, dtype=np.uint32),
    )


def pcm(n: int, *, rate: int = 8000) -> UnitTable:
    return UnitTable("wav", "w", "wav", rate, 80, unit_bytes=4, uniform_count=n, exact=True)


def row(name: str, start: float, table: UnitTable, fmt: str = "mp3") -> Recording:
    return Recording(name, "s", fmt, start, start + table.seconds, 0, 0)


def plan(
    t0: float, t1: float, rows: list[tuple[Recording, UnitTable]], gaps: list[Gap] | None = None
) -> Plan:
    tables = {r.path: t for r, t in rows}
    return plan_clip(
        "s", t0, t1, [r for r, _ in rows], lambda r: tables[r.path], root=ROOT, gaps=gaps or []
    )


def spans(p: Plan) -> list[tuple[str, int, int]]:
    return [(part.name, part.first, part.end) for part in p.parts]


def test_the_first_unit_holds_from_and_the_last_holds_to() -> None:
    a, b = frames(30), frames(30)  # 3 s each
    rows = [(row("a", T, a), a), (row("b", T + 3, b), b)]
    p = plan(T + 0.35, T + 3.55, rows)
    assert spans(p) == [("a", 3, 30), ("b", 0, 6)]
    assert p.start == pytest.approx(T + 0.3) and p.end == pytest.approx(T + 3.6)
    assert p.parts[0].byte_range == (4 + 30, 4 + 300)
    # A boundary: FROM on one starts there; TO on one ends there.
    assert spans(plan(T + 0.3, T + 3.5, rows)) == [("a", 3, 30), ("b", 0, 5)]
    # Before the first file and after the last: what exists.
    assert spans(plan(T - 50, T + 100, rows)) == [("a", 0, 30), ("b", 0, 30)]


def test_a_file_that_overlaps_the_last_gives_only_what_is_new() -> None:
    a, b = frames(30), frames(30)
    rows = [(row("a", T, a), a), (row("b", T + 2.75, b), b)]
    p = plan(T + 1, T + 4, rows)
    assert spans(p) == [("a", 10, 30), ("b", 2, 13)]
    assert p.parts[1].start == pytest.approx(T + 2.95)


def test_nothing_in_the_span() -> None:
    a, b = frames(30), frames(30)
    rows = [(row("a", T, a), a), (row("b", T + 10, b), b)]
    with pytest.raises(NoAudio, match="nothing of 's'"):
        plan(T + 4, T + 9, rows)
    with pytest.raises(NoAudio):
        plan(T + 4, T + 9, [])
    empty = frames(0)
    with pytest.raises(NoAudio):
        plan(T, T + 1, [(row("e", T, empty), empty)])


def test_a_change_of_codec_parameters_is_named_where_it_is_aired() -> None:
    a, b = frames(30), frames(30, key="other")
    rows = [(row("a", T, a), a), (row("b", T + 5, b), b)]
    with pytest.raises(FormatChanged) as caught:
        plan(T + 1, T + 6, rows)
    assert caught.value.at == pytest.approx(T + 5)
    assert "test k before, test other from then on" in str(caught.value)
    # Outside the span it does not matter.
    assert spans(plan(T + 1, T + 2, rows)) == [("a", 10, 20)]
    # Nor does a change of format name alone go unnoticed.
    c = frames(30)
    rows = [(row("a", T, a), a), (row("c", T + 3, c, fmt="aac"), c)]
    with pytest.raises(FormatChanged):
        plan(T + 1, T + 4, rows)


def test_a_cutter_that_chains_takes_a_change_of_setup() -> None:
    a, b = frames(30), frames(30, key="other")
    rows = [(row("a", T, a), a), (row("b", T + 3, b), b)]
    tables = {r.path: t for r, t in rows}
    p = plan_clip(
        "s", T + 1, T + 4, [r for r, _ in rows], lambda r: tables[r.path], root=ROOT, chains=True
    )
    assert spans(p) == [("a", 10, 30), ("b", 0, 10)]
    wav = pcm(8000)
    rows = [(row("a", T, a), a), (row("w", T + 3, wav, "wav"), wav)]
    tables = {r.path: t for r, t in rows}
    with pytest.raises(FormatChanged):  # another cutter: never one file
        plan_clip(
            "s",
            T + 1,
            T + 4,
            [r for r, _ in rows],
            lambda r: tables[r.path],
            root=ROOT,
            chains=True,
        )


def test_gaps_inside_the_clip_are_listed() -> None:
    a, b = frames(30), frames(30)
    rows = [(row("a", T, a), a), (row("b", T + 7, b), b)]
    inside = Gap(T + 3, T + 7, 4.0, "connection reset", "b")
    before = Gap(T - 10, T - 5, 5.0, "not recorded")
    p = plan(T + 1, T + 8, rows, [before, inside])
    assert p.gaps == (inside,)
    assert spans(p) == [("a", 10, 30), ("b", 0, 10)]


def test_pcm_runs_hold_exactly_the_samples_asked_for() -> None:
    rate = 8000
    a, b, c = pcm(24000), pcm(24000), pcm(24000)
    # Sidecar starts are rounded to the millisecond; the files abut, sample after sample.
    rows = [(row("a", T, a, "wav"), a), (row("b", T + 3.0004, b, "wav"), b)]
    rows.append((row("c", T + 5.9996, c, "wav"), c))
    for t0, t1 in ((T + 0.73219, T + 7.12345), (T + 2.9999, T + 3.0001), (T, T + 9)):
        p = plan(t0, t1, rows)
        assert p.samples == round((t1 - t0) * rate)
        g0 = round((t0 - T) * rate)
        assert p.parts[0].first == g0
    p = plan(T + 1, T + 8, rows)
    assert spans(p) == [("a", 8000, 24000), ("b", 0, 24000), ("c", 0, 16000)]


def test_a_new_capture_is_placed_by_its_own_start() -> None:
    rate = 8000
    a, b = pcm(24000), pcm(24000)
    # b starts 0.4 s after a ends: within a second, but its sidecar notes a gap.
    rows = [(row("a", T, a, "wav"), a), (row("b", T + 3.4, b, "wav"), b)]
    gap = Gap(T + 3, T + 3.4, 0.4, "arecord exited", "b")
    p = plan(T + 2, T + 4, rows, [gap])
    assert spans(p) == [("a", 16000, 24000), ("b", 0, round(0.6 * rate))]
    assert p.gaps == (gap,)
    # Without the note the two are one capture: the span counts on through b.
    p = plan(T + 2, T + 4, rows)
    assert spans(p) == [("a", 16000, 24000), ("b", 0, 8000)]
