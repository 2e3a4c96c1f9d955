"""The source clients stations really use — liquidsoap, ices2, ezstream, darkice —
feeding the tests' private Icecast (``tests.support.icecast``) from tagged local tracks
(darkice: from the tests' ALSA card, ``tests.support.alsa``).

ffmpeg as a source client sends one clean logical stream; these clients do what real
stations do: a new Ogg link at every track (liquidsoap, ices2, ezstream), a zero-byte
packet at a link's end (liquidsoap Opus), a FLAC mapping header that miscounts its
header packets (liquidsoap Ogg FLAC), a new rate and channel count per track (ices2),
and files sent byte for byte with their ID3v2/ID3v1 tags and Info frame (ezstream).

Tracks are generated at test time (ffmpeg lavfi, each tagged) and played back to back
from a playlist, so track changes happen while ISR records. Every client talks only
to the Icecast on 127.0.0.1 and runs in its own directory under the server's workdir
(liquidsoap, ices2, ezstream and darkice run as whoever runs the tests; only Icecast
needs another user).

Versions these were written against (Debian 12): liquidsoap 2.1.3, ices2 2.0.3,
ezstream 1.0.2, darkice 1.3.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from tests.support.icecast import Icecast
from tests.support.tools import popen, require_tool, stop_process

LONG_COMMENT = 3000
"""A COMMENT tag this long spans a dozen lacing segments of its header page. Not for
liquidsoap's MP3/AAC/FLAC mounts: it sends every tag in the query of its ICY title
update, and Icecast 2.4.4 drops a request line that long without an answer (liquidsoap
logs "Metadata update may have failed ... Connection reset by peer")."""
PAGE_SPANNING_COMMENT = 70000
"""A COMMENT tag this long makes a comment header longer than one Ogg page (64 KiB).
Not for liquidsoap 2.1.3: a track tagged so stalls its clock for ~25 s at 100 % CPU,
and Icecast drops the source."""

_LIVE: set[SourceClient] = set()


@atexit.register
def _stop_everything() -> None:
    for client in list(_LIVE):
        with contextlib.suppress(Exception):
            client.stop()


@dataclass(frozen=True)
class Track:
    """One tagged track of a playlist."""

    path: Path
    artist: str
    title: str
    seconds: float
    sample_rate: int
    channels: int

    @property
    def stream_title(self) -> str:
        """The title ISR reports for it: ``ARTIST - TITLE``."""
        return f"{self.artist} - {self.title}"


_CODEC_ARGS: dict[str, list[str]] = {
    "flac": ["-c:a", "flac", "-f", "flac"],
    "mp3": ["-c:a", "libmp3lame", "-b:a", "128k", "-id3v2_version", "3", "-write_id3v1", "1"],
    "vorbis": ["-c:a", "libvorbis", "-q:a", "2", "-page_duration", "250000", "-f", "ogg"],
    "opus": ["-c:a", "libopus", "-b:a", "64k", "-page_duration", "250000", "-f", "ogg"],
}
_EXT = {"flac": ".flac", "mp3": ".mp3", "vorbis": ".ogg", "opus": ".opus"}


def make_tracks(
    directory: Path,
    kind: str,
    seconds: Sequence[float],
    *,
    rates: Sequence[int] = (44100,),
    channels: Sequence[int] = (2,),
    comments: Sequence[int] = (LONG_COMMENT,),
) -> list[Track]:
    """One tagged track of ``kind`` per entry of ``seconds``: a tone of its own pitch,
    rate and channel count taken in turn from ``rates`` and ``channels``.

    Tags: ARTIST, TITLE and a COMMENT whose length is taken in turn from ``comments``
    (0: none); MP3 carries them as ID3v2.3 and ID3v1.
    """
    ffmpeg = require_tool("ffmpeg")
    directory.mkdir(parents=True, exist_ok=True)
    tracks = []
    for i, length in enumerate(seconds):
        rate = 48000 if kind == "opus" else rates[i % len(rates)]
        ch = channels[i % len(channels)]
        expr = f"0.3*sin(2*PI*{330 + 110 * i}*t)"
        path = directory / f"track{i}-{rate}-{ch}{_EXT[kind]}"
        track = Track(path, "Band", f"Track {i}", length, rate, ch)
        tags = ["-metadata", f"artist={track.artist}", "-metadata", f"title={track.title}"]
        size = comments[i % len(comments)]
        if size:
            notes = f"track {i} liner notes " * (size // 20 + 1)
            tags += ["-metadata", "comment=" + notes[:size]]
        source = f"aevalsrc='{'|'.join([expr] * ch)}':s={rate}:d={length}"
        args = [ffmpeg, "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source]
        args += ["-ac", str(ch), *tags, *_CODEC_ARGS[kind], str(path)]
        subprocess.run(args, check=True, capture_output=True, timeout=60)
        tracks.append(track)
    return tracks


def write_playlist(path: Path, tracks: Sequence[Track]) -> Path:
    path.write_text("".join(f"{t.path}\n" for t in tracks))
    return path


class SourceClient:
    """One client process; stop() ends it as a station would (SIGTERM, then SIGKILL)."""

    def __init__(
        self, name: str, args: list[str], workdir: Path, *, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.args = args
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        with self.log_path.open("ab") as log:
            self.proc = popen(
                args,
                cwd=workdir,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _LIVE.add(self)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = "(no log)"
        return f"--- {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])

    def wait_live(self, server: Icecast, mounts: Sequence[str], timeout: float = 20.0) -> None:
        """Block until every mount is listed; raise with both logs if not."""
        deadline = time.monotonic() + timeout
        while not all(m in server.mounts() for m in mounts):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode})\n"
                    f"{self.log_tail()}\n{server.log_tail()}"
                )
            if time.monotonic() > deadline:
                live = sorted(server.mounts())
                raise TimeoutError(
                    f"{self.name}: mounts {list(mounts)} not all live after {timeout} s "
                    f"(live: {live})\n{self.log_tail()}\n{server.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        stop_process(self.proc)
        _LIVE.discard(self)


def _client_dir(server: Icecast, name: str) -> Path:
    path = server.workdir / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _liq_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


LIQUIDSOAP_ENCODERS: dict[str, tuple[str, str]] = {
    "opus": ("%opus(bitrate=64, samplerate=48000, channels=2)", "audio/ogg"),
    "oggflac": (
        "%ogg(%flac(samplerate=44100, channels=2, compression=5, bits_per_sample=16))",
        "audio/ogg",
    ),
    "vorbis": ("%vorbis(samplerate=44100, channels=2, quality=0.3)", "audio/ogg"),
    "mp3": ("%mp3(bitrate=128, samplerate=44100, stereo=true)", "audio/mpeg"),
    "flac": (
        "%flac(samplerate=44100, channels=2, compression=5, bits_per_sample=16)",
        "audio/flac",
    ),
    "aac": ('%ffmpeg(format="adts", %audio(codec="aac", b="128k", ar=44100, ac=2))', "audio/aac"),
}
"""Format -> (liquidsoap 2.1 encoder, Content-Type): AAC goes through its ffmpeg encoder."""


def liquidsoap_script(server: Icecast, playlist: Path, outputs: dict[str, str]) -> str:
    """A liquidsoap 2.1 script playing ``playlist`` in order, in a loop, to each mount
    of ``outputs`` (mount -> format of ``LIQUIDSOAP_ENCODERS``).

    2.1 syntax: ``settings.x.y.set(v)`` (2.0's ``set("x.y", v)`` is gone) and encoder
    literals with named parameters. ``fallible=true`` rather than ``mksafe``: a blank
    track of silence before the playlist is ready would be one more track change.
    """
    lines = [
        "settings.init.allow_root.set(true)",  # tests run as root in CI containers
        "settings.log.stdout.set(true)",
        "settings.log.file.set(false)",
        "settings.log.level.set(3)",
        f'radio = playlist(mode="normal", reload_mode="never", {_liq_string(str(playlist))})',
    ]
    for mount, fmt in outputs.items():
        encoder, content_type = LIQUIDSOAP_ENCODERS[fmt]
        lines.append(
            f'output.icecast({encoder}, fallible=true, host="127.0.0.1", port={server.port}, '
            f"password={_liq_string(server.source_password)}, mount={_liq_string(mount)}, "
            f'format="{content_type}", radio)'
        )
    return "\n".join(lines) + "\n"


def start_liquidsoap(
    server: Icecast, tracks: Sequence[Track], outputs: dict[str, str], *, name: str = "liquidsoap"
) -> SourceClient:
    """One liquidsoap encoding the playlist once for every mount in ``outputs``."""
    binary = require_tool("liquidsoap")
    workdir = _client_dir(server, name)
    playlist = write_playlist(workdir / "playlist.m3u", tracks)
    script = workdir / "radio.liq"
    script.write_text(liquidsoap_script(server, playlist, outputs))
    client = SourceClient(name, [binary, str(script)], workdir)
    client.wait_live(server, list(outputs), timeout=30.0)
    return client


def start_ices2(
    server: Icecast, tracks: Sequence[Track], mount: str, *, name: str = "ices2"
) -> SourceClient:
    """ices2 sending Ogg Vorbis files as they are (no ``<encode>``): each track is a
    new link, with the rate and channel count of its file."""
    binary = require_tool("ices2")
    workdir = _client_dir(server, name)
    playlist = write_playlist(workdir / "playlist.txt", tracks)
    config = workdir / "ices.xml"
    config.write_text(
        f"""<?xml version="1.0"?>
<ices>
  <background>0</background>
  <logpath>{escape(str(workdir))}</logpath>
  <logfile>ices-own.log</logfile>
  <logsize>2048</logsize>
  <loglevel>3</loglevel>
  <consolelog>1</consolelog>
  <stream>
    <metadata><name>ISR tests</name><genre>test</genre><description>ices2</description></metadata>
    <input>
      <module>playlist</module>
      <param name="type">basic</param>
      <param name="file">{escape(str(playlist))}</param>
      <param name="random">0</param>
      <param name="restart-after-reread">0</param>
      <param name="once">0</param>
    </input>
    <instance>
      <hostname>127.0.0.1</hostname>
      <port>{server.port}</port>
      <password>{escape(server.source_password)}</password>
      <mount>{escape(mount)}</mount>
      <yp>0</yp>
    </instance>
  </stream>
</ices>
"""
    )
    client = SourceClient(name, [binary, str(config)], workdir)
    client.wait_live(server, [mount])
    return client


def start_ezstream(
    server: Icecast, tracks: Sequence[Track], mount: str, fmt: str, *, name: str = "ezstream"
) -> SourceClient:
    """ezstream sending each file byte for byte (no encoder): ``fmt`` is ``MP3`` or
    ``Ogg``. MP3 files keep their ID3v2 and ID3v1 tags and their Info frame; the
    titles come from the tags, as ICY metadata (MP3) or in the file's own comments."""
    binary = require_tool("ezstream")
    workdir = _client_dir(server, name)
    playlist = write_playlist(workdir / "playlist.m3u", tracks)
    config = workdir / "ezstream.xml"
    config.write_text(
        f"""<?xml version="1.0" encoding="UTF-8"?>
<ezstream>
  <servers>
    <server>
      <protocol>HTTP</protocol>
      <hostname>127.0.0.1</hostname>
      <port>{server.port}</port>
      <password>{escape(server.source_password)}</password>
      <tls>None</tls>
    </server>
  </servers>
  <streams>
    <stream>
      <mountpoint>{escape(mount)}</mountpoint>
      <format>{fmt}</format>
    </stream>
  </streams>
  <intakes>
    <intake>
      <type>playlist</type>
      <filename>{escape(str(playlist))}</filename>
      <stream_once>No</stream_once>
    </intake>
  </intakes>
  <metadata>
    <format_str>@a@ - @t@</format_str>
  </metadata>
</ezstream>
"""
    )
    config.chmod(0o600)  # ezstream refuses a config others may read (it holds a password)
    client = SourceClient(name, [binary, "-c", str(config)], workdir)
    client.wait_live(server, [mount])
    return client


DARKICE_FORMATS = ("mp3", "vorbis", "opus")


def start_darkice(
    server: Icecast,
    outputs: dict[str, str],
    *,
    device: str,
    alsa_env: dict[str, str],
    sample_rate: int = 48000,
    channels: int = 2,
    name: str = "darkice",
) -> SourceClient:
    """darkice capturing ALSA PCM ``device`` (the tests' card: ``alsa_env`` names its
    private ALSA config) and encoding it for each mount of ``outputs`` (mount -> one
    of ``DARKICE_FORMATS``) at 96 kbps. One continuous stream per mount, no titles."""
    binary = require_tool("darkice")
    workdir = _client_dir(server, name)
    sections = []
    for i, (mount, fmt) in enumerate(outputs.items()):
        if fmt not in DARKICE_FORMATS:
            raise ValueError(f"darkice format {fmt!r}: expected one of {DARKICE_FORMATS}")
        sections.append(
            f"[icecast2-{i}]\nbitrateMode = cbr\nformat = {fmt}\nbitrate = 96\n"
            f"server = 127.0.0.1\nport = {server.port}\npassword = {server.source_password}\n"
            f"mountPoint = {mount.lstrip('/')}\nname = ISR tests\n"
        )
    config = workdir / "darkice.cfg"
    config.write_text(
        # realtime = no: as root darkice would take a real-time priority on shared cores.
        "[general]\nduration = 0\nbufferSecs = 1\nreconnect = yes\nrealtime = no\n"
        f"[input]\ndevice = {device}\nsampleRate = {sample_rate}\nbitsPerSample = 16\n"
        f"channel = {channels}\n" + "".join(sections)
    )
    client = SourceClient(name, [binary, "-c", str(config)], workdir, env=alsa_env)
    client.wait_live(server, list(outputs))
    return client


__all__ = [
    "DARKICE_FORMATS",
    "LIQUIDSOAP_ENCODERS",
    "SourceClient",
    "Track",
    "liquidsoap_script",
    "make_tracks",
    "start_darkice",
    "start_ezstream",
    "start_ices2",
    "start_liquidsoap",
    "write_playlist",
]
