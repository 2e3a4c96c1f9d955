"""Liveness: neither a clock step nor a dead recorder fools /api/status, /metrics or
the health check."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from isr.errors import LockError
from isr.healthcheck import recorder_healthy
from isr.liveness import Lock, Reader, boot_id, judge, probe_lock, uptime
from isr.recorder import lock_directory
from isr.web.app import create_app
from tests.support.recorder import RecorderProcess, wait_for

HOUR = 3600.0
BOOT = "b0b0b0b0-0000-4000-8000-000000000000"


def status(updated: float, **extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "updated": datetime.fromtimestamp(updated).astimezone().isoformat(),
        "sources": {"tone": {"state": "recording", "file": "x.wav"}},
        **extra,
    }


@pytest.mark.parametrize(
    ("age", "alive"), [(0.0, True), (14.0, True), (16.0, False), (-14.0, True), (-HOUR, False)]
)
def test_by_the_wall_clock_a_status_from_the_future_is_not_trusted(age: float, alive: bool) -> None:
    """Another boot id, or none: the wall clocks alone compare, within 15 s either way."""
    now = 1_800_000_000.0
    for reader in (Reader(now=now), Reader(now=now, uptime=50.0, boot_id="other")):
        assert judge(status(now - age), reader).alive is alive, (age, reader)
        assert judge(status(now - age, boot_id=BOOT, uptime=40.0), reader).alive is alive


def test_on_the_same_boot_the_uptime_decides_and_a_free_lock_means_gone() -> None:
    now = 1_800_000_000.0
    here = Reader(now=now, uptime=1000.0, boot_id=BOOT, lock=Lock.HELD)
    fresh = {"boot_id": BOOT, "uptime": 995.0}
    # the wall clock stepped either way since the write: the uptime says fresh
    assert judge(status(now - HOUR, **fresh), here).alive
    assert judge(status(now + HOUR, **fresh), here).alive
    # a clock stepped back after a crash: "updated" in the future, the uptime old
    verdict = judge(status(now + HOUR, boot_id=BOOT, uptime=900.0), here)
    assert not verdict.alive and "100 s old" in verdict.why
    # the status is fresh, but nobody holds the lock: killed a moment ago
    free = Reader(now=now, uptime=1000.0, boot_id=BOOT, lock=Lock.FREE)
    verdict = judge(status(now, **fresh), free)
    assert not verdict.alive and "the recorder is gone" in verdict.why
    unknown = Reader(now=now, uptime=1000.0, boot_id=BOOT, lock=Lock.UNKNOWN)
    assert judge(status(now, **fresh), unknown).alive  # no lock file: the status alone
    assert not judge(status(now, boot_id=BOOT, uptime=1100.0), here).alive  # impossible
    assert not judge({"updated": 12345}, here).alive


def test_the_status_file_carries_boot_id_and_uptime(tmp_path: Path) -> None:
    from isr.status import StatusBoard

    board = StatusBoard(tmp_path, datetime.now().astimezone().tzinfo)  # type: ignore[arg-type]
    board.write()
    data = json.loads((tmp_path / ".isr" / "status.json").read_text())
    assert data["boot_id"] == boot_id() and boot_id()
    mine = uptime()
    # The status rounds to the millisecond: up to half of one ahead of a later read.
    assert mine is not None and -0.0005 <= mine - data["uptime"] < 5
    for key in ("version", "pid", "host", "started", "updated", "disk_free_mb", "sources"):
        assert key in data  # DESIGN's keys stay


@contextmanager
def held_lock(root: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holds the recorder's lock, as a running recorder does."""
    code = (
        "import sys; from pathlib import Path; from isr.recorder import lock_directory; "
        "lock_directory(Path(sys.argv[1])); print('locked', flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc
    finally:
        proc.kill()
        proc.communicate()


def write_status(root: Path, data: dict[str, Any]) -> None:
    (root / ".isr").mkdir(parents=True, exist_ok=True)
    (root / ".isr" / "status.json").write_text(json.dumps(data))


async def _observe(root: Path) -> tuple[bool, float]:
    async with TestClient(TestServer(create_app(root), host="127.0.0.1")) as client:
        api = await (await client.get("/api/status")).json()
        text = await (await client.get("/metrics")).text()
    metric = next(
        float(line.split()[-1]) for line in text.splitlines() if line.startswith("isr_recorder_")
    )
    return bool(api["recorder_alive"]), metric


def observe(root: Path) -> tuple[bool, float, int]:
    """(``/api/status``'s recorder_alive, ``isr_recorder_alive``, the health check's
    exit status), each from the real thing."""
    alive, metric = asyncio.run(_observe(root))
    check = subprocess.run(
        [sys.executable, "-m", "isr.healthcheck", "recorder", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return alive, metric, check.returncode


def test_a_status_from_the_future_with_no_lock_held_is_not_alive(tmp_path: Path) -> None:
    """The issue's case: a clock stepped back after a crash. Written by an older
    recorder (no boot id) or by this one (an uptime from before the crash)."""
    root = tmp_path / "recordings"
    os.close(lock_directory(root))  # a lock file that nobody holds any more
    write_status(root, status(time.time() + HOUR))
    assert observe(root) == (False, 0.0, 1)
    mine = uptime()
    assert mine is not None
    write_status(root, status(time.time() + HOUR, boot_id=boot_id(), uptime=mine - 60))
    assert observe(root) == (False, 0.0, 1)
    ok, why = recorder_healthy(root)
    assert not ok and "the recorder is gone" in why


def test_a_held_lock_and_a_fresh_uptime_are_alive_whatever_the_wall_clock_says(
    tmp_path: Path,
) -> None:
    root = tmp_path / "recordings"
    with held_lock(root):
        assert probe_lock(root) is Lock.HELD
        mine = uptime()
        assert mine is not None
        # the wall clock was stepped an hour forward since the write
        write_status(root, status(time.time() - HOUR, boot_id=boot_id(), uptime=mine))
        assert observe(root) == (True, 1.0, 0)
        # a hung recorder holds its lock, but its heartbeat stopped a minute ago
        write_status(root, status(time.time(), boot_id=boot_id(), uptime=mine - 60))
        assert observe(root) == (False, 0.0, 1)
    assert probe_lock(root) is Lock.FREE


def test_a_killed_recorder_is_gone_at_once_also_for_a_reader_in_another_container(
    tmp_path: Path,
) -> None:
    """A real recorder; the health check runs as a second container would run it: its
    own pid and mount namespaces, the recordings mounted at another path."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs unshare(1) as root")
    mnt = tmp_path / "elsewhere"
    mnt.mkdir()
    root = tmp_path / "recordings"
    script = 'mount --bind "$1" "$2" && exec "$3" -m isr.healthcheck recorder "$2"'

    def other_container() -> subprocess.CompletedProcess[str]:
        namespaces = [unshare, "--mount", "--pid", "--fork", "--mount-proc"]
        return subprocess.run(
            [*namespaces, "sh", "-c", script, "sh", str(root), str(mnt), sys.executable],
            capture_output=True,
            text=True,
            timeout=60,
        )

    config = "[general]\nlog_file =\n[tone]\ntype = tone\nformat = wav\n"
    with RecorderProcess(tmp_path, config) as rec:
        assert wait_for(lambda: rec.status()["sources"]["tone"]["state"] == "recording")
        seen = other_container()
        assert seen.returncode == 0, seen.stdout + seen.stderr
        assert observe(root) == (True, 1.0, 0)
        rec.proc.send_signal(signal.SIGKILL)
        rec.proc.wait(timeout=30)
        # the status is seconds old, but the lock died with the process
        data = json.loads((root / ".isr" / "status.json").read_text())
        mine = uptime()
        assert mine is not None and mine - data["uptime"] < 15
        seen = other_container()
        assert seen.returncode == 1 and "the recorder is gone" in seen.stdout, seen
        assert observe(root) == (False, 0.0, 1)
        rec.stop()


def test_a_lock_probe_does_not_keep_a_recorder_from_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe holds a shared lock for an instant; a recorder starting then waits
    it out (the probe lets go while the recorder waits), and one that stays is a
    recorder: refused."""

    root = tmp_path / "recordings"
    os.close(lock_directory(root))
    probe = os.open(root / ".isr" / "recorder.lock", os.O_RDONLY)
    fcntl.flock(probe, fcntl.LOCK_SH)
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        fcntl.flock(probe, fcntl.LOCK_UN)  # the probe is done

    monkeypatch.setattr(time, "sleep", wait)
    fd = lock_directory(root)
    os.close(fd)
    assert len(waits) == 1
    monkeypatch.undo()
    with held_lock(root), pytest.raises(LockError, match="another recorder"):
        lock_directory(root)
    os.close(probe)


def test_the_recorders_own_process_never_opens_its_lock_to_probe_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``isr run`` serves the web UI from the recorder's process. Where flock is
    emulated by POSIX locks (NFS), closing any descriptor of the lock file would
    drop the recorder's lock: the probe must not open it there."""
    import isr.liveness
    from isr.liveness import release

    root = tmp_path / "recordings"
    fd = lock_directory(root)
    opened: list[object] = []
    real_open = isr.liveness.open_regular  # type: ignore[attr-defined]

    def spy(path: Path, flags: int, **kwargs: bool) -> int:
        opened.append(path)
        return real_open(path, flags, **kwargs)

    monkeypatch.setattr(isr.liveness, "open_regular", spy)
    assert probe_lock(root) is Lock.HELD and opened == []
    release(fd)
    os.close(fd)
    assert probe_lock(root) is Lock.FREE and len(opened) == 1
    fd = lock_directory(root)
    os.close(fd)  # closed without release(): the probe finds out
    assert probe_lock(root) is Lock.FREE
