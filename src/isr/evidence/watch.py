"""The recorder's watch on coverage: each configured source's last 24 hours.

Why the recorder computes it, not the web UI: only the recorder knows the config
(which sources are expected now, a source that has recorded nothing at all since the
recorder started among them, and not a source removed from it) and only it delivers
alerts. It asks the same index by time as ``isr report`` and ``/api/coverage``
(``isr.timeline.coverage``), so the three agree, and puts the figure into the status
file (``coverage_24h`` per source); ``/metrics``, on the recorder's ``metrics_port``
and in the web UI alike, exports it from there as ``isr_source_coverage_ratio``, so
the metric and the alert never disagree, and a web UI in another container serves it
without an index of its own doing the work twice.

When: every ``INTERVAL`` seconds, and within ``SPACING`` seconds of a source changing
state or file (a reconnect, a stop, a new file), in a worker thread: the index is
refreshed (only what changed on disk costs anything) and each source's timeline of
the last 24 hours asked without titles. In ``isr run`` it shares the web UI's index.

The alert: ``coverage_low`` fires once when a source's last 24 hours miss more than
``(1 - min_coverage) x 24 h`` (86.4 s at 0.999), and ``coverage_ok`` once when they no
longer do (with a little hysteresis, so a figure on the line does not flap). For a
source with 24 hours behind it that is its coverage falling below ``min_coverage``;
one that began recording less than 24 hours ago is held to the same allowance, so
the seconds a first start costs raise no alarm while its figure is still small.
Whether the alarm is raised is not kept across a restart: a recorder that starts
with a fault in the last 24 hours raises it once again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import tzinfo
from pathlib import Path

from isr.alerts import Alerter
from isr.config import Config
from isr.status import SourceStatus
from isr.timeline.coverage import Coverage, collect_window
from isr.timeline.index import IndexClosed, TimelineIndex
from isr.timeline.text import amount

log = logging.getLogger("isr.coverage")

__all__ = ["INTERVAL", "SPACING", "WINDOW", "Alarm", "CoverageWatch"]

WINDOW = 86400.0
INTERVAL = 60.0
"""Seconds between two measures when nothing changes."""
SPACING = 10.0
"""Seconds a change waits for its measure (a burst of changes, the hour's splits of a
thousand sources, is one measure)."""


class Alarm:
    """Pure: which alert a source's missing seconds call for, once per crossing."""

    def __init__(self, min_coverage: float, window: float = WINDOW) -> None:
        self.min_coverage = min_coverage
        self.budget = max(0.0, (1.0 - min_coverage) * window)
        self.clear_at = self.budget - min(1.0, self.budget / 2)
        self.low: set[str] = set()

    def judge(self, source: str, missing: float) -> str | None:
        """``coverage_low``, ``coverage_ok`` or None (no change)."""
        if self.min_coverage <= 0:
            return None
        if source not in self.low and missing > self.budget:
            self.low.add(source)
            return "coverage_low"
        if source in self.low and missing <= self.clear_at:
            self.low.discard(source)
            return "coverage_ok"
        return None

    def forget(self, keep: Iterable[str]) -> None:
        self.low &= set(keep)


def _percent(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return "100 %" if ratio >= 1 else f"{int(ratio * 10000) / 100:.2f} %"


class CoverageWatch:
    def __init__(
        self,
        cfg: Config,
        sources: dict[str, SourceStatus],
        alerter: Alerter,
        tz: tzinfo,
        *,
        started: float | None = None,
        interval: float = INTERVAL,
        spacing: float = SPACING,
        window: float = WINDOW,
        index: TimelineIndex | None = None,
    ) -> None:
        self.tz = tz
        self.sources = sources
        """The status board's entries: ``coverage`` is set on them."""
        self.alerter = alerter
        self.started = time.time() if started is None else started
        self.interval = interval
        self.spacing = spacing
        self.window = window
        self.alarm = Alarm(cfg.alerts.min_coverage, window)
        self.roots: dict[Path, list[str]] = {}
        for src in cfg.sources:
            self.roots.setdefault(src.output_directory, []).append(src.name)
        self.shared = index
        self._indexes: dict[Path, TimelineIndex] = {}
        self.measures = 0
        self.last: dict[str, Coverage] = {}

    def _index(self, root: Path) -> TimelineIndex:
        if self.shared is not None and self.shared.root.resolve() == root.resolve():
            return self.shared
        if root not in self._indexes:
            self._indexes[root] = TimelineIndex(root, self.tz)
        return self._indexes[root]

    def measure(self, now: float | None = None) -> dict[str, Coverage]:
        """Blocking (a worker thread): every configured source's last ``window``."""
        t1 = time.time() if now is None else now
        out: dict[str, Coverage] = {}
        for root, names in self.roots.items():
            if not root.is_dir():
                continue
            out.update(
                collect_window(
                    self._index(root), names, t1 - self.window, t1, expected_since=self.started
                )
            )
        self.measures += 1
        return out

    def apply(self, found: dict[str, Coverage]) -> None:
        """On the loop: the figures onto the status board, and the alerts."""
        self.last = found
        for name, c in found.items():
            st = self.sources.get(name)
            if st is not None:
                st.coverage = c.coverage
            event = self.alarm.judge(name, c.missing_seconds)
            if event == "coverage_low":
                self.alerter.clear("coverage_ok", name)
                self.alerter.fire(
                    event,
                    name,
                    f"last 24 h: {_percent(c.coverage)} recorded, {amount(c.missing_seconds)} "
                    f"missing (min_coverage {_percent(self.alarm.min_coverage)})",
                    coverage=c.coverage,
                    missing_seconds=round(c.missing_seconds, 3),
                )
            elif event == "coverage_ok":
                self.alerter.clear("coverage_low", name)
                self.alerter.fire(
                    event,
                    name,
                    f"last 24 h: {_percent(c.coverage)} recorded again",
                    coverage=c.coverage,
                    missing_seconds=round(c.missing_seconds, 3),
                )
        self.alarm.forget(found)

    def _fingerprint(self) -> tuple[tuple[str, str, str | None, int], ...]:
        return tuple((name, st.state, st.file, st.reconnects) for name, st in self.sources.items())

    async def run(self) -> None:
        """Measure now and then until cancelled; a failure is logged, never raised."""
        seen = self._fingerprint()
        due = time.monotonic() + self.spacing
        while True:
            await asyncio.sleep(max(0.0, min(self.spacing, due - time.monotonic())))
            now_seen = self._fingerprint()
            if now_seen == seen and time.monotonic() < due:
                continue
            seen = now_seen
            due = time.monotonic() + self.interval
            try:
                found = await asyncio.to_thread(self.measure)
            except IndexClosed:
                return
            except Exception:  # coverage must never stop the recorder
                log.exception("measuring coverage failed")
                continue
            self.apply(found)

    def close(self) -> None:
        """Blocking: the indexes this watch opened (not a shared one)."""
        for index in self._indexes.values():
            index.close()
        self._indexes.clear()
