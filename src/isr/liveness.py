"""Is the recorder alive? Judged so that neither a clock step nor a dead recorder
fools the web UI, the metrics or the health check.

A status file's ``updated`` is wall-clock time, and wall clocks step: a Raspberry
Pi without a real-time clock boots in the past and jumps when NTP syncs, so a
status written before a crash can lie in the future of the clock that reads it,
and "updated less than 15 s ago" would hold for hours. So the status also carries
the machine's ``boot_id`` and its ``uptime`` (``CLOCK_BOOTTIME``, which no clock
step moves), and a reader judges by what it can know:

* Same boot id as the reader (the same machine, any container: the boot id and
  ``CLOCK_BOOTTIME`` are the kernel's, not a namespace's): the status is fresh when
  its ``uptime`` is at most 15 s behind the reader's; and when nobody holds
  ``.isr/recorder.lock`` the recorder is gone, however fresh its status (one
  kernel keeps flock locks for every container).
* Another boot id, or none (a recorder on another machine over a network
  filesystem, or a status from before a reboot): only the wall clocks compare. The
  status is fresh when ``updated`` lies within 15 s of the reader's clock, in the
  past or in the future; a status from further in the future is not trusted. The
  lock is not decisive there: a network filesystem may keep locks to one machine.

The pid is of no use: the web UI may live in another pid namespace.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import functools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from isr.sinks.files import open_regular

STALE_SECONDS = 15.0
"""A status older than this (DESIGN: the heartbeat is at least every 2 s) is a
recorder gone; a status dated further than this in the future is not trusted."""
LOCK_NAME = "recorder.lock"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"


class Lock(enum.Enum):
    """What a reader can see of ``.isr/recorder.lock``."""

    HELD = "held"
    FREE = "free"
    UNKNOWN = "unknown"
    """No lock file, or a filesystem without flock."""


@functools.cache
def boot_id() -> str | None:
    """This machine's boot id (Linux; the same in every container of it)."""
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def uptime() -> float | None:
    """Seconds since boot, suspend included: a clock no step of the wall clock moves."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # not Linux
        return None


_held: dict[tuple[int, int], int] = {}
"""Lock files this process holds (device, inode) -> descriptor: ``isr run`` serves
the web UI from the recorder's process."""


def hold(fd: int) -> None:
    """Note that this process holds the lock open on ``fd``."""
    st = os.fstat(fd)
    _held[(st.st_dev, st.st_ino)] = fd


def release(fd: int) -> None:
    for key in [k for k, v in _held.items() if v == fd]:
        del _held[key]


def _held_here(path: Path) -> bool:
    """Whether this process holds the lock at ``path``, asked without opening it:
    where flock is emulated by POSIX locks (NFS), closing any descriptor of the
    file would drop the process's lock."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    fd = _held.get((st.st_dev, st.st_ino))
    if fd is None:
        return False
    try:
        mine = os.fstat(fd)
    except OSError:
        mine = None
    if mine is None or (mine.st_dev, mine.st_ino) != (st.st_dev, st.st_ino):
        release(fd)  # closed without release(): not held any more
        return False
    return True


def probe_lock(directory: Path) -> Lock:
    """Whether a recorder holds ``directory``'s lock. The probe holds a shared lock
    for an instant; a recorder starting at that moment waits it out."""
    path = directory / ".isr" / LOCK_NAME
    if _held_here(path):
        return Lock.HELD
    try:
        fd = open_regular(path, os.O_RDONLY, single_link=False)
    except OSError:
        return Lock.UNKNOWN
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return Lock.HELD
    except OSError:
        return Lock.UNKNOWN
    else:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        return Lock.FREE
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Reader:
    """What the reader knows of its own clocks and of the lock."""

    now: float
    uptime: float | None = None
    boot_id: str | None = None
    lock: Lock = Lock.UNKNOWN

    @classmethod
    def here(cls, directory: Path, now: float | None = None) -> Reader:
        return cls(
            now=time.time() if now is None else now,
            uptime=uptime(),
            boot_id=boot_id(),
            lock=probe_lock(directory),
        )


@dataclass(frozen=True)
class Verdict:
    alive: bool
    why: str


def parse_time(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def judge(status: Mapping[str, object], reader: Reader) -> Verdict:
    """Pure: is the recorder that wrote ``status`` alive, as ``reader`` sees it?"""
    theirs = status.get("uptime")
    same_boot = (
        reader.boot_id is not None
        and status.get("boot_id") == reader.boot_id
        and isinstance(theirs, int | float)
        and not isinstance(theirs, bool)
        and reader.uptime is not None
    )
    if same_boot:
        assert isinstance(theirs, int | float) and reader.uptime is not None
        if reader.lock is Lock.FREE:
            return Verdict(False, f"nobody holds .isr/{LOCK_NAME}: the recorder is gone")
        age = reader.uptime - theirs
        if age < -1.0:
            return Verdict(False, f"status is from {-age:.0f} s in this machine's future")
        if age > STALE_SECONDS:
            return Verdict(False, f"status file is {age:.0f} s old: the recorder is gone")
        return Verdict(True, "recorder alive")
    updated = parse_time(status.get("updated"))
    if updated is None:
        return Verdict(False, "status file has no time of its last update")
    age = reader.now - updated
    if age > STALE_SECONDS:
        return Verdict(False, f"status file is {age:.0f} s old: the recorder is gone")
    if age < -STALE_SECONDS:
        return Verdict(
            False,
            f"status file is dated {-age:.0f} s in the future (a clock step?): "
            "not trusted, the recorder is gone",
        )
    return Verdict(True, "recorder alive")
