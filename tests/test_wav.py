"""WAV headers that stay true, RF64 beyond 4 GiB, and repair after a crash."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from isr.sinks import wav
from isr.sinks.wav import (
    HEADER_BYTES,
    WavSink,
    parse_wav_header,
    repair_wav,
    wav_header,
)
from tests.support.tools import require_tool

RATE = 8000


def pcm(frames: int, channels: int = 2, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.integers(-30000, 30000, (frames, channels), dtype=np.int16).tobytes()


def crashed_wav(path: Path, frames: int, *, extra: bytes = b"", declared: int = 0) -> bytes:
    """A WAV as a killed recorder leaves it: header sizes from an older update."""
    data = pcm(frames)
    path.write_bytes(wav_header(RATE, 2, declared) + data + extra)
    return data


def test_header_layout_reserves_room_for_ds64() -> None:
    head = wav_header(RATE, 2, 4000)
    assert len(head) == HEADER_BYTES == 80
    assert head[:4] == b"RIFF" and struct.unpack_from("<I", head, 4)[0] == 72 + 4000
    assert head[12:20] == b"JUNK" + struct.pack("<I", 28)
    layout = parse_wav_header(head)
    assert layout is not None
    assert (layout.data_offset, layout.data_size, layout.block_align) == (80, 4000, 4)
    assert layout.ds64_is_junk


def test_sink_writes_a_file_every_reader_accepts(tmp_path: Path) -> None:
    sink = WavSink(tmp_path, "a", sample_rate=RATE, channels=2)
    data = pcm(RATE)
    sink.write(data[: 1001 * 4])
    sink.write(data[1001 * 4 :])
    sink.close()
    with wave.open(str(sink.path)) as w:
        assert w.getnframes() == RATE and w.readframes(RATE) == data
    read, rate = soundfile.read(sink.path, dtype="int16")
    assert rate == RATE and read.tobytes() == data
    assert repair_wav(sink.path) is None  # nothing to repair in a closed file


def test_header_is_updated_while_the_file_grows(tmp_path: Path) -> None:
    sink = WavSink(tmp_path, "a", sample_rate=RATE, channels=2, header_seconds=0.0)
    sink.write(pcm(100))
    layout = parse_wav_header(sink.path.read_bytes()[:HEADER_BYTES])
    assert layout is not None and layout.data_size == 400
    sink.close()


def test_rf64_once_past_the_riff_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 4 GiB limit lowered to 4 KiB: the same header is rewritten as RF64 in place."""
    monkeypatch.setattr(wav, "MAX_RIFF", 4096)
    sink = WavSink(tmp_path, "big", sample_rate=RATE, channels=2)
    data = pcm(2000)  # 8000 bytes of data: over the lowered limit
    sink.write(data)
    sink.close()
    raw = sink.path.read_bytes()
    assert raw[:4] == b"RF64" and struct.unpack_from("<I", raw, 4)[0] == 0xFFFFFFFF
    assert raw[12:16] == b"ds64"
    riff, size, count, table = struct.unpack_from("<QQQI", raw, 20)
    assert (riff, size, count, table) == (72 + 8000, 8000, 2000, 0)
    assert raw[72:80] == b"data" + struct.pack("<I", 0xFFFFFFFF)
    read, _ = soundfile.read(sink.path, dtype="int16")
    assert read.tobytes() == data
    if shutil.which("ffmpeg"):
        out = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(sink.path), "-f", "s16le", "-"],
            capture_output=True,
            check=True,
        )
        assert out.stdout == data and not out.stderr


def test_repair_fixes_stale_sizes_and_ignores_a_partial_frame(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    data = crashed_wav(path, 3000, extra=b"\x01\x02\x03", declared=800)
    what = repair_wav(path)
    assert what is not None and "data size 800 -> 12000" in what and "3 trailing bytes" in what
    layout = parse_wav_header(path.read_bytes()[:HEADER_BYTES])
    assert layout is not None and layout.data_size == 12000 and layout.riff_size == 72 + 12000
    with wave.open(str(path)) as w:
        assert w.readframes(w.getnframes()) == data
    assert repair_wav(path) is None  # repaired once is right


def test_repair_of_a_classic_44_byte_header(tmp_path: Path) -> None:
    path = tmp_path / "old.wav"
    data = pcm(500)
    head = struct.pack(
        "<4sI4s4sIHHIIHH4sI", b"RIFF", 36, b"WAVE", b"fmt ", 16, 1, 2, RATE, RATE * 4, 4, 16,
        b"data", 0,
    )  # fmt: skip
    path.write_bytes(head + data)
    assert repair_wav(path) == "data size 0 -> 2000; RIFF size 36 -> 2036"
    read, _ = soundfile.read(path, dtype="int16")
    assert read.tobytes() == data


def test_repair_makes_a_sparse_file_over_4_gib_rf64(tmp_path: Path) -> None:
    """A 5 GiB file as a crash leaves it, made sparse: nothing is really written."""
    path = tmp_path / "huge.wav"
    crashed_wav(path, 100, declared=400)
    total = 5 << 30
    with open(path, "r+b") as fh:
        fh.truncate(total)
    if os.stat(path).st_blocks * 512 > 1 << 30:
        pytest.skip("this filesystem has no sparse files")
    what = repair_wav(path)
    assert what is not None and what.startswith("made RF64")
    with open(path, "rb") as fh:
        raw = fh.read(HEADER_BYTES)
    data = (total - HEADER_BYTES) // 4 * 4
    assert raw[:4] == b"RF64" and raw[12:16] == b"ds64"
    assert struct.unpack_from("<QQQ", raw, 20) == (72 + data, data, data // 4)
    if shutil.which("ffprobe"):
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
             str(path)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert float(out) == pytest.approx(data / 4 / RATE, abs=0.01)


def test_repair_leaves_other_files_alone(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(b"ID3 not a wav at all")
    (tmp_path / "short.wav").write_bytes(b"RIFF")
    assert repair_wav(tmp_path / "x.wav") is None
    assert repair_wav(tmp_path / "short.wav") is None


def test_crashed_file_decodes_in_ffmpeg_after_repair(tmp_path: Path) -> None:
    ffmpeg = require_tool("ffmpeg")
    path = tmp_path / "a.wav"
    data = crashed_wav(path, 4000, declared=400)
    repair_wav(path)
    out = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(path), "-f", "s16le", "-"], capture_output=True
    )
    assert out.returncode == 0 and not out.stderr and out.stdout == data
