"""ISR's own small asyncio HTTP/1.0 client for Icecast and SHOUTcast streams.

No mainstream Python client accepts SHOUTcast v1's ``ICY 200 OK`` status line,
and a recorder needs little: one GET, redirects, playlists, Basic auth, and a
body read chunk by chunk with a timeout on every network step. It is built on
an asyncio protocol of its own so a thousand connections share one loop cheaply.

Errors: every failure is a ``SourceError``. A timeout is ``SourceTimeout``; a
status, header, redirect or playlist we cannot use is ``HttpError`` (with
``HttpStatusError`` carrying the status); a refused or reset connection, a DNS
or TLS failure is a plain ``SourceError`` whose ``__cause__`` is the OSError.
No message or repr ever holds a password.

A ``Transfer-Encoding: chunked`` body is decoded transparently by ``read()``.

Once a stream is live its body is read in batches on a shared grid (the
connection's protocol, ``pacing.PacedReader``). And a thousand sources starting
at once would overflow a server's listen backlog (Icecast listens with a backlog of a few
connections, and dropped handshakes are retried by the kernel only after 1, 3, 7,
15 s ...): at most ``CONNECT_SLOTS`` requests per server are in flight at a time,
and waiting for a slot does not count against the timeout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import ssl
import weakref
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urljoin

from isr import __version__
from isr.errors import HttpError, SourceError, SourceTimeout
from isr.sources.chunked import ChunkedDecoder
from isr.sources.pacing import LINGER_SECONDS, PacedReader
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
    "HlsFound",
    "HttpStatusError",
    "StreamResponse",
    "open_stream",
    "redact_url",
]

DEFAULT_USER_AGENT = f"ISR/{__version__}"
MAX_HEADER_BYTES = 64 * 1024
MAX_PLAYLIST_BYTES = 64 * 1024
_STREAM_LIMIT = 64 * 1024  # the reader pauses the socket at twice this much unread
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


class HlsFound(HttpError):
    """The URL is an HLS playlist (``.m3u8``, or a playlist Content-Type whose body
    is HLS): the stream source hands the source over to ``isr.sources.hls``."""

    def __init__(self, url: str) -> None:
        super().__init__(f"an HLS playlist: {redact_url(url)}")
        self.url = url


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
    _body: PacedReader | None = field(default=None, repr=False)
    """The connection: raw body bytes, paced once the stream is live."""
    _chunks: ChunkedDecoder | None = field(default=None, repr=False)
    """The body's decoder when it is chunked."""
    _eof: bool = field(default=False, repr=False)
    _closed: bool = field(default=False, repr=False)

    @property
    def linger(self) -> float:
        """Seconds to leave the socket alone after a small read (0: read at once)."""
        return self._body.linger if self._body is not None else LINGER_SECONDS

    @linger.setter
    def linger(self, seconds: float) -> None:
        if self._body is not None:
            self._body.linger = seconds

    def _start(self) -> None:
        """Arm the idle watchdog once the header is in (bench/isr_variants.py hooks it)."""
        if self._body is not None:
            self._body.start()

    async def read(self, n: int = 65536) -> bytes:
        """Up to ``n`` body bytes as soon as any are there; b"" at end of stream.

        Raises ``SourceTimeout`` when no byte arrives for ``timeout`` seconds,
        ``SourceError`` when the connection breaks.
        """
        body = self._body
        if body is None or self._eof or self._closed:
            return b""
        try:
            if self._chunks is not None:
                data = await self._read_chunked(body, self._chunks, n)
            else:
                data = await body.read(n)
        except SourceError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise SourceError(f"connection to {self.url} broke: {_describe(exc)}") from exc
        if not data:
            self._eof = True
        return data

    def read_now(self) -> bytes:
        """Body bytes the connection already holds, read without waiting; b"" if
        none. For a stop: what the server sent before it must reach the file, and
        a paced socket may hold up to a linger's worth. Closes nothing."""
        body = self._body
        if body is None or self._eof or self._closed:
            return b""
        raw = body.read_now()
        return self._chunks.decode(raw) if self._chunks is not None else raw

    @staticmethod
    async def _read_chunked(body: PacedReader, chunks: ChunkedDecoder, n: int) -> bytes:
        """Payload bytes of a chunked body; b"" at its last chunk or its end."""
        while not chunks.done:
            raw = await body.read(n)
            if not raw:
                return chunks.flush()  # raises if the connection ended inside a chunk
            data = chunks.decode(raw)
            if data:
                return data
        return b""

    def close(self) -> None:
        """Drop the connection now; idempotent and safe from any state."""
        if self._closed:
            return
        self._closed = True
        if self._body is not None:
            self._body.close()

    async def aclose(self) -> None:
        """Close and wait (briefly) until the transport is gone."""
        self.close()
        if self._body is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._body.wait_closed()

    async def __aenter__(self) -> StreamResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _read_head(conn: PacedReader, where: str) -> tuple[str, list[str]]:
    total = 0
    lines: list[str] = []
    status_line: str | None = None
    while True:
        try:
            raw = await conn.readline()
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
    loop = asyncio.get_running_loop()
    conn: PacedReader | None = None
    step = "connecting to"
    try:
        async with _connect_slot(t.host, t.port), asyncio.timeout(timeout):
            _, conn = await loop.create_connection(
                lambda: PacedReader(limit=_STREAM_LIMIT, timeout=timeout, where=where),
                t.host,
                t.port,
                ssl=ctx,
                server_hostname=t.host if ctx is not None else None,
                ssl_handshake_timeout=timeout if ctx is not None else None,
            )
            step = "sending the request to"
            conn.write(request)
            step = "waiting for the response header of"
            status_line, header_lines = await _read_head(conn, where)
            status, reason = _parse_status(status_line)
    except BaseException as exc:
        if conn is not None:
            conn.close()
        if isinstance(exc, TimeoutError):
            raise SourceTimeout(f"timed out after {timeout:g} s {step} {where}") from None
        if isinstance(exc, OSError):
            raise SourceError(f"{step} {where} failed: {_describe(exc)}") from exc
        raise
    headers = _parse_headers(header_lines)
    ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    resp = StreamResponse(
        url=where,
        status=status,
        reason=reason,
        headers=headers,
        content_type=ctype,
        metaint=_parse_metaint(headers.get("icy-metaint")),
        timeout=timeout,
        _body=conn,
        _chunks=ChunkedDecoder(where) if chunked else None,
    )
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
            raise HlsFound(current)
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
                    raise HlsFound(current)
                if kind is not None:
                    body = await _read_body(resp, MAX_PLAYLIST_BYTES)
                    try:
                        nxt = parse_playlist(body, current, kind)[0]
                    except HlsNotSupported:
                        raise HlsFound(current) from None
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
