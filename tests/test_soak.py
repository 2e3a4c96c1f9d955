"""Soak: many streams and a tone through every fault a station meets, at once.

Twenty MP3 mounts on a real Icecast (fed by a few `ffmpeg -re` processes, several
mounts each) and one tone source are recorded by the real `isr record` while the
test, phase by phase, kills the source clients of some mounts, fills the disk of
one source (a small tmpfs in a private mount namespace: a true ENOSPC), restarts
Icecast, and SIGKILLs and restarts the recorder. A watcher thread reads the status
file, `/metrics` and the recordings every second throughout.

Afterwards: every file decodes cleanly; no file was replaced, shrunk or rewritten
(crash recovery may only cut a partial last frame and patch headers); each fault left
exactly one gap, of a plausible length and cause, in the next file of each source
it hit, and no other gap or unreported hole exists; and the status file and the
metrics said what the test knew to be true.

`bench/soak.py` runs the same scenario, longer and with more streams.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from isr.framing.xing import leading_tag_length
from tests.support.icecast import Icecast, free_port
from tests.support.judge import ffmpeg_errors, mp3val_problems
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.tools import kill_process, popen, require_tool, stop_process

pytestmark = pytest.mark.integration

BITRATE = 64_000
BYTE_RATE = BITRATE // 8  # bytes per second of every mount
BURST_BYTES = 8_000  # Icecast's burst on connect: one second of audio
BURST_SECONDS = BURST_BYTES / BYTE_RATE
MOUNTS_PER_FEEDER = 4  # one ffmpeg feeds this many mounts
SPLIT_MINUTES = 0.1  # 6-second files
TONE_RATE = 8000  # mono 16-bit: 16 kB/s
TONE = "tone"
SMALL_DISK_BYTES = 4 << 20
MAX_MP3_FRAME = 1441  # the largest MPEG-1 Layer III frame (320 kbps, 32 kHz, padded)

# How long the recorder may take to notice a fault, and to record again after it.
DETECT_SECONDS = 2.5
RECOVER_SECONDS = 8.0
# Where a gap may begin around a fault's start: audio in flight in ffmpeg and
# Icecast's queue, and up to a page of room left on the full tmpfs.
GAP_START_SLACK = 2.5

_CLONE_NEWNS = 0x00020000
_PR_SET_PDEATHSIG = 1


# -- the load: ffmpeg source clients ------------------------------------------------------


class FeederGroup:
    """One `ffmpeg -re -stream_loop -1 -c copy` publishing one file on several mounts."""

    def __init__(self, server: Icecast, media: Path, mounts: list[str], log: Path) -> None:
        self.server = server
        self.media = media
        self.mounts = mounts
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            require_tool("ffmpeg"),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "warning",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            str(self.media),
        ]
        for mount in self.mounts:
            args += [
                *("-map", "0:a", "-c", "copy", "-id3v2_version", "0", "-write_xing", "0"),
                *("-f", "mp3", "-content_type", "audio/mpeg", self.server.source_url(mount)),
            ]
        with self.log.open("ab") as out:
            self.proc = popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    def wait_live(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                live = self.server.mounts()
            except OSError:
                live = {}
            if all(m in live for m in self.mounts):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ffmpeg feeding {self.mounts} exited\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.mounts} not live\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-10:])
        return ""

    def kill(self) -> None:
        if self.proc is not None:
            kill_process(self.proc)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


# -- the full disk: a tmpfs in a private mount namespace ---------------------------------


class SmallDisk:
    """A small tmpfs mounted at ``mountpoint`` inside a private mount namespace.

    A holder process (``unshare -m sleep``) keeps the namespace alive; the recorder
    enters it before exec (``preexec``), the test reaches its files through
    ``/proc/HOLDER/root``. Nothing is mounted in the test's own namespace, and the
    tmpfs vanishes with the holder.
    """

    def __init__(self, mountpoint: Path, size: int) -> None:
        self.mountpoint = mountpoint
        mountpoint.mkdir(parents=True, exist_ok=True)
        self.holder = popen(
            [require_tool("unshare"), "-m", "--propagation", "private", "sleep", "infinity"],
            stdin=subprocess.DEVNULL,
        )
        own = os.readlink("/proc/self/ns/mnt")
        if not wait_for(lambda: os.readlink(f"/proc/{self.holder.pid}/ns/mnt") != own, 5, 0.02):
            self.close()
            raise RuntimeError("unshare -m did not make a mount namespace")
        result = subprocess.run(
            [
                require_tool("nsenter"),
                "-t",
                str(self.holder.pid),
                "-m",
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={size},mode=0755",
                "isr-soak",
                str(mountpoint),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            self.close()
            raise RuntimeError(f"cannot mount a tmpfs: {result.stderr.strip()}")
        self.ns_fd = os.open(f"/proc/{self.holder.pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        self.filler = self.host(mountpoint / "filler.bin")

    @staticmethod
    def available() -> str | None:
        """None when a private tmpfs can be made here, else why not."""
        if os.geteuid() != 0:
            return "not root"
        for tool in ("unshare", "nsenter"):
            if shutil.which(tool) is None:
                return f"no {tool}"
        probe = subprocess.run(
            ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k t /mnt && umount /mnt"],
            capture_output=True,
            check=False,
        )
        return None if probe.returncode == 0 else "unshare -m + tmpfs refused"

    def host(self, path: Path) -> Path:
        """Where the test sees a path of the namespace."""
        return Path(f"/proc/{self.holder.pid}/root{path}")

    def preexec(self, cwd: Path) -> Callable[[], None]:
        """For the recorder's Popen: enter the namespace (that resets the working
        directory, so go back to ``cwd``) and die with the test."""
        fd = self.ns_fd
        libc = ctypes.CDLL(None, use_errno=True)

        def enter() -> None:
            if libc.setns(fd, _CLONE_NEWNS) != 0:
                raise OSError(ctypes.get_errno(), "setns")
            os.chdir(cwd)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

        return enter

    def fill(self) -> int:
        """Write a filler file until the tmpfs is full (ENOSPC); returns its size."""
        chunk = b"\0" * 65536
        written = 0
        with self.filler.open("wb", buffering=0) as f:
            while True:
                try:
                    n = f.write(chunk)
                except OSError as exc:
                    if exc.errno == 28:  # ENOSPC
                        break
                    raise
                written += n or 0
                if not n:
                    break
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def close(self) -> None:
        with contextlib.suppress(AttributeError, OSError):
            os.close(self.ns_fd)
        stop_process(self.holder)


# -- what happened: faults and observations ----------------------------------------------


@dataclass
class Fault:
    kind: str  # "feeder", "disk", "icecast", "sigkill"
    sources: frozenset[str]
    begin: float
    end: float = 0.0
    run: int = 0


@dataclass
class Sample:
    t: float
    run: int
    recorder_alive: bool  # as the test knows it
    status: dict[str, Any] | None
    metrics: dict[str, dict[tuple[tuple[str, str], ...], float]] | None
    metrics_error: str | None


@dataclass
class FileTrack:
    inode: int
    sizes: list[tuple[float, int]] = field(default_factory=list)
    closed_sha: str | None = None
    closed_size: int | None = None


_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _METRIC.match(line)
        if m is None:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        out.setdefault(m.group(1), {})[labels] = float(m.group(3))
    return out


def metric(sample: Sample, name: str, **labels: str) -> float | None:
    if sample.metrics is None:
        return None
    return sample.metrics.get(name, {}).get(tuple(sorted(labels.items())))


def parse_ts(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    return datetime.fromisoformat(text).timestamp()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def audio_offset(data: bytes, suffix: str) -> int:
    """Where a file's audio begins: after ISR's Xing frame or the WAV header (both
    are patched in place at close and by crash recovery)."""
    if suffix == ".wav":
        pos = data.find(b"data", 12)
        return pos + 8 if pos >= 0 else 0
    return leading_tag_length(data)


# -- the scenario ------------------------------------------------------------------------


@dataclass
class Plan:
    streams: int = 20
    feeder_kill_mounts: int = 4
    steady: float = 5.0
    feeder_down: float = 4.0
    disk_full: float = 5.0
    icecast_down: float = 3.0
    recorder_down: float = 3.0
    tail: float = 7.0
    stop_after_boundary: float | None = 0.15
    """Stop this long after a split boundary (None: wherever the tail ends), so that
    every stream's last file holds only a few frames: a legitimate file that the judge
    must take as whole wherever the boundary falls (it once failed mp3val's "Too few
    MPEG frames"), met in every run instead of in one of some twenty."""
    cycles: int = 1
    disk: bool = True


class Soak:
    """Runs the scenario; ``problems`` says what went wrong, ``summary`` what happened."""

    def __init__(self, workdir: Path, mp3: Path, plan: Plan) -> None:
        self.workdir = workdir
        self.plan = plan
        self.mp3 = mp3
        self.rec_dir = workdir / "recordings"
        self.names = [f"s{i:02d}" for i in range(plan.streams)]
        self.sources = [*self.names, TONE]
        self.full_source = self.names[-1]
        self.icecast = Icecast(workdir / "icecast", burst_size=BURST_BYTES)
        self.groups: list[FeederGroup] = []
        self.disk: SmallDisk | None = None
        self.metrics_port = free_port()
        self.recorder: RecorderProcess | None = None
        self.run_no = 0
        self.drain: threading.Thread | None = None
        self.output_tail: list[str] = []
        self.faults: list[Fault] = []
        self.runs: list[tuple[float, float]] = []  # (start, end) of each recorder run
        self.samples: list[Sample] = []
        self.tracks: dict[Path, FileTrack] = {}
        self.crash_copies: dict[Path, bytes] = {}
        self.recovered: set[Path] = set()
        self.problems: list[str] = []
        self.summary: dict[str, Any] = {}
        self._stop_watch = threading.Event()
        self._watch_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self.alive = False
        self.pids: dict[int, int] = {}

    # -- set-up and tear-down ----------------------------------------------------------

    def mount(self, name: str) -> str:
        return f"/{name}.mp3"

    def config(self) -> str:
        lines = [
            "[general]",
            f"split_minutes = {SPLIT_MINUTES}",
            "retry_delay_seconds = 0.5",
            "max_retries = 0",
            f"metrics_port = {self.metrics_port}",
            "log_file = rec.log",
            "filename_pattern = {source}/%Y%m%d_%H%M%S",
            "min_free_mb = 0",
            "fsync_seconds = 2",
        ]
        for name in self.names:
            lines += [f"[{name}]", "type = stream", f"url = {self.icecast.url(self.mount(name))}"]
            if name == self.full_source and self.disk is not None:
                lines.append(f"output_directory = {self.disk.mountpoint}")
        lines += [f"[{TONE}]", "type = tone", f"sample_rate = {TONE_RATE}", "channels = 1"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.plan.disk:
            why = SmallDisk.available()
            if why is None:
                self.disk = SmallDisk(self.workdir / "small", SMALL_DISK_BYTES)
            else:
                self.summary["disk_phase_skipped"] = why
        self.icecast.start()
        names = self.names
        for i in range(0, len(names), MOUNTS_PER_FEEDER):
            part = names[i : i + MOUNTS_PER_FEEDER]
            log = self.workdir / f"feeder-{i // MOUNTS_PER_FEEDER}.log"
            self.groups.append(
                FeederGroup(self.icecast, self.mp3, [self.mount(n) for n in part], log)
            )
        self.start_feeders(self.groups)
        time.sleep(BURST_SECONDS + 0.5)  # Icecast holds a burst for the first connect
        self._watcher = threading.Thread(target=self._watch, name="soak-watch", daemon=True)
        self._watcher.start()
        self.start_recorder()

    def start_feeders(self, groups: Iterable[FeederGroup]) -> None:
        groups = list(groups)
        for g in groups:
            g.start()
        for g in groups:
            g.wait_live()

    def start_recorder(self) -> None:
        assert self.recorder is None or self.recorder.proc.poll() is not None
        self.run_no += 1
        preexec = self.disk.preexec(self.workdir) if self.disk is not None else None
        rec = RecorderProcess(self.workdir, self.config(), preexec_fn=preexec)
        self.recorder = rec
        self.pids[self.run_no] = rec.pid
        self.runs.append((time.time(), 0.0))
        self.alive = True
        # Nobody else reads its stdout: a full pipe would block the recorder.
        self.drain = threading.Thread(target=self._drain, args=(rec,), daemon=True)
        self.drain.start()
        self.wait_recording(self.sources, timeout=30)

    def _drain(self, rec: RecorderProcess) -> None:
        assert rec.proc.stdout is not None
        for line in rec.proc.stdout:
            self.output_tail.append(line.rstrip())
            del self.output_tail[:-200]

    def end_recorder(self, sig: int) -> int:
        rec = self.recorder
        assert rec is not None
        if sig == signal.SIGKILL:
            self.alive = False  # the test knows before the status can
        rec.proc.send_signal(sig)
        code = rec.proc.wait(30)
        self.alive = False
        if self.drain is not None:
            self.drain.join(10)
        if rec.proc.stdout is not None:
            rec.proc.stdout.close()
        start, _ = self.runs[-1]
        self.runs[-1] = (start, time.time())
        return code

    def close(self) -> None:
        self._stop_watch.set()
        if self._watcher is not None:
            self._watcher.join(10)
        if self.recorder is not None and self.recorder.proc.poll() is None:
            self.recorder.proc.kill()
            self.recorder.proc.wait(30)
        if self.recorder is not None and self.recorder.proc.stdout is not None:
            self.recorder.proc.stdout.close()
        for g in self.groups:
            g.stop()
        self.icecast.close()
        if self.disk is not None:
            self.disk.close()

    # -- observing -----------------------------------------------------------------------

    def status(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads((self.rec_dir / ".isr" / "status.json").read_text())
            return data
        except (OSError, ValueError):
            return None

    def state_of(self, name: str) -> str | None:
        st = self.status()
        if st is None:
            return None
        src = st.get("sources", {}).get(name)
        return src.get("state") if isinstance(src, dict) else None

    def wait_recording(self, names: Iterable[str], timeout: float = 20.0) -> None:
        names = list(names)
        rec = self.recorder
        assert rec is not None

        def ready() -> bool:
            st = self.status()
            if st is None or st.get("pid") != rec.pid:
                return False
            return all(st["sources"][n]["state"] == "recording" for n in names)

        if not wait_for(ready, timeout=timeout, step=0.2):
            st = self.status() or {}
            states = {n: st.get("sources", {}).get(n, {}).get("state") for n in names}
            raise AssertionError(
                f"not all recording after {timeout} s: {states}\n" + "\n".join(self.output_tail)
            )

    def fetch_metrics(
        self,
    ) -> tuple[dict[str, dict[tuple[tuple[str, str], ...], float]] | None, str | None]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return parse_metrics(response.read().decode()), None
        except (OSError, urllib.error.URLError) as exc:
            return None, str(exc)

    def files(self) -> list[Path]:
        """Every audio file as the test sees it (the tmpfs through the holder)."""
        roots = [self.rec_dir]
        if self.disk is not None:
            roots.append(self.disk.host(self.disk.mountpoint))
        out: list[Path] = []
        for root in roots:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                out += [Path(dirpath) / f for f in filenames if f.endswith((".mp3", ".wav"))]
        return sorted(out)

    def to_host(self, name: str) -> Path:
        """A path from the status file or a sidecar, as the test sees it."""
        path = Path(name)
        if not path.is_absolute():
            return self.rec_dir / path
        if self.disk is not None:
            return self.disk.host(path)
        return path

    def _watch(self) -> None:
        while not self._stop_watch.is_set():
            t0 = time.monotonic()
            with contextlib.suppress(Exception):
                self.observe()
            self._stop_watch.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    def observe(self) -> None:
        with self._watch_lock:
            alive = self.alive
            metrics, error = self.fetch_metrics()
            status = self.status()
            now = time.time()
            self.samples.append(Sample(now, self.run_no, alive, status, metrics, error))
            self.snapshot_files(now)

    def snapshot_files(self, now: float) -> None:
        for path in self.files():
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            track = self.tracks.get(path)
            if track is None:
                track = self.tracks[path] = FileTrack(st.st_ino)
            elif track.inode != st.st_ino:
                self.problems.append(f"{path}: replaced (inode {track.inode} -> {st.st_ino})")
                track.inode = st.st_ino
            track.sizes.append((now, st.st_size))
            if track.closed_sha is None:
                side = self.sidecar(path)
                if side is not None and side.get("end") is not None:
                    data = path.read_bytes()
                    track.closed_sha = hashlib.sha256(data).hexdigest()
                    track.closed_size = len(data)

    @staticmethod
    def sidecar(path: Path) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(path.with_name(path.name + ".json").read_text())
            return data
        except (OSError, ValueError):
            return None

    # -- the faults ----------------------------------------------------------------------

    def fault(self, kind: str, sources: Iterable[str]) -> Fault:
        f = Fault(kind, frozenset(sources), time.time(), run=self.run_no)
        self.faults.append(f)
        return f

    def phase_feeder_kill(self) -> None:
        victims = self.groups[: max(1, self.plan.feeder_kill_mounts // MOUNTS_PER_FEEDER)]
        names = [m.strip("/").removesuffix(".mp3") for g in victims for m in g.mounts]
        f = self.fault("feeder", names)
        for g in victims:
            g.kill()
        time.sleep(self.plan.feeder_down)
        self.start_feeders(victims)
        f.end = time.time()
        self.wait_recording(self.sources)

    def phase_disk_full(self) -> None:
        if self.disk is None:
            return
        f = self.fault("disk", [self.full_source])
        self.summary.setdefault("filler_bytes", []).append(self.disk.fill())
        time.sleep(self.plan.disk_full)
        self.disk.free()
        f.end = time.time()
        self.wait_recording(self.sources)

    def phase_icecast_restart(self) -> None:
        f = self.fault("icecast", self.names)
        for g in self.groups:
            g.kill()
        self.icecast.restart()
        time.sleep(self.plan.icecast_down)
        self.start_feeders(self.groups)
        f.end = time.time()
        self.wait_recording(self.sources)

    def phase_recorder_kill(self) -> None:
        f = self.fault("sigkill", self.sources)
        with self._watch_lock:
            self.end_recorder(signal.SIGKILL)
        # What the crash left open, before recovery touches it.
        for path in self.files():
            side = self.sidecar(path)
            if side is not None and side.get("end") is None:
                self.crash_copies[path] = path.read_bytes()
        time.sleep(self.plan.recorder_down)
        f.end = time.time()
        self.start_recorder()

    def run(self) -> None:
        p = self.plan
        for _ in range(p.cycles):
            time.sleep(p.steady)
            self.phase_feeder_kill()
            time.sleep(p.steady)
            self.phase_disk_full()
            time.sleep(p.steady)
            self.phase_icecast_restart()
            time.sleep(p.steady)
            self.phase_recorder_kill()
        if p.stop_after_boundary is None:
            time.sleep(p.tail)
        else:  # the tail, give or take half a split (no longer on average)
            split = SPLIT_MINUTES * 60  # divides a day: local boundaries fall on these
            soonest = time.time() + max(0.0, p.tail - split / 2)
            time.sleep(soonest - time.time() + (p.stop_after_boundary - soonest) % split)
            self.summary["stopped_after_boundary"] = round(time.time() % split, 3)
        with self._watch_lock:
            code = self.end_recorder(signal.SIGTERM)
        if code != 0:
            self.problems.append(f"the recorder exited {code} on SIGTERM")
        self._stop_watch.set()
        if self._watcher is not None:
            self._watcher.join(10)
        self.observe()  # the final state of every file

    # -- judging -------------------------------------------------------------------------

    def judge(self, workers: int = 2) -> None:
        self.check_files_intact()
        self.check_decoding(workers)
        ledgers = self.check_sidecars()
        self.check_gaps(ledgers)
        self.check_status_truth()

    def check_files_intact(self) -> None:
        for path, track in self.tracks.items():
            if not path.exists():
                self.problems.append(f"{path}: vanished")
                continue
            sizes = [s for _, s in track.sizes]
            repaired = path in self.crash_copies
            for before, after in itertools.pairwise(sizes):
                if after < before and not (repaired and before - after < MAX_MP3_FRAME):
                    self.problems.append(f"{path}: shrank from {before} to {after} bytes")
            if track.closed_sha is not None and not repaired and sha256(path) != track.closed_sha:
                self.problems.append(f"{path}: changed after it was closed")
        for path, data in self.crash_copies.items():
            now = path.read_bytes()
            head = audio_offset(data, path.suffix)
            if len(data) - len(now) >= MAX_MP3_FRAME or len(now) > len(data):
                self.problems.append(
                    f"{path}: crash recovery changed its size from {len(data)} to {len(now)}"
                )
            if now[head:] != data[head : len(now)]:
                self.problems.append(f"{path}: crash recovery rewrote audio, not just its end")
        self.summary["files"] = len(self.tracks)
        self.summary["crash_repaired"] = len(self.crash_copies)

    def check_decoding(self, workers: int) -> None:
        def verdict(path: Path) -> list[str]:
            out = []
            if errors := ffmpeg_errors(path):
                out.append(f"{path}: ffmpeg: {errors}")
            if path.suffix == ".mp3" and (problems := mp3val_problems(path)):
                out.append(f"{path}: mp3val: {problems}")
            return out

        with ThreadPoolExecutor(workers) as pool:
            for found in pool.map(verdict, self.files()):
                self.problems += found

    def check_sidecars(self) -> dict[str, list[dict[str, Any]]]:
        """Every file has a finished sidecar whose times agree with its size; returns
        the ledgers per source, in time order."""
        ledgers: dict[str, list[dict[str, Any]]] = {s: [] for s in self.sources}
        for path in self.files():
            side = self.sidecar(path)
            if side is None or side.get("start") is None:
                self.problems.append(f"{path}: no sidecar ({side})")
                continue
            data = path.read_bytes()
            audio = len(data) - audio_offset(data, path.suffix)
            rate = BYTE_RATE if path.suffix == ".mp3" else 2 * TONE_RATE
            seconds = audio / rate
            start = parse_ts(side["start"])
            assert start is not None
            end = parse_ts(side.get("end"))
            if end is None:
                self.problems.append(f"{path}: its sidecar never got an end time")
                end = start + seconds  # what the file holds, for the checks below
                side["_estimated"] = True
            slack = 1.5 if path in self.crash_copies else 0.15
            if abs(seconds - (end - start)) > slack:
                self.problems.append(
                    f"{path}: holds {seconds:.2f} s of audio, its sidecar says {end - start:.2f} s"
                )
            source = side.get("source")
            if source not in ledgers:
                self.problems.append(f"{path}: sidecar names source {source!r}")
                continue
            ledgers[source].append({**side, "_path": path, "_start": start, "_end": end})
        for items in ledgers.values():
            items.sort(key=lambda s: s["_start"])
        return ledgers

    def check_gaps(self, ledgers: dict[str, list[dict[str, Any]]]) -> None:
        """Each fault: one gap in each source it hit, of plausible length and cause;
        no gap anywhere else; files of a source abut except where a gap says so."""
        seen: dict[tuple[int, str], list[dict[str, Any]]] = {}
        causes: dict[str, set[str]] = {}
        for source, items in ledgers.items():
            if not items:
                self.problems.append(f"{source}: no files at all")
                continue
            if items[0].get("gaps"):
                self.problems.append(f"{items[0]['_path']}: first file has gaps {items[0]['gaps']}")
            for prev, nxt in itertools.pairwise(items):
                hole = nxt["_start"] - prev["_end"]
                said = sum(g["seconds"] for g in nxt.get("gaps", []))
                tolerance = 0.25 if prev.get("_estimated") else 0.05
                if abs(hole - said) > tolerance:
                    self.problems.append(
                        f"{source}: {hole:.3f} s between {prev['_path'].name} and "
                        f"{nxt['_path'].name}, but the sidecar notes {said:.3f} s of gaps"
                    )
            for item in items:
                for gap in item.get("gaps", []):
                    end = item["_start"] + float(gap.get("at", 0.0))
                    begin = end - float(gap["seconds"])
                    hits = [
                        (i, f)
                        for i, f in enumerate(self.faults)
                        if source in f.sources and f.begin <= end <= f.end + RECOVER_SECONDS
                    ]
                    if not hits:
                        self.problems.append(
                            f"{item['_path']}: gap {gap} matches no fault "
                            f"({datetime.fromtimestamp(begin):%H:%M:%S.%f} .. "
                            f"{datetime.fromtimestamp(end):%H:%M:%S.%f})"
                        )
                        continue
                    i, f = hits[0]
                    seen.setdefault((i, source), []).append(gap)
                    causes.setdefault(f.kind, set()).add(str(gap.get("cause")))
                    self.check_gap(f, source, item["_path"], gap, begin)
        for i, f in enumerate(self.faults):
            for source in sorted(f.sources):
                n = len(seen.get((i, source), []))
                if n != 1:
                    self.problems.append(
                        f"{source}: the {f.kind} fault at "
                        f"{datetime.fromtimestamp(f.begin):%H:%M:%S} left {n} gaps, not 1"
                    )
        self.summary["gap_causes"] = {k: sorted(v) for k, v in causes.items()}

    def check_gap(
        self, f: Fault, source: str, path: Path, gap: dict[str, Any], begin: float
    ) -> None:
        seconds = float(gap["seconds"])
        outage = f.end - f.begin
        where = f"{path}: gap {gap} for the {f.kind} fault ({outage:.1f} s)"
        if not f.begin - GAP_START_SLACK <= begin <= f.begin + GAP_START_SLACK:
            self.problems.append(f"{where} begins {begin - f.begin:+.2f} s from the fault")
        low = outage - BURST_SECONDS - GAP_START_SLACK
        if not low <= seconds <= outage + RECOVER_SECONDS:
            self.problems.append(f"{where}: implausible length")
        cause = str(gap.get("cause"))
        if f.kind == "sigkill":
            ok = cause == "the recorder was not running"
        elif f.kind == "disk":
            ok = "No space left on device" in cause
        else:
            ok = cause != "the recorder was not running" and "No space" not in cause
        if not ok:
            self.problems.append(f"{where}: wrong cause")

    def windows(self, source: str) -> list[Fault]:
        return [f for f in self.faults if source in f.sources]

    def check_status_truth(self) -> None:
        problems: list[str] = []
        checked = 0
        for s in self.samples:
            stamp = f"{datetime.fromtimestamp(s.t):%H:%M:%S.%f}"[:-3]
            run_start = self.runs[s.run - 1][0] if s.run else 0.0
            if not s.recorder_alive:
                if s.metrics is not None:
                    problems.append(f"{stamp}: /metrics answered with the recorder dead")
                if s.status is not None and s.run and self.runs[s.run - 1][1]:
                    updated = parse_ts(s.status.get("updated")) or 0.0
                    if updated > self.runs[s.run - 1][1] + 1.0:
                        problems.append(f"{stamp}: status updated after the recorder died")
                continue
            if s.status is None or s.status.get("pid") != self.pid_of(s.run):
                continue  # the new recorder has not written its first status yet
            updated = parse_ts(s.status.get("updated")) or 0.0
            if s.t - updated > 3.0:
                problems.append(f"{stamp}: status stale by {s.t - updated:.1f} s")
            if s.metrics is None:
                if s.t - run_start > 5.0:
                    problems.append(f"{stamp}: no /metrics: {s.metrics_error}")
                continue
            if metric(s, "isr_recorder_alive") != 1.0:
                problems.append(f"{stamp}: isr_recorder_alive = {metric(s, 'isr_recorder_alive')}")
            if s.t - run_start < RECOVER_SECONDS:
                continue
            for name in self.sources:
                src = s.status["sources"].get(name, {})
                state = src.get("state")
                up = metric(s, "isr_source_up", source=name)
                one = metric(s, "isr_source_state", source=name, state=str(state))
                if up != (
                    1.0
                    if metric(s, "isr_source_state", source=name, state="recording") == 1.0
                    else 0.0
                ):
                    problems.append(f"{stamp} {name}: isr_source_up {up} against isr_source_state")
                faults = self.windows(name)
                down = any(f.begin + DETECT_SECONDS <= s.t <= f.end for f in faults if f.end)
                near = any(f.begin - 1.0 <= s.t <= (f.end or s.t) + RECOVER_SECONDS for f in faults)
                if down:
                    checked += 1
                    if state == "recording" or up != 0.0:
                        problems.append(
                            f"{stamp} {name}: says {state} (up {up}) in a fault it cannot record"
                        )
                elif not near:
                    checked += 1
                    since = metric(s, "isr_source_seconds_since_last_byte", source=name)
                    # A healthy stream's figure reaches ~3.9 s: reads once a second,
                    # last_byte kept to the second, the status file rewritten every 1.9 s.
                    if state != "recording" or up != 1.0 or since is None or since > 4.5:
                        problems.append(
                            f"{stamp} {name}: says {state} (up {up}, last byte {since} s ago, "
                            f"state metric {one}) while nothing stops it"
                        )
        problems += self.check_counters()
        self.problems += problems
        self.summary["status_checks"] = checked
        self.summary["samples"] = len(self.samples)

    def pid_of(self, run: int) -> int | None:
        return self.pids.get(run)

    def check_counters(self) -> list[str]:
        """At the end of each run, reconnects = the faults that broke a recording;
        counters never go back within a run."""
        problems: list[str] = []
        last: dict[tuple[int, str], tuple[float, float]] = {}
        for s in self.samples:
            if s.status is None or s.metrics is None or not s.recorder_alive:
                continue
            for name in self.sources:
                rec = metric(s, "isr_source_reconnects_total", source=name)
                total = metric(s, "isr_source_bytes_total", source=name)
                if rec is None or total is None:
                    problems.append(f"{name}: metrics lack reconnects/bytes")
                    continue
                key = (s.run, name)
                if key in last and (rec < last[key][0] or total < last[key][1]):
                    problems.append(f"{name}: a counter went back within run {s.run}")
                last[key] = (rec, total)
        finals: dict[int, dict[str, Any]] = {}
        for s in self.samples:
            if s.status is not None and s.status.get("pid") == self.pid_of(s.run):
                finals[s.run] = s.status
        for run, st in finals.items():
            for name in self.sources:
                want = sum(
                    1
                    for f in self.faults
                    if f.run == run and f.kind != "sigkill" and name in f.sources
                )
                got = st["sources"][name]["reconnects"]
                if got != want:
                    problems.append(f"{name}: {got} reconnects in run {run}, {want} faults hit it")
        return problems


def run_soak(workdir: Path, mp3: Path, plan: Plan, workers: int = 2) -> Soak:
    soak = Soak(workdir, mp3, plan)
    try:
        soak.start()
        soak.run()
        soak.judge(workers)
    finally:
        soak.close()
    return soak


def test_soak_twenty_streams_through_every_fault(tmp_path: Path, media: MediaFactory) -> None:
    mp3 = media("mp3", 30, bitrate="64k")
    soak = run_soak(tmp_path, mp3, Plan())
    print(json.dumps(soak.summary, indent=1))
    assert soak.problems == [], "\n".join(soak.problems[:80])
