"""`isr record` of live HLS: ffmpeg's HLS muxer writes a sliding-window playlist in
real time, nginx serves it, the real recorder records it. Files pass ffmpeg (and
mp3val), and joined they are one unbroken run of the frames of the segments
served, each once, in order."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.hls import (
    CODECS,
    contiguous_in,
    file_frames,
    hls_writer,
    nginx,
    served_frames,
    wait_segments,
)
from tests.support.judge import ffmpeg_errors, mp3val_problems
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.tls import self_signed
from tests.support.tools import stop_process

pytestmark = pytest.mark.integration

CONFIG = """\
[general]
output_directory = recordings
split_minutes = {split}
filename_pattern = {{source}}/%Y%m%d_%H%M%S
retry_delay_seconds = 1
max_retries = 0

[radio]
type = stream
url = {url}
timeout_seconds = {timeout}
{more}
"""


def _config(url: str, split: float = 0.05, timeout: float = 6, more: str = "") -> str:
    return CONFIG.format(url=url, split=split, timeout=timeout, more=more)


def _files(root: Path, source: str = "radio") -> list[Path]:
    d = root / "recordings" / source
    return sorted(p for p in d.iterdir() if p.suffix in (".aac", ".mp3")) if d.exists() else []


def _sidecar(p: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(p.with_name(p.name + ".json").read_text())
    return data


def _judge(files: list[Path]) -> None:
    for f in files:
        assert ffmpeg_errors(f) == "", f.name
        if f.suffix == ".mp3":
            assert mp3val_problems(f) == [], f.name


def _recorded_frames(files: list[Path]) -> list[bytes]:
    out: list[bytes] = []
    for f in files:
        out += file_frames(f)
    return out


@pytest.mark.parametrize(("kind", "codec"), [("mpegts", "aac"), ("fmp4", "aac"), ("mpegts", "mp3")])
def test_live_hls_recorded_frame_exact(tmp_path: Path, kind: str, codec: str) -> None:
    www = tmp_path / "www"
    writer = hls_writer(www, kind=kind, codec=codec, seconds=60)
    try:
        wait_segments(www, 2)
        with nginx(www, tmp_path / "nginx") as srv:
            rec = RecorderProcess(tmp_path, _config(srv.url("live.m3u8")))
            with rec:
                rec.wait_recording(timeout=30)
                assert wait_for(lambda: len(_files(tmp_path)) >= 4, timeout=40), rec.output
                time.sleep(1.5)
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    assert "Traceback" not in rec.output
    files = _files(tmp_path)
    _judge(files)
    served = served_frames(www)
    recorded = _recorded_frames(files)
    contiguous_in(recorded, served)
    # the middle files: the split's length (3 s) within one frame
    for f in files[1:-1]:
        frames = file_frames(f)
        seconds = len(frames) * 1024 / 44100 if codec == "aac" else len(frames) * 1152 / 44100
        assert abs(seconds - 3.0) <= 1152 / 44100 + 1e-6, (f.name, seconds)
    assert all(f.suffix == (".mp3" if codec == "mp3" else ".aac") for f in files)
    assert all(_sidecar(f)["gaps"] == [] for f in files[1:])


def test_aes128_hls_recorded_frame_exact(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    key = bytes(range(100, 116))
    (www / "enc.key").write_bytes(key)
    info = tmp_path / "key.info"
    info.write_text(f"enc.key\n{www / 'enc.key'}\n")  # no IV: the sequence number is
    writer = hls_writer(www, seconds=60, extra=("-hls_key_info_file", str(info)))
    try:
        wait_segments(www, 2)
        assert "METHOD=AES-128" in (www / "live.m3u8").read_text()
        with nginx(www, tmp_path / "nginx") as srv:
            rec = RecorderProcess(tmp_path, _config(srv.url("live.m3u8")))
            with rec:
                rec.wait_recording(timeout=30)
                assert wait_for(lambda: len(_files(tmp_path)) >= 3, timeout=40), rec.output
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    assert "Traceback" not in rec.output
    files = _files(tmp_path)
    _judge(files)
    contiguous_in(_recorded_frames(files), served_frames(www, key=key))


PLAYLIST_TYPES = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl")


def test_playlist_content_type_is_recorded_as_hls(tmp_path: Path) -> None:
    """A URL without .m3u8 that answers with an HLS playlist Content-Type is recorded
    as HLS (no ``format = hls``): three sources, one per type, the same playlist."""
    www = tmp_path / "www"
    extra = "".join(
        f"    location = /radio{i} {{ types {{ }} default_type {ctype}; "
        f"alias {www / 'live.m3u8'}; }}\n"
        for i, ctype in enumerate(PLAYLIST_TYPES)
    )
    writer = hls_writer(www, seconds=60)
    try:
        wait_segments(www, 2)
        with nginx(www, tmp_path / "nginx", extra) as srv:
            config = _config(srv.url("radio0")).replace("[radio]", "[radio0]")
            for i in (1, 2):
                config += f"\n[radio{i}]\ntype = stream\nurl = {srv.url(f'radio{i}')}\n"
            rec = RecorderProcess(tmp_path, config)
            with rec:
                names = [f"radio{i}" for i in range(3)]
                assert wait_for(
                    lambda: all(len(_files(tmp_path, n)) >= 2 for n in names), timeout=40
                ), rec.output
                assert rec.stop() == 0
            access = (tmp_path / "nginx" / "access.log").read_text()
    finally:
        stop_process(writer)
    assert "Traceback" not in rec.output
    log = (tmp_path / "recorder.log").read_text()
    assert "set format" not in log
    served = served_frames(www)
    for i in range(3):
        assert f"/radio{i} serves an HLS playlist: recorded as HLS" in log
        assert f"GET /radio{i} " in access
        files = _files(tmp_path, f"radio{i}")
        _judge(files)
        contiguous_in(_recorded_frames(files), served)
        assert all(f.suffix == ".aac" for f in files)


MASTER = """\
#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=32000,CODECS="mp4a.40.5"
low/live.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS="mp4a.40.2"
high/live.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.2"
mid/live.m3u8
"""


def test_check_probe_lists_variants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`isr check --probe` lists a master playlist's variants, the one recorded
    marked; found by Content-Type too; a media playlist by its shape."""
    from isr.cli import main

    www = tmp_path / "www"
    www.mkdir()
    (www / "master.m3u8").write_text(MASTER)
    (www / "media.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n#EXTINF:6,\nb.ts\n"
    )
    extra = (
        "    location = /tv { types { } default_type audio/mpegurl; "
        f"alias {www / 'master.m3u8'}; }}\n"
    )
    with nginx(www, tmp_path / "nginx", extra) as srv:
        cfg = tmp_path / "isr.ini"
        cfg.write_text(
            "[general]\noutput_directory = rec\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
            f"[a]\ntype = stream\nurl = {srv.url('master.m3u8')}\n"
            f"[b]\ntype = stream\nurl = {srv.url('tv')}\nhls_variant = 2\n"
            f"[c]\ntype = stream\nurl = {srv.url('media.m3u8')}\n"
            f"[d]\ntype = stream\nurl = {srv.url('missing.m3u8')}\n"
        )
        assert main(["check", "-c", str(cfg), "--probe"]) == 0
    out = capsys.readouterr().out
    assert "[a] HLS master playlist: 3 variants" in out
    assert "[a] * #1: 128000 bit/s (mp4a.40.2) " in out
    assert "[a]   #0: 32000 bit/s (mp4a.40.5) " in out
    assert "[b] * #2: 64000 bit/s" in out
    assert "[c] HLS media playlist: 2 segments, target duration 6 s" in out
    assert "[d] cannot probe: 404 from" in out
    assert out.rstrip().endswith("config OK")


def _packed_writer(www: Path, codec: str) -> Any:
    """ffmpeg's segment muxer as a live HLS packager of packed audio: raw ADTS or
    MP3 segments, each opening with an ID3v2 tag (TIT2/TPE1; the MP3 muxer writes one
    by default), in a sliding m3u8."""
    from tests.support.tools import popen, require_tool

    fmt, ext, opts = (
        ("adts", "aac", "write_id3v2=1") if codec == "aac" else ("mp3", "mp3", "write_xing=0")
    )
    www.mkdir(parents=True, exist_ok=True)
    args = [
        require_tool("ffmpeg"), "-v", "error", "-re", "-f", "lavfi",
        "-i", "sine=f=440:r=44100:beep_factor=3", "-t", "60", *CODECS[codec],
        "-metadata", "title=Morning Show", "-metadata", "artist=Ann",
        "-f", "segment", "-segment_time", "1", "-segment_format", fmt,
        "-segment_format_options", opts, "-segment_list", str(www / "live.m3u8"),
        "-segment_list_type", "m3u8", "-segment_list_size", "5",
        "-segment_list_flags", "+live", str(www / f"p_%d.{ext}"),
    ]  # fmt: skip
    return popen(args, cwd=www)


@pytest.mark.parametrize("codec", ["aac", "mp3"])
def test_packed_audio_recorded_frame_exact(tmp_path: Path, codec: str) -> None:
    """Packed audio (raw ADTS/MP3 segments with an ID3 tag each) from ffmpeg's segment
    muxer: the tags are left out of the files, their title is in the sidecars, and
    the files joined are one run of the segments' frames."""
    from isr.hls.packed import leading_id3

    www = tmp_path / "www"
    writer = _packed_writer(www, codec)
    try:
        wait_segments(www, 2)
        with nginx(www, tmp_path / "nginx") as srv:
            rec = RecorderProcess(tmp_path, _config(srv.url("live.m3u8")))
            with rec:
                rec.wait_recording(timeout=30)
                assert wait_for(lambda: len(_files(tmp_path)) >= 3, timeout=40), rec.output
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    assert "Traceback" not in rec.output
    files = _files(tmp_path)
    _judge(files)
    assert all(f.suffix == f".{codec}" for f in files)
    served: list[bytes] = []
    segs = sorted(www.glob(f"p_*.{codec}"), key=lambda p: int(p.stem.split("_")[1]))
    for p in segs:
        data = p.read_bytes()
        assert data.startswith(b"ID3")
        served += _frames_of(data[leading_id3(data) :], codec)
    contiguous_in(_recorded_frames(files), served)
    titles = [t["title"] for f in files for t in _sidecar(f)["titles"]]
    assert titles and set(titles) == {"Ann - Morning Show"}, titles


def _frames_of(data: bytes, codec: str) -> list[bytes]:
    from isr.framing.adts import AdtsFramer
    from isr.framing.mp3 import Mp3Framer

    framer = AdtsFramer() if codec == "aac" else Mp3Framer()
    return [f.data for f in framer.feed(data) + framer.flush()]


def test_https_a_redirect_and_basic_auth(tmp_path: Path) -> None:
    """HTTPS from a private authority (trusted through ``SSL_CERT_FILE``, as a user
    trusts one), a playlist URL that redirects, and Basic auth on the playlist and
    every segment: recorded frame-exact. A wrong password is a clear error in the
    status (HTTP 401), never a traceback, and the other source goes on."""
    www = tmp_path / "www"
    cert, key = self_signed(tmp_path / "tls")
    users = tmp_path / "htpasswd"
    users.write_text("station:{PLAIN}s3cret\n")
    extra = (
        "    location = /old.m3u8 { return 302 /live.m3u8; }\n"
        f'    location / {{ auth_basic "isr"; auth_basic_user_file {users}; }}\n'
    )
    writer = hls_writer(www, seconds=60)
    try:
        wait_segments(www, 2)
        with nginx(www, tmp_path / "nginx", extra, tls=(cert, key)) as srv:
            url = srv.url("old.m3u8")
            assert url.startswith("https://")
            text = _config(url, more="username = station\npassword = s3cret\n")
            text += f"[wrong]\ntype = stream\nurl = {url}\nusername = station\npassword = nope\n"
            rec = RecorderProcess(tmp_path, text, env={"SSL_CERT_FILE": str(cert)})
            with rec:
                rec.wait_recording(timeout=30)
                assert wait_for(lambda: len(_files(tmp_path)) >= 3, timeout=40), rec.output
                wrong = rec.status()["sources"]["wrong"]
                assert rec.stop() == 0
    finally:
        stop_process(writer)
    assert "Traceback" not in rec.output
    assert wrong["state"] != "recording" and "401" in (wrong["last_error"] or ""), wrong
    files = _files(tmp_path)
    _judge(files)
    contiguous_in(_recorded_frames(files), served_frames(www))
    log = (tmp_path / "nginx" / "access.log").read_text()
    assert '"GET /old.m3u8 HTTP/1.1" 302' in log
    assert any(" station [" in line and '.ts HTTP/1.1" 200' in line for line in log.splitlines()), (
        log[-2000:]
    )
