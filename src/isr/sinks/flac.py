"""FLAC files from 16-bit PCM, encoded off the event loop.

``write()`` is called on the event loop, so it only queues the PCM; a worker of a
small shared thread pool encodes it with python-soundfile (libsndfile + libFLAC).
At most one job per file runs at a time and it takes the queue in order, so the
samples land in the order they came; the queue is bounded, and only a disk or CPU
that cannot keep up for seconds makes ``write()`` wait. ``close()`` finishes the
encoding and lets libsndfile write the final STREAMINFO (length and MD5).

The file is created by ``create_exclusive`` like every recording and handed to
soundfile as an unbuffered file object, so frames reach the kernel as libFLAC
emits them: a crashed file decodes up to its last complete frame (its STREAMINFO
then says "length unknown", which decoders accept).
"""

from __future__ import annotations

import collections
import errno
import io
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import soundfile

from isr.evidence.digest import WriteHash
from isr.sinks.base import Sink

log = logging.getLogger("isr.flac")

STREAMINFO_END = 4 + 4 + 34
"""``fLaC``, the block header and STREAMINFO: the bytes a close patches."""

STALL_SECONDS = 2.0
"""The longest the event loop waits for the encoder, in a write or at close."""
MAX_PENDING_BYTES = 8 << 20
"""PCM queued per file before ``write()`` waits (~47 s of 44.1 kHz stereo)."""
ENCODER_THREADS = 2

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _encoders() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(ENCODER_THREADS, thread_name_prefix="isr-flac")
        return _pool


class FlacSink(Sink):
    def __init__(
        self,
        directory: Path,
        stem: str,
        *,
        sample_rate: int,
        channels: int,
        max_pending: int = MAX_PENDING_BYTES,
    ) -> None:
        super().__init__(directory, stem, ".flac")
        self.sample_rate = sample_rate
        self.channels = channels
        self.max_pending = max_pending
        self._cond = threading.Condition()
        self._queue: collections.deque[bytes] = collections.deque()
        self._pending = 0
        self._busy = False
        self._error: BaseException | None = None
        self._warned = False
        self._closing = False
        # libFLAC rewrites STREAMINFO (length, frame sizes, MD5) at the close:
        # "fLaC" and that block are kept in memory for the hash.
        self.digest.set_reserve(STREAMINFO_END)
        try:
            self._raw = _HashedFile(
                os.fdopen(self.fd, "wb", buffering=0, closefd=False), self.digest
            )
            self._sf = soundfile.SoundFile(
                self._raw,
                mode="w",
                samplerate=sample_rate,
                channels=channels,
                format="FLAC",
                subtype="PCM_16",
            )
        except BaseException:
            self.discard()
            raise
        self.bytes_written = os.fstat(self.fd).st_size

    def write(self, data: bytes | memoryview) -> None:
        """Queue whole frames of S16LE PCM for the encoder; raises the encoder's error."""
        if not data:
            return
        chunk = bytes(data)  # the caller may reuse its buffer
        with self._cond:
            self._raise_error()
            if self._pending >= self.max_pending:
                if not self._warned:
                    self._warned = True
                    log.warning("%s: the FLAC encoder is behind; waiting for it", self.path)
                # Never hold the event loop for long: a stalled disk ends this file.
                if not self._cond.wait_for(
                    lambda: self._pending < self.max_pending or self._error is not None,
                    timeout=STALL_SECONDS,
                ):
                    raise OSError(
                        errno.ENOBUFS,
                        f"the FLAC encoder is {self._pending >> 20} MiB behind "
                        f"(a stalled disk?); starting a new file",
                    )
                self._raise_error()
            self._queue.append(chunk)
            self._pending += len(chunk)
            if not self._busy:
                self._busy = True
                _encoders().submit(self._drain)

    def _raise_error(self) -> None:
        if self._error is not None:
            exc = self._error
            if isinstance(exc, OSError):
                raise exc
            raise OSError(f"FLAC encoding failed: {exc}") from exc

    def _drain(self) -> None:
        """The worker: encode queued chunks in order until the queue is empty."""
        while True:
            with self._cond:
                idle = not self._queue or self._error is not None
                if idle and not self._closing:
                    self._busy = False
                    self._cond.notify_all()
                    return
                chunk = b"".join(self._queue)
                self._queue.clear()
            if idle:  # close() left the end of this file to us
                self._finish_in_background()
                return
            try:
                self._sf.buffer_write(chunk, dtype="int16")
                size = os.fstat(self.fd).st_size
            except BaseException as exc:  # handed to the loop by the next write/close
                with self._cond:
                    self._error = exc
                    self._queue.clear()
                    self._pending = 0
                    self._busy = False
                    self._cond.notify_all()
                return
            with self._cond:
                self.bytes_written = size
                self._pending -= len(chunk)
                self._cond.notify_all()

    def wait_idle(self) -> None:
        """Block until everything queued so far is encoded (or failed)."""
        with self._cond:
            while self._busy:
                self._cond.wait()

    def _finish_in_background(self) -> None:
        """close(), done by the encoder thread for a file whose encoding lagged."""
        try:
            self._sf.close()
        except Exception as exc:
            log.error("%s: closing the FLAC file failed: %s", self.path, exc)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
            os.close(self.fd)

    def close(self) -> None:
        """Finish encoding, write the final STREAMINFO and close the file. If the
        encoder is still busy after ``STALL_SECONDS``, it finishes the file itself:
        the event loop that called is never held longer."""
        if self.closed:
            return
        with self._cond:
            if not self._cond.wait_for(lambda: not self._busy, timeout=STALL_SECONDS):
                self._closing = True
                self.closed = True
                # Its STREAMINFO is written after this close: the write path's
                # account ends here, and the file's check hashes it from the disk.
                self.digest.broken = True
                log.warning("%s: the FLAC encoder finishes this file in the background", self.path)
                return
        try:
            with self._cond:
                failed = self._error
            try:
                self._sf.close()
            except Exception as exc:
                if failed is None:
                    raise OSError(f"closing FLAC file failed: {exc}") from exc
            if failed is None:
                self.bytes_written = os.fstat(self.fd).st_size
            with self._cond:
                self._raise_error()
        finally:
            super().close()


class _HashedFile:
    """The file object libsndfile writes through: each write is told to the file's
    ``WriteHash`` where it lands (libFLAC seeks back to STREAMINFO at the end)."""

    def __init__(self, raw: io.FileIO, digest: WriteHash) -> None:
        self.raw = raw
        self.digest = digest
        self.pos = 0

    def write(self, data: bytes) -> int:
        n = self.raw.write(data) or 0
        if self.pos == self.digest.size:
            self.digest.update(data[:n])
        else:
            self.digest.patch(self.pos, data[:n])
        self.pos += n
        return n

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self.pos = self.raw.seek(offset, whence)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        return b""  # libFLAC's encoder never reads back what it wrote

    def close(self) -> None:
        self.raw.close()
