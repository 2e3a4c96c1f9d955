"""The stream client against the fake server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import math
import random
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from isr.errors import HttpError, SourceError, SourceTimeout
from isr.sources.http import (
    DEFAULT_USER_AGENT,
    HlsFound,
    HttpStatusError,
    StreamResponse,
    open_stream,
    redact_url,
)
from isr.sources.icy import IcyDemuxer
from tests.support.fake_server import FakeStreamServer, Mount

T = TypeVar("T")
PAYLOAD = random.Random(1).randbytes(200_000)
TITLES: list[str | bytes] = [
    "Artist - Song",
    "It's ';' odd; really",
    "Mötley Crüe – Kickstart ♫",
    "Beyoncé - Déjà vu".encode("cp1252"),
]
SECRET = "s3cr3t-p4ss"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def read_n(resp: StreamResponse, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = await resp.read(n - len(buf))
        if not data:
            break
        buf += data
    return bytes(buf)


async def read_all(resp: StreamResponse) -> bytes:
    buf = bytearray()
    while data := await resp.read():
        buf += data
    return bytes(buf)


@pytest.fixture
def srv() -> Iterator[FakeStreamServer]:
    mounts = [
        Mount("/live", payload=PAYLOAD, metaint=1000, titles=TITLES, title_every=5000),
        Mount("/http10", payload=PAYLOAD, status_line="HTTP/1.0 200 OK", line_ending="\n"),
        Mount("/once", payload=PAYLOAD[:30_000], loop=False, status_line="HTTP/1.1 200 OK"),
        Mount("/rel", redirect="/live"),
        Mount("/abs", redirect="{base}/rel", redirect_status=301),
        Mount("/loop-a", redirect="/loop-b"),
        Mount("/loop-b", redirect="/loop-a"),
        Mount("/secure", payload=PAYLOAD, auth=("alice", SECRET)),
        Mount("/list.m3u", body=b"", content_type="audio/x-mpegurl"),  # replaced below
        Mount.pls("/list.pls", "/live"),
        Mount.m3u("/listing", "/list.pls", content_type="audio/mpegurl"),
        Mount("/hls.m3u", body="#EXTM3U\n#EXT-X-VERSION:3\nseg.ts\n", content_type="text/plain"),
        Mount("/apple", body="x", content_type="application/vnd.apple.mpegurl"),
        Mount("/empty.pls", body="[playlist]\n", content_type="audio/x-scpls"),
        Mount("/stall", payload=PAYLOAD, stall_after=3000, stall_seconds=5),
        Mount("/drop", payload=PAYLOAD, drop_after=12_345, faulty_connections=1),
        Mount("/busy", status_line="HTTP/1.0 503 Service Unavailable"),
        Mount("/silent", refuse=True),
        Mount("/huge", payload=PAYLOAD, headers={"X-Pad": "x" * 70_000}),
        Mount("/many", payload=PAYLOAD, headers={f"X-H{i}": "y" * 100 for i in range(700)}),
        Mount(
            "/dup",
            payload=PAYLOAD,
            content_type="Audio/AAC; charset=x",
            headers={"Icy-MetaInt": "bogus", "X-A": "1", "x-a": "2"},
        ),
        Mount("/chunked", payload=PAYLOAD, loop=False, chunked=True, metaint=777, titles=TITLES),
    ]
    mounts[8] = Mount.m3u("/list.m3u", "/rel")
    with FakeStreamServer(*mounts) as s:
        yield s


def test_icy_stream_audio_titles_and_request(srv: FakeStreamServer) -> None:
    async def go() -> tuple[StreamResponse, bytes, list[tuple[int, str]]]:
        async with await open_stream(srv.url("/live"), timeout=5) as resp:
            demux = IcyDemuxer(resp.metaint)
            out = bytearray()
            titles: list[tuple[int, str]] = []
            while len(out) < 60_000:
                audio, found = demux.feed(await resp.read())
                titles += [(len(out) + off, t) for off, t in found]
                out += audio
            return resp, bytes(out), titles

    resp, audio, titles = run(go())
    assert (resp.status, resp.reason) == (200, "OK")
    assert resp.metaint == 1000
    assert resp.content_type == "audio/mpeg"
    assert resp.headers["icy-name"] == "Fake radio"
    conn = srv.wait_connections(1, "/live")[0]
    srv.wait_for(lambda: conn.ended != "")
    assert conn.audio.startswith(audio)
    assert [t for t in conn.titles if t[0] < len(audio)] == titles
    assert {t for _, t in titles} == {
        "Artist - Song",
        "It's ';' odd; really",
        "Mötley Crüe – Kickstart ♫",
        "Beyoncé - Déjà vu",
    }
    assert conn.request_line == "GET /live HTTP/1.0"
    h = conn.headers
    assert h["host"] == f"127.0.0.1:{srv.port}"
    assert h["user-agent"] == DEFAULT_USER_AGENT and not h["user-agent"].startswith("Mozilla")
    assert h["accept"] == "*/*"
    assert h["icy-metadata"] == "1"
    assert h["connection"] == "close"
    assert "authorization" not in h


def test_http10_bare_lf_query_and_no_metadata(srv: FakeStreamServer) -> None:
    async def go() -> tuple[StreamResponse, bytes]:
        async with await open_stream(
            srv.url("/http10?sid=1&x=a b"), icy_metadata=False, timeout=5
        ) as resp:
            return resp, await read_n(resp, 50_000)

    resp, data = run(go())
    assert resp.status == 200 and resp.metaint is None
    conn = srv.wait_connections(1, "/http10")[0]
    assert conn.request_line == "GET /http10?sid=1&x=a%20b HTTP/1.0"
    assert "icy-metadata" not in conn.headers
    assert data == PAYLOAD[:50_000]


def test_http11_status_reads_to_eof(srv: FakeStreamServer) -> None:
    async def go() -> bytes:
        async with await open_stream(srv.url("/once"), timeout=5) as resp:
            data = await read_all(resp)
            assert await resp.read() == b""
            return data

    assert run(go()) == PAYLOAD[:30_000]


def test_header_parsing(srv: FakeStreamServer) -> None:
    async def go() -> StreamResponse:
        async with await open_stream(srv.url("/dup"), timeout=5) as resp:
            return resp

    resp = run(go())
    assert resp.content_type == "audio/aac"
    assert resp.metaint is None  # "bogus" is ignored, not an error
    assert resp.headers["x-a"] == "1, 2"


def test_read_returns_what_is_there_without_filling_n(srv: FakeStreamServer) -> None:
    srv.add(Mount("/slow", payload=PAYLOAD, byte_rate=10_000, chunk_min=100, chunk_max=300))

    async def go() -> list[int]:
        async with await open_stream(srv.url("/slow"), timeout=5) as resp:
            return [len(await resp.read(1 << 20)) for _ in range(5)]

    sizes = run(go())
    # Waiting to fill 1 MiB would take 100 s at this rate: each read returns what came
    # (paced reads take what gathered in about a second).
    assert all(0 < s < 20_000 for s in sizes), sizes


def test_paced_reads_see_a_hang_up_at_once_not_on_the_next_tick() -> None:
    """A live stream is read on a shared tick; a dropped connection must still be
    seen when it happens, or every reconnect would lose up to a tick of audio."""
    closed_at: list[float] = []
    period = 2.0

    def serve(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"ICY 200 OK\r\ncontent-type: audio/mpeg\r\n\r\n" + bytes(3000))
            time.sleep(0.3)
            conn.sendall(bytes(500))  # read on a tick: the reader is paced by now
            # Hang up just after a tick of the reader's grid, the next one 1.8 s away.
            t = time.monotonic()
            time.sleep((math.floor(t / period) + 1) * period + 0.2 - t)
            closed_at.append(time.monotonic())

    async def go() -> tuple[float, bytes]:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            server = threading.Thread(target=serve, args=(listener,), daemon=True)
            server.start()
            port = listener.getsockname()[1]
            async with await open_stream(f"http://127.0.0.1:{port}/", timeout=30) as resp:
                resp.linger = period
                got = b""
                while chunk := await resp.read():
                    got += chunk
                ended = asyncio.get_running_loop().time()
            server.join(5)
            return ended, got

    ended, got = run(go())
    assert got == bytes(3500)
    assert closed_at and 0 <= ended - closed_at[0] < 0.5


def test_redirects_relative_and_absolute(srv: FakeStreamServer) -> None:
    async def go(path: str) -> tuple[str, int | None]:
        async with await open_stream(srv.url(path), timeout=5) as resp:
            return resp.url, resp.metaint

    assert run(go("/rel")) == (srv.url("/live"), 1000)
    assert run(go("/abs")) == (srv.url("/live"), 1000)
    paths = [c.path for c in srv.connections]
    assert paths == ["/rel", "/live", "/abs", "/rel", "/live"]


def test_redirect_loop_and_limit(srv: FakeStreamServer) -> None:
    with pytest.raises(HttpError, match="redirects"):
        run(open_stream(srv.url("/loop-a"), timeout=5))
    assert len(srv.connections) == 6  # the first request and five redirects
    with pytest.raises(HttpError, match="more than 1"):
        run(open_stream(srv.url("/abs"), timeout=5, max_redirects=1))


def test_basic_auth(srv: FakeStreamServer) -> None:
    async def go(url: str, **kw: Any) -> int:
        async with await open_stream(url, timeout=5, **kw) as resp:
            return resp.status

    assert run(go(srv.url("/secure"), username="alice", password=SECRET)) == 200
    assert run(go(srv.url("/secure", userinfo=f"alice:{SECRET}"))) == 200
    token = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert all(c.headers["authorization"] == f"Basic {token}" for c in srv.connections)

    with pytest.raises(HttpStatusError) as err:
        run(go(srv.url("/secure")))
    assert err.value.status == 401 and "401 Unauthorized" in str(err.value)
    with pytest.raises(HttpStatusError) as err:
        run(go(srv.url("/secure", userinfo="alice:wrong-" + SECRET)))
    assert SECRET not in str(err.value) and SECRET not in repr(err.value)
    assert "alice:***@" in str(err.value)


def test_credentials_never_in_response_repr(srv: FakeStreamServer) -> None:
    async def go() -> StreamResponse:
        async with await open_stream(srv.url("/secure", userinfo=f"alice:{SECRET}")) as resp:
            return resp

    resp = run(go())
    assert SECRET not in repr(resp) and SECRET not in resp.url


def test_playlists_resolve(srv: FakeStreamServer) -> None:
    async def go(path: str) -> str:
        async with await open_stream(srv.url(path), timeout=5) as resp:
            assert resp.metaint == 1000
            return resp.url

    assert run(go("/list.m3u")) == srv.url("/live")  # m3u -> redirect -> stream
    assert run(go("/list.pls")) == srv.url("/live")
    assert run(go("/listing")) == srv.url("/live")  # by content type, m3u -> pls -> stream
    with pytest.raises(HttpError, match="redirects or playlists"):
        run(open_stream(srv.url("/list.m3u"), max_redirects=1, timeout=5))
    with pytest.raises(HttpError, match="no http"):
        run(open_stream(srv.url("/empty.pls"), timeout=5))


def test_hls_found(srv: FakeStreamServer) -> None:
    """An HLS playlist, by URL, Content-Type or body, is handed over (HlsFound,
    with the playlist's URL) to the HLS source, not recorded as a stream."""
    before = len(srv.connections)
    with pytest.raises(HlsFound, match="HLS") as found:
        run(open_stream(srv.url("/live.m3u8"), timeout=5))
    assert found.value.url == srv.url("/live.m3u8")
    assert len(srv.connections) == before  # known without connecting
    for path in ("/apple", "/hls.m3u"):
        with pytest.raises(HlsFound, match="HLS") as found:
            run(open_stream(srv.url(path), timeout=5))
        assert found.value.url == srv.url(path)


def test_stall_raises_source_timeout(srv: FakeStreamServer) -> None:
    async def go() -> int:
        got = 0
        async with await open_stream(srv.url("/stall"), timeout=0.5) as resp:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with pytest.raises(SourceTimeout) as err:
                while True:
                    got += len(await resp.read())
            assert 0.4 < loop.time() - t0 < 2.5
            assert "no data for 0.5 s" in str(err.value)
            assert isinstance(err.value, TimeoutError)
            assert await resp.read() == b""
        return got

    assert run(go()) == 3000


def test_header_timeout_when_server_never_answers() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # never accepted: the connect succeeds, no answer comes
        port = listener.getsockname()[1]
        with pytest.raises(SourceTimeout, match="response header"):
            run(open_stream(f"http://127.0.0.1:{port}/x", timeout=0.3))


def test_not_http_is_refused_and_the_connection_closed() -> None:
    said: list[bytes] = []

    def serve(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10)
            conn.recv(4096)
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            said.append(conn.recv(4096))  # b"": the client hung up

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = threading.Thread(target=serve, args=(listener,), daemon=True)
        server.start()
        port = listener.getsockname()[1]
        with pytest.raises(HttpError, match="not an HTTP or ICY status line"):
            run(open_stream(f"http://127.0.0.1:{port}/", timeout=5))
        server.join(10)
    assert said == [b""]


def test_drop_gives_eof_then_reconnect_continues(srv: FakeStreamServer) -> None:
    async def go() -> tuple[bytes, bytes]:
        async with await open_stream(srv.url("/drop"), timeout=5) as resp:
            first = await read_all(resp)
        async with await open_stream(srv.url("/drop"), timeout=5) as resp:
            second = await read_n(resp, 20_000)
        return first, second

    first, second = run(go())
    assert first == PAYLOAD[:12_345]
    assert second == PAYLOAD[12_345:32_345]
    assert srv.connections_to("/drop")[0].ended == "drop"


def test_status_errors(srv: FakeStreamServer) -> None:
    with pytest.raises(HttpStatusError) as err:
        run(open_stream(srv.url("/busy"), timeout=5))
    assert err.value.status == 503 and "503 Service Unavailable" in str(err.value)
    with pytest.raises(HttpStatusError) as err:
        run(open_stream(srv.url("/nowhere"), timeout=5))
    assert err.value.status == 404


def test_closed_without_answer(srv: FakeStreamServer) -> None:
    with pytest.raises(SourceError, match="without answering"):
        run(open_stream(srv.url("/silent"), timeout=5))


@pytest.mark.parametrize("path", ["/huge", "/many"])
def test_header_too_large(srv: FakeStreamServer, path: str) -> None:
    with pytest.raises(HttpError, match="header over"):
        run(open_stream(srv.url(path), timeout=5))


def test_connection_refused_while_paused(srv: FakeStreamServer) -> None:
    srv.pause()
    with pytest.raises(SourceError) as err:
        run(open_stream(srv.url("/live"), timeout=5))
    assert isinstance(err.value.__cause__, ConnectionRefusedError)
    assert str(err.value).endswith("failed: Connection refused")
    srv.resume()

    async def go() -> int:
        async with await open_stream(srv.url("/live"), timeout=5) as resp:
            return resp.status

    assert run(go()) == 200


def test_chunked_is_decoded(srv: FakeStreamServer) -> None:
    async def go() -> tuple[bytes, list[tuple[int, str]]]:
        async with await open_stream(srv.url("/chunked"), timeout=5) as resp:
            demux = IcyDemuxer(resp.metaint)
            out = bytearray()
            titles: list[tuple[int, str]] = []
            while data := await resp.read(3000):
                audio, found = demux.feed(data)
                titles += [(len(out) + o, t) for o, t in found]
                out += audio
            return bytes(out), titles

    audio, titles = run(go())
    conn = srv.connections_to("/chunked")[0]
    assert audio == PAYLOAD == bytes(conn.audio)
    assert titles == conn.titles and titles


def test_chunked_body_cut_inside_a_chunk_is_an_error_not_an_end() -> None:
    """The payload that came is read; then a break, where a close between chunks
    would have been a plain end of the stream."""

    def serve(listener: socket.socket, body: bytes) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)

    async def go(body: bytes) -> tuple[bytes, BaseException | None]:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            server = threading.Thread(target=serve, args=(listener, body), daemon=True)
            server.start()
            port = listener.getsockname()[1]
            got, error = b"", None
            async with await open_stream(f"http://127.0.0.1:{port}/", timeout=5) as resp:
                try:
                    while chunk := await resp.read():
                        got += chunk
                except SourceError as exc:
                    error = exc
            server.join(5)
            return got, error

    got, error = run(go(b"3\r\nabc\r\n10\r\n12345"))
    assert got == b"abc12345"
    assert isinstance(error, HttpError) and "11 bytes short" in str(error)
    assert run(go(b"3\r\nabc\r\n")) == (b"abc", None)


def test_chunked_live_stream_of_small_chunks_keeps_pace(srv: FakeStreamServer) -> None:
    """A read returns one chunk at most; small chunks must not each wait a tick."""
    srv.add(
        Mount(
            "/chunked-live",
            payload=PAYLOAD,
            chunked=True,
            byte_rate=16_000,
            chunk_min=200,
            chunk_max=400,
        )
    )

    async def go() -> tuple[int, float]:
        async with await open_stream(srv.url("/chunked-live"), timeout=5) as resp:
            loop = asyncio.get_running_loop()
            t0, got = loop.time(), 0
            while loop.time() - t0 < 3.5:
                got += len(await resp.read())
            return got, loop.time() - t0

    got, seconds = run(go())
    assert got > 0.8 * 16_000 * seconds


def test_bad_urls_and_user_agent() -> None:
    with pytest.raises(HttpError, match="scheme"):
        run(open_stream("ftp://127.0.0.1/x"))
    with pytest.raises(HttpError, match="Port out of range"):
        run(open_stream("http://127.0.0.1:99999/x"))
    with pytest.raises(ValueError, match="Mozilla"):
        run(open_stream("http://127.0.0.1/", user_agent="Mozilla/5.0"))


def test_redact_url() -> None:
    assert redact_url("http://u:p%40ss@h.example:8000/a?b=1") == "http://u:***@h.example:8000/a?b=1"
    assert redact_url("https://u@h/") == "https://u@h/"
    assert redact_url("http://h/x") == "http://h/x"
    assert redact_url("http://:pw@[::1]:80/") == "http://:***@[::1]:80/"


def test_ipv6_literal() -> None:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    with FakeStreamServer(Mount("/v6", payload=PAYLOAD), host="::1") as v6:

        async def go() -> bytes:
            async with await open_stream(v6.url("/v6"), timeout=5) as resp:
                return await read_n(resp, 1000)

        assert run(go()) == PAYLOAD[:1000]
        assert v6.connections[0].headers["host"] == f"[::1]:{v6.port}"


def test_many_streams_on_one_loop() -> None:
    mounts = [Mount(f"/s{i}", payload=PAYLOAD[:20_000], loop=False, seed=i) for i in range(60)]
    with FakeStreamServer(*mounts) as many:

        async def one(i: int) -> bytes:
            async with await open_stream(many.url(f"/s{i}"), timeout=10) as resp:
                return await read_all(resp)

        async def go() -> list[bytes]:
            return await asyncio.gather(*(one(i) for i in range(60)))

        assert run(go()) == [PAYLOAD[:20_000]] * 60


def _make_cert(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    try:
        import datetime

        from cryptography import x509  # type: ignore[import-not-found,unused-ignore]
        from cryptography.hazmat.primitives import (  # type: ignore[import-not-found,unused-ignore]
            hashes,
            serialization,
        )
        from cryptography.hazmat.primitives.asymmetric import (  # type: ignore[import-not-found,unused-ignore]
            ec,
        )
        from cryptography.x509.oid import NameOID  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither cryptography nor openssl to make a certificate")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True, capture_output=True,
        )  # fmt: skip
        return cert, key
    import ipaddress

    pkey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    c = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pkey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(pkey, hashes.SHA256())
    )
    cert.write_bytes(c.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        pkey.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


def test_https_with_self_signed_cert(tmp_path: Path) -> None:
    cert, key = _make_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    mount = Mount("/tls", payload=PAYLOAD, metaint=500, titles=TITLES, title_every=3000)
    with FakeStreamServer(mount, ssl_context=server_ctx) as tls:
        url = tls.url("/tls")
        assert url.startswith("https://")

        async def go(ctx: ssl.SSLContext | None) -> tuple[bytes, list[tuple[int, str]]]:
            async with await open_stream(url, timeout=5, ssl_context=ctx) as resp:
                demux = IcyDemuxer(resp.metaint)
                out = bytearray()
                titles: list[tuple[int, str]] = []
                while len(out) < 20_000:
                    audio, found = demux.feed(await resp.read())
                    titles += [(len(out) + o, t) for o, t in found]
                    out += audio
                return bytes(out), titles

        audio, titles = run(go(client_ctx))
        conn = tls.wait_connections(1)[0]
        assert conn.audio.startswith(audio) and len(audio) >= 20_000
        assert titles == [t for t in conn.titles if t[0] < len(audio)] and titles

        # The default context verifies, and this certificate is not trusted.
        with pytest.raises(SourceError) as err:
            run(go(None))
        assert isinstance(err.value.__cause__, ssl.SSLError)
        assert "TLS certificate not trusted" in str(err.value)
