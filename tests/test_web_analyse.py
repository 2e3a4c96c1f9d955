"""Waveform analysis of real encoded files in every format the recorder writes."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isr.web.analyse import AnalysisError, RmsAccumulator, _Squares, analyse_file
from tests.support.media import MediaFactory
from tests.support.tools import require_tool

KINDS = ["mp3", "aac", "vorbis", "opus", "oggflac", "flac", "wav"]


@pytest.mark.parametrize("kind", KINDS)
def test_loud_matches_the_tone(media: MediaFactory, kind: str) -> None:
    path = media(kind, 6, pattern="silence-tone-silence", tone_start=2.0, tone_end=4.5)
    result = analyse_file(path).to_json(0.05)
    assert result["window_ms"] == 100
    assert abs(result["duration_s"] - 6.0) < 0.1, result["duration_s"]
    assert len(result["rms"]) == pytest.approx(60, abs=1)
    loud = result["loud"]
    assert len(loud) == 1, loud
    start, end = loud[0]
    assert abs(start - 2.0) <= 0.2 and abs(end - 4.5) <= 0.2, loud
    # amplitude 0.5 sine in both channels: RMS 0.354 (a full-scale square is 1)
    peak = max(result["rms"])
    assert 0.3 < peak < 0.4, peak
    assert max(result["rms"][:15]) < 0.01


def test_undecodable_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "x.mp3"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(AnalysisError):
        analyse_file(bad)


def test_truncated_file_yields_what_decodes(media: MediaFactory, tmp_path: Path) -> None:
    src = media("mp3", 6, pattern="silence-tone-silence", tone_start=2.0, tone_end=4.5)
    cut = tmp_path / "cut.mp3"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2 + 7])  # a recording still being written
    result = analyse_file(cut).to_json(0.05)
    assert 2.5 < result["duration_s"] < 3.5
    assert result["loud"] and abs(result["loud"][0][0] - 2.0) <= 0.2


_PROBE = """
import json, resource, sys
import av, numpy
from isr.web.analyse import analyse_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
a = analyse_file(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "after_kb": after, "duration": a.duration_s}))
"""


def test_memory_stays_bounded(media: MediaFactory) -> None:
    """Two minutes of stereo: holding it whole as float64 would add ~85 MB."""
    path = media("flac", 120, pattern="tone")
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    m = json.loads(out.stdout)
    grown_mb = (m["after_kb"] - m["before_kb"]) / 1024
    assert m["duration"] == pytest.approx(120, abs=0.1)
    assert grown_mb < 30, m


# -- the fast path against a straightforward reference ---------------------------------

#: Level steps, two tones, and a second of a full-scale square wave (RMS 1) in the left
#: channel; 3.05 s, so the last window is a partial one.
_SIGNAL = (
    "if(lt(t,1),if(lt(mod(t*50,1),0.5),1,-1),(0.6*lt(mod(t,0.7),0.35)+0.05)*sin(2*PI*440*t))"
    "|(0.3*gte(mod(t,0.5),0.2)+0.01)*sin(2*PI*1000*t+1)"
)

#: kind -> (extension, encoder arguments, the sample format PyAV decodes it to)
_FORMAT_FILES: dict[str, tuple[str, list[str], str]] = {
    "wav-s16": (".wav", ["-c:a", "pcm_s16le"], "s16"),
    "wav-s24": (".wav", ["-c:a", "pcm_s24le"], "s32"),
    "wav-f32": (".wav", ["-c:a", "pcm_f32le"], "flt"),
    "flac-16": (".flac", ["-c:a", "flac", "-sample_fmt", "s16"], "s16"),
    "flac-24": (
        ".flac",
        ["-c:a", "flac", "-sample_fmt", "s32", "-bits_per_raw_sample", "24"],
        "s32",
    ),
    "mp3": (".mp3", ["-c:a", "libmp3lame", "-b:a", "128k"], "fltp"),
    "opus": (".opus", ["-c:a", "libopus", "-b:a", "128k", "-ar", "48000"], "fltp"),
    "aac": (".aac", ["-c:a", "aac", "-b:a", "128k", "-f", "adts"], "fltp"),
}


def _reference(path: Path, window_ms: int = 100) -> tuple[list[float], float]:
    """The whole file decoded and converted to packed float64 by FFmpeg itself, then RMS
    per window straight from the definition."""
    import av

    blocks: list[np.ndarray] = []
    rate = 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = None
        for frame in container.decode(stream):
            if resampler is None:
                rate = frame.sample_rate
                resampler = av.AudioResampler(format="dbl", layout=frame.layout.name, rate=rate)
            for out in resampler.resample(frame):
                blocks.append(out.to_ndarray().reshape(-1, out.layout.nb_channels))
    x = np.concatenate(blocks)
    wf = round(rate * window_ms / 1000)
    rms = [float(np.sqrt(np.mean(x[i : i + wf] ** 2))) for i in range(0, len(x), wf)]
    return rms, len(x) / rate


@pytest.mark.parametrize("kind", sorted(_FORMAT_FILES))
def test_matches_a_straightforward_reference(kind: str, tmp_path: Path) -> None:
    import av

    ext, encode, sample_format = _FORMAT_FILES[kind]
    path = tmp_path / f"signal{ext}"
    subprocess.run(
        [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"aevalsrc='{_SIGNAL}':s=44100:d=3.05", *encode, str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    with av.open(str(path)) as container:  # the format under test is the one decoded
        assert next(container.decode(audio=0)).format.name == sample_format
    want, duration = _reference(path)
    got = analyse_file(path)
    assert got.duration_s == pytest.approx(duration, abs=1e-9)
    assert len(got.rms) == len(want)
    assert np.allclose(got.rms, want, rtol=1e-5, atol=1e-7), max(
        abs(a - b) for a, b in zip(got.rms, want, strict=True)
    )


_NUMPY = {"u8": "u1", "s16": "i2", "s32": "i4", "flt": "f4", "dbl": "f8"}
_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2.0**31, "flt": 1.0, "dbl": 1.0}


def _frame_of(fmt: str, x: np.ndarray) -> tuple[object, np.ndarray]:
    """An ``av.AudioFrame`` of ``x`` ((frames, channels) in [-1, 1)) in format ``fmt``,
    and the float64 samples it actually holds."""
    import av

    base = fmt.rstrip("p")
    if base in ("flt", "dbl"):
        stored = x.astype(_NUMPY[base])
        exact = stored.astype(np.float64)
    elif base == "u8":
        stored = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8)
        exact = (stored.astype(np.float64) - 128) / 128
    else:
        top = _SCALE[base]
        stored = np.clip(np.round(x * top), -top, top - 1).astype(_NUMPY[base])
        exact = stored.astype(np.float64) / top
    layout = {1: "mono", 2: "stereo", 3: "2.1"}[x.shape[1]]
    array = np.ascontiguousarray(stored.T) if fmt.endswith("p") else stored.reshape(1, -1)
    return av.AudioFrame.from_ndarray(array, format=fmt, layout=layout), exact


@settings(max_examples=40, deadline=None)
@given(
    fmts=st.lists(
        st.sampled_from([f + p for f in _NUMPY for p in ("", "p")]), min_size=1, max_size=3
    ),
    channels=st.integers(1, 3),
    sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=12),
    seed=st.integers(0, 2**16),
)
def test_every_sample_format_matches_feeding_floats(
    fmts: list[str], channels: int, sizes: list[int], seed: int
) -> None:
    """Frames of any size in every packed and planar format, the format changing midway,
    batches smaller than the frames: the same RMS as feeding the float samples."""
    rng = np.random.default_rng(seed)
    fast = RmsAccumulator(8000, 100)
    slow = RmsAccumulator(8000, 100)
    squares: _Squares | None = None
    for i, n in enumerate(sizes):
        fmt = fmts[i * len(fmts) // len(sizes)]
        x = rng.uniform(-1, 1, size=(n, channels)) * rng.uniform(0, 1)
        frame, exact = _frame_of(fmt, x)
        if squares is None or squares.key != (fmt, channels):
            if squares is not None:
                squares.flush(final=True)
            squares = _Squares(fast, fmt, channels, batch_frames=int(rng.integers(1, 4000)))
        squares.push_frame(frame)
        slow.feed(exact)
    assert squares is not None
    squares.flush(final=True)
    assert fast.frames == slow.frames == sum(sizes)
    assert np.allclose(fast.result(), slow.result(), rtol=1e-5, atol=1e-9)


def test_full_scale_square_is_one_in_every_format() -> None:
    x = np.where(np.arange(1600) % 20 < 10, 1.0, -1.0)[:, None].repeat(2, axis=1)
    for fmt in [f + p for f in _NUMPY for p in ("", "p")]:
        acc = RmsAccumulator(8000, 100)
        squares = _Squares(acc, fmt, 2, batch_frames=8000)
        frame, _ = _frame_of(fmt, x)
        squares.push_frame(frame)
        squares.flush(final=True)
        step = 1 / _SCALE[fmt.rstrip("p")] if fmt[0] in "us" else 1e-9  # +1 is one step less
        assert acc.result() == pytest.approx([1.0, 1.0], abs=step), fmt


def test_a_wav_that_libsndfile_cannot_read_is_decoded_by_ffmpeg(
    media: MediaFactory, tmp_path: Path
) -> None:
    mp3 = media("mp3", 6, pattern="silence-tone-silence", tone_start=2.0, tone_end=4.5)
    fake = tmp_path / "really-an-mp3.wav"
    fake.write_bytes(mp3.read_bytes())
    loud = analyse_file(fake).to_json(0.05)["loud"]
    assert len(loud) == 1 and abs(loud[0][0] - 2.0) <= 0.2


def test_a_wav_whose_header_says_no_data_yet_is_read_to_its_end(tmp_path: Path) -> None:
    """The recorder's first header says 0 bytes; libsndfile would read nothing."""
    from isr.sinks.wav import wav_header

    x = (np.sin(np.arange(8000 * 2) / 5) * 16384).astype("<i2").repeat(2)
    path = tmp_path / "growing.wav"
    path.write_bytes(wav_header(8000, 2, 0) + x.tobytes())
    a = analyse_file(path)
    assert a.duration_s == pytest.approx(2.0)
    assert a.rms == pytest.approx([0.5 / math.sqrt(2)] * 20, rel=1e-3)
