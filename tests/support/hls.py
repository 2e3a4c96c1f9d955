"""Real HLS for tests: ffmpeg's HLS muxer writes a live playlist, Debian's nginx
serves it on 127.0.0.1 (a private config, prefix, pid and logs in the test's own
directory; as root, with ``user root`` so its worker reads pytest's 0700 temp dirs)."""

from __future__ import annotations

import secrets
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from isr.framing.adts import AdtsFramer
from isr.framing.mp3 import Mp3Framer
from isr.hls import fmp4, ts
from tests.support.net import free_port
from tests.support.tools import popen, require_tool, stop_process

NGINX_CONF = """\
user root;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log {prefix}/access.log;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  types {{
    application/vnd.apple.mpegurl m3u8;
    video/mp2t ts;
    video/iso.segment m4s;
    video/mp4 mp4;
    audio/aac aac;
    application/octet-stream key;
  }}
  server {{
    listen 127.0.0.1:{port}{tls};
    root {root};
    location = /.isr-token {{ return 200 "{token}"; }}
{extra}
  }}
}}
"""


class Nginx:
    def __init__(
        self, root: Path, prefix: Path, extra: str = "", tls: tuple[Path, Path] | None = None
    ) -> None:
        """``tls``: (certificate, key) to serve HTTPS with."""
        self.root, self.prefix, self.extra, self.tls = root, prefix, extra, tls
        self.port = free_port()
        self.token = secrets.token_hex(8)
        """Answered at /.isr-token: readiness is this server answering, not another
        one that took the same free port a moment earlier."""
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def start(self) -> None:
        nginx = require_tool("nginx")
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        tls, extra = "", self.extra
        if self.tls is not None:
            tls = " ssl"
            extra = f"    ssl_certificate {self.tls[0]};\n    ssl_certificate_key {self.tls[1]};\n"
            extra += self.extra
        conf.write_text(
            NGINX_CONF.format(
                prefix=self.prefix,
                port=self.port,
                root=self.root,
                extra=extra,
                tls=tls,
                token=self.token,
            )
        )
        self.proc = popen([nginx, "-c", str(conf), "-p", str(self.prefix)])
        deadline = time.monotonic() + 10
        context = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break  # it could not start (a port taken meanwhile): its log says why
            try:
                with urllib.request.urlopen(
                    self.url(".isr-token"), timeout=0.5, context=context
                ) as response:
                    if response.read().decode() == self.token:
                        return
                raise AssertionError(f"another server answers on port {self.port}")
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx did not start: {(self.prefix / 'error.log').read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@contextmanager
def nginx(
    root: Path, prefix: Path, extra: str = "", tls: tuple[Path, Path] | None = None
) -> Iterator[Nginx]:
    server = Nginx(root, prefix, extra, tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


CODECS = {
    "aac": ["-c:a", "aac", "-b:a", "64k"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k"],
}


def hls_writer(
    directory: Path,
    *,
    kind: str = "mpegts",
    codec: str = "aac",
    rate: int = 44100,
    seconds: float = 120,
    extra: tuple[str, ...] = (),
    name: str = "live",
    flags: str = "program_date_time",
    list_size: int = 5,
    frequency: int = 440,
) -> subprocess.Popen[bytes]:
    """ffmpeg writing a live sliding-window playlist in real time (segments of 1 s,
    ``list_size`` listed). Old segments stay on disk, for a test to compare against, unless
    ``flags`` has ``delete_segments``."""
    ffmpeg = require_tool("ffmpeg")
    directory.mkdir(parents=True, exist_ok=True)
    ext = "m4s" if kind == "fmp4" else "ts"
    args = [
        ffmpeg, "-v", "error", "-re", "-f", "lavfi",
        "-i", f"sine=f={frequency}:r={rate}:beep_factor=3", "-t", str(seconds),
        *CODECS[codec], "-f", "hls", "-hls_time", "1", "-hls_list_size", str(list_size),
        "-hls_flags", flags,
        "-hls_segment_type", kind,
        "-hls_fmp4_init_filename", f"{name}_init.mp4",
        "-hls_segment_filename", str(directory / f"{name}_%d.{ext}"),
        *extra, str(directory / f"{name}.m3u8"),
    ]  # fmt: skip
    return popen(args, cwd=directory)


def served_frames(directory: Path, name: str = "live", key: bytes | None = None) -> list[bytes]:
    """The audio frames of every segment on disk, in sequence order (one list)."""
    from isr.hls.crypto import decrypt, sequence_iv

    segs = sorted(
        (p for p in directory.glob(f"{name}_*") if p.stem.rsplit("_", 1)[1].isdigit()),
        key=lambda p: int(p.stem.rsplit("_", 1)[1]),
    )
    init = directory / f"{name}_init.mp4"
    track = fmp4.parse_init(init.read_bytes()) if init.exists() else None
    frames: list[bytes] = []
    for p in segs:
        data = p.read_bytes()
        if key is not None:
            data = decrypt(data, key, sequence_iv(int(p.stem.rsplit("_", 1)[1])))
        if track is not None:
            es, codec = fmp4.demux(data, track).data, "aac"
        else:
            got = ts.demux(data)
            es, codec = got.data, got.codec or "aac"
        framer = AdtsFramer() if codec == "aac" else Mp3Framer()
        frames += [f.data for f in framer.feed(es) + framer.flush()]
    return frames


def file_frames(path: Path) -> list[bytes]:
    framer = AdtsFramer() if path.suffix == ".aac" else Mp3Framer()
    return [f.data for f in framer.feed(path.read_bytes()) + framer.flush()]


def contiguous_in(run: list[bytes], served: list[bytes]) -> int:
    """Where ``run`` sits in ``served`` as one unbroken slice (it must)."""
    assert run, "nothing recorded"
    for i in range(len(served) - len(run) + 1):
        if served[i] == run[0] and served[i : i + len(run)] == run:
            return i
    raise AssertionError(f"{len(run)} recorded frames are no slice of {len(served)} served")


def wait_segments(directory: Path, n: int, name: str = "live", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    playlist = directory / f"{name}.m3u8"
    while time.monotonic() < deadline:
        if playlist.exists() and playlist.read_text().count("#EXTINF") >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"ffmpeg wrote fewer than {n} segments")


@dataclass
class Entry:
    """One segment of a playlist ffmpeg wrote."""

    sequence: int
    uri: str
    extinf: str
    date: str | None


def read_playlist(path: Path) -> tuple[int, list[Entry]]:
    """(target duration, segments) of a playlist ffmpeg wrote (empty if none yet)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 1, []
    target, seq, date, extinf = 1, 0, None, ""
    out: list[Entry] = []
    for line in lines:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            seq = int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = line.split(":", 1)[1]
        elif line.startswith("#EXTINF:"):
            extinf = line
        elif line and not line.startswith("#"):
            out.append(Entry(seq + len(out), line, extinf, date))
            date = None
    return target, out


class Republisher:
    """A thread that serves ``out`` from what ffmpeg writes to ``src`` (the same
    directory), rewritten every 0.1 s as a live origin would: ``stall()`` freezes
    it (no new segment), ``jump(seconds)`` moves the program date of every segment
    from the next one on, ``splice(other)`` goes on, after an
    ``EXT-X-DISCONTINUITY``, with the segments of another playlist (numbered on)."""

    def __init__(self, directory: Path, src: str = "live.m3u8", out: str = "pub.m3u8") -> None:
        self.directory, self.src, self.out = directory, src, out
        self.entries: list[Entry] = []
        """Every segment published, in order (sequence = its place)."""
        self.discontinuity: int | None = None
        self.frozen = threading.Event()
        self.shift_from: int | None = None
        self.shift = 0.0
        self._seen: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def __enter__(self) -> Republisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def stall(self, frozen: bool = True) -> None:
        if frozen:
            self.frozen.set()
        else:
            self.frozen.clear()

    def jump(self, seconds: float) -> int:
        """The program dates jump by ``seconds`` from the next segment published on."""
        with self._lock:
            self.shift_from, self.shift = len(self.entries), seconds
            return self.shift_from

    def splice(self, src: str) -> int:
        """From the next segment on, publish those of ``src`` (new ones only)."""
        with self._lock:
            _, listed = read_playlist(self.directory / src)
            self._seen[src] = max((e.sequence for e in listed), default=-1)
            self.src = src
            self.discontinuity = len(self.entries)
            return self.discontinuity

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            if not self.frozen.is_set():
                with self._lock:
                    self._publish()

    def _publish(self) -> None:
        target, listed = read_playlist(self.directory / self.src)
        seen = self._seen.get(self.src, -1)
        for e in listed:
            if e.sequence > seen:
                self.entries.append(Entry(len(self.entries), e.uri, e.extinf, e.date))
                self._seen[self.src] = e.sequence
        window = self.entries[-10:]
        if not window:
            return
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{window[0].sequence}",
        ]
        if self.discontinuity is not None and window[0].sequence > self.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY-SEQUENCE:1")
        for e in window:
            if e.sequence == self.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if e.date is not None:
                date = e.date
                if self.shift_from is not None and e.sequence >= self.shift_from:
                    moved = datetime.strptime(date, "%Y-%m-%dT%H:%M:%S.%f%z")
                    moved += timedelta(seconds=self.shift)
                    date = moved.isoformat(timespec="milliseconds")
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{date}")
            lines += [e.extinf, e.uri]
        tmp = self.directory / (self.out + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.directory / self.out)

    def frames(self) -> list[bytes]:
        """The audio frames of every segment published, in order."""
        return self.frames_of(self.directory, self.entries)

    @staticmethod
    def frames_of(directory: Path, entries: list[Entry]) -> list[bytes]:
        frames: list[bytes] = []
        for e in entries:
            got = ts.demux((directory / e.uri).read_bytes())
            framer = AdtsFramer() if (got.codec or "aac") == "aac" else Mp3Framer()
            frames += [f.data for f in framer.feed(got.data) + framer.flush()]
        return frames
