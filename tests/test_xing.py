"""ISR's own Xing/Info frame: every MP3 file tells its true duration to ffprobe,
mutagen and soundfile (libsndfile/mpg123), and mp3val finds nothing wrong."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import soundfile

from isr.framing.base import Frame, PassThrough
from isr.framing.mp3 import Mp3Framer
from isr.framing.xing import XingWriter, leading_tag_length, retag_patches
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.judge import (
    decoded_duration,
    ffmpeg_errors,
    ffprobe_duration,
    mp3val_problems,
    mutagen_duration,
)
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess
from tests.support.tools import require_tool

SOURCE = ["-f", "lavfi", "-i", "aevalsrc='0.4*sin(2*PI*440*t*(1+t/4))+0.1*(random(0)-0.5)':d=12"]
VARIANTS: dict[str, tuple[list[str], str]] = {
    # name: (ffmpeg output options, tag the file must carry)
    "vbr": (["-ac", "2", "-ar", "44100", "-c:a", "libmp3lame", "-q:a", "4"], "Xing"),
    "vbr-mpeg2-mono": (["-ac", "1", "-ar", "22050", "-c:a", "libmp3lame", "-q:a", "6"], "Xing"),
    "cbr": (["-ac", "2", "-ar", "44100", "-c:a", "libmp3lame", "-b:a", "128k"], "Info"),
    "cbr-48k-mono": (["-ac", "1", "-ar", "48000", "-c:a", "libmp3lame", "-b:a", "64k"], "Info"),
    # 8 kbps frames are too small for the tag: its frame takes a larger bitrate.
    "cbr-mpeg25-8k": (["-ac", "1", "-ar", "8000", "-c:a", "libmp3lame", "-b:a", "8k"], "Info"),
}


@pytest.fixture(scope="module")
def mp3s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    ffmpeg = require_tool("ffmpeg")
    out = tmp_path_factory.mktemp("xing")
    files = {}
    for name, (args, _) in VARIANTS.items():
        path = out / f"{name}.mp3"
        subprocess.run([ffmpeg, "-v", "error", "-y", *SOURCE, *args, str(path)], check=True)
        files[name] = path.read_bytes()
    return files


def frames_of(data: bytes) -> list[Frame]:
    framer = Mp3Framer()
    return framer.feed(data) + framer.flush()


def write(frames: list[Frame], path: Path, *, close: bool = True) -> XingWriter:
    """What the segmenter does with a file: begin, write, end, then the patches."""
    writer = Mp3Framer().file_writer()
    assert isinstance(writer, XingWriter)
    out = bytearray(writer.begin(frames[0]) + writer.write(frames[:5]))
    out += writer.write(frames[5:]) + writer.end()
    if close:
        for offset, data in writer.patches():
            assert offset + len(data) <= len(out)
            out[offset : offset + len(data)] = data
    path.write_bytes(bytes(out))
    return writer


def frame_seconds(frames: list[Frame]) -> float:
    return frames[0].samples / frames[0].sample_rate


@pytest.mark.parametrize("name", list(VARIANTS))
def test_files_report_their_true_duration(
    name: str, mp3s: dict[str, bytes], tmp_path: Path
) -> None:
    frames = frames_of(mp3s[name])[37:-41]  # a file cut from the middle of a stream
    path = tmp_path / "part.mp3"
    write(frames, path)
    data = path.read_bytes()
    tag = leading_tag_length(data)
    assert tag > 0
    assert data[tag:] == b"".join(f.data for f in frames)  # the audio is untouched
    assert VARIANTS[name][1].encode() in data[:tag]
    true = len(frames) * frame_seconds(frames)
    one = frame_seconds(frames)
    assert decoded_duration(path) == pytest.approx(true, abs=1e-6)  # the tag frame is silent
    assert ffprobe_duration(path) == pytest.approx(true, abs=one)
    assert mutagen_duration(path) == pytest.approx(true, abs=one)
    assert soundfile.info(str(path)).duration == pytest.approx(true, abs=one)
    assert ffmpeg_errors(path) == ""
    assert mp3val_problems(path) == []
    # Our own framer takes the tag for what it is: not audio.
    framer = Mp3Framer()
    again = framer.feed(data) + framer.flush()
    assert again == frames and framer.drops == {"xing": tag}


def test_without_the_tag_vbr_durations_are_wrong(mp3s: dict[str, bytes], tmp_path: Path) -> None:
    """Why the tag is there: a VBR file without one is misjudged."""
    frames = frames_of(mp3s["vbr"])[37:-41]
    path = tmp_path / "bare.mp3"
    w = PassThrough()
    path.write_bytes(w.begin(frames[0]) + w.write(frames))
    true = len(frames) * frame_seconds(frames)
    errors = [abs(ffprobe_duration(path) - true), abs(mutagen_duration(path) - true)]
    assert max(errors) > 0.2, errors


def test_toc_is_monotonic_and_proportional(mp3s: dict[str, bytes], tmp_path: Path) -> None:
    frames = frames_of(mp3s["cbr"])
    frames = (frames * 8)[:3000]  # more frames than positions kept: the stride doubles
    w = write(frames, tmp_path / "long.mp3")
    toc = w.patches()[0][1][16:116]
    assert len(toc) == 100 and list(toc) == sorted(toc) and toc[0] == 0
    for i, v in enumerate(toc):  # CBR: position is proportional to time
        assert abs(v - i * 256 / 100) <= 2, (i, v)
    assert w.frames == 3000 and w._stride > 1


def test_unclosed_file_is_estimated_not_zero(mp3s: dict[str, bytes], tmp_path: Path) -> None:
    """A killed recorder never patches: the tag then claims nothing (flags 0)."""
    frames = frames_of(mp3s["cbr"])[:300]
    path = tmp_path / "killed.mp3"
    write(frames, path, close=False)
    true = 300 * frame_seconds(frames)
    assert ffprobe_duration(path) == pytest.approx(true, rel=0.02)
    assert mutagen_duration(path) == pytest.approx(true, rel=0.02)


def test_layer2_gets_no_tag(tmp_path: Path) -> None:
    path = tmp_path / "a.mp2"
    subprocess.run(
        [require_tool("ffmpeg"), "-v", "error", *SOURCE, "-c:a", "mp2", "-f", "mp2", str(path)],
        check=True,
    )
    frames = frames_of(path.read_bytes())
    writer = Mp3Framer().file_writer()
    assert writer.begin(frames[0]) == b"" and writer.patches() == []


def test_recorded_vbr_files_report_true_durations(tmp_path: Path, media: MediaFactory) -> None:
    vbr = media("mp3-vbr", 30).read_bytes()
    mount = Mount("/vbr", payload=vbr, content_type="audio/mpeg", byte_rate=len(vbr) / 30)
    with FakeStreamServer(mount) as srv:
        config = (
            "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\n"
            f"[radio]\ntype = stream\nurl = {srv.url('/vbr')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            rec.wait_recording()
            time.sleep(8.5)
            assert rec.stop() == 0, rec.output
        sent = bytes(srv.connections_to("/vbr")[0].audio)
    files = sorted((tmp_path / "recordings").glob("*.mp3"))
    assert len(files) >= 3
    one = 1152 / 44100
    for f in files:
        data = f.read_bytes()
        tag = leading_tag_length(data)
        # Xing, or Info where the file's frames happen to share one bitrate (a short
        # last file of a VBR stream can): which one depends on where the stop fell.
        assert b"Xing" in data[:tag] or b"Info" in data[:tag]
        assert data[tag:] in sent  # the audio itself is as the server sent it
        true = decoded_duration(f)
        assert ffprobe_duration(f) == pytest.approx(true, abs=one), f.name
        assert mutagen_duration(f) == pytest.approx(true, abs=one), f.name
        assert soundfile.info(str(f)).duration == pytest.approx(true, abs=one), f.name
        assert mp3val_problems(f) == [], f.name
    for f in files[1:-1]:
        assert decoded_duration(f) == pytest.approx(3.0, abs=0.5), f.name


def test_retag_patches_match_the_writer(mp3s: dict[str, bytes], tmp_path: Path) -> None:
    """What crash recovery needs: the tag of an unclosed file from its frames."""
    frames = frames_of(mp3s["vbr"])[:200]
    w = write(frames, tmp_path / "a.mp3")
    assert retag_patches(frames[0], frames) == w.patches()
