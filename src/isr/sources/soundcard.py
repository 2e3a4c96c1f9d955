"""``type = soundcard``: an ALSA capture device recorded through the real ``arecord``.

``arecord -t raw`` writes S16LE frames to a pipe that the event loop reads without
blocking, next to every stream. Frame ``n`` has the time ``origin + n / rate``, so
files split at exact samples (``Segmenter.write_pcm``). A card's clock is not the
wall clock: ``CaptureClock`` watches when audio arrives and, at each file
boundary, moves ``origin`` so that the next file starts at the sample nearest the
wall-clock boundary; drift never accumulates.

``arecord`` is this process's child: it is told by the kernel to die with its
parent (``PR_SET_PDEATHSIG``), so even a SIGKILLed recorder leaves no orphan;
a stopped or failed session terminates and reaps it. Whatever ``arecord`` says on
stderr is logged, and its last words become the session's error, which
``Source.run`` retries like a dropped stream.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import fcntl
import functools
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from isr.errors import ConfigError, DeviceError
from isr.segment import Segmenter, SinkFactory
from isr.sources.alsa import list_capture_devices, resolve_device
from isr.sources.base import Source
from isr.sources.pcm import SAMPLE_BYTES, FrameAligner, make_pcm_sink

READ_BYTES = 64 * 1024
PIPE_BYTES = 1 << 20
"""Pipe from arecord, enlarged so a busy loop does not make the card overrun (~6 s)."""
NO_AUDIO_SECONDS = 10.0
"""A capture that delivers nothing for this long is dead: restart arecord."""
STOP_SECONDS = 2.0
DRIFT_REPORT_RATIO = 0.001
"""Drift worth a warning: 0.1 %."""
DRIFT_REPORT_EVERY = 600.0
"""Seconds between two drift warnings of one session."""
STEP_SECONDS = 1.0
"""An error this large is the wall clock being set (NTP on a board without a
real-time clock), not a crystal's drift: followed, and not counted as drift."""


@dataclass(frozen=True)
class ClockCheck:
    """What ``CaptureClock.check`` found at a boundary."""

    shift: float
    """Seconds ``origin`` moved (later = positive; 0 when within tolerance)."""
    drift: float | None
    """Capture rate error against the wall clock as a ratio (0.001 = 0.1 %; positive:
    the card runs slow), once measured over ``baseline`` seconds; else None."""


class CaptureClock:
    """Wall-clock time of captured frames, kept honest against a drifting card.

    Audio cannot arrive before it was captured, so the time of frame ``n`` is at
    most the moment it arrived; with a steady pipeline, the smallest lateness
    ``arrival - (origin + n / rate)`` seen over the last ``window`` seconds tells
    how far ``origin`` is off. ``check()`` (called at each file boundary) moves
    ``origin`` by that amount when it exceeds ``tolerance``: a card at its nominal
    rate keeps exactly ``split x rate`` frames per file, a drifting one is pulled
    back before its error exceeds ``tolerance``. Pure: times are passed in.

    The first ``window`` seconds are a learning phase. The first read may have come
    late (a busy start), so audio arriving more than ``tolerance`` *earlier* than
    its frame's time moves ``origin`` back at once: causality, not an estimate, and
    it keeps a late first read from costing the next file its exact length (jitter
    within ``tolerance`` is left alone, so as not to move a cut already made by a
    few samples). Lateness is not acted on until a whole window has been seen: a
    start-up stall that delays every read of the first seconds would otherwise move
    ``origin`` one way at the first boundary and back again at a later one.
    """

    def __init__(
        self,
        rate: int,
        *,
        tolerance: float = 0.02,
        window: float = 5.0,
        baseline: float = 30.0,
    ) -> None:
        self.rate = rate
        self.tolerance = tolerance
        self.window = window
        self.baseline = baseline
        self.origin = math.nan
        self._cur = math.inf
        self._prev = math.inf
        self._bucket_start = 0.0
        self.total_shift = 0.0
        self._ref: tuple[float, float] | None = None
        self._learned_at = math.inf

    @property
    def started(self) -> bool:
        return not math.isnan(self.origin)

    def time_of(self, index: int) -> float:
        return self.origin + index / self.rate

    def observe(self, frames_end: int, now: float) -> float:
        """Frames before ``frames_end`` had all arrived at wall time ``now``.

        Returns the seconds ``origin`` moved (only while learning, else 0)."""
        if not self.started:
            self.origin = now - frames_end / self.rate
            self._bucket_start = now
            self._learned_at = now + self.window
        if now - self._bucket_start >= self.window:
            self._prev, self._cur = self._cur, math.inf
            self._bucket_start = now
        learned = self.learned(now)  # latched here, at the first arrival a window on
        late = now - self.time_of(frames_end)
        if late < -self.tolerance and not learned:
            self._move(late)
            self._cur = 0.0
            return late
        self._cur = min(self._cur, late)
        return 0.0

    def _move(self, shift: float) -> None:
        self.origin += shift
        self._cur -= shift
        self._prev -= shift
        self.total_shift += shift

    def learned(self, now: float) -> bool:
        """Whether a whole window of arrivals has been seen since the first (for
        good: a wall clock set back later does not make the clock learn again)."""
        if now >= self._learned_at:
            self._learned_at = -math.inf
        return self._learned_at == -math.inf

    def offset(self) -> float:
        """How late audio arrives against ``origin``: the origin's error."""
        off = min(self._prev, self._cur)
        return 0.0 if math.isinf(off) else off

    def check(self, now: float) -> ClockCheck:
        """At a boundary: re-anchor when off by more than ``tolerance``; measure drift."""
        if not self.learned(now):
            return ClockCheck(0.0, None)
        off = self.offset()
        deviation = self.total_shift + off
        drift: float | None = None
        if self._ref is None:
            self._ref = (now, deviation)
        elif now - self._ref[0] >= self.baseline:
            drift = (deviation - self._ref[1]) / (now - self._ref[0])
        shift = 0.0
        if abs(off) > self.tolerance:
            shift = off
            self._move(off)
            if abs(off) >= STEP_SECONDS:
                self._ref, drift = (now, deviation), None  # measure drift afresh
        return ClockCheck(shift, drift)


class CaptureWriter:
    """Feeds PCM (arecord's bytes, the tone's samples) to the segmenter: whole
    frames, timed by the clock."""

    def __init__(
        self,
        segmenter: Segmenter,
        log: logging.Logger,
        *,
        rate: int,
        channels: int,
        make_sink: SinkFactory,
        fmt: str,
        clock: CaptureClock | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.log = log
        self.rate = rate
        self.frame_bytes = SAMPLE_BYTES * channels
        self.make_sink = make_sink
        self.fmt = fmt
        self.clock = clock if clock is not None else CaptureClock(rate)
        self.aligner = FrameAligner(self.frame_bytes)
        self.index = 0
        self._drift_warned_at = -math.inf

    def feed(self, data: bytes, now: float) -> int:
        """Write what arrived at ``now``; returns the frames written."""
        frames = self.aligner.feed(data)
        count = len(frames) // self.frame_bytes
        if not count:
            return 0
        end = self.index + count
        moved = self.clock.observe(end, now)
        if moved:
            self._log_shift(moved, "audio came before its time")
        seg = self.segmenter
        # Check before the boundary is passed by either timeline (nominal, or the
        # corrected one that a slow card's re-anchoring will give): the cut must
        # still lie ahead, in this chunk or a later one.
        reach = self.clock.time_of(end) + max(0.0, self.clock.offset())
        if seg.sink is not None and reach >= seg.boundary:
            self._check(now)
        seg.write_pcm(
            frames,
            self.index,
            self.clock.origin,
            self.rate,
            self.frame_bytes,
            self.make_sink,
            self.fmt,
        )
        self.index = end
        return count

    def _check(self, now: float) -> None:
        log = self.log
        result = self.clock.check(now)
        if result.shift:
            self._log_shift(result.shift, "to the wall clock")
        drift = result.drift
        if (
            drift is not None
            and abs(drift) > DRIFT_REPORT_RATIO
            and now - self._drift_warned_at >= DRIFT_REPORT_EVERY
        ):
            self._drift_warned_at = now
            log.warning(
                "capture clock drifts %.3f %% against the wall clock (card at ~%.0f Hz "
                "for %d Hz); files are re-anchored at each boundary",
                drift * 100,
                self.rate * (1 - drift),
                self.rate,
            )

    def _log_shift(self, shift: float, why: str) -> None:
        if abs(shift) >= STEP_SECONDS:
            self.log.warning(
                "the wall clock moved by %+.3f s against the audio: files follow it from here",
                shift,
            )
        else:
            self.log.info("capture clock re-anchored by %+.1f ms %s", shift * 1000, why)


def arecord_command(exe: str, pcm: str, rate: int, channels: int) -> list[str]:
    """Raw S16LE to stdout at the configured rate and channels."""
    return [exe, "-D", pcm, "-t", "raw", "-f", "S16_LE", "-r", str(rate), "-c", str(channels)]


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent(parent: int) -> None:
    """preexec hook (runs in the child before exec): die when the recorder dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class SoundcardSource(Source):
    async def session(self) -> None:
        cfg = self.cfg
        exe = shutil.which("arecord")
        if exe is None:
            raise DeviceError("arecord not found: install alsa-utils")
        devices = await asyncio.to_thread(list_capture_devices)
        try:
            pcm = resolve_device(cfg.device, devices, section=cfg.name)
        except ConfigError as exc:
            raise DeviceError(exc.message) from None
        args = arecord_command(exe, pcm, cfg.sample_rate, cfg.channels)
        self.log.info("capturing %s (device = %s) with: %s", pcm, cfg.device, " ".join(args))
        make_sink = functools.partial(make_pcm_sink, cfg)
        writer = CaptureWriter(
            self.segmenter,
            self.log,
            rate=cfg.sample_rate,
            channels=cfg.channels,
            make_sink=make_sink,
            fmt=cfg.format,
        )
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(rfd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=wfd,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=functools.partial(_die_with_parent, os.getpid()),
            )
        except BaseException:
            os.close(rfd)
            raise
        finally:
            os.close(wfd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=PIPE_BYTES)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(rfd, "rb", buffering=0)
        )
        tail: collections.deque[str] = collections.deque(maxlen=4)
        bytes_per_second = SAMPLE_BYTES * self.cfg.channels * self.cfg.sample_rate
        assert proc.stderr is not None
        stderr_task = asyncio.create_task(self._read_stderr(proc.stderr, tail))
        try:
            while True:
                try:
                    async with asyncio.timeout(NO_AUDIO_SECONDS):
                        data = await reader.read(READ_BYTES)
                except TimeoutError:
                    raise DeviceError(f"no audio from {pcm} for {NO_AUDIO_SECONDS:.0f} s") from None
                if not data:
                    break
                if writer.feed(data, time.time()):
                    self.wrote_audio()
                    self.count_bytes(len(data))
                    self.watch_level(data, len(data) / bytes_per_second)
            try:
                rc = await asyncio.wait_for(proc.wait(), STOP_SECONDS)
                await asyncio.wait_for(stderr_task, STOP_SECONDS)
            except TimeoutError:
                rc = None
            said = " | ".join(tail) or "no message"
            raise DeviceError(f"arecord on {pcm} ended (exit status {rc}): {said}")
        finally:
            transport.close()
            await _stop(proc)
            stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stderr_task

    async def _read_stderr(
        self, stream: asyncio.StreamReader, tail: collections.deque[str]
    ) -> None:
        """Log each line arecord writes; keep the last ones for the error message."""
        while line := await stream.readline():
            text = line.decode(errors="replace").strip()
            if not text:
                continue
            if text.startswith(("Recording ", "Aborted by signal")):  # start and our stop
                self.log.debug("arecord: %s", text)
                continue
            if "overrun" in text:
                self.log.warning("arecord: %s: audio was lost (the machine was too busy)", text)
            else:
                self.log.warning("arecord: %s", text)
            tail.append(text)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Terminate and reap arecord; kill it when it does not stop in time."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), STOP_SECONDS)
    except TimeoutError:
        _kill(proc)
        await proc.wait()
    except asyncio.CancelledError:  # cancelled again while stopping: still no orphan
        _kill(proc)
        await asyncio.shield(proc.wait())
        raise


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
