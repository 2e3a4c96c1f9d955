"""The archive's parts without a store: the durable queue, retention kept from files
the store has not confirmed, the status and metrics, the config (no secrets shown)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import time
from pathlib import Path

import pytest

from isr import config
from isr.alerts import Alerter
from isr.archive import queue
from isr.archive.uploader import Archive
from isr.config import AlertsConfig
from isr.errors import ConfigError
from isr.keeper import Keeper
from isr.metrics import families
from isr.web.recorder_status import RecorderStatus

DAY = 86400.0


def archive_config(root: Path, extra: str = "") -> config.Config:
    return config.load(
        "c.ini",
        text=(
            f"[general]\noutput_directory = {root}\nfilename_pattern = {{source}}/%H%M%S\n"
            "[a]\ntype = tone\nretention_days = 7\n"
            "[archive]\nurl = s3://bucket/some/prefix/\naccess_key = AKIDEXAMPLE1\n"
            "secret_key = very-secret\nrecorder_id = pi1\n" + extra
        ),
    )


def make_recording(root: Path, name: str, age_days: float) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xfb" + b"\x00" * 998)
    path.with_name(path.name + ".json").write_text(json.dumps({"source": "a"}))
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))
    return path


def test_config_is_off_without_a_url_and_never_shows_secrets() -> None:
    assert config.load(text="[a]\ntype = tone\n").archive is None
    assert config.load(text="[a]\ntype = tone\n[archive]\nurl =\n").archive is None
    cfg = archive_config(Path("/tmp/x"), "delete_local_after_days = 0.25\n")
    assert cfg.archive is not None
    assert (cfg.archive.bucket, cfg.archive.prefix) == ("bucket", "some/prefix")
    assert cfg.archive.delete_local_after_days == 0.25
    assert cfg.archive.max_lag_minutes == 60
    text = config.describe(cfg) + repr(cfg)
    assert "s3://bucket/some/prefix" in text and "recorder_id=pi1" in text
    assert "very-secret" not in text and "AKIDEXAMPLE1" not in text
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        config.load(text="[a]\ntype = tone\n[archive]\nurl = http://bucket/p\n")
    with pytest.raises(ConfigError, match="secret_key"):
        config.load(text="[a]\ntype = tone\n[archive]\nurl = s3://b\naccess_key = x\n")
    host = config.load(text="[a]\ntype = tone\n[archive]\nurl = s3://b\n").archive
    assert host is not None and host.recorder_id


def test_the_queue_keeps_rows_across_connections(tmp_path: Path) -> None:
    db = queue.connect(tmp_path)
    assert queue.add(db, [("a/1.mp3", "a", 10.0), ("a/2.mp3", "a", 20.0)]) == 2
    assert queue.add(db, [("a/1.mp3", "a", 30.0)]) == 0  # known: not queued twice
    queue.failed(db, "a/1.mp3", "down", time.time() + 60)
    assert [r.name for r in queue.due(db, time.time())] == ["a/2.mp3"]
    queue.confirmed(db, "a/2.mp3", "00" * 32, 1000, 100.0, time.time())
    db.close()
    db = queue.connect(tmp_path)  # as after a restart
    assert queue.waiting(db) == (1, 10.0)
    assert queue.archived(db, ["a/1.mp3", "a/2.mp3", "a/3.mp3"]) == {"a/2.mp3"}
    assert queue.expired(db, 101.0) == [("a/2.mp3", "a", 1000)]
    assert queue.expired(db, 99.0) == []
    queue.set_state(db, "a/1.mp3", queue.LOST, "deleted")
    assert queue.add(db, [("a/1.mp3", "a", 40.0)]) == 1  # a lost file found again
    db.close()


def test_retention_never_deletes_what_the_store_has_not_confirmed(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    confirmed = make_recording(root, "a/old1.mp3", 30)
    waiting = make_recording(root, "a/old2.mp3", 30)
    young = make_recording(root, "a/young.mp3", 1)
    cfg = archive_config(root)
    archive = Archive(cfg, None, lambda: set())
    db = queue.connect(root)
    queue.add(db, [("a/old1.mp3", "a", 0.0), ("a/old2.mp3", "a", 0.0)])
    queue.confirmed(db, "a/old1.mp3", "00" * 32, 1000, 0.0, time.time())
    db.close()
    keeper = Keeper(cfg, Alerter(AlertsConfig()), recording=lambda: set())
    keeper.unarchived = archive.unarchived
    keeper.sweep()
    assert not confirmed.exists()
    assert waiting.exists() and young.exists()
    assert keeper.held == 1


def test_a_confirmed_upload_frees_what_the_disk_guard_held_at_once(tmp_path: Path) -> None:
    """On a low disk, files held for the archive go soon after the store confirms
    them, not at the disk guard's next look (30 s; an hour here)."""
    root = tmp_path / "rec"
    held = make_recording(root, "a/old.mp3", 30)
    cfg = archive_config(root)
    never_enough = tuple(dataclasses.replace(s, min_free_mb=10**8) for s in cfg.sources)
    cfg = dataclasses.replace(cfg, sources=never_enough)
    archive = Archive(cfg, None, lambda: set())
    db = queue.connect(root)
    queue.add(db, [("a/old.mp3", "a", 0.0)])
    keeper = Keeper(cfg, Alerter(AlertsConfig()), recording=lambda: set(), disk_interval=3600)
    keeper.unarchived = archive.unarchived

    async def scenario() -> None:
        task = asyncio.create_task(keeper.run())
        try:
            for _ in range(500):  # the first look
                if keeper.held and keeper.low:
                    break
                await asyncio.sleep(0.01)
            assert keeper.held == 1 and held.exists()
            assert keeper.low
            queue.confirmed(db, "a/old.mp3", "00" * 32, 1000, 0.0, time.time())
            await asyncio.to_thread(keeper.archived)  # from the uploader's thread
            for _ in range(2000):  # within ARCHIVED_GAP of the first look, or so
                if not held.exists():
                    break
                await asyncio.sleep(0.01)
            assert not held.exists()
        finally:
            task.cancel()

    asyncio.run(scenario())
    db.close()


def test_status_and_metrics_show_the_queue(tmp_path: Path) -> None:
    cfg = archive_config(tmp_path)
    archive = Archive(cfg, None, lambda: set())
    assert archive.status() == {"queue": 0, "oldest_seconds": None, "last_error": None}
    db = queue.connect(tmp_path)
    queue.add(db, [("a/1.mp3", "a", time.time() - 120)])
    archive._refresh(db)
    db.close()
    status = archive.status()
    assert status["queue"] == 1 and 119 <= status["oldest_seconds"] <= 130
    now = time.time()
    metrics = families(RecorderStatus(True, now, {}, raw={"archive": status}), now, None)
    values = {m.name: m.samples[0].value for m in metrics if m.name.startswith("isr_archive")}
    assert values["isr_archive_queue_files"] == 1
    assert 119 <= values["isr_archive_oldest_seconds"] <= 130


def test_archive_behind_fires_when_the_oldest_waits_too_long_and_clears(tmp_path: Path) -> None:
    cfg = archive_config(tmp_path, "max_lag_minutes = 1\n")
    alerter = Alerter(AlertsConfig())
    archive = Archive(cfg, alerter, lambda: set())
    db = queue.connect(tmp_path)
    queue.add(db, [("a/1.mp3", "a", time.time() - 30)])
    archive._refresh(db)
    assert alerter.sent == []  # 30 s < 1 min
    queue.add(db, [("a/0.mp3", "a", time.time() - 90)])
    archive._refresh(db)
    archive._refresh(db)
    assert [a["event"] for a in alerter.sent] == ["archive_behind"]
    assert "2 file(s) wait" in alerter.sent[0]["message"]
    for name in ("a/0.mp3", "a/1.mp3"):
        queue.confirmed(db, name, "00" * 32, 1, None, time.time())
    archive._refresh(db)
    assert ("archive_behind", "") not in alerter._last  # cleared: may fire again at once
    db.close()
