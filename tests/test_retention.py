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


def test_a_file_name_cannot_forge_a_line_of_deletions_log(tmp_path: Path) -> None:
    """Names with a newline, a tab, a backslash, a Unicode line separator or a byte
    that is not UTF-8 are escaped: one deletion is one line of four fields."""
    root = tmp_path / "rec"
    forged = "x.mp3\t1\tok\n2026-01-01T00:00:00+0000\tforged.mp3"
    odd = os.fsdecode(b"a\\b\tc\xff\xe2\x80\xa8d.mp3")  # \xff: not UTF-8; U+2028
    for name in (forged, odd):
        make_recording(root, f"a/{name}", 10, "a")
    cfg = load("c.ini", text=config(root, "[a]\ntype = tone\nretention_days = 7\n"))
    Keeper(cfg, Alerter(AlertsConfig()), recording=lambda: set()).sweep()
    text = (root / ".isr" / "deletions.log").read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[-1] == "" and len(lines) == 3, text
    assert "\u2028" not in text and "\r" not in text
    names = set()
    for line in lines[:2]:
        fields = line.split("\t")
        assert len(fields) == 4, line
        assert fields[2] == "1000" and fields[3] == "older than retention_days"
        names.add(retention.unescape_field(fields[1]))
    assert names == {f"a/{forged}", f"a/{odd}"}
    assert "\ta/x.mp3\\t1\\tok\\n2026-01-01T00:00:00+0000\\tforged.mp3\t" in text
    assert "a/a\\\\b\\tc\\xff\\u2028d.mp3" in text


def test_escape_field_round_trips() -> None:
    for text in ["plain name.mp3", "a\\nb", "\\", "\x00\x1f\x7f", "\x85\u2028é😀", "\udcff"]:
        escaped = retention.escape_field(text)
        assert escaped.isprintable() and "\t" not in escaped
        assert retention.unescape_field(escaped) == text
    assert retention.escape_field("Björk – Jóga.mp3") == "Björk – Jóga.mp3"
