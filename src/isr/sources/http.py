"""ISR's own small asyncio HTTP/1.0 client for Icecast and SHOUTcast streams.

No mainstream Python client accepts SHOUTcast v1's ``ICY 200 OK`` status line,
and a recorder needs little: one GET, redirects, playlists, Basic auth, and a
body read chunk by chunk with a timeout on every network step. It is built on
asyncio streams so a thousand connections share one loop cheaply.

Errors: every failure is a ``SourceError``. A timeout is ``SourceTimeout``; a
status, header, redirect or playlist we cannot use is ``HttpError`` (with
``HttpStatusError`` carrying the status); a refused or reset connection, a DNS
or TLS failure is a plain ``SourceError`` whose ``__cause__`` is the OSError.
No message or repr ever holds a password.

A ``Transfer-Encoding: chunked`` body is decoded transparently by ``read()``.

Cost at scale (see docs/benchmarks.md): a live stream arrives as one small
TCP segment per codec packet (~38 a second at 128 kbps MP3), and waking the loop,
the framer and a write(2) for each costs more than the bytes. So once a read comes
back small (the stream is live, not catching up), the connection is *paced*: its
transport stops reading (no epoll wake-ups), and one timer per loop, on a shared
grid of ``linger`` seconds, reads every paced socket with a non-blocking read(2)
and hands each waiting reader what arrived (``_Ticker``): per stream and tick that
is one system call and one future, instead of two epoll_ctl calls, a timer, two
futures and three task steps. The newest byte of each read still arrives just
before it is read, so arrival times stay exact to within one packet. (TLS and
chunked bodies keep asyncio's reader: they pause, sleep to the same grid and
resume.) And a thousand sources starting at once would
overflow a server's listen backlog (Icecast listens with a backlog of a few
connections, and dropped handshakes are retried by the kernel only after 1, 3, 7,
15 s ...): at most ``CONNECT_SLOTS`` requests per server are in flight at a time,
and waiting for a slot does not count against the timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import select
import socket
import ssl
import weakref
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urljoin

from isr import __version__
from isr.errors import HttpError, SourceError, SourceTimeout
from isr.sources.chunked import ChunkedDecoder
from isr.sources.playlist import (
    HlsNotSupported,
    PlaylistError,
    PlaylistKind,
    kind_from_content_type,
    kind_from_url,
    parse_playlist,
)
from isr.urls import parse_url, redact_url

__all__ = [
    "DEFAULT_USER_AGENT",
    "HttpStatusError",
    "StreamResponse",
    "open_stream",
    "redact_url",
]

DEFAULT_USER_AGENT = f"ISR/{__version__}"
MAX_HEADER_BYTES = 64 * 1024
MAX_PLAYLIST_BYTES = 64 * 1024
_STREAM_LIMIT = 64 * 1024  # StreamReader pauses the socket at twice this much unread
LINGER_SECONDS = 1.0
"""After a small read, leave the socket this long before the next one (batching):
16 KB a read at 128 kbps, well inside a socket's receive buffer."""
SMALL_READ_FRACTION = 4
"""A read is small when it returns less than 1/this of what was asked for."""
MAX_READ_NOW = 4 << 20
"""Bytes ``read_now`` takes at most: far more than any socket buffer holds."""
CONNECT_SLOTS = 32
"""Requests (connect + response header) in flight at once to one host and port."""
_REDIRECTS = frozenset((301, 302, 303, 307, 308))

_default_ssl: ssl.SSLContext | None = None


def _ssl_default() -> ssl.SSLContext:
    """One verifying context for all streams: loading the CA store is not cheap."""
    global _default_ssl
    if _default_ssl is None:
        _default_ssl = ssl.create_default_context()
    return _default_ssl


_slots: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, int], asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


def _connect_slot(host: str, port: int) -> asyncio.Semaphore:
    """The semaphore that bounds concurrent requests to (host, port) on this loop."""
    per_loop = _slots.setdefault(asyncio.get_running_loop(), {})
    sem = per_loop.get((host, port))
    if sem is None:
        sem = per_loop[(host, port)] = asyncio.Semaphore(CONNECT_SLOTS)
    return sem


def _describe(exc: BaseException) -> str:
    """A short human reason: "Connection refused", not asyncio's "Connect call failed"."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host: {exc.strerror}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed"
    return str(exc) or type(exc).__name__


class HttpStatusError(HttpError):
    """The server answered with a status we cannot record (401, 404, 503, ...)."""

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def _parse_status(line: str) -> tuple[int, str]:
    proto, _, rest = line.strip().partition(" ")
    code, _, reason = rest.strip().partition(" ")
    if not (proto == "ICY" or proto.startswith("HTTP/")) or not (len(code) == 3 and code.isdigit()):
        raise HttpError(f"not an HTTP or ICY status line: {line[:80]!r}")
    return int(code), reason.strip()


def _parse_headers(lines: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    last = ""
    for line in lines:
        if line[:1] in (" ", "\t") and last:
            headers[last] = f"{headers[last]} {line.strip()}"
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        last = name.strip().lower()
        value = value.strip()
        headers[last] = f"{headers[last]}, {value}" if last in headers else value
    return headers


def _parse_metaint(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value.split(",")[0].strip())
    except ValueError:
        return None
    return n if n > 0 else None


@dataclass(eq=False)
class StreamResponse:
    """An open response whose body is read with ``read()`` until it returns b""."""

    url: str
    """Final URL, after redirects and playlists, with any password removed."""
    status: int
    reason: str
    headers: dict[str, str]
    """Lower-cased names; repeated headers joined with ", "."""
    content_type: str
    """Lower-cased, without parameters; "" when absent."""
    metaint: int | None
    """From ``icy-metaint``; None when absent or invalid."""
    timeout: float = field(default=30.0, repr=False)
    _reader: asyncio.StreamReader | None = field(default=None, repr=False)
    _writer: asyncio.StreamWriter | None = field(default=None, repr=False)
    _chunked: bool = field(default=False, repr=False)
    _chunks: ChunkedDecoder | None = field(default=None, repr=False)
    """The body's decoder when it is chunked."""
    _eof: bool = field(default=False, repr=False)
    _closed: bool = field(default=False, repr=False)
    _waiting_since: float | None = field(default=None, repr=False)
    _watchdog: asyncio.TimerHandle | None = field(default=None, repr=False)
    linger: float = field(default=LINGER_SECONDS, repr=False)
    """Seconds to leave the socket alone after a small read (0: read at once)."""
    _small: bool = field(default=False, repr=False)
    _fd: int = field(default=-1, repr=False)
    """The socket, read directly once the connection is paced (-1: not paced)."""
    _want: int = field(default=65536, repr=False)
    _ticker: _Ticker | None = field(default=None, repr=False)
    _hup: bool = field(default=False, repr=False)
    """The peer hung up: read what is left at once, without waiting for a tick."""

    @property
    def _period(self) -> float:
        """Seconds between paced reads: the linger, but a quarter of the timeout at most."""
        return min(self.linger, self.timeout / 4)

    def _start(self) -> None:
        """Arm the idle watchdog: one timer per connection, not one per read."""
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_at(loop.time() + self.timeout, self._check_idle)

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        since = self._waiting_since
        if self._closed or self._reader is None or self._fd >= 0:
            # A paced connection's idle time is checked by the ticker on every tick.
            self._watchdog = None
            return
        if since is not None and now - since >= self.timeout * 0.999:
            self._watchdog = None
            self._reader.set_exception(
                SourceTimeout(f"no data for {self.timeout:g} s from {self.url}")
            )
            return
        due = since + self.timeout if since is not None else now + self.timeout
        self._watchdog = loop.call_at(due, self._check_idle)

    async def read(self, n: int = 65536) -> bytes:
        """Up to ``n`` body bytes as soon as any are there; b"" at end of stream.

        Raises ``SourceTimeout`` when no byte arrives for ``timeout`` seconds,
        ``SourceError`` when the connection breaks.
        """
        reader = self._reader
        if reader is None or self._eof or self._closed:
            return b""
        loop = asyncio.get_running_loop()
        self._waiting_since = loop.time()
        if self._small and self._fd < 0:
            self._pace(reader)
        if self._fd >= 0:
            return await self._read_paced(loop, n)
        try:
            if self._small:
                await self._linger(reader)
            if self._chunked:
                data = await self._read_chunked(reader, n)
            else:
                data = await reader.read(n)
        except SourceError:
            self.close()
            raise
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.close()
            raise SourceError(f"connection to {self.url} broke: {_describe(exc)}") from exc
        finally:
            self._waiting_since = None
        if not data:
            self._eof = True
        if not self._chunked:  # a chunked read judged its raw bytes itself
            self._small = len(data) < n // SMALL_READ_FRACTION
        return data

    def read_now(self) -> bytes:
        """Body bytes the connection already holds, read without waiting; b"" if
        none. For a stop: what the server sent before it must reach the file, and
        a paced socket may hold up to a linger's worth. Closes nothing."""
        reader = self._reader
        if reader is None or self._eof or self._closed:
            return b""
        raw = bytearray()
        fd = self._fd
        if fd < 0:
            # asyncio's reader holds what its transport read; the rest is still in
            # the socket, readable directly once the transport stops reading (not
            # under TLS, whose bytes only the transport can decrypt).
            buffered = getattr(reader, "_buffer", None)
            if isinstance(buffered, bytearray):
                raw += buffered
                buffered.clear()
            writer = self._writer
            transport = writer.transport if writer is not None else None
            sock = writer.get_extra_info("socket") if writer is not None else None
            if (
                isinstance(transport, asyncio.ReadTransport)
                and sock is not None
                and writer is not None
                and writer.get_extra_info("ssl_object") is None
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
        if self._chunked:
            assert self._chunks is not None
            return self._chunks.decode(bytes(raw))
        return bytes(raw)

    def _pace(self, reader: asyncio.StreamReader) -> None:
        """Stop the transport reading, to read the socket on the ticker's grid.

        Only plain TCP bodies: TLS needs the transport to decrypt, chunked bodies its
        buffer. After a small read the reader's buffer is empty (it returns less than
        asked only then), and nothing runs between that read and this call, so no
        byte is left behind in it.
        """
        writer = self._writer
        if (
            self.linger <= 0
            or self._chunked
            or writer is None
            or writer.get_extra_info("ssl_object") is not None
            or reader.at_eof()
            or reader.exception() is not None
        ):
            return
        transport = writer.transport
        sock = writer.get_extra_info("socket")
        if not isinstance(transport, asyncio.ReadTransport) or sock is None:
            return
        transport.pause_reading()
        self._fd = sock.fileno()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._ticker = _ticker(asyncio.get_running_loop(), self._period)
        self._ticker.watch(self)

    async def _read_paced(self, loop: asyncio.AbstractEventLoop, n: int) -> bytes:
        self._want = n
        try:
            data = None if self._small and not self._hup else self._read_now(loop.time())
            if data is None:
                assert self._ticker is not None
                data = await self._ticker.wait(self)
        except SourceError:
            self.close()
            raise
        finally:
            self._waiting_since = None
        if not data:
            self._eof = True
        self._small = len(data) < n // SMALL_READ_FRACTION
        return data

    def _read_now(self, now: float) -> bytes | None:
        """What the paced socket holds now; None when nothing yet. Raises (without
        closing: the caller closes after passing the error on) on a timeout or error."""
        if self._closed:
            return b""
        try:
            return os.read(self._fd, self._want)
        except (BlockingIOError, InterruptedError):
            since = self._waiting_since
            if since is not None and now - since >= self.timeout * 0.999:
                raise SourceTimeout(f"no data for {self.timeout:g} s from {self.url}") from None
            return None
        except OSError as exc:
            raise SourceError(f"connection to {self.url} broke: {_describe(exc)}") from exc

    async def _linger(self, reader: asyncio.StreamReader) -> None:
        """Let a live stream's packets gather in the socket buffer before reading."""
        delay = self._period
        if delay <= 0 or reader.at_eof():
            return
        writer = self._writer
        transport = writer.transport if writer is not None else None
        paused = False
        if isinstance(transport, asyncio.ReadTransport) and transport.is_reading():
            transport.pause_reading()
            paused = True
        try:
            # Wake on a shared grid of the loop clock, not ``delay`` after this read:
            # then a thousand streams' timers fire, and their sockets turn readable, in
            # a handful of loop iterations per tick instead of one each.
            loop = asyncio.get_running_loop()
            now = loop.time()
            wake = (math.floor((now + delay / 2) / delay) + 1) * delay
            await asyncio.sleep(wake - now)
        finally:
            if paused and transport is not None and not transport.is_closing():
                assert isinstance(transport, asyncio.ReadTransport)
                transport.resume_reading()

    async def _read_chunked(self, reader: asyncio.StreamReader, n: int) -> bytes:
        """Payload bytes of a chunked body; b"" at its last chunk or its end."""
        chunks = self._chunks
        assert chunks is not None
        while not chunks.done:
            raw = await reader.read(n)
            if not raw:
                return chunks.flush()  # raises if the connection ended inside a chunk
            # What the reader held is all read at once: a small read means the
            # stream is live, however small its chunks are.
            self._small = len(raw) < n // SMALL_READ_FRACTION
            data = chunks.decode(raw)
            if data:
                return data
        return b""

    def close(self) -> None:
        """Drop the connection now; idempotent and safe from any state."""
        if self._closed:
            return
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._ticker is not None:
            self._ticker.forget(self)  # before the transport closes the descriptor
        if self._writer is not None:
            self._writer.close()

    async def aclose(self) -> None:
        """Close and wait (briefly) until the transport is gone."""
        self.close()
        if self._writer is not None:
            try:
                async with asyncio.timeout(1.0):
                    await self._writer.wait_closed()
            except (OSError, TimeoutError):
                pass

    async def __aenter__(self) -> StreamResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Ticker:
    """Reads every paced connection of one loop on one shared timer.

    A reader waits on a future; each tick reads each waiting socket once, without
    blocking, and resolves the futures of those that had bytes (or an end, or an
    error). One timer, no epoll registration: at a thousand streams a tick costs a
    thousand read(2) calls and the wake-ups of the readers that got data.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        self._loop = loop
        self._period = period
        self._waiting: dict[StreamResponse, asyncio.Future[bytes]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._hup: select.epoll | None = None
        """Paced sockets, watched for the peer's hang-up only (EPOLLRDHUP), so that
        a dropped connection is seen at once rather than on the next tick."""
        self._by_fd: dict[int, StreamResponse] = {}

    def watch(self, resp: StreamResponse) -> None:
        if self._hup is None:
            if not hasattr(select, "epoll"):
                return  # elsewhere than Linux: a hang-up is seen on the next tick
            self._hup = select.epoll()
            self._loop.add_reader(self._hup.fileno(), self._on_hup)
        try:
            self._hup.register(resp._fd, select.EPOLLRDHUP)
        except OSError:
            return
        self._by_fd[resp._fd] = resp

    def _unwatch(self, fd: int) -> None:
        if self._by_fd.pop(fd, None) is not None and self._hup is not None:
            with contextlib.suppress(OSError):
                self._hup.unregister(fd)

    def _on_hup(self) -> None:
        assert self._hup is not None
        now = self._loop.time()
        for fd, _events in self._hup.poll(0):
            resp = self._by_fd.get(fd)
            self._unwatch(fd)
            if resp is None:
                continue
            resp._hup = True  # its next read() reads at once: the rest, then the end
            fut = self._waiting.get(resp)
            if fut is not None:
                self._serve(resp, fut, now)

    def wait(self, resp: StreamResponse) -> asyncio.Future[bytes]:
        fut: asyncio.Future[bytes] = self._loop.create_future()
        self._waiting[resp] = fut
        if self._handle is None:
            self._arm()
        return fut

    def forget(self, resp: StreamResponse) -> None:
        self._unwatch(resp._fd)
        fut = self._waiting.pop(resp, None)
        if fut is not None and not fut.done():
            fut.set_result(b"")  # closed by our side: the reader sees an end

    def _arm(self) -> None:
        now = self._loop.time()
        due = (math.floor(now / self._period) + 1) * self._period
        self._handle = self._loop.call_at(due, self._tick)

    def _tick(self) -> None:
        self._handle = None
        now = self._loop.time()
        waiting = self._waiting
        for resp, fut in list(waiting.items()):
            self._serve(resp, fut, now)
        if waiting:
            self._arm()

    def _serve(self, resp: StreamResponse, fut: asyncio.Future[bytes], now: float) -> None:
        """Hand a waiting reader what its socket holds, if anything."""
        if fut.done():  # the reader was cancelled
            del self._waiting[resp]
            return
        try:
            data = resp._read_now(now)
        except SourceError as exc:
            del self._waiting[resp]
            fut.set_exception(exc)
            resp.close()
            return
        if data is not None:
            del self._waiting[resp]
            fut.set_result(data)


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Ticker]] = (
    weakref.WeakKeyDictionary()
)


def _ticker(loop: asyncio.AbstractEventLoop, period: float) -> _Ticker:
    per_loop = _tickers.setdefault(loop, {})
    ticker = per_loop.get(period)
    if ticker is None:
        ticker = per_loop[period] = _Ticker(loop, period)
    return ticker


async def _read_head(reader: asyncio.StreamReader, where: str) -> tuple[str, list[str]]:
    total = 0
    lines: list[str] = []
    status_line: str | None = None
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise HttpError(f"response header over {MAX_HEADER_BYTES} bytes from {where}") from None
        except asyncio.IncompleteReadError as exc:
            if status_line is None and not exc.partial:
                raise SourceError(f"{where} closed the connection without answering") from None
            raise SourceError(f"{where} closed the connection in the header") from None
        total += len(raw)
        if total > MAX_HEADER_BYTES:
            raise HttpError(f"response header over {MAX_HEADER_BYTES} bytes from {where}")
        line = raw.rstrip(b"\r\n").decode("latin-1")
        if status_line is None:
            if not line and len(lines) == 0 and total <= 8:
                continue  # tolerate stray blank lines before the status
            status_line = line
            continue
        if not line:
            return status_line, lines
        lines.append(line)


async def _request(
    url: str,
    *,
    username: str | None,
    password: str | None,
    timeout: float,
    user_agent: str,
    icy_metadata: bool,
    ssl_context: ssl.SSLContext | None,
) -> StreamResponse:
    t = parse_url(url)
    where = redact_url(url)
    user = username if username is not None else t.username
    pw = password if password is not None else t.password
    lines = [
        f"GET {t.target} HTTP/1.0",
        f"Host: {t.host_header}",
        f"User-Agent: {user_agent}",
        "Accept: */*",
    ]
    if icy_metadata:
        lines.append("Icy-MetaData: 1")
    if user is not None or pw is not None:
        token = base64.b64encode(f"{user or ''}:{pw or ''}".encode()).decode("ascii")
        lines.append(f"Authorization: Basic {token}")
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="strict")

    ctx = (ssl_context or _ssl_default()) if t.scheme == "https" else None
    writer: asyncio.StreamWriter | None = None
    step = "connecting to"
    try:
        async with _connect_slot(t.host, t.port), asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                t.host,
                t.port,
                ssl=ctx,
                server_hostname=t.host if ctx is not None else None,
                ssl_handshake_timeout=timeout if ctx is not None else None,
                limit=_STREAM_LIMIT,
            )
            step = "sending the request to"
            writer.write(request)
            await writer.drain()
            step = "waiting for the response header of"
            status_line, header_lines = await _read_head(reader, where)
    except TimeoutError:
        if writer is not None:
            writer.close()
        raise SourceTimeout(f"timed out after {timeout:g} s {step} {where}") from None
    except SourceError:
        if writer is not None:
            writer.close()
        raise
    except (OSError, asyncio.IncompleteReadError) as exc:
        if writer is not None:
            writer.close()
        raise SourceError(f"{step} {where} failed: {_describe(exc)}") from exc
    except BaseException:
        if writer is not None:
            writer.close()
        raise

    try:
        status, reason = _parse_status(status_line)
    except HttpError:
        writer.close()
        raise
    headers = _parse_headers(header_lines)
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    resp = StreamResponse(
        url=where,
        status=status,
        reason=reason,
        headers=headers,
        content_type=ctype,
        metaint=_parse_metaint(headers.get("icy-metaint")),
        timeout=timeout,
        _reader=reader,
        _writer=writer,
        _chunked="chunked" in headers.get("transfer-encoding", "").lower(),
    )
    if resp._chunked:
        resp._chunks = ChunkedDecoder(where)
    resp._start()
    return resp


async def _read_body(resp: StreamResponse, limit: int) -> bytes:
    """A whole small body (a playlist): to EOF, or Content-Length, at most ``limit``."""
    try:
        length: int | None = int(resp.headers["content-length"])
    except (KeyError, ValueError):
        length = None
    want = min(length, limit + 1) if length is not None and length >= 0 else limit + 1
    buf = bytearray()
    while len(buf) < want:
        data = await resp.read(want - len(buf))
        if not data:
            break
        buf += data
    if len(buf) > limit:
        raise HttpError(f"playlist over {limit} bytes at {resp.url}")
    return bytes(buf)


def _is_playlist(url: str, content_type: str) -> PlaylistKind | None:
    kind = kind_from_content_type(content_type)
    if kind is not None:
        return kind
    by_url = kind_from_url(url)
    if by_url is None:
        return None
    # A stream served at ".../live.m3u" with a real audio type is a stream.
    if content_type.startswith("audio/") or content_type in ("application/ogg", "video/ogg"):
        return None
    return by_url


async def open_stream(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 30.0,
    user_agent: str = DEFAULT_USER_AGENT,
    max_redirects: int = 5,
    icy_metadata: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> StreamResponse:
    """Connect, follow redirects and playlists, and return the open stream.

    ``username``/``password`` win over credentials in the URL; they are sent
    only to the origin of ``url``, never to another host a redirect names.
    Each redirect and each playlist counts as one hop of ``max_redirects``.
    """
    if user_agent.lower().startswith("mozilla"):
        raise ValueError("the User-Agent must not start with Mozilla: servers answer HTML")
    if any(c in user_agent for c in "\r\n"):
        raise ValueError("control characters in the User-Agent")
    origin = parse_url(url).origin
    hops = 0
    current = url
    while True:
        if kind_from_url(current) == "hls":
            raise HttpError(f"HLS (.m3u8) is not supported: {redact_url(current)}")
        same_origin = parse_url(current).origin == origin
        resp = await _request(
            current,
            username=username if same_origin else None,
            password=password if same_origin else None,
            timeout=timeout,
            user_agent=user_agent,
            icy_metadata=icy_metadata,
            ssl_context=ssl_context,
        )
        nxt: str | None = None
        try:
            if resp.status in _REDIRECTS:
                location = resp.headers.get("location", "").strip()
                if not location:
                    raise HttpError(f"{resp.status} redirect without Location from {resp.url}")
                nxt = urljoin(current, location)
            elif not 200 <= resp.status < 300:
                raise HttpStatusError(
                    f"{resp.status} {resp.reason} from {resp.url}".replace("  ", " "),
                    status=resp.status,
                    reason=resp.reason,
                )
            else:
                kind = _is_playlist(current, resp.content_type)
                if kind == "hls":
                    raise HttpError(f"HLS is not supported: {resp.url}")
                if kind is not None:
                    body = await _read_body(resp, MAX_PLAYLIST_BYTES)
                    try:
                        nxt = parse_playlist(body, current, kind)[0]
                    except HlsNotSupported:
                        raise HttpError(f"HLS is not supported: {resp.url}") from None
                    except PlaylistError as exc:
                        raise HttpError(f"{exc}: {resp.url}") from None
        except BaseException:
            await resp.aclose()
            raise
        if nxt is None:
            return resp
        await resp.aclose()
        hops += 1
        if hops > max_redirects:
            raise HttpError(
                f"more than {max_redirects} redirects or playlists from {redact_url(url)}"
            )
        current = nxt
