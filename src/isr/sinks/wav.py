"""PCM WAV files whose header stays true while they grow.

The RIFF and data sizes are rewritten in place every ``header_seconds`` and at
close, so a recorder killed mid-file leaves a WAV that plays up to the last update
(and ``repair`` makes it exact at the next start).
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

from isr.sinks.base import Sink

HEADER_BYTES = 44
MAX_DATA = 0xFFFFFFFF - 36


def wav_header(sample_rate: int, channels: int, data_bytes: int, bits: int = 16) -> bytes:
    block = channels * bits // 8
    size = min(data_bytes, MAX_DATA)
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + size,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        sample_rate,
        sample_rate * block,
        block,
        bits,
        b"data",
        size,
    )


class WavSink(Sink):
    def __init__(
        self,
        directory: Path,
        stem: str,
        *,
        sample_rate: int,
        channels: int,
        header_seconds: float = 2.0,
    ) -> None:
        super().__init__(directory, stem, ".wav")
        self.sample_rate = sample_rate
        self.channels = channels
        self.header_seconds = header_seconds
        self._header_at = time.monotonic()
        self.write_raw(wav_header(sample_rate, channels, 0))

    def write_raw(self, data: bytes | memoryview) -> None:
        super().write(data)

    def write(self, data: bytes | memoryview) -> None:
        super().write(data)
        now = time.monotonic()
        if now - self._header_at >= self.header_seconds:
            self._header_at = now
            self.update_header()

    @property
    def data_bytes(self) -> int:
        return self.bytes_written - HEADER_BYTES

    def update_header(self) -> None:
        size = min(self.data_bytes, MAX_DATA)
        os.pwrite(self.fd, struct.pack("<I", 36 + size), 4)
        os.pwrite(self.fd, struct.pack("<I", size), 40)

    def close(self) -> None:
        if not self.closed:
            self.update_header()
        super().close()
