"""The recorder: every source of a config on one asyncio loop.

One task per source in a ``TaskGroup``, plus the status heartbeat and the syncer.
Sources never raise (``Source.run`` retries or gives up by itself), so the group
only ends when the stop event is set: then every source is cancelled, closes its
file, and the last status and fsync are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from isr import liveness
from isr.alerts import Alerter
from isr.clock import local_zone
from isr.config import Config, SourceConfig
from isr.errors import ConfigError, LockError, OutputError
from isr.evidence.keys import SigningKeyError, load_signer
from isr.evidence.service import Evidence, read_sidecar_json
from isr.evidence.watch import CoverageWatch
from isr.keeper import Keeper
from isr.recovery import previous_positions, recover, sweep
from isr.retention import Recording
from isr.sinks.base import Sink
from isr.sinks.files import NOFOLLOW, open_regular
from isr.sources.base import Source
from isr.sources.playlist import is_hls_url
from isr.sources.soundcard import SoundcardSource
from isr.sources.stream import StreamSource
from isr.sources.tone import ToneSource
from isr.status import StatusBoard

if TYPE_CHECKING:
    from isr.archive.uploader import Archive

log = logging.getLogger("isr.recorder")

SOURCE_TYPES: dict[str, type[Source]] = {
    "stream": StreamSource,
    "soundcard": SoundcardSource,
    "tone": ToneSource,
}


LOCK_TRIES = 20
LOCK_RETRY_SECONDS = 0.005


def lock_directory(directory: Path) -> int:
    """Hold ``.isr/recorder.lock`` exclusively: one recorder per output directory.

    flock, not a pid file: in a container a restarted recorder is pid 1 again. The
    file is never opened through a symlink, nor written when it is not a regular
    file of its own (a planted hard link): a link there must not let a recorder
    running as root truncate a file elsewhere. A liveness probe (the web UI, the
    health check) holds a shared lock for an instant: that is waited out.
    """
    state = directory / ".isr"
    state.mkdir(parents=True, exist_ok=True)
    path = state / "recorder.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
    except FileExistsError:
        try:
            fd = open_regular(path, os.O_RDWR)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EINVAL, errno.EMLINK):
                raise  # no permission, ...: the caller says so
            raise LockError(f"cannot use {path}: it {exc.strerror}; remove it") from None
    for attempt in range(LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt < LOCK_TRIES - 1:
                time.sleep(LOCK_RETRY_SECONDS)
    else:
        os.close(fd)
        raise LockError(
            f"another recorder is already recording into {directory} (it holds {path})"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    liveness.hold(fd)
    return fd


def raise_nofile_limit() -> int:
    """Lift the soft open-files limit to the hard one: each stream costs a socket
    and a file, and Debian's default soft limit is 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft


class Syncer:
    """Flushes open files to disk every ``interval`` seconds, off the event loop."""

    def __init__(self, sinks: set[Sink], retired: list[int], interval: float) -> None:
        self.sinks = sinks
        self.retired = retired
        self.interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.sync()

    async def sync(self) -> None:
        fds = [s.sync_fd for s in self.sinks if s.sync_fd is not None]
        done = self.retired[:]
        del self.retired[:]
        await asyncio.to_thread(_sync_fds, fds, done)


def _sync_fds(fds: list[int], close: list[int]) -> None:
    for fd in fds + close:
        try:
            os.fdatasync(fd)  # data and size; timestamps need no disk write
        except OSError as exc:
            log.warning("fsync failed: %s", exc)
    for fd in close:
        with contextlib.suppress(OSError):
            os.close(fd)


class Recorder:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.tz = local_zone()
        self.board = StatusBoard(cfg.output_directory, self.tz)
        self.sinks: set[Sink] = set()
        self.retired: list[int] = []
        self.alerter = Alerter(cfg.alerts)
        self.sources = [self._make(src) for src in cfg.sources]
        sign = None
        if cfg.evidence.signing_key is not None:
            try:
                sign = load_signer(cfg.evidence.signing_key)
            except SigningKeyError as exc:
                raise ConfigError(
                    str(exc), file=cfg.path, section="evidence", key="signing_key"
                ) from None
        self.evidence = Evidence(cfg.output_directory, self.tz, self.alerter, sign)
        for source in self.sources:
            source.alerter = self.alerter
            source.evidence = self.evidence
        self.keeper = Keeper(
            cfg, self.alerter, self.recording_paths, on_delete=self._retention_deleted
        )
        self.coverage = CoverageWatch(cfg, self.board.sources, self.alerter, self.tz)
        self.archive: Archive | None = None
        if cfg.archive is not None:
            from isr.archive.uploader import Archive  # boto3 only when asked for

            self.archive = Archive(
                cfg, self.alerter, self.recording_paths, on_delete=self._retention_deleted
            )
            self.evidence.listeners.append(self.archive.closed)
            self.keeper.unarchived = self.archive.unarchived
            self.archive.on_confirmed = self.keeper.archived
            self.board.archive = self.archive.status
        self.lock_fd: int | None = None
        fsync = min((s.fsync_seconds for s in cfg.sources), default=10.0)
        self.syncer = Syncer(self.sinks, self.retired, fsync)

    def _retention_deleted(self, rec: Recording, why: str) -> None:
        """Retention deleted ``rec`` (in the keeper's thread): a chain line says so."""
        if rec.source is not None:
            self.evidence.deleted(rec.source, rec.path, rec.size, "retention", why)

    def recording_paths(self) -> set[Path]:
        """Files open right now (safe to call from a thread)."""
        return {sink.path for sink in list(self.sinks)}

    def _make(self, src: SourceConfig) -> Source:
        cls = SOURCE_TYPES.get(src.type)
        if src.type == "stream" and (src.format == "hls" or is_hls_url(src.url)):
            from isr.sources.hls import HlsSource  # aiohttp's client only when needed

            cls = HlsSource
        if cls is None:
            raise ConfigError(
                f"{src.type} sources are not supported by this version yet",
                file=self.cfg.path,
                section=src.name,
                key="type",
            )
        return cls(src, self.board, self.tz, self.sinks, self.retired)

    def lock(self) -> None:
        """Create and lock the output directory (before anything else starts)."""
        if self.lock_fd is not None:
            return
        directory = self.cfg.output_directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.lock_fd = lock_directory(directory)
        except OSError as exc:
            raise OutputError(f"cannot record into {directory}: {exc.strerror or exc}") from None

    def unlock(self) -> None:
        if self.lock_fd is not None:
            liveness.release(self.lock_fd)
            os.close(self.lock_fd)
            self.lock_fd = None

    async def run(self, stop: asyncio.Event) -> None:
        """Record until ``stop`` is set, then close everything."""
        directory = self.cfg.output_directory
        self.lock()
        try:
            extra = [s.output_directory for s in self.cfg.sources]
            started = time.time()
            names: list[str] = []
            recovery = await asyncio.to_thread(recover, directory, extra)
            names = [source.cfg.name for source in self.sources]
            self.evidence.start(names)
            if self.archive is not None:
                self.archive.start()
            await asyncio.to_thread(self._chain_repaired, recovery.repaired)
            previous = await asyncio.to_thread(previous_positions, directory, recovery.repaired)
            for source in self.sources:
                last_file, last_end = previous.get(source.cfg.name, (None, None))
                await asyncio.to_thread(source.resume, last_file, last_end)
            limit = raise_nofile_limit()
            log.info(
                "recording %d source(s) into %s (open-files limit %d)",
                len(self.sources),
                self.cfg.output_directory,
                limit,
            )
            metrics = None
            if self.cfg.metrics_port:
                from isr.metrics import start_metrics_server  # only when asked for

                try:
                    metrics = await start_metrics_server(
                        directory, self.cfg.web.host, self.cfg.metrics_port
                    )
                except OSError as exc:  # recording matters more than metrics
                    log.error("cannot serve metrics on port %d: %s", self.cfg.metrics_port, exc)
            tasks: list[asyncio.Task[None]] = []
            self.coverage.started = time.time()  # expected from now, if not recorded before
            try:
                async with asyncio.TaskGroup() as group:
                    tasks.append(group.create_task(self.board.run(), name="status"))
                    tasks.append(group.create_task(self.syncer.run(), name="syncer"))
                    tasks.append(group.create_task(self.keeper.run(), name="keeper"))
                    tasks.append(group.create_task(self.evidence.run(names), name="days"))
                    tasks.append(group.create_task(self.coverage.run(), name="coverage"))
                    for source in self.sources:
                        tasks.append(group.create_task(source.run(), name=source.cfg.name))
                    if recovery.sweep:
                        tasks.append(
                            group.create_task(
                                sweep_in_background(
                                    directory, recovery.sweep, started, self._chain_repaired
                                ),
                                name="sweep",
                            )
                        )
                    await stop.wait()
                    log.info("stopping")
                    for task in tasks:
                        task.cancel()
            finally:
                for source in self.sources:
                    source._close_file()
                await self.syncer.sync()
                await asyncio.to_thread(self.evidence.stop, names)
                if self.archive is not None:
                    await asyncio.to_thread(self.archive.stop)
                await asyncio.to_thread(self.coverage.close)
                await self.alerter.drain()
                if metrics is not None:
                    await metrics.cleanup()
                try:
                    self.board.write()
                except OSError as exc:
                    log.error("cannot write the final status: %s", exc)
                log.info("stopped")
        finally:
            self.unlock()

    def _chain_repaired(self, repaired: list[tuple[Path, str]]) -> None:
        """Files crash recovery finished: each is hashed (by its check) and chained."""
        for path, note in repaired:
            data = read_sidecar_json(path) or {}
            source = data.get("source")
            if isinstance(source, str) and source:
                self.evidence.repaired(source, path, note)


async def sweep_in_background(
    directory: Path,
    roots: list[Path],
    started: float,
    then: Callable[[list[tuple[Path, str]]], None] | None = None,
) -> None:
    """``recovery.sweep`` in a thread, told to give up when the recorder stops;
    ``then`` hears of the files it repaired."""
    halt = threading.Event()
    repaired: list[tuple[Path, str]] = []
    try:
        done = await asyncio.to_thread(sweep, directory, roots, started, halt, repaired)
        if then is not None:
            await asyncio.to_thread(then, repaired)
    except Exception:  # a failed check must not take the recording down with it
        log.exception("sweeping %s for crashed files failed", ", ".join(map(str, roots)))
        return
    finally:
        halt.set()
    log.info("swept %s for crashed files: %d repaired", ", ".join(map(str, roots)), len(done))


def install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM set ``stop``; returns a function that removes the handlers."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def remove() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    return remove


async def record(cfg: Config) -> None:
    stop = asyncio.Event()
    remove = install_stop_signals(stop)
    try:
        await Recorder(cfg).run(stop)
    finally:
        remove()


async def record_and_serve(
    cfg: Config,
    *,
    host: str,
    port: int,
    threshold: float,
    username: str,
    password: str,
    allowed_hosts: tuple[str, ...] = (),
    max_clip_hours: float = 24.0,
) -> None:
    """``isr run``: the recorder and the web UI on one loop."""
    from isr.web.app import start_web

    stop = asyncio.Event()
    recorder = Recorder(cfg)
    recorder.lock()  # refuse before serving anything if another recorder runs here
    remove = install_stop_signals(stop)
    runner = None
    try:
        runner = await start_web(
            cfg.output_directory,
            host=host,
            port=port,
            threshold=threshold,
            username=username,
            password=password,
            allowed_hosts=allowed_hosts,
            max_clip_hours=max_clip_hours,
            sources=[s.name for s in cfg.sources],
            min_coverage=cfg.alerts.min_coverage,
        )
        from isr.web.app import STATE

        recorder.coverage.shared = runner.app[STATE].timeline  # one index, not two
        await recorder.run(stop)
    finally:
        if runner is not None:
            await runner.cleanup()
        recorder.unlock()
        remove()
