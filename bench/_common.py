"""Helpers for the benchmarks: child processes, /proc accounting, a private Icecast.

Every child is started in its own session (so its whole process group can be
signalled) with the kernel's parent-death signal armed, and is registered in a
``Procs`` set that ``stop_all()`` ends on any exit path: a Ctrl-C, an exception,
or SIGTERM (turned into KeyboardInterrupt by ``install_signal_handlers``). A
SIGKILLed bench still takes its children with it through the death signal.
Everything listens on and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import pwd
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024

ICECAST_USER = "icecast2"
ICECAST_GROUP = "icecast"
SHARE = Path("/usr/share/icecast2")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} is not installed (Debian: apt-get install {name})")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile() -> int:
    """Soft open-files limit up to the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def install_signal_handlers() -> None:
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every ``finally`` runs."""

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


class Procs:
    """The children of one tool run (or of the load generator)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.procs: list[subprocess.Popen[bytes]] = []
        _LIVE.add(self)

    def start(
        self,
        args: Sequence[str],
        *,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        user: str | None = None,
        group: str | None = None,
    ) -> subprocess.Popen[bytes]:
        assert threading.current_thread() is threading.main_thread()
        out: IO[bytes] | int = subprocess.DEVNULL
        fh = None
        if log is not None:
            fh = log.open("ab")
            out = fh
        extra: dict[str, Any] = {}
        if user is not None:
            extra = {"user": user, "group": group, "extra_groups": []}
        try:
            proc = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **extra,
            )
        finally:
            if fh is not None:
                fh.close()
        self.procs.append(proc)
        return proc

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.poll() is None)

    def signal_all(self, sig: int) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every process group, wait, then SIGKILL what is left; reap all."""
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
        self.signal_all(signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)  # stragglers left in the group
            p.wait()
        _LIVE.discard(self)


_LIVE: set[Procs] = set()


def stop_all() -> None:
    for procs in list(_LIVE):
        with contextlib.suppress(Exception):
            procs.stop(timeout=5.0)


# -- /proc accounting ---------------------------------------------------------------------


def session_members(sids: Iterable[int]) -> list[int]:
    """Every live process whose session is one of ``sids`` (a tool and its children)."""
    wanted = set(sids)
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[3]) in wanted:  # field 6: session
            found.append(int(entry))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """CPU time of ``pids``: every live thread's run time from the scheduler, to the
    nanosecond, plus reaped children (user+sys in clock ticks).

    Not utime+stime: those are sampled at each clock tick (10 ms), and a process
    that wakes for a few microseconds and sleeps again before the tick is charged
    nothing. A thousand small processes are then under-counted, one busy one is
    not. ``schedstat`` counts every nanosecond on a CPU, whoever runs.
    """
    ns = 0
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        ticks += int(fields[13]) + int(fields[14])  # cutime cstime (stat fields 16, 17)
        for tid in tasks:
            try:
                ns += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_bytes().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return ns / 1e9 + ticks / CLK_TCK


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy (not idle or iowait) since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


@dataclass
class Memory:
    rss: int = 0
    pss: int = 0
    private: int = 0
    """Private_Clean + Private_Dirty: what the processes alone hold (USS)."""

    def __add__(self, other: Memory) -> Memory:
        return Memory(self.rss + other.rss, self.pss + other.pss, self.private + other.private)


def memory(pid: int) -> Memory:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return Memory()
    values: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0]) * 1024
    return Memory(
        values.get("Rss", 0),
        values.get("Pss", 0),
        values.get("Private_Clean", 0) + values.get("Private_Dirty", 0),
    )


def total_memory(pids: Iterable[int]) -> Memory:
    out = Memory()
    for pid in pids:
        out = out + memory(pid)
    return out


@dataclass
class Peak:
    rss: int = 0
    pss: int = 0
    private: int = 0
    samples: int = 0

    def add(self, m: Memory) -> None:
        self.rss = max(self.rss, m.rss)
        self.pss = max(self.pss, m.pss)
        self.private = max(self.private, m.private)
        self.samples += 1


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_mib": mem_kib // 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def version_of(args: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "?"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "?"


# -- a private Icecast --------------------------------------------------------------------


@dataclass
class Icecast:
    """Debian's icecast2 on 127.0.0.1, run as the icecast2 user when we are root."""

    sources: int
    clients: int
    burst_size: int = 65535
    port: int = field(default_factory=free_port)
    source_password: str = "bench-source-pw"
    admin_password: str = "bench-admin-pw"
    procs: Procs = field(default_factory=lambda: Procs("icecast"))
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="isr-bench-icecast-")))

    def start(self) -> None:
        binary = tool("icecast2")
        self.dir.chmod(0o755)
        user = group = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam(ICECAST_USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            user, group = ICECAST_USER, ICECAST_GROUP
        config = self.dir / "icecast.xml"
        config.write_text(
            f"""<icecast>
  <location>isr-bench</location><admin>bench@localhost</admin>
  <hostname>127.0.0.1</hostname><fileserve>0</fileserve>
  <limits>
    <clients>{self.clients}</clients><sources>{self.sources}</sources>
    <queue-size>1048576</queue-size><client-timeout>30</client-timeout>
    <header-timeout>15</header-timeout><source-timeout>10</source-timeout>
    <burst-on-connect>{1 if self.burst_size else 0}</burst-on-connect>
    <burst-size>{self.burst_size}</burst-size>
  </limits>
  <authentication>
    <source-password>{escape(self.source_password)}</source-password>
    <admin-user>admin</admin-user><admin-password>{escape(self.admin_password)}</admin-password>
  </authentication>
  <listen-socket><port>{self.port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <paths><basedir>{SHARE}</basedir><logdir>{self.dir}</logdir>
    <webroot>{SHARE / "web"}</webroot><adminroot>{SHARE / "admin"}</adminroot></paths>
  <logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog>
    <loglevel>2</loglevel><logsize>100000</logsize></logging>
</icecast>
"""
        )
        self.procs.start(
            [binary, "-c", str(config)], log=None, cwd=self.dir, user=user, group=group
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                self.stats()
                return
            except (OSError, ElementTree.ParseError):
                if self.procs.alive() == 0 or time.monotonic() > deadline:
                    raise RuntimeError(f"icecast2 did not start; see {self.dir}") from None
                time.sleep(0.1)

    def url(self, mount: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mount}"

    def source_url(self, mount: str) -> str:
        return f"icecast://source:{self.source_password}@127.0.0.1:{self.port}/{mount}"

    def stats(self) -> dict[str, dict[str, str]]:
        """Per mount ("/m001.mp3"): the admin stats (listeners, total_bytes_read, ...)."""
        import base64

        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/admin/stats")
        token = base64.b64encode(f"admin:{self.admin_password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(req, timeout=5) as resp:
            root = ElementTree.fromstring(resp.read())
        return {s.get("mount", ""): {c.tag: c.text or "" for c in s} for s in root.iter("source")}

    def close(self) -> None:
        self.procs.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def date_directories(root: Path, default: float) -> None:
    """Give every directory under ``root`` the mtime of its newest entry (``default``
    when empty), as an archive has them: last changed when their day ended, not a
    moment ago as the bench just made them (the web index rescans a directory
    changed within 3 s of its last scan; crash recovery looks into directories
    changed since the last status write)."""
    for d in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        if d.is_dir():
            ts = max((c.stat().st_mtime for c in d.iterdir()), default=default)
            os.utime(d, (ts, ts))
