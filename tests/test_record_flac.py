"""`isr record` of native FLAC streams (`audio/flac`), joined late: no fLaC, no
STREAMINFO, the first byte inside a frame. Every file must pass `flac -t`, start at
zero, tell its true duration, and the files together must be the source, to the
sample."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from isr.framing.flac import frame_header
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.icecast import Icecast
from tests.support.judge import ffprobe_duration, ffprobe_start_time, flac_test, mutagen_duration
from tests.support.recorder import RecorderProcess
from tests.test_flac import audio_start, encode, make_wav

SPLIT = 3.0
CONFIG = "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\n"


def pcm(path: Path) -> npt.NDArray[np.int32]:
    data, _ = soundfile.read(str(path), dtype="int32", always_2d=True)
    return np.asarray(data, dtype=np.int32)


def check_files(files: list[Path], source: npt.NDArray[np.int32], rate: int) -> None:
    """Valid files whose joined samples are one contiguous span of ``source``."""
    assert len(files) >= 3, [f.name for f in files]
    for f in files:
        assert flac_test(f) == "", f.name
        assert ffprobe_start_time(f) == pytest.approx(0.0, abs=1e-6), f.name
    for f in files[1:-1]:
        true = len(pcm(f)) / rate
        assert true == pytest.approx(SPLIT, abs=0.5), f.name
        assert ffprobe_duration(f) == pytest.approx(true, abs=1e-3), f.name
        assert mutagen_duration(f) == pytest.approx(true, abs=1e-6), f.name
        assert soundfile.info(str(f)).duration == pytest.approx(true, abs=1e-6), f.name
    joined = np.concatenate([pcm(f) for f in files])
    head = joined[:4096]
    starts = [
        i
        for i in range(0, len(source) - len(joined) + 1, 64)
        if np.array_equal(source[i : i + len(head)], head)
    ]
    assert len(starts) == 1, "the first samples must be found once in the source"
    start = starts[0]
    assert np.array_equal(joined, source[start : start + len(joined)])


@pytest.fixture(scope="module")
def flac_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("flacsrc")
    wav = make_wav(out / "src.wav", 44100, 2, 16, seconds=40)
    return wav, encode(wav, out / "src.flac", ["-b", "4096"])


def test_raw_flac_joined_mid_frame(tmp_path: Path, flac_source: tuple[Path, Path]) -> None:
    wav, flac = flac_source
    data = flac.read_bytes()
    first = audio_start(data)
    assert frame_header(data, first) is not None
    payload = data[first + 12345 :]  # inside the second or third frame
    assert frame_header(payload) is None
    rate = len(data) / 40
    mount = Mount("/live.flac", payload=payload, content_type="audio/flac", byte_rate=rate)
    with FakeStreamServer(mount) as srv:
        config = CONFIG + f"[radio]\ntype = stream\nurl = {srv.url('/live.flac')}\n"
        with RecorderProcess(tmp_path, config) as rec:
            rec.wait_recording()
            time.sleep(10)
            status = rec.status()["sources"]["radio"]
            assert rec.stop() == 0, rec.output
        conn = srv.connections_to("/live.flac")[0]
    assert status["format"] == "flac"
    files = sorted((tmp_path / "recordings").glob("*.flac"))
    check_files(files, pcm(wav), 44100)
    # The first file starts with the first whole frame the server sent.
    sent = bytes(conn.audio)
    first_frame = files[0].read_bytes()[42:]
    h = frame_header(first_frame)
    assert h is not None and h.number == 0
    body = first_frame[h.length : h.length + 1000]
    assert 0 < sent.find(body) < 12000
    log = (tmp_path / "rec.log").read_text()
    assert "Traceback" not in log


@pytest.mark.integration
def test_flac_mount_on_icecast(
    tmp_path: Path, icecast: Icecast, flac_source: tuple[Path, Path]
) -> None:
    """Icecast's generic handler serves a raw FLAC mount from wherever it is."""
    wav, flac = flac_source
    icecast.feed(flac, "/radio.flac", fmt="flac", content_type="audio/flac")
    time.sleep(2)  # a burst of older audio is waiting for the recorder
    config = CONFIG + f"[radio]\ntype = stream\nurl = {icecast.url('/radio.flac')}\n"
    with RecorderProcess(tmp_path, config) as rec:
        rec.wait_recording()
        time.sleep(10)
        assert rec.stop() == 0, rec.output
    files = sorted((tmp_path / "recordings").glob("*.flac"))
    check_files(files, pcm(wav), 44100)
    assert "Traceback" not in (tmp_path / "rec.log").read_text()
