"""FLAC output: encoded off the loop in order, bounded, valid, and decodable after a crash."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from isr.config import load
from isr.sinks import flac
from isr.sinks.files import is_locked
from isr.sinks.flac import FlacSink
from isr.sources.pcm import FrameAligner, make_pcm_sink
from isr.sources.tone import tone_block
from tests.support.tools import require_tool

RATE = 8000


def noise(frames: int, channels: int = 2) -> np.ndarray:
    return np.random.default_rng(7).integers(-20000, 20000, (frames, channels), dtype=np.int16)


def read_crashed_flac(path: Path) -> np.ndarray:
    """Decode with soundfile block by block: a crashed file's STREAMINFO says "length
    unknown", and libsndfile fails its seek past the last complete frame."""
    blocks = []
    with soundfile.SoundFile(path) as f:
        while True:
            try:
                block = f.read(4096, dtype="int16")
            except soundfile.LibsndfileError:
                break
            if not len(block):
                break
            blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros((0, 2), np.int16)


def test_many_small_writes_decode_in_order_and_pass_flac_t(tmp_path: Path) -> None:
    flac_tool = require_tool("flac")
    signal = noise(RATE * 3)
    raw = signal.tobytes()
    sink = FlacSink(tmp_path, "a", sample_rate=RATE, channels=2)
    assert sink.path.name == "a.flac" and is_locked(sink.path)
    for start in range(0, len(raw), 4 * 173):  # odd chunk sizes, whole frames
        sink.write(memoryview(raw)[start : start + 4 * 173])
    sink.close()
    assert sink.sync_fd is not None
    os.close(sink.sync_fd)  # the recorder's syncer does this after a last fsync
    assert not is_locked(sink.path)
    assert sink.bytes_written == sink.path.stat().st_size
    read, rate = soundfile.read(sink.path, dtype="int16")
    assert rate == RATE and np.array_equal(read, signal)
    check = subprocess.run([flac_tool, "-t", "-s", str(sink.path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    info = soundfile.info(str(sink.path))
    assert info.frames == RATE * 3  # STREAMINFO finished at close


def test_never_overwrites(tmp_path: Path) -> None:
    first = FlacSink(tmp_path, "a", sample_rate=RATE, channels=1)
    second = FlacSink(tmp_path, "a", sample_rate=RATE, channels=1)
    first.close()
    second.close()
    assert (first.path.name, second.path.name) == ("a.flac", "a_1.flac")


def test_write_returns_before_encoding_and_memory_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalled encoder: write() queues without waiting until the bound is reached."""
    gate = threading.Event()
    real = soundfile.SoundFile.buffer_write

    def slow(self: Any, data: Any, dtype: str) -> None:
        gate.wait(10)
        real(self, data, dtype)

    monkeypatch.setattr(soundfile.SoundFile, "buffer_write", slow)
    sink = FlacSink(tmp_path, "a", sample_rate=RATE, channels=2, max_pending=40_000)
    block = noise(1000).tobytes()  # 4000 bytes
    t = time.monotonic()
    for _ in range(9):
        sink.write(block)
    assert time.monotonic() - t < 1.0  # queued, not encoded
    assert sink._pending <= 40_000
    threading.Timer(0.3, gate.set).start()
    t = time.monotonic()
    for _ in range(5):
        sink.write(block)  # over the bound: waits for the encoder
    assert time.monotonic() - t >= 0.25
    sink.close()
    read, _ = soundfile.read(sink.path, dtype="int16")
    assert read.tobytes() == block * 14


def test_encoder_error_reaches_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Any, data: Any, dtype: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    sink = FlacSink(tmp_path, "a", sample_rate=RATE, channels=2)
    monkeypatch.setattr(soundfile.SoundFile, "buffer_write", full)
    sink.write(noise(100).tobytes())
    sink.wait_idle()
    with pytest.raises(OSError, match="No space left"):
        sink.write(noise(100).tobytes())
    with pytest.raises(OSError, match="No space left"):
        sink.close()
    assert sink.closed


def test_crashed_file_decodes_up_to_its_last_complete_frame(tmp_path: Path) -> None:
    """The bytes on disk while recording (as a SIGKILL leaves them), cut mid-frame."""
    signal = noise(RATE * 4)
    sink = FlacSink(tmp_path, "a", sample_rate=RATE, channels=2)
    sink.write(signal.tobytes())
    sink.wait_idle()
    on_disk = sink.path.read_bytes()
    sink.close()
    crashed = tmp_path / "crashed.flac"
    crashed.write_bytes(on_disk[:-100])  # the last frame is incomplete
    read = read_crashed_flac(crashed)
    assert len(read) >= RATE * 2  # all but libsndfile's last buffer and the cut frame
    assert np.array_equal(read, signal[: len(read)])
    ffmpeg = require_tool("ffmpeg")
    out = subprocess.run(
        [ffmpeg, "-v", "quiet", "-i", str(crashed), "-f", "s16le", "-"], capture_output=True
    )
    decoded = np.frombuffer(out.stdout, "<i2").reshape(-1, 2)
    assert len(decoded) >= len(read) - 4096
    assert np.array_equal(decoded, signal[: len(decoded)])


def test_tone_source_sink_for_format_flac(tmp_path: Path) -> None:
    cfg = load(text="[general]\n[tone]\ntype = tone\nformat = flac\nsample_rate = 8000\n")
    src = replace(cfg.sources[0], channels=1)
    sink = make_pcm_sink(src, tmp_path, "tone")
    assert isinstance(sink, FlacSink)
    block = tone_block(0, RATE, 440.0, RATE, 1)
    sink.write(block)
    sink.close()
    read, rate = soundfile.read(sink.path, dtype="int16")
    assert rate == RATE and read.tobytes() == block


def test_shared_encoder_pool_is_small() -> None:
    assert flac.ENCODER_THREADS <= 4


@pytest.mark.parametrize("cuts", [[1], [3, 5], [4], [7, 1, 2, 6]])
def test_frame_aligner_carries_partial_frames(cuts: list[int]) -> None:
    data = bytes(range(40))
    aligner = FrameAligner(4)
    out = b""
    pos = 0
    i = 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        got = aligner.feed(data[pos : pos + step])
        assert len(got) % 4 == 0
        out += got
        pos += step
        i += 1
    assert out == data and aligner.pending == 0
