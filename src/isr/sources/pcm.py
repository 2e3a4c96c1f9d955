"""What PCM sources (tone, soundcard) share: 16-bit little-endian frames, their
sinks, and ``CaptureWriter``, which times frames like a sound card's (``CaptureClock``)
and hands them to the segmenter."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from isr.config import SourceConfig
from isr.errors import SourceError
from isr.segment import Segmenter, SinkFactory
from isr.sinks.base import Sink
from isr.sinks.flac import FlacSink
from isr.sinks.wav import WavSink

SAMPLE_BYTES = 2
DRIFT_REPORT_RATIO = 0.001
"""Drift worth a warning: 0.1 %."""
DRIFT_REPORT_EVERY = 600.0
"""Seconds between two drift warnings of one session."""
STEP_SECONDS = 1.0
"""An error this large is the wall clock being set (NTP on a board without a
real-time clock), not a crystal's drift: followed, and not counted as drift."""


def make_pcm_sink(
    cfg: SourceConfig, directory: Path, stem: str, extension: str | None = None
) -> Sink:
    """The sink for a PCM source's ``format`` (its own extension: ``.wav``, ``.flac``)."""
    if cfg.format == "wav":
        return WavSink(directory, stem, sample_rate=cfg.sample_rate, channels=cfg.channels)
    if cfg.format == "flac":
        return FlacSink(directory, stem, sample_rate=cfg.sample_rate, channels=cfg.channels)
    raise SourceError(f"format = {cfg.format} is not a PCM format; use wav or flac")


class FrameAligner:
    """Cuts a byte stream into whole frames, carrying a partial frame to the next read.

    A pipe hands out bytes, not frames: a read may end in the middle of a sample.
    """

    def __init__(self, frame_bytes: int) -> None:
        self.frame_bytes = frame_bytes
        self._rest = b""

    def feed(self, data: bytes) -> bytes:
        """The whole frames available after ``data`` (possibly empty)."""
        buf = self._rest + data if self._rest else data
        usable = len(buf) - len(buf) % self.frame_bytes
        self._rest = buf[usable:]
        return buf[:usable]

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._rest)


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
