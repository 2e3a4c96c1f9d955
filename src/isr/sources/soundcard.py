"""``type = soundcard``: an ALSA capture device recorded through the real ``arecord``.

``arecord -t raw`` writes S16LE frames to a pipe that the event loop reads without
blocking, next to every stream. Frame ``n`` has the time ``origin + n / rate``, so
files split at exact samples (``Segmenter.write_pcm``). A card's clock is not the
wall clock: ``pcm.CaptureClock`` watches when audio arrives and, at each file
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
import os
import shutil
import signal
import time
from collections.abc import Callable

from isr.errors import ConfigError, DeviceError
from isr.sources.alsa import list_capture_devices, resolve_device
from isr.sources.base import Source
from isr.sources.pcm import SAMPLE_BYTES, CaptureWriter, make_pcm_sink

READ_BYTES = 64 * 1024
PIPE_BYTES = 1 << 20
"""Pipe from arecord, enlarged so a busy loop does not make the card overrun (~6 s)."""
NO_AUDIO_SECONDS = 10.0
"""A capture that delivers nothing for this long is dead: restart arecord."""
STOP_SECONDS = 2.0


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
                async with asyncio.timeout(STOP_SECONDS):
                    rc = await proc.wait()
                async with asyncio.timeout(STOP_SECONDS):
                    await stderr_task
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
        async with asyncio.timeout(STOP_SECONDS):
            await proc.wait()
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
