"""What stands before every route: the Host check, the cross-origin rule, Basic auth
and its slowing of guessers, bounded connection time and one-line bad-request logs.

Over real sockets on 127.0.0.1, with the server settings ``isr web`` uses."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from isr.config import load
from isr.errors import ConfigError
from isr.web import app as webapp
from isr.web.app import create_app, start_web
from isr.web.guard import (
    AuthFailures,
    cross_origin_refused,
    host_allowed,
    parse_allowed_hosts,
    split_host,
)

# -- pure rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("127.0.0.1:8080", "127.0.0.1"),
        ("[::1]:8080", "::1"),
        ("[::1]", "::1"),
        ("LocalHost.:80", "localhost"),
        ("radio.example", "radio.example"),
    ],
)
def test_split_host(host: str, name: str) -> None:
    assert split_host(host) == name


def test_host_allowed() -> None:
    own = {"studio-pi", "studio-pi.lan"}
    for ok in (
        "127.0.0.1:8080",
        "192.168.1.20",
        "[::1]:8080",
        "[fe80::1%25eth0]:80",
        "localhost:8080",
        "LOCALHOST",
        "app.localhost",
        "studio-pi:8080",
        "Studio-Pi.lan.",
        None,  # HTTP/1.0 without Host: no browser
    ):
        assert host_allowed(ok, own), ok
    for bad in (
        "evil.example:8080",
        "studio-pi.evil.example",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "",
    ):
        assert not host_allowed(bad, own), bad
    assert host_allowed("evil.example", {"*"})
    assert host_allowed("radio.example:443", parse_allowed_hosts("radio.example, other"))


# Go's net/http CrossOriginProtection, case by case (crossorigin_test.go's table).
@pytest.mark.parametrize(
    ("method", "sec_fetch_site", "origin", "refused"),
    [
        ("GET", "cross-site", "http://evil.example", False),
        ("HEAD", "cross-site", None, False),
        ("OPTIONS", "cross-site", None, False),
        ("DELETE", "same-origin", None, False),
        ("DELETE", "none", None, False),  # typed into the address bar, a bookmark
        ("DELETE", "cross-site", None, True),
        ("DELETE", "same-site", None, True),
        ("DELETE", "same-site", "http://127.0.0.1:8080", True),  # the header wins
        ("DELETE", "something-new", None, True),
        ("POST", "cross-site", None, True),
        ("DELETE", None, None, False),  # curl: no browser
        ("DELETE", None, "http://127.0.0.1:8080", False),
        ("DELETE", None, "https://127.0.0.1:8080", False),  # a TLS proxy in front
        ("DELETE", None, "http://127.0.0.1:9999", True),
        ("DELETE", None, "http://evil.example", True),
        ("DELETE", None, "null", True),
        ("PUT", None, "http://evil.example", True),
    ],
)
def test_cross_origin_rule(
    method: str, sec_fetch_site: str | None, origin: str | None, refused: bool
) -> None:
    assert cross_origin_refused(method, sec_fetch_site, origin, "127.0.0.1:8080") is refused


def test_auth_failures_delay_doubles_queues_and_forgets() -> None:
    f = AuthFailures(window=60, base_delay=0.25, max_delay=4)
    assert f.wait_for("a", now=0) == 0.0
    assert [f.failed("a", now=0) for _ in range(3)] == [1, 2, 3]
    assert [f.delay(n) for n in (0, 1, 2, 3, 4, 5, 9)] == [0, 0.25, 0.5, 1, 2, 4, 4]
    # three attempts at once from one address: each waits for the one before
    assert [f.wait_for("a", now=10) for _ in range(3)] == [1.0, 2.0, 3.0]
    assert f.wait_for("b", now=10) == 0.0  # another address is not slowed
    assert f.failures("a", now=10 + 61) == 0  # forgotten after the window
    f.failed("a", now=100)
    f.succeeded("a")
    assert f.wait_for("a", now=100) == 0.0
    small = AuthFailures(max_addresses=2)
    for addr in ("x", "y", "z"):
        small.failed(addr, now=0)
    assert small.failures("x", now=0) == 0 and small.failures("z", now=0) == 1


# -- config -----------------------------------------------------------------------------

SOURCE = "[tone]\ntype = tone\n"


def test_username_without_password_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        load("c.ini", text="[web]\nusername = ann\n" + SOURCE)
    assert (err.value.section, err.value.key) == ("web", "password")
    with pytest.raises(ValueError, match="needs a password"):
        create_app(Path("."), username="ann")
    cfg = load("c.ini", text="[web]\nusername = ann\npassword = pw\n" + SOURCE)
    assert cfg.web.password == "pw"


def test_allowed_hosts_from_config_reach_the_app(tmp_path: Path) -> None:
    cfg = load("c.ini", text="[web]\nallowed_hosts = Radio.example, isr.lan\n" + SOURCE)
    assert cfg.web.allowed_hosts == ("radio.example", "isr.lan")
    assert load("c.ini", text=SOURCE).web.allowed_hosts == ()
    from isr.cli import _web_settings, build_parser

    args = build_parser().parse_args(["web"])
    settings = _web_settings(args, cfg)
    assert settings["allowed_hosts"] == ("radio.example", "isr.lan")
    app = create_app(tmp_path, allowed_hosts=cfg.web.allowed_hosts)
    assert {"radio.example", "isr.lan"} <= app[webapp.STATE].allowed_hosts


def test_check_says_auth_on_and_the_allowed_hosts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from isr.cli import main

    ini = tmp_path / "c.ini"
    ini.write_text("[web]\nusername = ann\npassword = pw\nallowed_hosts = isr.lan\n" + SOURCE)
    assert main(["check", "-c", str(ini)]) == 0
    out = capsys.readouterr().out
    assert "auth=on" in out and "allowed_hosts=isr.lan" in out and "pw" not in out
    ini.write_text("[web]\nusername = ann\n" + SOURCE)
    assert main(["check", "-c", str(ini)]) == 2
    assert "[web]: password: missing" in capsys.readouterr().err


# -- over HTTP --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def served(root: Path, **kwargs: Any) -> AsyncIterator[str]:
    """``isr web``'s own server (start_web) on a free port; yields its base URL."""
    port = _free_port()
    runner = await start_web(root, host="127.0.0.1", port=port, **kwargs)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "recordings"
    r.mkdir()
    for name in ("a.mp3", "b.mp3", "c.mp3", "d.mp3", "e.mp3"):
        (r / name).write_bytes(b"\xff\xfb" + bytes(100))
    return r


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(main())


def test_dns_rebinding_is_refused(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The issue's own request: a foreign Host with a matching Origin deleted a file."""

    async def main() -> None:
        async with served(root) as base, aiohttp.ClientSession() as s:
            evil = {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}
            async with s.delete(base + "/api/files/a.mp3", headers=evil) as r:
                assert r.status == 403
                assert "allowed_hosts" in await r.text()
            for path in ("/", "/api/files", "/stream/b.mp3", "/download/b.mp3"):
                async with s.get(base + path, headers={"Host": "evil.example"}) as r:
                    assert r.status == 403, path
            async with s.get(base + "/healthz", headers={"Host": "evil.example"}) as r:
                assert r.status == 403  # every route, as DESIGN.md says
            port = base.rsplit(":", 1)[1]
            for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
                async with s.get(base + "/api/files", headers={"Host": host}) as r:
                    assert r.status == 200, host
            own = socket.gethostname()
            async with s.get(base + "/api/files", headers={"Host": own}) as r:
                assert r.status == 200
        assert (root / "a.mp3").exists()

    with caplog.at_level(logging.WARNING, logger="isr.web"):
        run(main)
    assert "Host 'evil.example:8080' is not a name of this server" in caplog.text


def test_allowed_hosts_and_star(root: Path) -> None:
    async def main() -> None:
        for allowed, host, status in (
            (("isr.lan",), "ISR.lan:80", 200),
            (("isr.lan",), "x.lan", 403),
            (("*",), "x.lan", 200),
        ):
            async with (
                served(root, allowed_hosts=allowed) as base,
                aiohttp.ClientSession() as s,
                s.get(base + "/api/files", headers={"Host": host}) as r,
            ):
                assert r.status == status, (allowed, host)

    run(main)


def test_cross_origin_rule_over_http(root: Path) -> None:
    """curl needs no forged header; a browser's cross-site request is refused."""

    async def main() -> None:
        async with served(root) as base, aiohttp.ClientSession() as s:
            async with s.delete(base + "/api/files/a.mp3") as r:
                assert r.status == 204  # no Origin, no Sec-Fetch-Site: not a browser
            for headers in (
                {"Sec-Fetch-Site": "cross-site"},
                {"Sec-Fetch-Site": "same-site", "Origin": base},
                {"Origin": "http://evil.example"},
                {"Origin": "null"},
            ):
                async with s.delete(base + "/api/files/b.mp3", headers=headers) as r:
                    assert r.status == 403, headers
            assert (root / "b.mp3").exists()
            same = {"Sec-Fetch-Site": "same-origin", "Origin": base}
            async with s.delete(base + "/api/files/b.mp3", headers=same) as r:
                assert r.status == 204
            async with s.delete(base + "/api/files/c.mp3", headers={"Origin": base}) as r:
                assert r.status == 204  # an older browser: Origin only
            async with s.post(base + "/api/files", headers={"Sec-Fetch-Site": "cross-site"}) as r:
                assert r.status == 403  # any state-changing method
        assert not (root / "a.mp3").exists() and not (root / "c.mp3").exists()

    run(main)


def _basic(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def test_auth_rule_is_the_same_with_auth(root: Path) -> None:
    async def main() -> None:
        async with (
            served(root, username="ann", password="pw") as base,
            aiohttp.ClientSession() as s,
        ):
            async with s.delete(base + "/api/files/a.mp3", headers=_basic("ann", "pw")) as r:
                assert r.status == 204
            cross = {**_basic("ann", "pw"), "Sec-Fetch-Site": "cross-site"}
            async with s.delete(base + "/api/files/b.mp3", headers=cross) as r:
                assert r.status == 403
            async with s.delete(base + "/api/files/b.mp3") as r:
                assert r.status == 401

    run(main)


def test_failed_logins_are_logged_and_slowed(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with (
            served(root, username="ann", password="pw") as base,
            aiohttp.ClientSession() as s,
        ):
            async with s.get(base + "/api/files") as r:
                assert r.status == 401  # a browser's first request: no credentials
            for _ in range(3):
                async with s.get(base + "/api/files", headers=_basic("ann", "x")) as r:
                    assert r.status == 401
            # 3 failures: the next attempt waits delay(3) = 1 s before it is checked,
            # and a second one at once waits for the first: it ends after 2 s.
            t0 = time.monotonic()

            async def attempt() -> int:
                async with s.get(base + "/api/files", headers=_basic("ann", "y")) as r:
                    return r.status

            assert list(await asyncio.gather(attempt(), attempt())) == [401, 401]
            assert time.monotonic() - t0 >= 1.9
            # the right password still gets in (after its turn), and is forgiven
            async with s.get(base + "/api/files", headers=_basic("ann", "pw")) as r:
                assert r.status == 200
            t0 = time.monotonic()
            async with s.get(base + "/api/files", headers=_basic("ann", "pw")) as r:
                assert r.status == 200
            assert time.monotonic() - t0 < 1.0

    with caplog.at_level(logging.INFO, logger="isr.web"):
        run(main)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("401")]
    assert len(lines) == 6, lines
    assert "from 127.0.0.1: no credentials" in lines[0]
    assert all("from 127.0.0.1: wrong user name or password" in ln for ln in lines[1:])
    assert "(5 from this address lately" in lines[-1]
    assert "pw" not in caplog.text and "ann" not in caplog.text


async def _closed_after(port: int, data: bytes, limit: float) -> float:
    """Seconds until the server closes a connection that sent ``data`` and then stalls."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    try:
        writer.write(data)
        await writer.drain()
        while True:
            chunk = await asyncio.wait_for(reader.read(4096), limit)
            if not chunk:
                return time.monotonic() - t0
    except TimeoutError:
        return float("inf")
    finally:
        writer.close()


def test_idle_and_half_sent_connections_are_closed(root: Path) -> None:
    """Before any auth is asked, a silent or dribbling client holds a socket only for
    IDLE_SECONDS (head) or LINGER_SECONDS (a body nobody reads)."""
    limit = max(webapp.IDLE_SECONDS, webapp.LINGER_SECONDS) + 15

    async def main() -> tuple[float, ...]:
        async with served(root, username="ann", password="pw") as base:
            port = int(base.rsplit(":", 1)[1])
            return tuple(
                await asyncio.gather(
                    _closed_after(port, b"", limit),
                    _closed_after(port, b"GET /api/files HTTP/1.1\r\nHost: 127.0.0.1\r\n", limit),
                    _closed_after(
                        port,
                        b"DELETE /api/files/a.mp3 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Length: 100000\r\n\r\nabc",
                        limit,
                    ),
                )
            )

    idle, half_head, half_body = asyncio.run(main())
    assert idle < limit and half_head < limit and half_body < limit, (idle, half_head, half_body)
    assert (root / "a.mp3").exists()


def test_a_malformed_request_line_is_one_warning_line(
    root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> list[bytes]:
        async with served(root) as base:
            port = int(base.rsplit(":", 1)[1])
            answers = []
            for raw in (b"GET / HTTP/1.1 junk\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(raw)
                answers.append(await reader.read(100))
                writer.close()
            return answers

    with caplog.at_level(logging.DEBUG, logger="isr.web"):
        answers = asyncio.run(main())
    assert all(a.startswith(b"HTTP/1.0 400") for a in answers), answers
    bad = [r for r in caplog.records if "Error handling request" in r.getMessage()]
    assert len(bad) == 2
    for record in bad:
        assert record.levelno == logging.WARNING and record.exc_info is None
        assert "from 127.0.0.1: 400" in record.getMessage()
        assert "\n" not in record.getMessage()
