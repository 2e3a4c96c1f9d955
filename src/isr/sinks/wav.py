"""PCM WAV files whose header stays true while they grow, and their repair after a crash.

The header is rewritten in place at the first write, every ``header_seconds``
(1 s) and at close, so a recorder killed mid-file leaves a WAV that plays up to
the last update;
``repair_wav`` makes its sizes exact at the next start.

A RIFF size is 32 bits, so a WAV stops at 4 GiB. Every header reserves a 28-byte
``JUNK`` chunk right after ``WAVE``; a file that outgrows 4 GiB becomes RF64 in
place (EBU Tech 3306): ``RIFF`` turns into ``RF64``, the ``JUNK`` chunk into the
``ds64`` chunk that holds the 64-bit sizes, and the 32-bit sizes read ``0xFFFFFFFF``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from isr.sinks.base import Sink
from isr.sinks.files import open_regular

log = logging.getLogger("isr.wav")

DS64_BYTES = 28
"""Body of a ds64 chunk without a table: RIFF size, data size, sample count, table length."""
HEADER_BYTES = 12 + 8 + DS64_BYTES + 8 + 16 + 8
"""RIFF/WAVE, JUNK (later ds64), fmt, data header: 80 bytes before the first sample."""
MAX_RIFF = 0xFFFFFFFF
"""Largest 32-bit chunk size; a bigger file is written as RF64 (tests lower this)."""
_FFFF = 0xFFFFFFFF


def wav_header(sample_rate: int, channels: int, data_bytes: int, bits: int = 16) -> bytes:
    """The 80-byte header of a file with ``data_bytes`` of samples: RIFF while the
    sizes fit in 32 bits, RF64 with a ds64 chunk beyond."""
    block = channels * bits // 8
    riff_size = HEADER_BYTES - 8 + data_bytes
    fmt = struct.pack(
        "<4sIHHIIHH", b"fmt ", 16, 1, channels, sample_rate, sample_rate * block, block, bits
    )
    if riff_size <= MAX_RIFF:
        head = struct.pack("<4sI4s", b"RIFF", riff_size, b"WAVE")
        reserve = struct.pack("<4sI", b"JUNK", DS64_BYTES) + bytes(DS64_BYTES)
        data = struct.pack("<4sI", b"data", data_bytes)
    else:
        head = struct.pack("<4sI4s", b"RF64", _FFFF, b"WAVE")
        reserve = struct.pack(
            "<4sIQQQI", b"ds64", DS64_BYTES, riff_size, data_bytes, data_bytes // block, 0
        )
        data = struct.pack("<4sI", b"data", _FFFF)
    return head + reserve + fmt + data


class WavSink(Sink):
    def __init__(
        self,
        directory: Path,
        stem: str,
        *,
        sample_rate: int,
        channels: int,
        header_seconds: float = 1.0,
    ) -> None:
        super().__init__(directory, stem, ".wav")
        self.sample_rate = sample_rate
        self.channels = channels
        self.header_seconds = header_seconds
        self._header_at: float | None = None
        self.digest.set_reserve(HEADER_BYTES)  # rewritten in place until the close
        try:
            self.write_raw(wav_header(sample_rate, channels, 0))
        except BaseException:
            self.discard()
            raise

    def write_raw(self, data: bytes | memoryview) -> None:
        super().write(data)

    def write(self, data: bytes | memoryview) -> None:
        """Write samples; the header follows at the first write and then every
        ``header_seconds``, so a killed recorder's file plays up to that point."""
        super().write(data)
        now = time.monotonic()
        if self._header_at is None or now - self._header_at >= self.header_seconds:
            self._header_at = now
            self.update_header()

    @property
    def data_bytes(self) -> int:
        return self.bytes_written - HEADER_BYTES

    def update_header(self) -> None:
        """Rewrite the whole header in one ``pwrite``: it is never half old, half new."""
        header = wav_header(self.sample_rate, self.channels, self.data_bytes)
        os.pwrite(self.fd, header, 0)
        self.digest.patch(0, header)

    def close(self) -> None:
        try:
            if not self.closed:
                self.update_header()
        finally:
            super().close()  # never leave the descriptor (and its lock) open


# -- repair after a crash ------------------------------------------------------------


@dataclass(frozen=True)
class WavLayout:
    """Where a WAV file's sizes live, as parsed from its header."""

    form: bytes
    """``RIFF`` or ``RF64``."""
    riff_size: int
    block_align: int
    data_offset: int
    """Offset of the first sample (just after the data chunk header)."""
    data_size: int
    """The data size the header declares (from ds64 for RF64)."""
    ds64_offset: int | None
    """Offset of a ds64 chunk's body, or of a JUNK body that can become one."""
    ds64_is_junk: bool


def parse_wav_header(head: bytes) -> WavLayout | None:
    """The layout of a WAV header (the first few KiB of a file), or None when
    ``head`` is not a PCM WAV whose data chunk starts within it."""
    if len(head) < 12 or head[8:12] != b"WAVE" or head[:4] not in (b"RIFF", b"RF64"):
        return None
    form = head[:4]
    riff_size = struct.unpack_from("<I", head, 4)[0]
    pos = 12
    block = 0
    ds64: int | None = None
    ds64_is_junk = False
    ds64_data: int | None = None
    while pos + 8 <= len(head):
        cid, size = struct.unpack_from("<4sI", head, pos)
        body = pos + 8
        if cid == b"ds64" and size >= DS64_BYTES and body + DS64_BYTES <= len(head):
            ds64, ds64_is_junk = body, False
            riff_size, ds64_data = struct.unpack_from("<QQ", head, body)
        elif cid == b"JUNK" and pos == 12 and size >= DS64_BYTES:
            ds64, ds64_is_junk = body, True
        elif cid == b"fmt " and size >= 16 and body + 16 <= len(head):
            block = struct.unpack_from("<H", head, body + 12)[0]
        elif cid == b"data":
            if block <= 0:
                return None
            declared = ds64_data if (form == b"RF64" and ds64_data is not None) else size
            return WavLayout(form, riff_size, block, body, declared, ds64, ds64_is_junk)
        pos = body + size + (size & 1)
    return None


def repair_wav(path: Path | str) -> str | None:
    """Make the RIFF and data sizes of ``path`` match the samples it holds.

    A crash leaves the sizes of the last header update (up to ``header_seconds``
    old) or zero. The data size becomes the file size minus the header, rounded
    down to whole frames; a file that outgrew 4 GiB becomes RF64 through its
    reserved JUNK chunk. Returns what was repaired (None when the file was
    right, is no PCM WAV, or is locked by a recorder that is writing it).
    A symlink, a FIFO or a file with another hard link raises OSError: it was
    planted, and repairing it would rewrite a file elsewhere.
    """
    path = Path(path)
    fd = open_regular(path, os.O_RDWR)  # never through a symlink or a hard link
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # being recorded right now
        head = os.pread(fd, 4096, 0)
        layout = parse_wav_header(head)
        if layout is None:
            return None
        size = os.fstat(fd).st_size
        actual = max(0, size - layout.data_offset) // layout.block_align * layout.block_align
        riff = layout.data_offset - 8 + actual
        fixes: list[str] = []
        if riff <= MAX_RIFF and layout.form == b"RIFF":
            if layout.data_size != actual:
                os.pwrite(fd, struct.pack("<I", actual), layout.data_offset - 4)
                fixes.append(f"data size {layout.data_size} -> {actual}")
            if layout.riff_size != riff:
                os.pwrite(fd, struct.pack("<I", riff), 4)
                fixes.append(f"RIFF size {layout.riff_size} -> {riff}")
        elif layout.ds64_offset is not None:
            if layout.form != b"RF64" or layout.data_size != actual or layout.riff_size != riff:
                ds64 = struct.pack("<QQQI", riff, actual, actual // layout.block_align, 0)
                os.pwrite(fd, ds64, layout.ds64_offset)
                if layout.ds64_is_junk:
                    os.pwrite(fd, b"ds64", layout.ds64_offset - 8)
                os.pwrite(fd, struct.pack("<4sI", b"RF64", _FFFF), 0)
                os.pwrite(fd, struct.pack("<I", _FFFF), layout.data_offset - 4)
                what = "made RF64" if layout.form != b"RF64" else "RF64 sizes fixed"
                fixes.append(f"{what}: data size {actual}")
        else:
            capped = MAX_RIFF - (layout.data_offset - 8)
            capped -= capped % layout.block_align
            if layout.data_size != capped:
                os.pwrite(fd, struct.pack("<I", capped), layout.data_offset - 4)
                os.pwrite(fd, struct.pack("<I", _FFFF), 4)
                fixes.append(f"over 4 GiB with no room for ds64: data size capped at {capped}")
        if not fixes:
            return None
        if size - layout.data_offset != actual:
            fixes.append(f"{size - layout.data_offset - actual} trailing bytes of a partial frame")
        os.fsync(fd)
        return "; ".join(fixes)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
