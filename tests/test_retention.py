"""Retention and the disk guard, on files with fabricated mtimes."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import pytest

from isr import retention
from isr.alerts import Alerter
from isr.config import AlertsConfig, load
from isr.keeper import Keeper
from isr.sinks.files import create_exclusive

DAY = 86400.0


def make_recording(root: Path, name: str, age_days: float, source: str | None) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xfb" + b"\x00" * 998)
    if source is not None:
        path.with_name(path.name + ".json").write_text(json.dumps({"source": source}))
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))
    return path


def config(root: Path, body: str) -> str:
    return f"[general]\noutput_directory = {root}\nfilename_pattern = {{source}}/%H%M%S\n{body}"


def test_plan_deletes_only_what_is_old_enough_per_source(tmp_path: Path) -> None:
    recs = [
        retention.Recording(tmp_path / "a1", time.time() - 10 * DAY, 1, "a"),
        retention.Recording(tmp_path / "a2", time.time() - 2 * DAY, 1, "a"),
        retention.Recording(tmp_path / "b1", time.time() - 100 * DAY, 1, "b"),
        retention.Recording(tmp_path / "x1", time.time() - 100 * DAY, 1, None),
        retention.Recording(tmp_path / "a0", time.time() - 30 * DAY, 1, "a"),
    ]
    doomed = retention.plan(recs, time.time(), {"a": 7, "b": 0}, 0, protected=set())
    assert [r.path.name for r in doomed] == ["a0", "a1"]  # oldest first
    protected = {tmp_path / "a0"}
    doomed = retention.plan(recs, time.time(), {"a": 7, "b": 0}, 0, protected=protected)
    assert [r.path.name for r in doomed] == ["a1"]


def test_clock_guard_waits_for_a_sane_clock() -> None:
    guard = retention.ClockGuard()
    assert guard.check(wall=1000.0, mono=50.0, newest_mtime=900.0) is None
    # A Pi without RTC boots in the past: the newest recording is "in the future".
    assert "behind the newest recording" in (guard.check(500.0, 60.0, 900.0) or "")
    guard = retention.ClockGuard()
    assert guard.check(1000.0, 50.0, None) is None
    assert "jumped" in (guard.check(1000.0 + 86400, 60.0, None) or "")
    assert guard.check(1000.0 + 86400 + 10, 70.0, None) is None


def test_sweep_deletes_old_files_with_sidecars_and_logs_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "rec"
    old = make_recording(root, "a/old.mp3", 10, "a")
    young = make_recording(root, "a/young.mp3", 1, "a")
    keep_forever = make_recording(root, "b/ancient.mp3", 400, "b")
    unknown = make_recording(root, "stray/other.mp3", 400, None)
    path, fd = create_exclusive(root / "a", "recording", ".mp3")  # being recorded
    os.write(fd, b"x")
    path.with_name(path.name + ".json").write_text(json.dumps({"source": "a"}))
    t = time.time() - 30 * DAY
    os.utime(path, (t, t))
    cfg = load(
        "c.ini",
        text=config(root, "[a]\ntype = tone\nretention_days = 7\n[b]\ntype = tone\n"),
    )
    keeper = Keeper(cfg, Alerter(AlertsConfig()), recording=lambda: set())
    with caplog.at_level(logging.INFO):
        keeper.sweep()
    os.close(fd)
    assert not old.exists() and not old.with_name("old.mp3.json").exists()
    assert young.exists() and keep_forever.exists() and unknown.exists()
    assert path.exists()  # locked by its writer: never deleted
    log = (root / ".isr" / "deletions.log").read_text().splitlines()
    assert len(log) == 1 and "\ta/old.mp3\t1000\tolder than retention_days" in log[0]
    assert "deleted a/old.mp3" in caplog.text


def test_disk_low_deletes_only_expired_files_then_alerts(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    expired = make_recording(root, "a/expired.mp3", 10, "a")
    kept = make_recording(root, "a/kept.mp3", 1, "a")
    body = "[a]\ntype = tone\nretention_days = 7\nmin_free_mb = 100000000\n"
    cfg = load("c.ini", text=config(root, body))
    alerter = Alerter(AlertsConfig())
    keeper = Keeper(cfg, alerter, recording=lambda: set())
    keeper.guard.check(time.time(), time.monotonic(), None)
    keeper.check_disk()
    assert not expired.exists()
    assert kept.exists()  # retention would keep it: the disk guard keeps it too
    assert keeper.low
    assert [a["event"] for a in alerter.sent] == ["disk_low"]
    keeper.check_disk()
    assert len(alerter.sent) == 1  # rate-limited


def test_retention_off_deletes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    ancient = make_recording(root, "a/x.mp3", 4000, "a")
    cfg = load("c.ini", text=config(root, "[a]\ntype = tone\n"))
    assert Keeper(cfg, Alerter(AlertsConfig()), recording=lambda: set()).sweep() == 0
    assert ancient.exists()
