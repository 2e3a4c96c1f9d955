"""The index by time over files and sidecars the recorder's own segmenter wrote: built,
rebuilt when missing, stale or damaged, and kept up to date as files come and go."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from isr import retention
from isr.errors import UnknownSource
from isr.recovery import finish_sidecar
from isr.sidecar import Ledger, Title, write_sidecar
from isr.timeline.index import INDEX_FILE, IndexClosed, TimelineIndex
from isr.timeline.query import HOLE_CAUSE
from tests.support.archive import Archive, local, sidecar, write_status

BERLIN = ZoneInfo("Europe/Berlin")
DAY = local("2026-11-24T00:00", BERLIN)
NEXT_DAY = local("2026-11-25T00:00", BERLIN)
ODD = 'Radio "1" – ü %20 & co'


def age(root: Path, seconds: float = 100.0) -> None:
    """Make every directory look long unchanged, as after a quiet spell (a directory
    changed moments ago is always listed again: see FileIndex's RACY_NS)."""
    t = time.time() - seconds
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.utime(d, (t, t))


def answer(index: TimelineIndex, source: str = "radio1") -> dict[str, Any]:
    data: dict[str, Any] = index.timeline(source, DAY, NEXT_DAY).to_json(BERLIN)
    return data


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    """radio1 on 2026-11-24: 10:00-12:00, a reconnect (4 s lost), 12:00:04-13:30, the
    recorder stopped until 14:00, then 14:00-15:00; a source with an odd name; a
    file without a sidecar."""
    root = tmp_path / "recordings"
    root.mkdir()
    a = Archive(root, BERLIN, split_seconds=1800)
    a.record("radio1", local("2026-11-24T10:00", BERLIN), 7200, titles={0: "A - One", 4000: "B"})
    a.record(
        "radio1",
        local("2026-11-24T12:00:04", BERLIN),
        5396,
        cause="connection reset",
        titles={0: "C"},
    )
    a.segmenters.pop("radio1")  # a new recorder process: it knows no last end
    a.record("radio1", local("2026-11-24T14:00", BERLIN), 3600)
    a.record(ODD, local("2026-11-24T09:00", BERLIN), 60, titles={10: "x\x1by"})
    (root / "loose").mkdir()
    (root / "loose" / "20261124_080000.mp3").write_bytes(b"\xff\xfb" + bytes(100))
    yield a
    a.close()


def test_built_from_the_files_and_sidecars(archive: Archive) -> None:
    index = TimelineIndex(archive.root, BERLIN)
    try:
        tl = answer(index)
        names = [s["file"] for s in tl["segments"]]
        assert names[0] == "radio1/20261124_100000.mp3" and len(names) == 4 + 3 + 2
        assert tl["segments"][4]["start"] == "2026-11-24T12:00:04.000+01:00"
        assert tl["gaps"] == [
            {
                "start": "2026-11-24T12:00:00.000+01:00",
                "end": "2026-11-24T12:00:04.000+01:00",
                "seconds": 4.0,
                "cause": "connection reset",
            },
            {
                "start": "2026-11-24T13:30:00.000+01:00",
                "end": "2026-11-24T14:00:00.000+01:00",
                "seconds": 1800.0,
                "cause": HOLE_CAUSE,
            },
        ]
        assert [t["title"] for t in tl["titles"]] == ["A - One", "B", "C"]
        assert tl["titles"][1]["at"] == "2026-11-24T11:06:40.000+01:00"
        assert tl["covered_seconds"] == 7200 + 5396 + 3600
        sources = {s.name: s for s in index.sources()}
        assert set(sources) == {"radio1", ODD}  # the file without a sidecar has none
        assert sources["radio1"].first == local("2026-11-24T10:00", BERLIN)
        assert sources["radio1"].last == local("2026-11-24T15:00", BERLIN)
        assert sources[ODD].format == "mp3" and not sources[ODD].recording
        assert answer(index, ODD)["titles"][0]["title"] == "x\x1by"
        (loose,) = index.overlapping(None, DAY, NEXT_DAY)
        assert loose.path == "loose/20261124_080000.mp3" and loose.source is None
        assert loose.start == local("2026-11-24T08:00", BERLIN) == loose.end  # dated by name
        with pytest.raises(UnknownSource):
            index.timeline("radio2", DAY, NEXT_DAY)
    finally:
        index.close()
    assert (archive.root / ".isr" / INDEX_FILE).is_file()


def test_overlapping_is_the_clip_planners_question(archive: Archive) -> None:
    index = TimelineIndex(archive.root, BERLIN)
    try:
        rows = index.overlapping(
            "radio1", local("2026-11-24T10:29:59", BERLIN), local("2026-11-24T12:00:02", BERLIN)
        )
        assert [r.path.rsplit("/", 1)[1] for r in rows] == [
            "20261124_100000.mp3",
            "20261124_103000.mp3",
            "20261124_110000.mp3",
            "20261124_113000.mp3",
        ]  # the file from 12:00:04 starts after TO: not in it
        assert all(r.format == "mp3" and r.size == 1800 * 100 and not r.recording for r in rows)
        for r in rows:  # the manifest's sha256: the sidecar's
            assert r.sha256 == hashlib.sha256((archive.root / r.path).read_bytes()).hexdigest()
        assert rows == sorted(rows, key=lambda r: r.start)
        assert index.overlapping("radio1", NEXT_DAY, NEXT_DAY + 3600) == []
    finally:
        index.close()


def test_deleting_the_index_loses_nothing(archive: Archive) -> None:
    index = TimelineIndex(archive.root, BERLIN)
    before = answer(index), index.sources()
    index.close()
    for extra in ("", "-wal", "-shm"):
        (archive.root / ".isr" / (INDEX_FILE + extra)).unlink(missing_ok=True)
    again = TimelineIndex(archive.root, BERLIN)
    try:
        first = answer(again)
        assert again.builds == 1 and again.last_refresh.added == 11
        assert (first, again.sources()) == before
    finally:
        again.close()
    reopened = TimelineIndex(archive.root, BERLIN)
    try:
        first = answer(reopened)
        assert reopened.builds == 0  # the file was kept and trusted: not built again
        assert reopened.last_refresh.added == 0
        assert (first, reopened.sources()) == before
    finally:
        reopened.close()


@pytest.mark.parametrize("where", ["whole", "header", "middle"])
def test_a_damaged_index_is_set_aside_and_rebuilt(archive: Archive, where: str) -> None:
    index = TimelineIndex(archive.root, BERLIN)
    before = answer(index)
    index.close()
    db = archive.root / ".isr" / INDEX_FILE
    with sqlite3.connect(db) as conn:  # everything into the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    assert len(data) >= 4 * 4096
    junk = bytes((i * 37 + 11) % 256 for i in range(4096))
    if where == "whole":
        data = bytearray(junk * (len(data) // 4096))
    elif where == "header":
        data[0:100] = junk[:100]
    else:
        data[2 * 4096 : 3 * 4096] = junk  # a page of the recordings table or its index
    db.write_bytes(bytes(data))
    again = TimelineIndex(archive.root, BERLIN)
    try:
        assert answer(again) == before
        assert again.builds == 1
        assert (db.parent / (INDEX_FILE + ".damaged")).read_bytes() == bytes(data)
    finally:
        again.close()


def test_an_index_of_another_schema_is_rebuilt(archive: Archive) -> None:
    index = TimelineIndex(archive.root, BERLIN)
    before = answer(index)
    index.close()
    db = archive.root / ".isr" / INDEX_FILE
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema'")
        conn.execute("DELETE FROM recordings")  # what an old version would not know
    again = TimelineIndex(archive.root, BERLIN)
    try:
        assert answer(again) == before and again.builds == 1
        assert not (db.parent / (INDEX_FILE + ".damaged")).exists()
    finally:
        again.close()


def test_files_added_grown_changed_and_deleted_are_reflected(archive: Archive) -> None:
    root = archive.root
    index = TimelineIndex(root, BERLIN)
    try:
        answer(index)
        age(root)
        # a new session starts and is being recorded: its sidecar has no end yet
        archive.record("radio1", local("2026-11-24T16:00", BERLIN), 60, cause="timeout", stop=False)
        name = "radio1/20261124_160000.mp3"
        write_status(root, {"radio1": name})
        tl = answer(index)
        assert index.last_refresh.added == 1
        seg = tl["segments"][-1]
        assert (seg["file"], seg["recording"]) == (name, True)
        assert sidecar(root / name)["end"] is None
        mtime = (root / name).stat().st_mtime
        row = index.overlapping("radio1", DAY, NEXT_DAY)[-1]
        assert row.end == pytest.approx(mtime) and row.sha256 is None
        assert {s.name: s.recording for s in index.sources()}["radio1"] is True
        # it grows (its directory does not change): its size and end follow
        age(root)
        archive.record("radio1", local("2026-11-24T16:01", BERLIN), 30, stop=False)
        later = time.time() + 5
        os.utime(root / name, (later, later))
        row = index.overlapping("radio1", DAY, NEXT_DAY)[-1]
        assert row.size == 90 * 100 and row.end == pytest.approx(later)
        assert index.last_refresh.changed == 1 and index.last_refresh.added == 0
        # it is closed: the sidecar gets its end, the status no longer names it
        archive.stop("radio1")
        write_status(root, {})
        seg = answer(index)["segments"][-1]
        assert (seg["end"], seg["recording"]) == ("2026-11-24T16:01:30.000+01:00", False)
        assert index.last_refresh.changed == 1
        assert (
            index.overlapping("radio1", DAY, NEXT_DAY)[-1].sha256 == sidecar(root / name)["sha256"]
        )
        # retention deletes the morning's first file, with its sidecar
        first = root / "radio1" / "20261124_100000.mp3"
        old = time.time() - 100 * 86400
        os.utime(first, (old, old))
        doomed = retention.plan(retention.scan(root), time.time(), {"radio1": 90}, 0.0, set())
        assert [r.path for r in doomed] == [first]
        assert retention.delete(doomed[0], root, "older than retention_days")
        names = [s["file"] for s in answer(index)["segments"]]
        assert "radio1/20261124_100000.mp3" not in names and index.last_refresh.removed == 1
        assert {s.name: s for s in index.sources()}["radio1"].first == local(
            "2026-11-24T10:30", BERLIN
        )
    finally:
        index.close()


def test_a_deletion_behind_an_unchanged_directory_mtime_is_seen(archive: Archive) -> None:
    """NFS caches attributes, a coarse clock may not move: the rows a query returns
    are checked on disk."""
    root = archive.root
    index = TimelineIndex(root, BERLIN)
    try:
        answer(index)
        age(root)
        folder = root / "radio1"
        st = folder.stat()
        victim = folder / "20261124_103000.mp3"
        victim.unlink()
        victim.with_name(victim.name + ".json").unlink()
        os.utime(folder, ns=(st.st_atime_ns, st.st_mtime_ns))
        names = [s["file"] for s in answer(index)["segments"]]
        assert "radio1/20261124_103000.mp3" not in names and len(names) == 8
        names = [s["file"] for s in answer(index)["segments"]]
        assert len(names) == 8
    finally:
        index.close()


def test_only_changed_sidecars_are_read_again(archive: Archive) -> None:
    root = archive.root
    index = TimelineIndex(root, BERLIN)
    try:
        answer(index)
        age(root)
        side = root / "radio1" / "20261124_140000.mp3.json"
        data = json.loads(side.read_text())
        st, folder = side.stat(), (root / "radio1").stat()
        # rewritten in place with the same mtime: nothing tells, so nothing is read
        side.write_text(json.dumps({**data, "gaps": [{"at": 0, "seconds": 9, "cause": "x"}]}))
        os.utime(side, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.utime(root / "radio1", ns=(folder.st_atime_ns, folder.st_mtime_ns))
        assert "x" not in [g["cause"] for g in answer(index)["gaps"]]
        assert index.last_refresh.changed == 0
        # a sidecar replaced as ISR writes them (a new file renamed over): read again
        finish = root / "radio1" / "20261124_163000.mp3"
        finish.write_bytes(b"\xff\xfb" + bytes(98))
        (root / "radio1" / "20261124_163000.mp3.json").write_text(
            json.dumps(
                {
                    "source": "radio1",
                    "format": "mp3",
                    "start": "2026-11-24T16:30:00.000+01:00",
                    "end": None,
                    "titles": [],
                    "gaps": [],
                }
            )
        )
        later = local("2026-11-24T16:45", BERLIN)
        assert finish_sidecar(finish, "the recorder stopped unexpectedly", later)
        seg = answer(index)["segments"][-1]
        assert seg["end"] == "2026-11-24T16:45:00.000+01:00"
        # its directory was listed again, but the unchanged sidecar was not read
        assert "x" not in [g["cause"] for g in answer(index)["gaps"]]
    finally:
        index.close()


def test_an_unwritable_state_directory_keeps_the_index_in_memory(archive: Archive) -> None:
    (archive.root / ".isr").write_text("a file where the state directory should be")
    index = TimelineIndex(archive.root, BERLIN)
    try:
        assert len(answer(index)["segments"]) == 9
    finally:
        index.close()
    assert (archive.root / ".isr").is_file()


def test_a_closed_index_refuses_work(archive: Archive) -> None:
    index = TimelineIndex(archive.root, BERLIN)
    index.close()
    with pytest.raises(Exception, match="closed"):
        index.refresh([])


def test_a_build_stopped_midway_keeps_what_it_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The web UI stops during the first build: it gives up at once, the batches it
    committed stay, and the next start finishes the job with the same answer."""
    monkeypatch.setattr("isr.timeline.index.BATCH", 40)
    root = tmp_path / "recordings"
    (root / "radio1").mkdir(parents=True)
    for h in range(24 * 20):
        start = DAY - 10 * 86400 + h * 3600
        audio = root / "radio1" / f"{h:04d}.mp3"
        audio.write_bytes(b"\xff\xfb" + bytes(98))
        ledger = Ledger("radio1", f"radio1/{audio.name}", "mp3", start, start + 3600)
        ledger.titles.append(Title(10.0, 0, f"title {h}"))
        write_sidecar(audio, ledger, BERLIN)
    reference = TimelineIndex(root, BERLIN, in_memory=True)
    expected = answer(reference)
    reference.close()

    index = TimelineIndex(root, BERLIN)
    stopped: list[BaseException] = []

    def build() -> None:
        try:
            index.refresh([])
        except IndexClosed as exc:
            stopped.append(exc)

    worker = threading.Thread(target=build)
    worker.start()
    db = root / ".isr" / INDEX_FILE

    def committed() -> int:
        try:
            with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
                (n,) = conn.execute("SELECT count(*) FROM recordings").fetchone()
                return int(n)
        except sqlite3.Error:
            return 0

    deadline = time.monotonic() + 30
    while committed() == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    index.close()
    worker.join(10)
    kept = committed()
    assert kept % 40 == 0 or kept == 480, kept  # whole batches, or all of it
    again = TimelineIndex(root, BERLIN)
    try:
        assert answer(again) == expected
        assert again.builds == 0  # the file was kept, not built from nothing
        assert again.last_refresh.added == 480 - kept
    finally:
        again.close()


def test_a_source_is_recording_across_its_split(archive: Archive) -> None:
    """At a split the status file may name the new file before the index has seen
    it (or the other way round): the source is being recorded all the same (the
    timeline's source list once showed "radio1" without "(recording)" there)."""
    index = TimelineIndex(archive.root, BERLIN)
    try:
        write_status(archive.root, {"radio1": "radio1/20991231_235959.mp3"})  # not indexed
        sources = {s.name: s for s in index.sources()}
        assert sources["radio1"].recording and not sources[ODD].recording
        write_status(archive.root, {})
        assert not any(s.recording for s in index.sources())
    finally:
        index.close()
