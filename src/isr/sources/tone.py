"""``type = tone``: a sine generated at real-time pace, written like a soundcard.

It is the demo source of ``make run`` and a health check of disk and pipeline:
its samples are paced by the monotonic clock and timed like a card's
(``CaptureWriter``), so its files split at exact samples, the phase runs on
unbroken across every join, and a wall clock that is stepped while it runs (NTP
setting a board without a real-time clock) is followed at the next boundary
instead of naming every later file off by the step.
"""

from __future__ import annotations

import asyncio
import functools
import time

import numpy as np

from isr.sources.base import Source
from isr.sources.pcm import CaptureWriter, make_pcm_sink

TICK = 0.1
AMPLITUDE = 0.5


def tone_block(start: int, count: int, frequency: float, sample_rate: int, channels: int) -> bytes:
    """Samples ``start .. start+count`` of the sine, interleaved S16LE."""
    n = np.arange(start, start + count, dtype=np.float64)
    # Reduce the phase modulo one period's worth of samples to keep precision for months.
    phase = 2.0 * np.pi * ((n * frequency / sample_rate) % 1.0)
    mono = np.round(np.sin(phase) * (AMPLITUDE * 32767.0)).astype("<i2")
    return np.repeat(mono[:, None], channels, axis=1).tobytes()


class ToneSource(Source):
    async def session(self) -> None:
        cfg = self.cfg
        rate = cfg.sample_rate
        writer = CaptureWriter(
            self.segmenter,
            self.log,
            rate=rate,
            channels=cfg.channels,
            make_sink=functools.partial(make_pcm_sink, cfg),
            fmt=cfg.format,
        )
        mono_origin = time.monotonic()
        produced = 0
        while True:
            due = int((time.monotonic() - mono_origin) * rate)
            if due > produced:
                data = tone_block(produced, due - produced, cfg.frequency, rate, cfg.channels)
                writer.feed(data, time.time())
                self.watch_level(data, (due - produced) / rate)
                produced = due
                self.wrote_audio()
                self.count_bytes(len(data))
            await asyncio.sleep(TICK)
