"""What PCM sources (tone, soundcard) share: 16-bit little-endian frames and their sinks."""

from __future__ import annotations

from pathlib import Path

from isr.config import SourceConfig
from isr.errors import SourceError
from isr.sinks.base import Sink
from isr.sinks.wav import WavSink

SAMPLE_BYTES = 2


def make_pcm_sink(cfg: SourceConfig, directory: Path, stem: str) -> Sink:
    """The sink for a PCM source's ``format``."""
    if cfg.format == "wav":
        return WavSink(directory, stem, sample_rate=cfg.sample_rate, channels=cfg.channels)
    raise SourceError(f"format = {cfg.format} for PCM sources is not supported yet; use wav")
