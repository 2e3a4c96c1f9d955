"""A real Debian `icecast2` on 127.0.0.1, fed by real `ffmpeg` source clients.

Icecast refuses to run as root. Rather than its `<changeowner>` switch, a root test run
starts it as the icecast2 user directly (Popen user=/group=): the switch would clear the
kernel's parent-death signal, so a SIGKILLed pytest would orphan the server, whereas
dropping privileges before exec keeps it. Either way icecast2 cannot reach pytest's 0700
tmp_path, so its config and logs live in a directory it owns under a world-traversable
path, /tmp/isr-icecast-XXXX by default.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from tests.support.net import free_port as free_port  # tests import it from here too
from tests.support.tools import kill_process, popen, require_tool, stop_process

ICECAST_USER = "icecast2"
ICECAST_GROUP = "icecast"
SHARE = Path("/usr/share/icecast2")

# Strong references to everything running, so interpreter exit can stop what a crashed
# test left behind (a weak set would let a dropped object orphan its process).
_LIVE: set[Icecast | Feeder] = set()


@atexit.register
def _stop_everything() -> None:
    for thing in list(_LIVE):
        with contextlib.suppress(Exception):
            thing.close() if isinstance(thing, Icecast) else thing.kill()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


def _traversable_by_others(path: Path) -> bool:
    """True when a different user can reach `path` (every ancestor has o+x)."""
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _mount(mount: str) -> str:
    return mount if mount.startswith("/") else "/" + mount


class Icecast:
    """One private Icecast server; use as a context manager or call start()/close()."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        burst_size: int = 65535,
        port: int | None = None,
        source_password: str = "isr-source-pw",
        admin_password: str = "isr-admin-pw",
        sources: int = 200,
        clients: int = 2000,
    ) -> None:
        self.binary = require_tool("icecast2")
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="isr-icecast-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.burst_size = burst_size
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.source_password = source_password
        self.admin_password = admin_password
        self.sources = sources
        self.clients = clients
        self.as_root = os.geteuid() == 0
        self._own_logdir = False
        self.logdir = self._make_logdir()
        self.config_path = self.logdir / "icecast.xml"
        self.stdout_path = self.workdir / "icecast.stdout"
        self.proc: subprocess.Popen[bytes] | None = None
        self.feeders: list[Feeder] = []
        self.token = f"isr-tests-{secrets.token_hex(8)}"
        """This server's <location>: readiness is an answer naming it, so that another
        test's server that took the same free port a moment earlier is not taken
        for this one (which then fails to bind, and the test meets a refused port)."""
        _LIVE.add(self)

    # -- set-up -------------------------------------------------------------------------

    def _make_logdir(self) -> Path:
        """The directory icecast2 itself reads its config from and writes its logs to."""
        if self._own_workdir:
            self.workdir.chmod(0o755)  # mkdtemp makes it 0700
        if not self.as_root or _traversable_by_others(self.workdir):
            logdir = self.workdir / "run"
            logdir.mkdir(exist_ok=True)
        else:  # e.g. pytest's tmp_path (0700): icecast2 could never reach it
            logdir = Path(tempfile.mkdtemp(prefix="isr-icecast-run-"))
            self._own_logdir = True
        if self.as_root:
            logdir.chmod(0o755)
            user = pwd.getpwnam(ICECAST_USER)
            os.chown(logdir, user.pw_uid, user.pw_gid)
        return logdir

    @property
    def error_log(self) -> Path:
        """Icecast's own error log: its tail belongs in every failure message."""
        return self.logdir / "error.log"

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the error log and of icecast's stdout/stderr."""
        return (
            f"--- {self.error_log} ---\n{_tail(self.error_log, lines)}\n"
            f"--- {self.stdout_path} ---\n{_tail(self.stdout_path, lines)}"
        )

    def _write_config(self) -> None:
        src_pw = escape(self.source_password)
        adm_pw = escape(self.admin_password)
        self.config_path.write_text(
            f"""<icecast>
  <location>{self.token}</location>
  <admin>isr@localhost</admin>
  <hostname>127.0.0.1</hostname>
  <fileserve>0</fileserve>
  <limits>
    <clients>{self.clients}</clients>
    <sources>{self.sources}</sources>
    <queue-size>1048576</queue-size>
    <client-timeout>30</client-timeout>
    <header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout>
    <burst-on-connect>{1 if self.burst_size > 0 else 0}</burst-on-connect>
    <burst-size>{self.burst_size}</burst-size>
  </limits>
  <authentication>
    <source-password>{src_pw}</source-password>
    <relay-password>{adm_pw}</relay-password>
    <admin-user>admin</admin-user>
    <admin-password>{adm_pw}</admin-password>
  </authentication>
  <listen-socket>
    <port>{self.port}</port>
    <bind-address>127.0.0.1</bind-address>
  </listen-socket>
  <paths>
    <basedir>{SHARE}</basedir>
    <logdir>{self.logdir}</logdir>
    <webroot>{SHARE / "web"}</webroot>
    <adminroot>{SHARE / "admin"}</adminroot>
  </paths>
  <logging>
    <accesslog>access.log</accesslog>
    <errorlog>error.log</errorlog>
    <loglevel>3</loglevel>
    <logsize>10000</logsize>
  </logging>
</icecast>
"""
        )

    # -- life cycle ---------------------------------------------------------------------

    def _drop_privileges(self) -> dict[str, Any]:
        if not self.as_root:
            return {}
        return {"user": ICECAST_USER, "group": ICECAST_GROUP, "extra_groups": []}

    def start(self, timeout: float = 10.0) -> Icecast:
        """Start the server and wait until it answers; retry a stolen free port."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3
        for attempt in range(attempts):
            self._write_config()
            with self.stdout_path.open("ab") as out:
                self.proc = popen(
                    [self.binary, "-c", str(self.config_path)],
                    **self._drop_privileges(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                self.wait_ready(timeout)
                return self
            except RuntimeError:
                self.stop()
                if attempt == attempts - 1:
                    raise
                self.port = free_port()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Stop the server and every feeder it started (they would lose it anyway)."""
        for feeder in self.feeders:
            feeder.stop()
        self.feeders.clear()
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def restart(self, timeout: float = 10.0) -> Icecast:
        """Stop and start again on the same port (listeners and sources are dropped)."""
        self.stop()
        self._fixed_port = True
        return self.start(timeout)

    def close(self) -> None:
        """stop(), then remove the directories this object created."""
        self.stop()
        if self._own_logdir:
            shutil.rmtree(self.logdir, ignore_errors=True)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self) -> Icecast:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the status page answers; raise with the log tail if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise RuntimeError(
                    f"icecast2 exited ({code}) on port {self.port}\n{self.log_tail()}"
                )
            try:
                # Valid JSON only once the global stats exist: then the server is settled;
                # and it must be this one, by its <location>.
                stats = json.loads(self._get("/status-json.xsl", timeout=1.0))["icestats"]
                if stats.get("location") == self.token:
                    return
                raise RuntimeError(f"another server answers on port {self.port}")
            except (OSError, urllib.error.URLError, ValueError, KeyError, TypeError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"icecast2 not ready after {timeout} s\n{self.log_tail()}")
            time.sleep(0.05)

    # -- addresses ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, mount: str) -> str:
        """Where a listener (the recorder) connects."""
        return self.base_url + _mount(mount)

    def source_url(self, mount: str) -> str:
        """Where ffmpeg publishes: icecast://source:PASS@127.0.0.1:PORT/mount."""
        pw = urllib.parse.quote(self.source_password, safe="")
        return f"icecast://source:{pw}@127.0.0.1:{self.port}{_mount(mount)}"

    # -- status and admin ---------------------------------------------------------------

    def _get(self, path: str, *, admin: bool = False, timeout: float = 5.0) -> bytes:
        request = urllib.request.Request(self.base_url + path)
        if admin:
            token = base64.b64encode(f"admin:{self.admin_password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            return body

    def status_json(self) -> dict[str, Any]:
        """The public /status-json.xsl, parsed (what a monitoring tool would read)."""
        status: dict[str, Any] = json.loads(self._get("/status-json.xsl"))
        return status

    def mounts(self) -> dict[str, dict[str, Any]]:
        """The live mounts with all their stats, keyed by mount path ("/a.mp3").

        Read from the admin XML stats rather than /status-json.xsl: Icecast 2.4.4's JSON
        is invalid for a moment after start and hides counters such as total_bytes_read.
        Digit-only values become ints, as in the JSON.
        """
        root = ElementTree.fromstring(self._get("/admin/stats", admin=True))
        found: dict[str, dict[str, Any]] = {}
        for source in root.iter("source"):
            fields: dict[str, Any] = {}
            for child in source:
                text = child.text or ""
                fields[child.tag] = int(text) if text.isdigit() else text
            found[source.get("mount", "")] = fields
        return found

    def wait_mount(self, mount: str, timeout: float = 10.0, *, present: bool = True) -> None:
        """Block until `mount` is listed (or, with present=False, gone)."""
        mount = _mount(mount)
        deadline = time.monotonic() + timeout
        while (mount in self.mounts()) != present:
            if time.monotonic() > deadline:
                state = "appear" if present else "go away"
                raise TimeoutError(
                    f"mount {mount} did not {state} in {timeout} s\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def set_title(self, mount: str, title: str) -> None:
        """Change the ICY StreamTitle of an MP3/AAC mount through the admin API."""
        query = urllib.parse.urlencode({"mount": _mount(mount), "mode": "updinfo", "song": title})
        self._get(f"/admin/metadata?{query}", admin=True)

    def kill_source(self, mount: str) -> None:
        """Drop the source of `mount` from the server side (its listeners lose the stream)."""
        query = urllib.parse.urlencode({"mount": _mount(mount)})
        self._get(f"/admin/killsource?{query}", admin=True)

    # -- sources ------------------------------------------------------------------------

    def feed(
        self,
        media: Path,
        mount: str,
        *,
        fmt: str,
        content_type: str,
        realtime: bool = True,
        extra_args: Sequence[str] = (),
        input_args: Sequence[str] = (),
        wait: bool = True,
        timeout: float = 10.0,
    ) -> Feeder:
        """Publish `media` on `mount` with `ffmpeg -c copy` and wait until the mount is live.

        `fmt` is ffmpeg's muxer ("mp3", "adts", "ogg", "opus"); `extra_args` are output
        options, `input_args` input options (e.g. ["-ss", "2"]).
        """
        if not self.running:
            raise RuntimeError("icecast is not running")
        feeder = Feeder(
            self,
            media,
            _mount(mount),
            fmt=fmt,
            content_type=content_type,
            realtime=realtime,
            extra_args=extra_args,
            input_args=input_args,
        )
        self.feeders.append(feeder)
        if wait:
            feeder.wait_live(timeout)
        return feeder


class Feeder:
    """One `ffmpeg` source client publishing a file on one mount."""

    def __init__(
        self,
        server: Icecast,
        media: Path,
        mount: str,
        *,
        fmt: str,
        content_type: str,
        realtime: bool = True,
        extra_args: Sequence[str] = (),
        input_args: Sequence[str] = (),
    ) -> None:
        self.server = server
        self.media = media
        self.mount = mount
        safe = mount.strip("/").replace("/", "_") or "root"
        self.log_path = server.workdir / f"feed-{safe}-{time.monotonic_ns()}.log"
        muxer_opts: list[str] = []
        if fmt == "mp3":
            # A live stream carries neither an ID3v2 tag nor a Xing/Info frame.
            muxer_opts = ["-id3v2_version", "0", "-write_xing", "0"]
        self.args = [
            require_tool("ffmpeg"),
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "warning",
            *(["-re"] if realtime else []),
            *input_args,
            "-i",
            str(media),
            "-map",
            "0:a",
            "-c",
            "copy",
            *muxer_opts,
            *extra_args,
            "-f",
            fmt,
            "-content_type",
            content_type,
            server.source_url(mount),
        ]
        with self.log_path.open("wb") as log:
            self.proc = popen(self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        _LIVE.add(self)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return f"--- {self.log_path} ---\n{_tail(self.log_path, lines)}"

    def _mounts(self) -> dict[str, dict[str, Any]]:
        try:
            return self.server.mounts()
        except OSError as exc:  # URLError too: say what the server itself said
            raise RuntimeError(
                f"icecast on port {self.server.port} stopped answering ({exc}; "
                f"running: {self.server.running})\n{self.server.log_tail()}"
            ) from exc

    def wait_live(self, timeout: float = 10.0) -> None:
        """Block until the mount is listed; raise with ffmpeg's and icecast's logs if not."""
        deadline = time.monotonic() + timeout
        while self.mount not in self._mounts():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ffmpeg feeding {self.mount} exited ({self.proc.returncode})\n"
                    f"{self.log_tail()}\n{self.server.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"mount {self.mount} not live after {timeout} s\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for ffmpeg to finish the file (e.g. realtime=False feeds)."""
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Graceful stop: ffmpeg closes its output, so Icecast sees a clean source end."""
        stop_process(self.proc)
        _LIVE.discard(self)

    def kill(self) -> None:
        """SIGKILL: the source vanishes mid-frame, like a crashed encoder."""
        kill_process(self.proc)
        _LIVE.discard(self)


def listen(
    url: str,
    nbytes: int,
    *,
    icy_metadata: bool = False,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """A plain-socket HTTP/1.0 listener: (status, lower-cased headers, first `nbytes`).

    Returns fewer bytes when the stream ends or `timeout` seconds pass first.

    Deliberately not urllib: it shows the raw status line and headers, and reads exactly
    what a minimal stream client would.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    request = (
        f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: isr-tests\r\n"
    )
    if icy_metadata:
        request += "Icy-MetaData: 1\r\n"
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall((request + "\r\n").encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"{url}: closed before headers end: {buffer!r}")
            buffer += chunk
        head, _, body = buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        while len(body) < nbytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(min(65536, nbytes - len(body)))
            except TimeoutError:
                break
            if not chunk:
                break
            body += chunk
    return status, headers, body[:nbytes]


def split_icy(data: bytes, metaint: int) -> tuple[bytes, list[bytes]]:
    """Separate an ICY stream read from its start into (audio, metadata blocks)."""
    audio = bytearray()
    blocks: list[bytes] = []
    pos = 0
    while pos < len(data):
        audio += data[pos : pos + metaint]
        pos += metaint
        if pos >= len(data):
            break
        length = data[pos] * 16
        if length:
            blocks.append(data[pos + 1 : pos + 1 + length].rstrip(b"\0"))
        pos += 1 + length
    return bytes(audio), blocks
