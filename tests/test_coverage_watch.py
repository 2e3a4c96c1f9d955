"""The recorder's watch on coverage: the alarm fires once per crossing and clears when
the last 24 hours recover; the figure reaches the status file and /metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client.core import Metric

from isr.alerts import Alerter
from isr.config import load
from isr.evidence.watch import Alarm, CoverageWatch
from isr.metrics import families
from isr.status import SourceStatus
from isr.web.recorder_status import interpret
from tests.support.archive import Archive

BERLIN = ZoneInfo("Europe/Berlin")


def test_the_alarm_fires_once_and_clears_once() -> None:
    alarm = Alarm(0.999)  # 86.4 s of 24 h
    assert alarm.budget == 86.4 * 1.0 or abs(alarm.budget - 86.4) < 1e-9
    seen = [alarm.judge("r", m) for m in (0, 50, 86.4, 86.5, 300, 90, 86.0, 85.3, 10, 87, 87)]
    assert seen == [None, None, None, "coverage_low", None, None, None, "coverage_ok", None,
                    "coverage_low", None]  # fmt: skip
    assert [Alarm(0).judge("r", 86400.0)] == [None]  # 0 = never
    strict = Alarm(1.0)
    assert [strict.judge("r", m) for m in (0.0, 0.01, 0.0)] == [None, "coverage_low", "coverage_ok"]


def _watch(root: Path, min_coverage: float, started: float) -> tuple[CoverageWatch, Alerter]:
    cfg = load(
        "<test>",
        text=f"[general]\noutput_directory = {root}\nfilename_pattern = {{source}}/%Y%m%d_%H%M%S\n"
        f"[alerts]\nmin_coverage = {min_coverage}\n"
        "[radio1]\ntype = stream\nurl = http://127.0.0.1:9/a\n"
        "[radio2]\ntype = stream\nurl = http://127.0.0.1:9/b\n",
    )
    alerter = Alerter(cfg.alerts)
    board = {"radio1": SourceStatus("stream", "mp3"), "radio2": SourceStatus("stream", "mp3")}
    return CoverageWatch(cfg, board, alerter, BERLIN, started=started), alerter


def test_the_watch_over_an_archive(tmp_path: Path) -> None:
    """radio1 recorded the last 30 hours but lost 100 s 2 hours ago; radio2 never
    recorded anything since the recorder started 10 minutes ago."""
    now = time.time()
    a = Archive(tmp_path, BERLIN)
    a.record("radio1", now - 30 * 3600, 28 * 3600)
    a.record("radio1", now - 2 * 3600 + 100, 2 * 3600 - 100, cause="connection reset")
    a.close()
    watch, alerter = _watch(tmp_path, 0.999, started=now - 600)
    try:
        found = watch.measure(now)
        assert abs(found["radio1"].missing_seconds - 100) < 1
        assert found["radio2"].expected_seconds == 600 and found["radio2"].recorded_seconds == 0
        watch.apply(found)
        assert [(e["event"], e["source"]) for e in alerter.sent] == [
            ("coverage_low", "radio1"),
            ("coverage_low", "radio2"),
        ]
        assert alerter.sent[0]["message"].startswith("last 24 h: 99.88 % recorded, 1 min 40 s")
        watch.apply(watch.measure(now + 1))
        assert len(alerter.sent) == 2  # once per crossing
        st = watch.sources["radio1"]
        assert st.coverage is not None and abs(st.coverage - (1 - 100 / 86400)) < 1e-4
        doc: dict[str, Any] = {
            "updated": "x",
            "sources": {n: s.to_json(BERLIN) for n, s in watch.sources.items()},
        }
        assert doc["sources"]["radio1"]["coverage_24h"] == int(st.coverage * 1e6) / 1e6
        status = interpret(doc, now)
        status = type(status)(True, now, status.sources)  # as if the recorder were alive
        metric: Metric = next(
            m for m in families(status, now, None) if m.name == "isr_source_coverage_ratio"
        )
        assert {s.labels["source"]: round(s.value, 4) for s in metric.samples} == {
            "radio1": round(st.coverage, 4),
            "radio2": 0.0,
        }
        # A day later the fault has left the window: radio1 recovers (radio2 records now)
        later = now + 86400 - 3600
        a2 = Archive(tmp_path, BERLIN)
        a2.record("radio1", now, int(later - now))
        a2.record("radio2", now - 600, int(later - now + 600))
        a2.close()
        watch.apply(watch.measure(later))
        assert [(e["event"], e["source"]) for e in alerter.sent[2:]] == [
            ("coverage_ok", "radio1"),
            ("coverage_ok", "radio2"),
        ]
    finally:
        watch.close()
