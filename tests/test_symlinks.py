"""Links planted in the recordings directory never make ISR write elsewhere.

Whoever can write to the recordings directory (a share, a second container) can put
a symlink or a hard link where a recorder running as root is about to write,
repair, append or delete. Each test plants real links in a temporary recordings
directory, with the outside file they point to, and runs the real code path.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from isr import retention
from isr.alerts import Alerter
from isr.archive import queue
from isr.clips.tables import UnitTables
from isr.config import AlertsConfig, load
from isr.errors import LockError
from isr.keeper import Keeper
from isr.recorder import lock_directory
from isr.recovery import recover, sweep
from isr.sidecar import write_json_atomic
from isr.sinks.files import connect_sqlite, open_regular, read_regular
from isr.sinks.wav import parse_wav_header
from isr.timeline.index import TimelineIndex
from isr.web.app import _read_cache, _write_cache
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for
from tests.test_wav import crashed_wav

SPLIT_SECONDS = 3.0


def victim(tmp_path: Path, name: str, data: bytes = b"precious, not ISR's\n") -> Path:
    """A file outside the recordings directory that nothing may change."""
    path = tmp_path / "outside" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_session_rolls_over_planted_sidecar_and_status_temp_names(tmp_path: Path) -> None:
    """The old writer used ``.<file>.json.tmp``: a link planted at the next boundary's
    name had the target overwritten with JSON. Links are planted for the next 20
    boundaries and for the status file; the recorder rolls over at least twice."""
    out = tmp_path / "recordings"
    (out / ".isr").mkdir(parents=True)
    target = victim(tmp_path, "passwd")
    status_target = victim(tmp_path, "shadow")
    planted = []
    first = math.floor(time.time() / SPLIT_SECONDS) + 1
    for k in range(20):
        stamp = datetime.fromtimestamp((first + k) * SPLIT_SECONDS).strftime("%Y%m%d_%H%M%S")
        link = out / f".{stamp}.wav.json.tmp"
        link.symlink_to(target)
        planted.append(link)
    (out / ".isr" / ".status.json.tmp").symlink_to(status_target)
    config = (
        f"[general]\nsplit_minutes = {SPLIT_SECONDS / 60}\nlog_file = rec.log\n"
        "[tone]\ntype = tone\nformat = wav\n"
    )
    with RecorderProcess(tmp_path, config) as rec:
        # three files: the first (named after its start) and two opened on a boundary
        assert wait_for(lambda: len(list(out.glob("*.wav.json"))) >= 3, timeout=30), rec.output
        assert wait_for(lambda: rec.status()["sources"]["tone"]["state"] == "recording")
        assert rec.stop() == 0, rec.output
    assert target.read_bytes() == b"precious, not ISR's\n"
    assert status_target.read_bytes() == b"precious, not ISR's\n"
    sidecars = sorted(out.glob("*.wav.json"))
    assert len(sidecars) >= 3
    for side in sidecars:
        assert not side.is_symlink(), side.name
        assert json.loads(side.read_text())["end"] is not None, side.name
    assert not (out / ".isr" / "status.json").is_symlink()
    assert json.loads((out / ".isr" / "status.json").read_text())["sources"]["tone"]
    assert all(link.is_symlink() for link in planted)  # left alone, not written through
    assert not [p for p in out.glob(".*.tmp") if not p.is_symlink()]  # no temp file left


def test_the_atomic_writer_never_writes_through_a_link(tmp_path: Path) -> None:
    target = victim(tmp_path, "t")
    (tmp_path / "rec").mkdir()
    dest = tmp_path / "rec" / "x.json"
    dest.symlink_to(target)  # the destination itself a link: replaced, not followed
    write_json_atomic(dest, {"a": 1})
    assert target.read_bytes() == b"precious, not ISR's\n"
    assert not dest.is_symlink() and json.loads(dest.read_text()) == {"a": 1}
    assert os.stat(dest).st_mode & 0o777 == 0o666 & ~_umask()  # the umask decides


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_lock_file_as_a_symlink_or_hard_link_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "recordings"
    (out / ".isr").mkdir(parents=True)
    target = victim(tmp_path, "lock-target")
    lock = out / ".isr" / "recorder.lock"
    lock.symlink_to(target)
    with pytest.raises(LockError, match="symbolic link"):
        lock_directory(out)
    assert target.read_bytes() == b"precious, not ISR's\n"
    # the real recorder refuses to start, says why, and truncates nothing
    with RecorderProcess(tmp_path, "[general]\nlog_file =\n[tone]\ntype = tone\n") as rec:
        assert rec.proc.wait(timeout=30) != 0
        rec.stop()
    assert "recorder.lock" in rec.output and "symbolic link" in rec.output, rec.output
    assert target.read_bytes() == b"precious, not ISR's\n"
    lock.unlink()
    os.link(target, lock)  # a hard link to a file outside
    with pytest.raises(LockError, match="hard links"):
        lock_directory(out)
    assert target.read_bytes() == b"precious, not ISR's\n"
    lock.unlink()
    fd = lock_directory(out)  # a lock file of its own: fine
    try:
        assert lock.read_text() == f"{os.getpid()}\n"
    finally:
        os.close(fd)


def test_recovery_repairs_no_file_through_a_link(tmp_path: Path, media: MediaFactory) -> None:
    """Crashed-looking files planted as links (named by the status file, found by an
    unfinished sidecar, or by the sweep) and a status file naming a file outside:
    every outside file stays as it was; a real crashed WAV beside them is repaired."""
    out = tmp_path / "recordings"
    (out / "card").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    wav_named = outside / "named.wav"
    crashed_wav(wav_named, 300)
    wav_sidecar = outside / "sidecar.wav"
    crashed_wav(wav_sidecar, 300)
    wav_hard = outside / "hard.wav"
    crashed_wav(wav_hard, 300)
    mp3 = media("mp3", 5).read_bytes()
    start = mp3.find(b"\xff\xfb", 2000)
    mp3_linked = outside / "linked.mp3"
    mp3_linked.write_bytes(mp3[start : start + 30001])  # ends inside a frame
    mp3_abs = outside / "absolute.mp3"
    mp3_abs.write_bytes(mp3[start : start + 30001])
    headers_only = outside / "headers.mp3"
    headers_only.write_bytes(b"\xff\xfb\x90\x00")  # would be deleted as "no audio"
    before = {p: p.read_bytes() for p in outside.iterdir()}

    (out / "card" / "named.wav").symlink_to(wav_named)
    (out / "card" / "sidecar.wav").symlink_to(wav_sidecar)
    _unfinished_sidecar(out / "card" / "sidecar.wav")
    os.link(wav_hard, out / "card" / "hard.wav")
    _unfinished_sidecar(out / "card" / "hard.wav")
    (out / "card" / "linked.mp3").symlink_to(mp3_linked)
    _unfinished_sidecar(out / "card" / "linked.mp3")
    (out / "card" / "headers.mp3").symlink_to(headers_only)
    real = out / "card" / "real.wav"
    crashed_wav(real, 300)
    (out / ".isr").mkdir()
    status = {
        "sources": {
            "a": {"file": "card/named.wav"},
            "b": {"file": str(mp3_abs)},  # absolute, outside every configured directory
            "c": {"file": "../outside/absolute.mp3"},
            "d": {"file": "card/headers.mp3"},
            "e": {"file": "card/real.wav"},
        }
    }
    (out / ".isr" / "status.json").write_text(json.dumps(status))

    done = recover(out, []).done
    assert [line.split(":")[0] for line in done] == [str(real)], done
    assert parse_wav_header(real.read_bytes()[:4096]).data_size == 1200  # type: ignore[union-attr]
    assert {p: p.read_bytes() for p in outside.iterdir()} == before
    assert (out / "card" / "named.wav").is_symlink()

    # the sweep, for when no status file tells what a crash touched
    (out / ".isr" / "status.json").unlink()
    later = time.time() + 60
    assert sweep(out, [out.resolve()], later, threading.Event()) == []
    assert {p: p.read_bytes() for p in outside.iterdir()} == before


def _unfinished_sidecar(audio: Path) -> None:
    side = audio.with_name(audio.name + ".json")
    side.write_text(json.dumps({"source": "x", "start": "2026-11-24T14:00:00+00:00", "end": None}))


def test_recovery_does_not_hang_on_fifos_where_files_should_be(tmp_path: Path) -> None:
    out = tmp_path / "recordings"
    (out / "card").mkdir(parents=True)
    os.mkfifo(out / "card" / "x.wav")
    os.mkfifo(out / "card" / "y.wav.json")
    crashed_wav(out / "card" / "y.wav", 100)
    (out / ".isr").mkdir()
    os.mkfifo(out / ".isr" / "status.json")
    result: list[object] = []

    def run() -> None:
        result.append(recover(out, []))
        result.append(sweep(out, [out], time.time() + 60, threading.Event()))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "recovery blocked on a FIFO"
    swept = result[1]
    assert isinstance(swept, list) and [line.split(":")[0] for line in swept] == [
        str(out / "card" / "y.wav")  # the real file beside the FIFOs: repaired
    ]


def test_retention_never_acts_through_a_link(tmp_path: Path) -> None:
    """An old recording planted as a link, a sidecar that links outside, and
    deletions.log itself as a link (and then as a hard link)."""
    root = tmp_path / "rec"
    (root / "a").mkdir(parents=True)
    (root / ".isr").mkdir()
    old_audio = victim(tmp_path, "old.mp3", b"\xff\xfb" + bytes(998))
    side_target = victim(tmp_path, "sidecar-target.json", b'{"source": "a"}')
    log_target = victim(tmp_path, "log-target")
    link = root / "a" / "linked.mp3"
    link.symlink_to(old_audio)
    (root / "a" / "linked.mp3.json").write_text(json.dumps({"source": "a"}))
    real = root / "a" / "real.mp3"
    real.write_bytes(b"\xff\xfb" + bytes(998))
    (root / "a" / "real.mp3.json").symlink_to(side_target)
    doomed = root / "a" / "doomed.mp3"
    doomed.write_bytes(b"\xff\xfb" + bytes(98))
    (root / "a" / "doomed.mp3.json").write_text(json.dumps({"source": "a"}))
    t = time.time() - 30 * 86400
    for p in (link, real, doomed, old_audio):
        os.utime(p, (t, t), follow_symlinks=False)
    deletions = root / ".isr" / "deletions.log"
    deletions.symlink_to(log_target)
    cfg = load(
        "c.ini",
        text=f"[general]\noutput_directory = {root}\nfilename_pattern = {{source}}/%H%M%S\n"
        "[a]\ntype = tone\nretention_days = 7\n",
    )
    keeper = Keeper(cfg, Alerter(AlertsConfig()), recording=lambda: set())
    keeper.sweep()
    assert not doomed.exists()  # a recording of its own: deleted
    assert link.is_symlink() and old_audio.exists()  # a link: not ours, left alone
    # a sidecar read through a link does not count: its file's source is unknown, kept
    assert real.exists() and side_target.read_bytes() == b'{"source": "a"}'
    assert log_target.read_bytes() == b"precious, not ISR's\n"
    assert deletions.is_symlink()
    deletions.unlink()
    os.link(log_target, deletions)
    retention.log_deletion(root, "a/x.mp3", 1, "test")
    assert log_target.read_bytes() == b"precious, not ISR's\n"
    deletions.unlink()
    retention.log_deletion(root, "a/x.mp3", 1, "test")
    assert deletions.read_text().endswith("\ta/x.mp3\t1\ttest\n")


def test_open_regular_refuses_links_fifos_and_hard_links(tmp_path: Path) -> None:
    target = victim(tmp_path, "t")
    (tmp_path / "link").symlink_to(target)
    os.mkfifo(tmp_path / "fifo")
    os.link(target, tmp_path / "hard")
    with pytest.raises(OSError, match="symbolic link"):
        open_regular(tmp_path / "link", os.O_RDWR)
    with pytest.raises(OSError, match="not a regular file"):
        open_regular(tmp_path / "fifo", os.O_RDWR)
    with pytest.raises(OSError, match="hard links"):
        open_regular(tmp_path / "hard", os.O_RDWR)
    with pytest.raises(OSError, match="not a regular file"):
        read_regular(tmp_path / "fifo")  # without blocking
    assert read_regular(tmp_path / "hard") == target.read_bytes()  # reading is harmless


def test_a_restart_does_not_block_on_a_fifo_named_as_the_last_file(tmp_path: Path) -> None:
    """A source reads the end of its last file at start (to drop what the server
    repeats); a FIFO or a link named there by a forged status file is not read."""
    from isr.recovery import previous_positions

    END = "2026-11-24T14:00:00+00:00"
    out = tmp_path / "recordings"
    (out / "radio").mkdir(parents=True)
    os.mkfifo(out / "radio" / "x.mp3")
    (out / "radio" / "y.mp3").symlink_to(victim(tmp_path, "y.mp3"))
    (out / ".isr").mkdir()
    status = {
        "sources": {
            "a": {"file": None, "last_file": "radio/x.mp3", "last_end": END},
            "b": {"file": "radio/y.mp3", "last_end": END},
        }
    }
    (out / ".isr" / "status.json").write_text(json.dumps(status))
    config = (
        "[general]\nlog_file = rec.log\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
        "[a]\ntype = stream\nurl = http://127.0.0.1:9/x.mp3\nmax_retries = 0\n"
        "[b]\ntype = stream\nurl = http://127.0.0.1:9/y.mp3\nmax_retries = 0\n"
    )
    end = datetime.fromisoformat(END).timestamp()
    assert previous_positions(out) == {"a": (None, end), "b": (None, end)}
    with RecorderProcess(tmp_path, config) as rec:
        started = wait_for(lambda: "recording 2 source(s)" in (tmp_path / "rec.log").read_text())
        assert rec.stop() == 0, rec.output
    assert started, rec.output


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_sqlite_files_in_the_state_directory_are_never_opened_through_a_link(
    tmp_path: Path, suffix: str
) -> None:
    """SQLite follows a link at a database's name and creates its -wal and -shm
    beside the target: the index, the unit tables and the archive queue must refuse
    a link at any of those names, leaving the outside file as it was."""
    root = tmp_path / "rec"
    (root / ".isr" / "archive").mkdir(parents=True)
    empty = victim(tmp_path, f"empty{suffix}", b"")  # SQLite would make a database of it
    planted = [
        root / ".isr" / f"index.sqlite{suffix}",
        root / ".isr" / f"units.sqlite{suffix}",
        root / ".isr" / "archive" / f"queue.sqlite3{suffix}",
    ]
    for path in planted:
        path.symlink_to(empty)

    index = TimelineIndex(root, UTC)
    try:
        index.refresh()  # kept in memory instead, with a warning
        assert index.sources() == []
    finally:
        index.close()
    tables = UnitTables(root)
    try:
        assert tables._db() is None  # memory only
    finally:
        tables.close()
    with pytest.raises(OSError, match="symbolic link"):
        queue.connect(root)

    assert empty.read_bytes() == b""
    assert sorted(p.name for p in empty.parent.iterdir()) == [empty.name]  # no -wal beside
    assert all(p.is_symlink() for p in planted)


def test_sqlite_refuses_a_hard_link_and_creates_its_database_itself(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    (root / ".isr").mkdir(parents=True)
    outside = victim(tmp_path, "db")
    os.link(outside, root / ".isr" / "units.sqlite")
    with pytest.raises(OSError, match="hard links"):
        connect_sqlite(root / ".isr" / "units.sqlite")
    assert outside.read_bytes() == b"precious, not ISR's\n"
    conn = connect_sqlite(root / ".isr" / "new.sqlite")  # a regular file of its own
    conn.close()
    assert (root / ".isr" / "new.sqlite").is_file()


def test_the_analysis_cache_is_never_written_or_read_through_a_link(tmp_path: Path) -> None:
    target = victim(tmp_path, "t")
    cache = tmp_path / "rec" / ".isr" / "analysis" / "abc.rms"
    cache.parent.mkdir(parents=True)
    key = ("a.wav", 10, 20)
    for name in (f".{cache.name}.{os.getpid()}.tmp", f".{cache.name}.tmp"):  # old temp names
        (cache.parent / name).symlink_to(target)
    cache.symlink_to(target)
    assert _read_cache(cache, key) is None  # not read through the link
    _write_cache(cache, key, b"blob")
    assert target.read_bytes() == b"precious, not ISR's\n"
    assert not cache.is_symlink()
    assert cache.read_bytes() == json.dumps(list(key)).encode() + b"\nblob"
