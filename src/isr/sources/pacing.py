"""One stream connection's bytes, read in batches on a shared grid (pacing).

Cost at scale (see docs/benchmarks.md): a live stream arrives as one small TCP
segment per codec packet (~38 a second at 128 kbps MP3), and waking the loop, the
framer and a write(2) for each costs more than the bytes. So once a read comes
back small (the stream is live, not catching up), the connection is *paced*: its
transport stops reading (no epoll wake-ups), and one timer per loop, on a shared
grid of ``linger`` seconds, reads every paced socket with a non-blocking read(2)
and hands each waiting reader what arrived (``Ticker``): per stream and tick that
is one system call and one future, instead of two epoll_ctl calls, a timer, two
futures and three task steps. The newest byte of each read still arrives just
before it is read, so arrival times stay exact to within one packet. TLS keeps
the transport, which alone can decrypt: it pauses, sleeps to the same grid and
resumes.

``PacedReader`` is the connection's protocol: it holds what the transport
delivered in a buffer of its own, so the response header is read from it, and at
a stop (``read_now``) whatever the connection holds, buffered or still in the
socket, is taken at once without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import weakref
from typing import cast

from isr.errors import SourceTimeout

__all__ = ["LINGER_SECONDS", "MAX_READ_NOW", "SMALL_READ_FRACTION", "PacedReader", "Ticker"]

LINGER_SECONDS = 1.0
"""After a small read, leave the socket this long before the next one (batching):
16 KB a read at 128 kbps, well inside a socket's receive buffer."""
SMALL_READ_FRACTION = 4
"""A read is small when it returns less than 1/this of what was asked for."""
MAX_READ_NOW = 4 << 20
"""Bytes ``read_now`` takes at most: far more than any socket buffer holds."""


def _next_tick(now: float, period: float) -> float:
    """The next point of the loop's grid of ``period`` seconds after ``now``: a
    thousand streams' timers then fire in a handful of loop iterations per tick,
    instead of one each."""
    return (math.floor(now / period) + 1) * period


class PacedReader(asyncio.Protocol):
    """A connection's bytes: the response header line by line, then the body.

    ``read(n)`` reads as fast as bytes come while the stream catches up, and paces
    itself once a read comes back small. Errors: the transport's ``OSError`` as it
    is, ``SourceTimeout`` after ``timeout`` seconds without a byte; the caller words
    them for the user.
    """

    def __init__(self, *, limit: int, timeout: float, where: str) -> None:
        self.limit = limit
        """Bytes buffered before the transport is paused (at twice this), and the
        longest header line."""
        self.timeout = timeout
        self.where = where
        """The URL, without secrets, for messages."""
        self.linger = LINGER_SECONDS
        """Seconds to leave the socket alone after a small read (0: read at once)."""
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._flow_paused = False
        self._closed = False
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._waiting_since: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._small = False
        self._fd = -1
        """The socket, read directly once the connection is paced (-1: not paced)."""
        self._want = 65536
        self._ticker: Ticker | None = None
        self._hup = False
        """The peer hung up: read what is left at once, without waiting for a tick."""

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()
        if not self._flow_paused and len(self._buffer) > 2 * self.limit:
            self._flow_paused = True
            assert self._transport is not None
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # nothing more to write either: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._error is None:
            self._error = exc
        self._eof = True
        self._forget()  # the descriptor is closed: never read it again
        self._wake()
        if not self._lost.done():
            self._lost.set_result(None)

    # -- the header -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.write(data)

    async def readline(self) -> bytes:
        """One line with its ``\\n``. Raises ``asyncio.LimitOverrunError`` past
        ``limit`` bytes, ``asyncio.IncompleteReadError`` at the end of the stream."""
        while True:
            end = self._buffer.find(b"\n")
            if end > self.limit or (end < 0 and len(self._buffer) > self.limit):
                raise asyncio.LimitOverrunError("line over the limit", len(self._buffer))
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                self._maybe_resume()
                return line
            if self._error is not None:
                raise self._error
            if self._eof:
                partial = bytes(self._buffer)
                self._buffer.clear()
                raise asyncio.IncompleteReadError(partial, None)
            await self._wait()

    # -- the body -------------------------------------------------------------------

    def start(self) -> None:
        """Arm the idle watchdog: one timer per connection, not one per read."""
        self._watchdog = self._loop.call_at(self._loop.time() + self.timeout, self._check_idle)

    async def read(self, n: int) -> bytes:
        """Up to ``n`` bytes as soon as any are there; b"" at the end."""
        if self._closed:
            return b""
        self._waiting_since = self._loop.time()
        try:
            if self._small and self._fd < 0:
                self._pace()
            if self._fd >= 0:
                data = await self._read_paced(n)
            else:
                if self._small:
                    await self._linger()
                data = await self._read_buffered(n)
        finally:
            self._waiting_since = None
        self._small = len(data) < n // SMALL_READ_FRACTION
        return data

    def read_now(self) -> bytes:
        """The bytes the connection already holds, taken without waiting; b"" if
        none. For a stop: what the server sent before it must reach the file, and
        a paced socket may hold up to a linger's worth. Closes nothing."""
        if self._closed:
            return b""
        raw = bytearray(self._buffer)
        self._buffer.clear()
        fd = self._fd
        transport = self._transport
        if fd < 0 and transport is not None and not self._lost.done():
            # The rest is still in the socket, readable directly once the transport
            # stops reading (not under TLS, whose bytes only the transport decrypts).
            sock = transport.get_extra_info("socket")
            if (
                sock is not None
                and transport.get_extra_info("ssl_object") is None
                and not transport.is_closing()
            ):
                transport.pause_reading()
                fd = sock.fileno()
        while fd >= 0 and len(raw) < MAX_READ_NOW:
            try:
                data = os.read(fd, 65536)
            except OSError:  # nothing more now (EAGAIN), or the connection broke
                break
            if not data:
                break
            raw += data
        return bytes(raw)

    def close(self) -> None:
        """Drop the connection now; idempotent and safe from any state."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._forget()  # before the transport closes the descriptor
        if self._transport is not None:
            self._transport.close()
        self._wake()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._lost)

    # -- what the ticker calls --------------------------------------------------------

    @property
    def fileno(self) -> int:
        """The paced socket (-1: not paced)."""
        return self._fd

    def poll(self, now: float) -> bytes | None:
        """What the paced socket holds now; None when nothing yet. Raises (without
        closing: the ticker closes after passing the error on) ``SourceTimeout``
        when ``timeout`` has passed without a byte, ``OSError`` when the
        connection broke."""
        if self._closed or self._fd < 0:
            return b""
        try:
            return os.read(self._fd, self._want)
        except (BlockingIOError, InterruptedError):
            since = self._waiting_since
            if since is not None and now - since >= self.timeout * 0.999:
                raise SourceTimeout(f"no data for {self.timeout:g} s from {self.where}") from None
            return None

    def hung_up(self) -> None:
        """The peer hung up: the next read reads the rest at once, then the end."""
        self._hup = True

    # -- inside -----------------------------------------------------------------------

    @property
    def _period(self) -> float:
        """Seconds between paced reads: the linger, but a quarter of the timeout at most."""
        return min(self.linger, self.timeout / 4)

    async def _wait(self) -> None:
        assert self._waiter is None, "one read at a time"
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _maybe_resume(self) -> None:
        if self._flow_paused and len(self._buffer) <= self.limit:
            self._flow_paused = False
            transport = self._transport
            if transport is not None and self._fd < 0 and not transport.is_closing():
                transport.resume_reading()

    async def _read_buffered(self, n: int) -> bytes:
        while not self._buffer:
            if self._error is not None:
                raise self._error
            if self._eof or self._closed:
                return b""
            await self._wait()
        if len(self._buffer) <= n:
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
        self._maybe_resume()
        return data

    def _check_idle(self) -> None:
        now = self._loop.time()
        since = self._waiting_since
        if self._closed or self._fd >= 0:
            # A paced connection's idle time is checked by the ticker on every tick.
            self._watchdog = None
            return
        if since is not None and now - since >= self.timeout * 0.999:
            self._watchdog = None
            self._error = SourceTimeout(f"no data for {self.timeout:g} s from {self.where}")
            self._wake()
            return
        due = since + self.timeout if since is not None else now + self.timeout
        self._watchdog = self._loop.call_at(due, self._check_idle)

    def _pace(self) -> None:
        """Stop the transport reading, to read the socket on the ticker's grid.

        Only plain TCP: TLS needs the transport to decrypt. After a small read the
        buffer is empty (a read returns less than asked only then), and nothing runs
        between that read and this call, so no byte is left behind in it.
        """
        transport = self._transport
        if (
            self.linger <= 0
            or transport is None
            or transport.is_closing()
            or self._buffer
            or self._eof
            or self._error is not None
            or transport.get_extra_info("ssl_object") is not None
        ):
            return
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        transport.pause_reading()
        self._fd = sock.fileno()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._ticker = _ticker(self._loop, self._period)
        self._ticker.watch(self)

    async def _read_paced(self, n: int) -> bytes:
        self._want = n
        data = None if self._small and not self._hup else self.poll(self._loop.time())
        if data is None:
            assert self._ticker is not None
            fut = self._ticker.wait(self)
            try:
                data = await fut
            except asyncio.CancelledError:
                # A tick handed the bytes over, but the reader was stopped before it
                # ran to take them: keep them first in line for ``read_now``.
                if fut.done() and not fut.cancelled() and fut.exception() is None:
                    self._buffer[:0] = fut.result()
                raise
        return data

    async def _linger(self) -> None:
        """Let a live stream's packets gather before reading (TLS: in the transport)."""
        delay = self._period
        if delay <= 0 or (self._eof and not self._buffer):
            return
        transport = self._transport
        paused = False
        if transport is not None and transport.is_reading():
            transport.pause_reading()
            paused = True
        try:
            # The grid point after the next half period, not ``delay`` after this read.
            now = self._loop.time()
            await asyncio.sleep(_next_tick(now + delay / 2, delay) - now)
        finally:
            if paused and transport is not None and not transport.is_closing():
                transport.resume_reading()

    def _forget(self) -> None:
        if self._ticker is not None:
            self._ticker.forget(self)
            self._ticker = None
        self._fd = -1


class Ticker:
    """Reads every paced connection of one loop on one shared timer.

    A reader waits on a future; each tick reads each waiting socket once, without
    blocking, and resolves the futures of those that had bytes (or an end, or an
    error). One timer, no epoll registration: at a thousand streams a tick costs a
    thousand read(2) calls and the wake-ups of the readers that got data.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        self._loop = loop
        self._period = period
        self._waiting: dict[PacedReader, asyncio.Future[bytes]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._hup: select.epoll | None = None
        """Paced sockets, watched for the peer's hang-up only (EPOLLRDHUP), so that
        a dropped connection is seen at once rather than on the next tick."""
        self._by_fd: dict[int, PacedReader] = {}

    def watch(self, reader: PacedReader) -> None:
        if self._hup is None:
            if not hasattr(select, "epoll"):
                return  # elsewhere than Linux: a hang-up is seen on the next tick
            self._hup = select.epoll()
            self._loop.add_reader(self._hup.fileno(), self._on_hup)
        try:
            self._hup.register(reader.fileno, select.EPOLLRDHUP)
        except OSError:
            return
        self._by_fd[reader.fileno] = reader

    def wait(self, reader: PacedReader) -> asyncio.Future[bytes]:
        """A future for the bytes of ``reader``'s next read that finds any."""
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self._waiting[reader] = fut
        if self._handle is None:
            self._arm()
        return fut

    def forget(self, reader: PacedReader) -> None:
        """``reader`` is closing: its waiting read sees an end."""
        self._unwatch(reader.fileno)
        fut = self._waiting.pop(reader, None)
        if fut is not None and not fut.done():
            fut.set_result(b"")

    def _unwatch(self, fd: int) -> None:
        if self._by_fd.pop(fd, None) is not None and self._hup is not None:
            with contextlib.suppress(OSError):
                self._hup.unregister(fd)

    def _on_hup(self) -> None:
        assert self._hup is not None
        now = self._loop.time()
        for fd, _events in self._hup.poll(0):
            reader = self._by_fd.get(fd)
            self._unwatch(fd)
            if reader is None:
                continue
            reader.hung_up()
            fut = self._waiting.get(reader)
            if fut is not None:
                self._serve(reader, fut, now)

    def _arm(self) -> None:
        self._handle = self._loop.call_at(_next_tick(self._loop.time(), self._period), self._tick)

    def _tick(self) -> None:
        self._handle = None
        now = self._loop.time()
        waiting = self._waiting
        for reader, fut in list(waiting.items()):
            self._serve(reader, fut, now)
        if waiting:
            self._arm()

    def _serve(self, reader: PacedReader, fut: asyncio.Future[bytes], now: float) -> None:
        """Hand a waiting reader what its socket holds, if anything."""
        if fut.done():  # the reader was cancelled
            del self._waiting[reader]
            return
        try:
            data = reader.poll(now)
        except (OSError, SourceTimeout) as exc:
            del self._waiting[reader]
            fut.set_exception(exc)
            reader.close()
            return
        if data is not None:
            del self._waiting[reader]
            fut.set_result(data)


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, Ticker]] = (
    weakref.WeakKeyDictionary()
)


def _ticker(loop: asyncio.AbstractEventLoop, period: float) -> Ticker:
    per_loop = _tickers.setdefault(loop, {})
    ticker = per_loop.get(period)
    if ticker is None:
        ticker = per_loop[period] = Ticker(loop, period)
    return ticker
