"""Decoding an HTTP/1.1 ``Transfer-Encoding: chunked`` body (RFC 9112, 7.1).

Pure and incremental, like httpx's decoders: ``decode(data)`` takes raw body bytes
as they arrive, split anywhere (inside a size line, a CRLF or chunk data), and
returns the payload bytes they complete; ``done`` turns true at the last chunk.
``flush()`` at the end of the raw bytes tells a body cut inside a chunk (an error)
from one that ended between chunks. The stream client reads raw bytes and runs
them through this, so what the socket already holds can be decoded at once at a
stop, with no await.
"""

from __future__ import annotations

from isr.errors import HttpError

__all__ = ["ChunkedDecoder"]

MAX_SIZE_LINE = 4096
"""A chunk-size line (with extensions) longer than this is not HTTP."""


class ChunkedDecoder:
    """State machine over size line, data, CRLF after data; trailers are ignored."""

    def __init__(self, where: str = "the server") -> None:
        self.where = where
        self.done = False
        """The last (zero-size) chunk was seen: the body has ended."""
        self._left = 0
        """Payload bytes still due in the current chunk."""
        self._line = bytearray()
        """A size line (or the CRLF after data) not yet complete."""
        self._crlf = False
        """The CRLF that follows chunk data is due before the next size line."""

    def decode(self, data: bytes) -> bytes:
        """The payload that ``data`` completes; raises ``HttpError`` on a bad size."""
        out = bytearray()
        view = memoryview(data)
        while view and not self.done:
            if self._left:
                take = min(self._left, len(view))
                out += view[:take]
                view = view[take:]
                self._left -= take
                self._crlf = self._left == 0
                continue
            nl = bytes(view[:MAX_SIZE_LINE]).find(b"\n")
            if nl < 0:
                self._line += view
                view = view[len(view) :]
                if len(self._line) > MAX_SIZE_LINE:
                    raise HttpError(f"chunk size line too long from {self.where}")
                break
            self._line += view[:nl]
            view = view[nl + 1 :]
            line = bytes(self._line).strip()
            self._line.clear()
            if self._crlf:  # the line that ends the previous chunk's data
                self._crlf = False
                if line:
                    raise HttpError(f"chunk data overran its size from {self.where}")
                continue
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HttpError(f"bad chunk size {size_text[:20]!r} from {self.where}") from None
            if size < 0:
                raise HttpError(f"bad chunk size {size_text[:20]!r} from {self.where}")
            if size == 0:
                self.done = True
            self._left = size
        return bytes(out)

    def flush(self) -> bytes:
        """The connection ended: raises ``HttpError`` if it ended inside a chunk
        (its size line, its data or the CRLF after it). Payload is handed out as it
        arrives, so nothing is held back to return here.

        A body that ends between two chunks without the last chunk is taken as
        ended, not as an error: the server closed the stream where a close of a
        plain body would also have ended it, and no payload was cut.
        """
        if self.done:
            return b""
        if self._left:
            raise HttpError(
                f"the body ended {self._left} bytes short of its chunk's end from {self.where}"
            )
        if self._line or self._crlf:
            raise HttpError(f"the body ended inside a chunk's framing from {self.where}")
        return b""
