"""What PCM sources (tone, soundcard) share: 16-bit little-endian frames and their sinks."""

from __future__ import annotations

from pathlib import Path

from isr.config import SourceConfig
from isr.errors import SourceError
from isr.sinks.base import Sink
from isr.sinks.flac import FlacSink
from isr.sinks.wav import WavSink

SAMPLE_BYTES = 2


def make_pcm_sink(cfg: SourceConfig, directory: Path, stem: str) -> Sink:
    """The sink for a PCM source's ``format``."""
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
