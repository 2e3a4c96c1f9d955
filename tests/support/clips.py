"""Archives of real audio, written the way the recorder writes them, at chosen times.

The recorder's own framer cuts a real encoded stream (ffmpeg's) into frames and its
own :class:`~isr.segment.Segmenter` and sinks write the files and sidecars, with the
airing times the test chooses: no real time passes and no wall-clock boundary falls
anywhere the test did not put it. Each session returns the frames it aired with their
times, so a clip can be checked against exactly what was "sent".
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path

import numpy as np
import numpy.typing as npt

from isr import formats
from isr.framing.base import Frame, Framer
from isr.segment import Segmenter
from isr.sidecar import Ledger
from isr.sinks.base import Sink
from isr.sinks.flac import FlacSink
from isr.sinks.wav import WavSink

EXTENSIONS = {"mp3": ".mp3", "aac": ".aac", "flac": ".flac"}


@dataclass
class Aired:
    """A frame as it was aired (stream formats)."""

    data: bytes
    start: float
    samples: int
    rate: int

    @property
    def end(self) -> float:
        return self.start + self.samples / self.rate


def _release(sink: Sink, ledger: Ledger, ok: bool) -> None:
    # The recorder's syncer closes the fsync descriptor after the file; without it the
    # file stays locked, i.e. "being recorded".
    if sink.sync_fd is not None:
        os.close(sink.sync_fd)
        sink.sync_fd = None


@dataclass
class StreamArchive:
    """One source's files under ``root`` (pattern ``{source}/%Y%m%d_%H%M%S``)."""

    root: Path
    tz: tzinfo
    fmt: str
    source: str = "radio"
    split_seconds: float = 3.0
    aired: list[list[Aired]] = field(default_factory=list)
    """Per session, the frames aired."""

    def __post_init__(self) -> None:
        self.seg = Segmenter(
            source=self.source,
            directory=self.root,
            base_dir=self.root,
            pattern="{source}/%Y%m%d_%H%M%S",
            split_seconds=self.split_seconds,
            tz=self.tz,
            log=logging.getLogger("test.clips"),
            on_close=_release,
        )
        entry = formats.by_name(self.fmt)
        assert entry is not None
        cls = entry.framer_class()
        assert cls is not None
        self.framer: Framer = cls()

    def frames_of(self, media: Path) -> list[Frame]:
        framer = type(self.framer)()
        data = media.read_bytes()
        frames = framer.feed(data) + framer.flush()
        self.framer = framer
        return frames

    def session(
        self,
        media: Path,
        start: float,
        *,
        skip: int = 0,
        count: int | None = None,
        cause: str = "connection reset",
        stop: bool = True,
    ) -> list[Aired]:
        """Air frames ``[skip, skip + count)`` of ``media`` from ``start``, as one
        connection (a gap since the last session is noted with ``cause``)."""
        frames = self.frames_of(media)[skip:]
        if count is not None:
            frames = frames[:count]
        self.seg.note_cause(cause)
        aired: list[Aired] = []
        t = start
        chunk = 8  # a few frames per write, as a stream's reads give them
        for i in range(0, len(frames), chunk):
            batch = frames[i : i + chunk]
            self.seg.write_frames(batch, t, self._sink, self.fmt, self.framer.file_writer)
            for f in batch:
                aired.append(Aired(f.data, t, f.samples, f.sample_rate))
                t += f.samples / f.sample_rate
        if stop:
            self.seg.close()
        self.aired.append(aired)
        return aired

    def _sink(self, directory: Path, stem: str, ext: str | None) -> Sink:
        return Sink(directory, stem, ext or EXTENSIONS[self.fmt])

    def files(self) -> list[Path]:
        return sorted((self.root / self.source).glob(f"*{EXTENSIONS[self.fmt]}"))

    def close(self) -> None:
        self.seg.close()
        if self.seg.sink is not None and self.seg.sink.sync_fd is not None:
            os.close(self.seg.sink.sync_fd)


@dataclass
class PcmArchive:
    """One PCM source's files (``wav`` or ``flac``) from known samples."""

    root: Path
    tz: tzinfo
    fmt: str
    rate: int = 8000
    channels: int = 2
    source: str = "card"
    split_seconds: float = 3.0

    def __post_init__(self) -> None:
        self.seg = Segmenter(
            source=self.source,
            directory=self.root,
            base_dir=self.root,
            pattern="{source}/%Y%m%d_%H%M%S",
            split_seconds=self.split_seconds,
            tz=self.tz,
            log=logging.getLogger("test.clips"),
            on_close=_release,
        )

    def _sink(self, directory: Path, stem: str, ext: str | None) -> Sink:
        if self.fmt == "wav":
            return WavSink(directory, stem, sample_rate=self.rate, channels=self.channels)
        return FlacSink(directory, stem, sample_rate=self.rate, channels=self.channels)

    def session(
        self,
        pcm: npt.NDArray[np.int16],
        start: float,
        *,
        cause: str = "arecord exited",
        stop: bool = True,
        chunk: int = 1000,
    ) -> None:
        """Capture ``pcm`` (frames x channels) from ``start`` (one arecord run)."""
        self.seg.note_cause(cause)
        frame_bytes = 2 * self.channels
        data = pcm.astype("<i2").tobytes()
        for i in range(0, len(pcm), chunk):
            part = data[i * frame_bytes : (i + chunk) * frame_bytes]
            self.seg.write_pcm(part, i, start, self.rate, frame_bytes, self._sink, self.fmt)
        if stop:
            self.seg.close()

    def files(self) -> list[Path]:
        return sorted((self.root / self.source).glob(f"*.{self.fmt}"))

    def close(self) -> None:
        self.seg.close()
        if self.seg.sink is not None and self.seg.sink.sync_fd is not None:
            os.close(self.seg.sink.sync_fd)


def signal(seconds: float, rate: int, channels: int, seed: int = 7) -> npt.NDArray[np.int16]:
    """A known test signal: noise with a slow tone, different in every channel."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    t = np.arange(n) / rate
    out = np.empty((n, channels), dtype=np.int16)
    for c in range(channels):
        tone = 8000 * np.sin(2 * np.pi * (220 + 110 * c) * t)
        out[:, c] = np.clip(tone + rng.normal(0, 2000, n), -32768, 32767).astype(np.int16)
    return out
