"""A fake Icecast/SHOUTcast server on 127.0.0.1 for tests.

It runs its own event loop in a background thread, so synchronous tests that
start ``isr record`` as a subprocess and asyncio tests can both use it::

    with FakeStreamServer(Mount("/live", payload=mp3, metaint=8192)) as srv:
        url = srv.url("/live")

Each mount is one continuous stream: a new connection goes on where the last
one stopped, less ``replay_bytes`` (Icecast's burst on connect). The server
records, per connection, the exact audio bytes it sent (metadata removed) and
the titles with the audio offsets where their blocks went, so a test can check
that a recording is a contiguous slice of what was sent. Chunk sizes are
random but seeded, to split frames and metadata blocks at awkward places.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

__all__ = ["AWKWARD_TITLES", "Connection", "FakeStreamServer", "Mount", "encode_metadata"]

AWKWARD_TITLES: tuple[str | bytes, ...] = (
    "Artist - Song",
    "Guns N' Roses - It's ';' a test; really",
    "Björk – Jóga ♪ 日本語",
    "Beyoncé - Déjà vu".encode("cp1252"),
)
"""Titles that trip naive parsers: quotes, semicolons, non-ASCII, and one in cp1252."""

_REASONS = {301: "Moved Permanently", 302: "Found", 303: "See Other", 307: "Temporary Redirect"}


def encode_metadata(title: str | bytes, url: str = "") -> bytes:
    """One ICY metadata block with its length byte, as a server sends it."""
    raw = title.encode("utf-8") if isinstance(title, str) else title
    text = b"StreamTitle='" + raw + b"';StreamUrl='" + url.encode() + b"';"
    text = text[: 255 * 16]
    blocks = -(-len(text) // 16)
    return bytes([blocks]) + text.ljust(blocks * 16, b"\0")


def decode_title(title: str | bytes) -> str:
    """What a client should read back for a title sent as given."""
    if isinstance(title, str):
        return title
    for enc in ("utf-8", "cp1252", "latin-1"):
        try:
            return title.decode(enc)
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes everything")


@dataclass
class Mount:
    """One path on the server and how it behaves."""

    path: str
    payload: bytes = b""
    """Audio served; looped when ``loop``. Replaced by random bytes when ``garbage``."""
    status_line: str = "ICY 200 OK"
    """``ICY 200 OK``, ``HTTP/1.0 200 OK``; a non-2xx line answers and closes."""
    content_type: str = "audio/mpeg"
    headers: dict[str, str] = field(default_factory=dict)
    line_ending: str = "\r\n"
    metaint: int | None = None
    """Insert metadata every ``metaint`` audio bytes when the client asked for it."""
    titles: Sequence[str | bytes] = ()
    """Cycled every ``title_every`` bytes of the stream; bytes are sent as they are."""
    title_every: int = 16384
    resend_titles: bool = False
    """Repeat the current title in every block instead of sending empty blocks."""
    byte_rate: float | None = None
    """Audio bytes per second; None = as fast as the client reads."""
    loop: bool = True
    chunk_min: int = 1
    chunk_max: int = 4096
    seed: int = 0
    drop_after: int | None = None
    """Close the connection after this many audio bytes."""
    stall_after: int | None = None
    stall_seconds: float = 0.0
    stall_loses: bool = False
    """After the stall the pace goes on from then, as from a sender that starved: the
    stall's audio never comes. By default the server catches up at once."""
    faulty_connections: int | None = None
    """Apply ``drop_after`` and ``stall_after`` to only the first K connections."""
    refuse: bool = False
    """Close the connection as soon as the request is read, without answering."""
    garbage: bool = False
    redirect: str | None = None
    """Answer a redirect to this Location (``{base}`` replaced by the server's URL)."""
    redirect_status: int = 302
    auth: tuple[str, str] | None = None
    """Required Basic credentials; 401 without them."""
    body: bytes | str | None = None
    """A fixed body (a playlist); ``{base}`` is replaced by the server's URL."""
    chunked: bool = False
    """Send the stream with ``Transfer-Encoding: chunked``."""
    replay_bytes: int = 0
    live: bool = False
    """Like a live Icecast mount (needs ``byte_rate``): the stream runs on with the wall
    clock whether anyone listens or not, and a new connection first gets a burst of
    the last ``replay_bytes`` at once, then real time."""

    @classmethod
    def m3u(cls, path: str, target: str, *, content_type: str = "audio/x-mpegurl") -> Mount:
        """An extended M3U playlist naming ``target`` (a path on this server)."""
        body = f"#EXTM3U\r\n#EXTINF:-1,Fake radio\r\n{{base}}{target}\r\n"
        return cls(path, status_line="HTTP/1.0 200 OK", content_type=content_type, body=body)

    @classmethod
    def pls(cls, path: str, target: str, *, content_type: str = "audio/x-scpls") -> Mount:
        """A PLS playlist naming ``target`` (a path on this server)."""
        body = (
            f"[playlist]\nNumberOfEntries=1\nTitle1=Fake radio\nFile1={{base}}{target}\n"
            "Length1=-1\nVersion=2\n"
        )
        return cls(path, status_line="HTTP/1.0 200 OK", content_type=content_type, body=body)


@dataclass
class Connection:
    """What happened on one accepted connection."""

    index: int
    path: str
    request_line: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    """Request headers, names lower-cased."""
    start: int = 0
    """Position in the mount's stream of the first audio byte sent."""
    audio: bytearray = field(default_factory=bytearray)
    """Every audio byte written, metadata removed."""
    titles: list[tuple[int, str]] = field(default_factory=list)
    """(offset in ``audio``, title) for each metadata block that named a title."""
    metadata: bool = False
    status: int = 0
    ended: str = ""
    """Why it ended: eof, drop, refused, answered, or client (it left, or the server
    was paused or stopped); "" while still open."""


@dataclass
class _MountState:
    payload: bytes
    position: int = 0
    live_t0: float = field(default_factory=time.monotonic)
    """When a live mount's stream began: the server's start (loop.time() is monotonic)."""
    connections: int = 0


class FakeStreamServer:
    """The server; use as a context manager, or ``start()`` and ``stop()``."""

    def __init__(
        self,
        *mounts: Mount,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = 0
        self._ssl = ssl_context
        self._mounts: dict[str, Mount] = {}
        self._state: dict[str, _MountState] = {}
        self._lock = threading.Lock()
        self._connections: list[Connection] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="fake-stream-server", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        for m in mounts:
            self.add(m)

    # -- control, from the test's thread -------------------------------------------------

    def add(self, mount: Mount) -> None:
        """Add or replace a mount, also while running."""
        payload = mount.payload
        if mount.garbage:
            payload = random.Random(mount.seed).randbytes(max(len(payload), 1 << 16))
        with self._lock:
            self._mounts[mount.path] = mount
            self._state[mount.path] = _MountState(payload)

    def start(self) -> FakeStreamServer:
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FakeStreamServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def pause(self, *, close_connections: bool = True) -> None:
        """Stop listening (connects are refused), and drop open connections."""
        self._call(self._pause(close_connections))

    def resume(self) -> None:
        """Listen again on the same port."""
        self._call(self._listen())

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    def url(self, path: str, *, userinfo: str = "") -> str:
        """The full URL of ``path``; ``userinfo`` ("user:pass") is put in it if given."""
        base = self.base_url
        if userinfo:
            scheme, rest = base.split("://", 1)
            base = f"{scheme}://{userinfo}@{rest}"
        return base + path

    @property
    def connections(self) -> list[Connection]:
        """Every connection so far, oldest first (a snapshot of the list)."""
        with self._lock:
            return list(self._connections)

    def connections_to(self, path: str) -> list[Connection]:
        return [c for c in self.connections if c.path == path]

    def stream_bytes(self, path: str, start: int, length: int) -> bytes:
        """Bytes ``start`` .. ``start + length`` of the mount's endless stream."""
        payload = self._state[path].payload
        if not payload:
            return b""
        out = bytearray()
        pos = start
        while len(out) < length:
            i = pos % len(payload)
            piece = payload[i : i + length - len(out)]
            out += piece
            pos += len(piece)
        return bytes(out)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Poll ``predicate`` until true; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.01)

    def wait_connections(
        self, n: int, path: str | None = None, timeout: float = 10.0
    ) -> list[Connection]:
        """The connections (to ``path``) once there are at least ``n``."""

        def pick() -> list[Connection]:
            return [c for c in self.connections if path is None or c.path == path]

        self.wait_for(lambda: len(pick()) >= n, timeout)
        return pick()

    # -- the server thread ---------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        with contextlib.suppress(Exception):
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self._ssl, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pause(self, close_connections: bool) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if close_connections:
            await self._cancel_all()

    async def _shutdown(self) -> None:
        await self._pause(True)

    async def _cancel_all(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
        lines: list[str] = []
        total = 0
        async with asyncio.timeout(10):
            while True:
                raw = await reader.readuntil(b"\n")
                total += len(raw)
                if total > 65536:
                    raise OSError("request too large")
                line = raw.rstrip(b"\r\n").decode("latin-1")
                if not line:
                    break
                lines.append(line)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return (lines[0] if lines else ""), headers

    def _record(self, path: str) -> Connection:
        with self._lock:
            conn = Connection(index=len(self._connections), path=path)
            self._connections.append(conn)
            return conn

    async def _answer(
        self,
        writer: asyncio.StreamWriter,
        conn: Connection,
        status_line: str,
        headers: dict[str, str],
        body: bytes = b"",
        eol: str = "\r\n",
    ) -> None:
        parts = status_line.split()
        conn.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        head = status_line + eol + "".join(f"{k}: {v}{eol}" for k, v in headers.items()) + eol
        writer.write(head.encode("utf-8") + body)
        await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line, req_headers = await self._read_request(reader)
        target = request_line.split(" ")[1] if request_line.count(" ") >= 1 else "/"
        path = target.split("?", 1)[0]
        with self._lock:
            mount = self._mounts.get(target) or self._mounts.get(path)
        conn = self._record(path)
        conn.request_line = request_line
        conn.headers = req_headers
        if mount is None:
            await self._answer(writer, conn, "HTTP/1.0 404 Not Found", {}, b"not found")
            conn.ended = "answered"
            return
        if mount.refuse:
            conn.ended = "refused"
            return
        if mount.auth is not None:
            user, pw = mount.auth
            token = base64.b64encode(f"{user}:{pw}".encode()).decode()
            if req_headers.get("authorization") != f"Basic {token}":
                await self._answer(
                    writer,
                    conn,
                    "HTTP/1.0 401 Unauthorized",
                    {"WWW-Authenticate": 'Basic realm="Icecast2 Server"'},
                    b"You need to authenticate\r\n",
                )
                conn.ended = "answered"
                return
        if mount.redirect is not None:
            code = mount.redirect_status
            location = mount.redirect.replace("{base}", self.base_url)
            await self._answer(
                writer,
                conn,
                f"HTTP/1.0 {code} {_REASONS.get(code, 'Redirect')}",
                {"Location": location, "Content-Length": "0"},
            )
            conn.ended = "answered"
            return
        if mount.body is not None:
            body = mount.body if isinstance(mount.body, bytes) else mount.body.encode()
            body = body.replace(b"{base}", self.base_url.encode())
            headers = {"Content-Type": mount.content_type, "Content-Length": str(len(body))}
            headers.update(mount.headers)
            await self._answer(writer, conn, mount.status_line, headers, body, mount.line_ending)
            conn.ended = "answered"
            return
        parts = mount.status_line.split()
        if len(parts) < 2 or not parts[1].startswith("2"):
            await self._answer(
                writer, conn, mount.status_line, dict(mount.headers), b"", mount.line_ending
            )
            conn.ended = "answered"
            return
        try:
            await self._stream(writer, conn, mount, req_headers)
        finally:
            if not conn.ended:
                conn.ended = "client"

    async def _stream(
        self,
        writer: asyncio.StreamWriter,
        conn: Connection,
        mount: Mount,
        req_headers: dict[str, str],
    ) -> None:
        state = self._state[mount.path]
        number = state.connections
        state.connections += 1
        faulty = mount.faulty_connections is None or number < mount.faulty_connections
        metaint = mount.metaint or 0
        meta_on = bool(metaint) and req_headers.get("icy-metadata", "").strip() == "1"
        conn.metadata = meta_on
        headers = {
            "Content-Type": mount.content_type,
            "icy-name": "Fake radio",
            "icy-pub": "0",
            "icy-br": "128",
        }
        if meta_on:
            headers["icy-metaint"] = str(metaint)
        if mount.chunked:
            headers["Transfer-Encoding"] = "chunked"
        headers.update(mount.headers)
        await self._answer(writer, conn, mount.status_line, headers, b"", mount.line_ending)

        payload = state.payload
        size = len(payload)
        loop = asyncio.get_running_loop()
        if mount.live and mount.byte_rate:
            live_pos = int((loop.time() - state.live_t0) * mount.byte_rate)
            start = max(0, live_pos - mount.replay_bytes)
        else:
            start = max(0, state.position - mount.replay_bytes)
        conn.start = start
        pos = start
        sent = 0
        next_meta = metaint
        last_title: str | bytes | None = None
        rng = random.Random(mount.seed * 1_000_003 + number)
        t0 = loop.time()
        stalled = False
        while True:
            n = rng.randint(mount.chunk_min, mount.chunk_max)
            if faulty and mount.drop_after is not None:
                if sent >= mount.drop_after:
                    conn.ended = "drop"
                    return
                n = min(n, mount.drop_after - sent)
            if faulty and mount.stall_after is not None and not stalled:
                if sent >= mount.stall_after:
                    stalled = True
                    await asyncio.sleep(mount.stall_seconds)
                    if mount.stall_loses:
                        t0 += mount.stall_seconds
                    continue
                n = min(n, mount.stall_after - sent)
            if not size or (not mount.loop and pos >= size):
                if mount.chunked:
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                conn.ended = "eof"
                return
            if not mount.loop:
                n = min(n, size - pos)
            audio = self.stream_bytes(mount.path, pos, n)
            wire = bytearray()
            a = 0
            while a < n:
                if meta_on:
                    until = next_meta - (sent + a)
                    if until == 0:
                        title: str | bytes | None = None
                        if mount.titles:
                            idx = ((pos + a) // mount.title_every) % len(mount.titles)
                            title = mount.titles[idx]
                        if title is not None and (title != last_title or mount.resend_titles):
                            wire += encode_metadata(title)
                            if title != last_title:
                                conn.titles.append((sent + a, decode_title(title)))
                            last_title = title
                        else:
                            wire += b"\0"
                        next_meta += metaint
                        continue
                    take = min(until, n - a)
                else:
                    take = n - a
                wire += audio[a : a + take]
                a += take
            if mount.chunked:
                wire = bytearray(b"%x\r\n" % len(wire)) + wire + b"\r\n"
            writer.write(wire)
            conn.audio += audio
            sent += n
            pos += n
            state.position = pos
            await writer.drain()
            if mount.byte_rate:
                if mount.live:
                    delay = state.live_t0 + pos / mount.byte_rate - loop.time()
                else:
                    delay = t0 + sent / mount.byte_rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
