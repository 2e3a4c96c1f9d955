"""A capture "card" with no sound hardware: real ALSA and real arecord, known samples.

``TestCard`` writes a private asound.conf (passed as ``ALSA_CONFIG_PATH``) whose
PCMs read a known signal from ``infile`` through ALSA's ``file`` plugin over a
``null`` slave, each wrapped in a ``plug`` with fixed format, rate and channels and
a ``hint`` so that ``arecord -L`` lists it. The null slave has no clock, so the
plugin's output copy goes to a FIFO that ``FifoPacer`` drains at exactly the sample
rate: arecord then delivers audio at a real card's pace.

Every arecord open starts again at the first frame of ``infile``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from pathlib import Path

import numpy as np

PCM_TEST = "isr_test"
PCM_SHARED = "shared_mic"
PCM_LOOP = "isr_loop"
DESC_TEST = "ISR Test Card, known signal"
DESC_SHARED = "Shared microphone (dsnoop-style named PCM)"
DESC_LOOP = "Loopback of the ISR test card"


def known_signal(seconds: float, rate: int, channels: int, seed: int = 4) -> np.ndarray:
    """Seeded noise, frames x channels int16: any lost, repeated or shifted sample shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, size=(int(seconds * rate), channels), dtype=np.int16)


def asound_conf(infile: Path, fifo: Path, rate: int, channels: int) -> str:
    """The private ALSA config: the system's alsa.conf plus three hinted test PCMs."""

    def plug(name: str, description: str) -> str:
        return (
            f"pcm.{name} {{\n"
            f'    type plug\n    slave {{ pcm "isr_file" format S16_LE rate {rate} '
            f"channels {channels} }}\n"
            f'    hint {{ show on description "{description}" }}\n}}\n'
        )

    return (
        "</usr/share/alsa/alsa.conf>\n"
        "pcm.isr_file {\n"
        "    type file\n"
        "    slave.pcm { type null }\n"
        f'    infile "{infile}"\n'
        f'    file "{fifo}"\n'
        '    format "raw"\n'
        "    hint { show off }\n"
        "}\n"
        + plug(PCM_TEST, DESC_TEST)
        + plug(PCM_SHARED, DESC_SHARED)
        + plug(PCM_LOOP, DESC_LOOP)
    )


class FifoPacer:
    """Drains the FIFO at ``byte_rate`` from a thread, so the card runs in real time.

    Opened read-write, the FIFO never blocks arecord's open and never reports EOF
    when arecord restarts. Like a real card, the pace starts when audio first
    flows and keeps to that schedule: time owed while the FIFO runs short is paid
    back in full but never run ahead of, so no audio reaches arecord before its
    time (the recorder rightly takes that as its capture clock being off). A FIFO
    that gave nothing for ``idle`` seconds (arecord not running) ends the schedule;
    the next audio starts a new one.
    """

    TICK = 0.005

    def __init__(self, fifo: Path, byte_rate: int, *, idle: float = 0.25) -> None:
        self.fifo = fifo
        self.byte_rate = byte_rate
        self.idle = idle
        self.drained = 0
        self._stop = threading.Event()
        self._fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, 4096)
        self._thread = threading.Thread(target=self._run, name="fifo-pacer", daemon=True)

    def start(self) -> FifoPacer:
        self._thread.start()
        return self

    def _drain(self, want: int) -> int | None:
        """Read up to ``want`` bytes; None once the FIFO was closed under us."""
        got = 0
        while want - got > 0:
            try:
                chunk = os.read(self._fd, min(want - got, 65536))
            except BlockingIOError:
                break
            except OSError as exc:  # pragma: no cover - closed under us
                if exc.errno == errno.EBADF:
                    return None
                raise
            if not chunk:
                break
            got += len(chunk)
        return got

    def _run(self) -> None:
        start: float | None = None  # when the current schedule began
        owed_from = 0  # bytes drained before it
        active = time.monotonic()
        while not self._stop.wait(self.TICK):
            now = time.monotonic()
            if start is None:
                want = int(self.TICK * self.byte_rate)
            else:
                want = int((now - start) * self.byte_rate) - (self.drained - owed_from)
            got = self._drain(want)
            if got is None:
                return
            if got:
                if start is None:
                    start, owed_from = now - self.TICK, self.drained
                active = now
            elif start is not None and now - active >= self.idle:
                start = None
            self.drained += got

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        os.close(self._fd)


class TestCard:
    """A private ALSA config, its known signal and its pacer, under ``directory``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self, directory: Path, *, rate: int = 8000, channels: int = 2, seconds: float = 40.0
    ) -> None:
        self.directory = directory
        self.rate = rate
        self.channels = channels
        directory.mkdir(parents=True, exist_ok=True)
        self.signal = known_signal(seconds, rate, channels)
        self.infile = directory / "known.raw"
        self.infile.write_bytes(self.signal.astype("<i2").tobytes())
        self.fifo = directory / "card.fifo"
        os.mkfifo(self.fifo)
        self.conf = directory / "asound.conf"
        self.conf.write_text(asound_conf(self.infile, self.fifo, rate, channels))
        self.pacer: FifoPacer | None = None

    @property
    def env(self) -> dict[str, str]:
        return {"ALSA_CONFIG_PATH": str(self.conf)}

    def start(self) -> TestCard:
        self.pacer = FifoPacer(self.fifo, self.rate * self.channels * 2).start()
        return self

    def close(self) -> None:
        if self.pacer is not None:
            self.pacer.close()
            self.pacer = None

    def __enter__(self) -> TestCard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
