"""Find external programs and keep track of the processes tests start.

A missing tool skips a test on a developer's machine but fails it under CI, where
`make test` installs everything: there a missing tool is a bug, not an excuse.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

IN_CI: bool = os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")

_PR_SET_PDEATHSIG = 1


def require_tool(name: str) -> str:
    """Return the path of program `name`; skip the test (fail it under CI) when missing."""
    path = shutil.which(name)
    if path is None:
        message = f"external program {name!r} is not installed"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: `make test` should have installed it)")
        pytest.skip(message)
    return path


def _die_with_parent() -> None:
    """preexec hook: have the kernel kill the child if pytest dies without cleaning up."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: atexit and finalizers still clean up
        pass


def popen(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """Start a child that cannot outlive pytest even when pytest is SIGKILLed.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only armed
    from the main thread; children started from worker threads rely on finalizers.
    """
    if threading.current_thread() is threading.main_thread():
        kwargs.setdefault("preexec_fn", _die_with_parent)
    return subprocess.Popen(args, **kwargs)  # type: ignore[call-overload,no-any-return]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """SIGTERM, wait, then SIGKILL: always reaps, so no zombie or ResourceWarning remains."""
    if proc.poll() is None:
        try:
            proc.terminate()
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    return kill_process(proc)


def kill_process(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL and reap."""
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


@dataclass(frozen=True)
class ProcInfo:
    """One live process as /proc shows it."""

    pid: int
    ppid: int
    state: str
    cmdline: str


def _read_proc(pid: int) -> ProcInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    # The command name in parentheses may itself hold spaces or parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    cmd = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcInfo(pid=pid, ppid=int(fields[1]), state=fields[0], cmdline=cmd)


def _children(pid: int) -> list[int] | None:
    """Direct children from /proc/PID/task/*/children; None when the kernel lacks it."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tasks:
        try:
            found += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except FileNotFoundError:
            if not Path(f"/proc/{pid}/task/{tid}").exists():
                continue  # the thread ended meanwhile
            return None
        except OSError:
            continue
    return found


def _children_by_scan() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _read_proc(int(entry))) is not None:
            children.setdefault(info.ppid, []).append(info.pid)
    return children


def descendants(pid: int | None = None, *, include_zombies: bool = False) -> list[ProcInfo]:
    """All living descendants of `pid` (default: this process), found through /proc.

    Used instead of `pgrep -x ffmpeg` because other test runs on the same machine own
    their own icecast2 and ffmpeg processes.
    """
    root = os.getpid() if pid is None else pid
    scan: dict[int, list[int]] | None = None
    found: list[ProcInfo] = []
    todo = [root]
    while todo:
        parent = todo.pop()
        kids = _children(parent)
        if kids is None:
            scan = scan if scan is not None else _children_by_scan()
            kids = scan.get(parent, [])
        for child in kids:
            info = _read_proc(child)
            if info is None:
                continue
            if include_zombies or info.state != "Z":
                found.append(info)
            todo.append(child)
    return found


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    info = _read_proc(pid)
    return info is not None and info.state != "Z"
