"""Loudness over time: RMS per window and the loud sections, for every recorded format.

The maths is pure (:class:`RmsAccumulator`, :func:`loud_sections`) and is fed by a
streaming decoder (:func:`analyse_file`) that holds one decoded frame at a time, so an
hour of stereo audio costs a few megabytes, not the 1.2 GB it would take whole. PyAV
carries FFmpeg's decoders for MP3, AAC, Vorbis, Opus and FLAC; every frame is resampled
to packed float, where a full-scale square wave has RMS 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

WINDOW_MS = 100


class AnalysisError(Exception):
    """The file could not be decoded at all."""


class RmsAccumulator:
    """Sums of squares per window of ``sample_rate * window_ms / 1000`` frames.

    Blocks of any length may be fed; windows straddling blocks come out the same as if
    the whole signal had been fed at once.
    """

    def __init__(self, sample_rate: int, window_ms: int = WINDOW_MS) -> None:
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self.sample_rate = sample_rate
        self.window_frames = max(1, round(sample_rate * window_ms / 1000))
        self.frames = 0
        self._sums: list[float] = []
        self._counts: list[int] = []
        self._part_sum = 0.0
        self._part_count = 0
        self._part_frames = 0

    def feed(self, block: npt.NDArray[np.floating[Any]]) -> None:
        """``block`` is (frames, channels) or (frames,) of samples in [-1, 1]."""
        x = np.asarray(block, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        n = x.shape[0]
        if n == 0:
            return
        sq = np.einsum("ij,ij->i", x, x)  # per-frame sum over channels
        channels = x.shape[1]
        self.frames += n
        pos = 0
        need = self.window_frames - self._part_frames
        if self._part_frames:
            take = min(need, n)
            self._part_sum += float(sq[:take].sum())
            self._part_count += take * channels
            self._part_frames += take
            pos = take
            if self._part_frames == self.window_frames:
                self._close_part()
        whole = (n - pos) // self.window_frames
        if whole:
            end = pos + whole * self.window_frames
            sums = sq[pos:end].reshape(whole, self.window_frames).sum(axis=1)
            self._sums.extend(sums.tolist())
            self._counts.extend([self.window_frames * channels] * whole)
            pos = end
        if pos < n:
            self._part_sum += float(sq[pos:].sum())
            self._part_count += (n - pos) * channels
            self._part_frames += n - pos

    def _close_part(self) -> None:
        self._sums.append(self._part_sum)
        self._counts.append(self._part_count)
        self._part_sum, self._part_count, self._part_frames = 0.0, 0, 0

    def result(self) -> list[float]:
        """RMS of every window; a trailing partial window counts what it holds."""
        sums, counts = list(self._sums), list(self._counts)
        if self._part_frames:
            sums.append(self._part_sum)
            counts.append(self._part_count)
        return [math.sqrt(s / c) if c else 0.0 for s, c in zip(sums, counts, strict=True)]

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def loud_sections(
    rms: list[float], threshold: float, window_s: float, duration: float | None = None
) -> list[list[float]]:
    """Merge consecutive windows with ``rms >= threshold`` into ``[start_s, end_s]``.

    The last window may be short: its section ends at ``duration`` when given.
    """
    out: list[list[float]] = []
    start: int | None = None
    for i, v in enumerate([*rms, -1.0]):
        if v >= threshold and i < len(rms):
            if start is None:
                start = i
        elif start is not None:
            end_s = i * window_s
            if duration is not None:
                end_s = min(end_s, duration)
            out.append([round(start * window_s, 3), round(end_s, 3)])
            start = None
    return out


@dataclass(frozen=True)
class Analysis:
    window_ms: int
    duration_s: float
    rms: list[float]

    def to_json(self, threshold: float) -> dict[str, Any]:
        return {
            "window_ms": self.window_ms,
            "duration_s": round(self.duration_s, 3),
            "threshold": threshold,
            "rms": [round(v, 5) for v in self.rms],
            "loud": loud_sections(self.rms, threshold, self.window_ms / 1000, self.duration_s),
        }


def analyse_file(path: Path | str, window_ms: int = WINDOW_MS) -> Analysis:
    """Decode ``path`` block by block and measure it. Runs in a worker process."""
    import av  # imported here: the web process itself never decodes

    acc: RmsAccumulator | None = None
    try:
        with av.open(str(path), mode="r") as container:
            if not container.streams.audio:
                raise AnalysisError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            resampler: Any = None
            for frame in container.decode(stream):
                if acc is None:
                    rate = int(frame.sample_rate or stream.rate or 0)
                    acc = RmsAccumulator(rate, window_ms)
                    resampler = av.AudioResampler(format="flt", layout=frame.layout.name, rate=rate)
                for out in resampler.resample(frame):
                    _feed_frame(acc, out)
            if resampler is not None and acc is not None:
                for out in resampler.resample(None):
                    _feed_frame(acc, out)
    except av.FFmpegError as exc:
        if acc is None:  # a file cut short still yields what decoded
            raise AnalysisError(f"{path}: {exc}") from exc
    if acc is None:
        raise AnalysisError(f"{path}: no audio decoded")
    return Analysis(window_ms, acc.duration, acc.result())


def _feed_frame(acc: RmsAccumulator, frame: Any) -> None:
    channels = len(frame.layout.channels)
    data = frame.to_ndarray().reshape(-1, channels)  # packed: (1, frames*channels)
    acc.feed(data)


def analyse_json(path: str, window_ms: int = WINDOW_MS) -> dict[str, Any]:
    """Picklable entry point for the process pool: the threshold-free part."""
    a = analyse_file(path, window_ms)
    return {"window_ms": a.window_ms, "duration_s": a.duration_s, "rms": a.rms}
