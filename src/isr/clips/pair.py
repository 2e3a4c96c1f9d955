"""A redundant pair's files as one recording: which recorder's units a clip holds.

Two recorders of one stream hold the same frames, byte for byte, each dated by its
own clock (they differ by a fraction of a second: each dates a frame by when it
arrived). A clip follows one recorder for as long as its files run on without a
break; where they break (an outage, a restart, a gap its sidecar notes) it goes on
in another recorder's file that covers the moment, right after the unit that
matches the last one held, matched by content: its bytes and those of the few units
before it (silence repeats itself; of several matches the one nearest the expected
moment wins). So the clip holds every frame once, with neither a gap nor a repeat.
Where no unit matches (the copies differ: another bitrate, say) it goes on by time,
as across any gap. Pure: the units' keys come from a callback.

Not spliced: a gap inside a file (an HLS segment that expired), which the clip
crosses in that file as a clip of one recorder does; and PCM (two soundcards never
capture the same samples: a clip of PCM is one recorder's, :mod:`isr.clips.plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from isr.clips.cutter import Part
from isr.clips.units import UnitTable
from isr.timeline.query import Gap, Recording

__all__ = ["MATCH_UNITS", "SEARCH_SECONDS", "Keys", "pair_parts"]

MATCH_UNITS = 8
"""Units that must match, ending with the last one held (fewer at a clip's start)."""
SEARCH_SECONDS = 30.0
"""How far from the expected moment a match is looked for: the two clocks differ by
far less, unless one recorder's clock was wrong."""
RUN_SLACK = 0.05
"""A recorder's next file that starts this soon after the last one ended continues
it (a split: sidecar times are rounded to the millisecond)."""

Keys = Callable[[str, UnitTable, int, int], Sequence[int]]
"""``keys(name, table, a, b)``: a key of each unit ``a..b-1`` of the recording
``name`` (equal keys: equal audio)."""


@dataclass
class _Run:
    """One recorder's files that follow each other without a break."""

    files: list[tuple[Recording, UnitTable]]

    @property
    def start(self) -> float:
        return self.files[0][0].start

    @property
    def end(self) -> float:
        r, t = self.files[-1]
        return r.start + t.seconds

    def locate(self, g: int) -> tuple[int, int]:
        """(file index, unit) of the run's ``g``-th unit."""
        for i, (_, t) in enumerate(self.files):
            if g < t.count:
                return i, g
            g -= t.count
        return len(self.files) - 1, self.files[-1][1].count

    def index(self, i: int, k: int) -> int:
        return sum(t.count for _, t in self.files[:i]) + k

    @property
    def count(self) -> int:
        return sum(t.count for _, t in self.files)

    def at(self, t: float) -> int:
        """The run's unit that holds moment ``t`` (clamped to the run)."""
        for i, (r, table) in enumerate(self.files):
            if t < r.start + table.seconds or i == len(self.files) - 1:
                return self.index(i, min(table.unit_at((t - r.start) * table.rate), table.count))
        return self.count


def runs_of(
    rows: Sequence[tuple[Recording, UnitTable]],
    recorder: Callable[[Recording], str],
    gaps: Sequence[Gap],
) -> list[_Run]:
    """Each recorder's files in runs: a file continues the one before it when it
    starts where that one ended and its sidecar notes no gap at its start (a gap is
    always at a file's start: a new connection opens a new file)."""
    noted = {(g.file, round(g.end, 3)) for g in gaps if g.file is not None}
    by_recorder: dict[str, list[tuple[Recording, UnitTable]]] = {}
    for r, t in sorted(rows, key=lambda rt: (rt[0].start, rt[0].path)):
        by_recorder.setdefault(recorder(r), []).append((r, t))
    runs: list[_Run] = []
    for files in by_recorder.values():
        current: list[tuple[Recording, UnitTable]] = []
        for r, t in files:
            if current:
                last_r, last_t = current[-1]
                end = last_r.start + last_t.seconds
                if (
                    abs(r.start - end) <= RUN_SLACK
                    and (r.path, round(r.start, 3)) not in noted
                    and t.key == last_t.key
                ):
                    current.append((r, t))
                    continue
                runs.append(_Run(current))
            current = [(r, t)]
        if current:
            runs.append(_Run(current))
    return runs


def pair_parts(
    t0: float,
    t1: float,
    rows: Sequence[tuple[Recording, UnitTable]],
    root: Path,
    *,
    recorder: Callable[[Recording], str],
    keys: Keys,
    gaps: Sequence[Gap] = (),
) -> list[Part]:
    """The parts of a clip of stream-format files from several recorders."""
    runs = runs_of(rows, recorder, gaps)
    parts: list[Part] = []
    held: list[int] = []  # keys of the last units held, oldest first
    cursor = t0
    left = list(runs)  # a run is followed once: each turn takes one from here
    while left:
        covering = [run for run in left if run.start <= cursor < run.end]
        if covering:
            run = max(covering, key=lambda run: (run.end, -run.start))
            g = _continue(run, cursor, held, keys)
        else:
            later = [run for run in left if cursor < run.start < t1]
            if not later:
                break
            run = min(later, key=lambda run: (run.start, -run.end))
            g = run.at(run.start)
            held = []  # a gap of the pair: nothing to match across it
        left.remove(run)
        taken, done = _take(run, g, t1, root)
        if taken:  # (none: the other recorder held all of this one already)
            parts.extend(taken)
            held = _last_keys(parts, keys)
            cursor = max(cursor, taken[-1].stop)
        if done:
            break
    return parts


def _last_keys(parts: Sequence[Part], keys: Keys) -> list[int]:
    """Keys of the last ``MATCH_UNITS`` units held, oldest first."""
    out: list[int] = []
    for p in reversed(parts):
        a = max(p.first, p.end - (MATCH_UNITS - len(out)))
        out[:0] = keys(p.name, p.table, a, p.end)
        if len(out) >= MATCH_UNITS:
            break
    return out


def _continue(run: _Run, cursor: float, held: list[int], keys: Keys) -> int:
    """The run's unit to go on from at ``cursor``: after the one matching the last
    held (by content), else the one that holds ``cursor``."""
    expected = run.at(cursor)
    if not held:
        return expected
    table = run.files[0][1]
    per_unit = table.seconds / table.count if table.count else 0.0
    reach = int(SEARCH_SECONDS / per_unit) if per_unit else 0
    a, b = max(0, expected - reach), min(run.count, expected + reach)
    window = _keys(run, a, b, keys)
    n = len(held)
    found = [j + 1 for j in range(a + n - 1, b) if window[j - a - n + 1 : j - a + 1] == held]
    return min(found, key=lambda g: abs(g - expected)) if found else expected


def _keys(run: _Run, a: int, b: int, keys: Keys) -> list[int]:
    out: list[int] = []
    g = a
    while g < b:
        i, k = run.locate(g)
        r, t = run.files[i]
        end = min(t.count, k + (b - g))
        if end <= k:
            break
        out.extend(keys(r.path, t, k, end))
        g += end - k
    return out


def _take(run: _Run, g: int, t1: float, root: Path) -> tuple[list[Part], bool]:
    """Units of ``run`` from its ``g``-th to the one holding the instant before
    ``t1`` (or the run's end), a part per file; and whether ``t1`` was reached."""
    parts = []
    i, k = run.locate(g)
    for r, t in run.files[i:]:
        end = t.unit_end((t1 - r.start) * t.rate)
        if end > k:
            parts.append(
                Part(
                    r.path,
                    root / r.path,
                    t,
                    k,
                    end,
                    r.start + t.sample(k) / t.rate,
                    r.start + t.sample(end) / t.rate,
                )
            )
        if end < t.count or r.start + t.seconds >= t1:
            return parts, True
        k = 0
    return parts, False
