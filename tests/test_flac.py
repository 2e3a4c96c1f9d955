"""FlacFramer and FlacWriter against real `flac` output: frames found from any byte
of a stream, any chunking, damage and junk; files split from it that `flac -t`,
ffprobe, mutagen and soundfile all accept, joined sample-exactly."""

from __future__ import annotations

import logging
import os
import random
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from isr.framing.base import Frame
from isr.framing.flac import (
    FlacFramer,
    FlacWriter,
    crc8,
    crc16,
    frame_header,
    renumber_frame,
    streaminfo_patch,
)
from isr.segment import Segmenter
from isr.sinks.base import Sink
from tests.support.judge import (
    decode_pcm,
    ffprobe_duration,
    ffprobe_start_time,
    flac_test,
    mutagen_duration,
)
from tests.support.tools import require_tool

"""What `flac -t` says of every file a stream recorder writes: the MD5 of the audio
is unknown without decoding it, and 0 means "unknown" (RFC 9639 §8.2)."""

SECONDS = 8

VARIANTS: dict[str, tuple[int, int, int, list[str]]] = {
    # name: (sample rate, channels, bits, flac options)
    "s16-44k-stereo-b4096": (44100, 2, 16, ["-b", "4096"]),
    "s24-48k-mono": (48000, 1, 24, []),
    "s16-48k-stereo-b1152": (48000, 2, 16, ["-b", "1152"]),
    "s24-44k-stereo-lax-b8192": (44100, 2, 24, ["--lax", "-b", "8192"]),
}


# -- media -------------------------------------------------------------------------------


def make_wav(path: Path, rate: int, channels: int, bits: int, seconds: float = SECONDS) -> Path:
    """Tones with noise (so frames differ in size), made by ffmpeg's lavfi."""
    exprs = "|".join(
        f"0.4*sin(2*PI*{330 + 110 * c}*t)+0.05*(random({c})-0.5)" for c in range(channels)
    )
    codec = {16: "pcm_s16le", 24: "pcm_s24le"}[bits]
    subprocess.run(
        [
            *(require_tool("ffmpeg"), "-nostdin", "-v", "error", "-y", "-f", "lavfi"),
            *("-i", f"aevalsrc='{exprs}':s={rate}:d={seconds}", "-c:a", codec),
            *("-fflags", "+bitexact", "-flags:a", "+bitexact", str(path)),
        ],
        check=True,
    )
    return path


def encode(wav: Path, out: Path, options: list[str]) -> Path:
    flac = require_tool("flac")
    subprocess.run([flac, "-s", "-f", *options, "-o", str(out), str(wav)], check=True)
    return out


def audio_start(data: bytes) -> int:
    """Offset of the first frame: after ``fLaC`` and the metadata blocks."""
    assert data[:4] == b"fLaC"
    p = 4
    while True:
        last, length = data[p] & 0x80, int.from_bytes(data[p + 1 : p + 4], "big")
        p += 4 + length
        if last:
            return p


def _ref_crc(data: bytes, poly: int, width: int) -> int:
    """Bit by bit, as RFC 9639 describes the CRCs: a reference for the fast ones."""
    crc, top, mask = 0, 1 << (width - 1), (1 << width) - 1
    for byte in data:
        crc ^= byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
    return crc


_T16 = []
for _b in range(256):
    _c = _b << 8
    for _ in range(8):
        _c = ((_c << 1) ^ 0x8005) & 0xFFFF if _c & 0x8000 else (_c << 1) & 0xFFFF
    _T16.append(_c)


def ref_crc16(data: bytes) -> int:
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _T16[(crc >> 8) ^ b]
    return crc


def ref_utf8(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    n = 2
    while value >= 1 << (5 * n + 1):
        n += 1
    out = [0x80 | (value >> (6 * i)) & 0x3F for i in range(n - 1)][::-1]
    return bytes([(0xFF << (8 - n)) & 0xFF | value >> (6 * (n - 1)), *out])


def split_frames(data: bytes) -> list[bytes]:
    """A whole `flac` file's frames, found by an independent walk: each frame ends
    where the next header (sync, reserved bits, CRC-8) starts and the CRC-16 holds."""
    start = audio_start(data)
    frames: list[bytes] = []
    p = start
    q = p + 2
    while q <= len(data):
        found = [i for i in (data.find(b"\xff\xf8", q), data.find(b"\xff\xf9", q)) if i >= 0]
        nxt = min(found, default=len(data))
        if ref_crc16(data[p:nxt]) == 0 and (nxt == len(data) or frame_header(data, nxt)):
            frames.append(data[p:nxt])
            p, q = nxt, nxt + 2
            if p == len(data):
                break
        else:
            q = nxt + 1
    assert b"".join(frames) == data[start:]
    return frames


def make_variable(wav: Path, out: Path, tmp: Path) -> Path:
    """A variable-block-size FLAC file: `flac` makes no such thing, so encode pieces
    at different block sizes and renumber their frames by sample, rebuilding both
    CRCs here (not with the code under test)."""
    info = soundfile.info(str(wav))
    pcm, rate = soundfile.read(str(wav), dtype="int16")
    sizes = [4096, 1152, 576, 2304, 4608, 192]
    pos = 0
    frames: list[bytes] = []
    streaminfo = b""
    i = 0
    while pos < len(pcm):
        size = sizes[i % len(sizes)]
        piece = pcm[pos : pos + size * 3]
        part = tmp / f"piece{i}.wav"
        soundfile.write(str(part), piece, rate, subtype=info.subtype)
        data = encode(part, tmp / f"piece{i}.flac", ["-b", str(size)]).read_bytes()
        streaminfo = streaminfo or data[8:42]
        frames += split_frames(data)
        pos += len(piece)
        i += 1
    body = bytearray()
    sample = 0
    for f in frames:
        h = frame_header(f)
        assert h is not None and not h.variable
        head = bytearray(f[: h.length - 1])
        head[1] = 0xF9
        head[4 : 4 + h.number_len] = ref_utf8(sample)
        head.append(_ref_crc(bytes(head), 0x07, 8))
        frame = bytes(head) + f[h.length : -2]
        body += frame + ref_crc16(frame).to_bytes(2, "big")
        sample += h.block_size
    si = bytearray(streaminfo)
    si[0:4] = (16).to_bytes(2, "big") + (4608).to_bytes(2, "big")
    si[4:10] = bytes(6)
    si[18:34] = bytes(16)  # MD5 unknown
    packed = int.from_bytes(si[10:18], "big") >> 36 << 36 | sample
    si[10:18] = packed.to_bytes(8, "big")
    out.write_bytes(b"fLaC\x80\x00\x00\x22" + bytes(si) + bytes(body))
    assert flac_test(out) == ""
    return out


class Media:
    def __init__(self, path: Path, wav: Path, rate: int, channels: int, bits: int) -> None:
        self.path, self.wav = path, wav
        self.rate, self.channels, self.bits = rate, channels, bits
        self.data = path.read_bytes()
        self.start = audio_start(self.data)
        self.frames = split_frames(self.data)


@pytest.fixture(scope="module")
def flac_media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Media]:
    out = tmp_path_factory.mktemp("flac")
    media: dict[str, Media] = {}
    for name, (rate, channels, bits, options) in VARIANTS.items():
        wav = make_wav(out / f"{name}.wav", rate, channels, bits)
        media[name] = Media(encode(wav, out / f"{name}.flac", options), wav, rate, channels, bits)
    wav = make_wav(out / "variable.wav", 44100, 2, 16)
    path = make_variable(wav, out / "variable.flac", out)
    media["variable"] = Media(path, wav, 44100, 2, 16)
    return media


ALL = [*VARIANTS, "variable"]


def run(data: bytes, sizes: list[int] | None = None) -> tuple[list[Frame], FlacFramer]:
    framer = FlacFramer()
    frames: list[Frame] = []
    pos, i = 0, 0
    sizes = sizes or [max(1, len(data))]
    while pos < len(data):
        n = sizes[i % len(sizes)]
        frames += framer.feed(data[pos : pos + n])
        pos, i = pos + n, i + 1
    frames += framer.flush()
    assert sum(len(f.data) for f in frames) + framer.dropped_bytes == len(data)
    assert sum(framer.drops.values()) == framer.dropped_bytes
    return frames, framer


# -- CRCs and headers ----------------------------------------------------------------------


def test_crcs_match_the_bitwise_definitions() -> None:
    rng = random.Random(3)
    for n in (0, 1, 2, 3, 63, 64, 65, 255, 256, 257, 1000, 4099):
        data = rng.randbytes(n)
        assert crc16(data) == _ref_crc(data, 0x8005, 16), n
        assert crc8(data[:20]) == _ref_crc(data[:20], 0x07, 8)
        for cut in {0, 1, n // 3, n - 1} if n > 2 else ():
            assert crc16(data[cut:], crc16(data[:cut])) == crc16(data), (n, cut)


def test_renumbering_recomputes_both_crcs(flac_media: dict[str, Media]) -> None:
    frame = flac_media["s16-44k-stereo-b4096"].frames[3]
    h = frame_header(frame)
    assert h is not None and h.number == 3
    for number in (0, 1, 127, 128, 2047, 2048, 65535, 65536, 2**21, 2**26, 2**31 - 1):
        out = renumber_frame(frame, h, number)
        nh = frame_header(out)
        assert nh is not None and nh.number == number
        assert nh._replace(number=0, number_len=0, length=0) == h._replace(
            number=0, number_len=0, length=0
        )
        assert len(out) == len(frame) - h.length + nh.length
        assert _ref_crc(out, 0x8005, 16) == 0  # the whole frame, CRC included
        assert out[nh.length :][:-2] == frame[h.length : -2]


# -- framing real files -------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_real_files_give_their_frames(name: str, flac_media: dict[str, Media]) -> None:
    m = flac_media[name]
    frames, framer = run(m.data)
    assert [f.data for f in frames] == m.frames
    assert framer.drops == {"metadata": m.start}
    assert framer.streaminfo is not None
    assert (framer.streaminfo.sample_rate, framer.streaminfo.channels) == (m.rate, m.channels)
    assert framer.streaminfo.bits == m.bits
    assert sum(f.samples for f in frames) == framer.streaminfo.total_samples
    assert {f.sample_rate for f in frames} == {m.rate}
    assert not any(f.new_link for f in frames)
    assert framer.resyncs == 0


@pytest.mark.parametrize("name", ALL)
def test_mid_stream_from_every_offset(name: str, flac_media: dict[str, Media]) -> None:
    """A late joiner: no fLaC, no STREAMINFO, first bytes anywhere in a frame."""
    m = flac_media[name]
    head = m.frames[:4]
    stream = b"".join(head)
    bounds = np.cumsum([0] + [len(f) for f in head])
    step = 1 if name == "s16-44k-stereo-b4096" else 97
    for off in range(0, int(bounds[2]) + 1, step):
        frames, framer = run(stream[off:])
        k = int(np.searchsorted(bounds, off))
        assert [f.data for f in frames] == head[k:], off
        assert framer.drops == ({"junk": int(bounds[k]) - off} if bounds[k] > off else {})


@pytest.mark.parametrize("name", ["s16-44k-stereo-b4096", "variable"])
def test_any_chunking_gives_the_same_frames(name: str, flac_media: dict[str, Media]) -> None:
    data = flac_media[name].data[:150_000]
    whole, ref = run(data)
    assert len(whole) >= 10
    single, framer = run(data, [1])
    assert single == whole and framer.drops == ref.drops
    rng = random.Random(5)
    for _ in range(5):
        frames, framer = run(data, [rng.randint(1, 5000) for _ in range(50)])
        assert frames == whole and framer.drops == ref.drops


def test_damaged_frames_are_dropped_and_the_rest_kept(flac_media: dict[str, Media]) -> None:
    m = flac_media["s16-44k-stereo-b4096"]
    good = m.frames[:12]
    # A flipped bit in frame 3's audio: its CRC-16 fails.
    bad_body = [*good]
    bad_body[3] = good[3][:100] + bytes([good[3][100] ^ 0x10]) + good[3][101:]
    frames, framer = run(b"".join(bad_body))
    assert [f.data for f in frames] == good[:3] + good[4:]
    assert framer.drops == {"crc": len(good[3])}
    # A damaged header (its CRC-8 fails) loses that frame only.
    bad_head = [*good]
    bad_head[5] = good[5][:2] + bytes([good[5][2] ^ 0x01]) + good[5][3:]
    frames, framer = run(b"".join(bad_head))
    assert [f.data for f in frames] == good[:5] + good[6:]
    assert framer.drops == {"junk": len(good[5])}
    assert framer.resyncs == 1
    # A cut-off frame then a restarted encoder (fLaC again), as when the source
    # client of a mount reconnects: nothing else is lost.
    stream = b"".join(good[:8]) + good[8][:500] + m.data
    frames, framer = run(stream)
    assert [f.data for f in frames] == good[:8] + m.frames
    assert framer.drops == {"junk": 500, "metadata": m.start}
    # Junk that does not start with a frame header costs the frame before it too:
    # its end could only be found by trying the CRC-16 at every byte, where chance
    # matches (one in 65536 per byte) would cut real frames.
    junk = random.Random(1).randbytes(3000)
    frames, framer = run(b"".join(good[:4]) + junk + b"".join(good[4:]))
    assert [f.data for f in frames] == good[:3] + good[4:]
    assert framer.drops == {"crc": len(good[3]) + 3000}


def test_parameter_change_starts_a_new_link(flac_media: dict[str, Media]) -> None:
    a = flac_media["s16-44k-stereo-b4096"].frames
    b = flac_media["s24-48k-mono"].frames
    c = flac_media["s16-48k-stereo-b1152"].frames
    frames, _ = run(b"".join(a[5:9] + b[:3] + c[4:6] + a[:2]))
    assert [f.new_link for f in frames] == [False] * 4 + [True, False, False] + [
        True,
        False,
        True,
        False,
    ]
    assert [f.sample_rate for f in frames] == [44100] * 4 + [48000] * 5 + [44100] * 2


def test_framing_cost_per_megabyte(flac_media: dict[str, Media]) -> None:
    data = b"".join(m.data for m in flac_media.values())
    t = time.process_time()
    for _ in range(3):
        frames, _ = run(data, [8192])
    per_mb = (time.process_time() - t) / 3 / (len(data) / 1e6)
    print(f"FLAC framing: {per_mb * 1000:.1f} ms CPU per MB ({len(frames)} frames)")
    assert per_mb < 0.1  # measured ~10 ms/MB; a busy CI machine gets 10x slack


# -- fuzz -----------------------------------------------------------------------------------

_EXAMPLES = os.environ.get("ISR_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES or 60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=_EXAMPLES is None,
)
chunkings = st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=10)


@FUZZ
@given(data=st.binary(max_size=6000), sizes=chunkings)
def test_random_bytes_never_raise(data: bytes, sizes: list[int]) -> None:
    frames, _ = run(data, sizes)
    assert run(data)[0] == frames


@FUZZ
@given(seed=st.integers(0, 2**32), sizes=chunkings)
def test_mangled_streams_never_raise(
    seed: int, sizes: list[int], flac_media: dict[str, Media]
) -> None:
    rng = random.Random(seed)
    m = flac_media[rng.choice(ALL)]
    start = rng.randrange(len(m.data) // 2)
    data = bytearray(m.data[start : start + rng.randint(0, 60_000)])
    for _ in range(rng.randint(0, 4)):
        action = rng.randrange(3)
        at = rng.randint(0, len(data))
        if action == 0 and data:
            data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
        elif action == 1:
            data[at:at] = rng.choice([b"fLaC", b"\xff\xf8", b"\xff\xf9\x69\x08", rng.randbytes(50)])
        else:
            del data[at : at + rng.randint(1, 3000)]
    frames, framer = run(bytes(data), sizes)
    whole, ref = run(bytes(data))
    assert frames == whole and framer.drops == ref.drops
    for f in frames:  # every frame emitted is whole: its CRC-16 holds
        assert crc16(f.data) == 0


# -- files split from a stream --------------------------------------------------------------

T0 = datetime(2026, 11, 24, 13, 59, 58, 300000, tzinfo=UTC).timestamp()
SPLIT = 2.0


def split_into_files(frames: list[Frame], framer: FlacFramer, out: Path) -> list[Path]:
    """Drive the real Segmenter with media-clock times, as the stream source does."""
    seg = Segmenter(
        source="s",
        directory=out,
        base_dir=out,
        pattern="%H%M%S",
        split_seconds=SPLIT,
        tz=UTC,
        log=logging.getLogger("test"),
        on_close=lambda sink, ledger, kept: os.close(sink.sync_fd) if sink.sync_fd else None,
    )
    t = T0
    for i in range(0, len(frames), 7):
        batch = frames[i : i + 7]
        seg.write_frames(batch, t, lambda d, s, _e: Sink(d, s, ".flac"), "flac", framer.file_writer)
        t += sum(f.samples / f.sample_rate for f in batch)
    seg.close()
    return sorted(out.glob("*.flac"))


def pcm(path: Path, channels: int) -> npt.NDArray[np.int32]:
    """Samples as soundfile decodes them, 32-bit (24-bit sources keep every bit)."""
    data, _ = soundfile.read(str(path), dtype="int32", always_2d=True)
    assert data.shape[1] == channels
    return np.asarray(data, dtype=np.int32)


@pytest.mark.parametrize("name", ALL)
def test_split_files_are_valid_and_join_sample_exactly(
    name: str, flac_media: dict[str, Media], tmp_path: Path
) -> None:
    m = flac_media[name]
    cut = len(m.data) // 5 + 777  # a late joiner
    frames, framer = run(m.data[cut:])
    files = split_into_files(frames, framer, tmp_path)
    assert len(files) >= 4
    assert all(int(f.name[4:6]) % 2 == 0 for f in files[1:])  # named on the boundaries
    rates = []
    for f in files:
        assert flac_test(f) == "", f.name
        assert ffprobe_start_time(f) == pytest.approx(0.0, abs=1e-6), f.name
        info = soundfile.info(str(f))
        assert (info.samplerate, info.channels) == (m.rate, m.channels)
        true = len(pcm(f, m.channels)) / m.rate
        assert ffprobe_duration(f) == pytest.approx(true, abs=1e-3), f.name
        assert mutagen_duration(f) == pytest.approx(true, abs=1e-6), f.name
        assert info.duration == pytest.approx(true, abs=1e-6), f.name
        rates.append(true)
    for true in rates[1:-1]:
        assert true == pytest.approx(SPLIT, abs=0.5)
    # Joined, the files are the source from the first whole frame on, to the sample.
    source = pcm(m.wav, m.channels)
    joined = np.concatenate([pcm(f, m.channels) for f in files])
    skipped = sum(h.block_size for h in map(frame_header, m.frames) if h) - sum(
        f.samples for f in frames
    )
    assert skipped > 0
    assert np.array_equal(joined, source[skipped:])
    # ffmpeg agrees (16-bit view of the same samples).
    if m.bits == 16:
        decoded = np.concatenate([decode_pcm(f, channels=m.channels) for f in files[:2]])
        assert np.array_equal(decoded, (source[skipped : skipped + len(decoded)] >> 16))


def test_writer_without_close_leaves_a_playable_file(
    flac_media: dict[str, Media], tmp_path: Path
) -> None:
    """A killed recorder never applies the patches: total samples stay 0 (unknown)."""
    m = flac_media["variable"]
    frames, framer = run(m.data)
    w = framer.file_writer()
    assert isinstance(w, FlacWriter)
    path = tmp_path / "killed.flac"
    path.write_bytes(w.begin(frames[0]) + w.write(frames[:40]))
    assert flac_test(path) == ""
    assert len(decode_pcm(path, channels=m.channels)) == sum(f.samples for f in frames[:40])


def test_streaminfo_patch_after_a_crash(flac_media: dict[str, Media], tmp_path: Path) -> None:
    """What crash recovery needs: the totals, from the head and the last whole frame."""
    for name in ("s16-44k-stereo-b4096", "variable"):
        frames, framer = run(flac_media[name].data)
        w = framer.file_writer()
        data = w.begin(frames[0]) + w.write(frames[:30])
        tail, _ = run(data[-50_000:])
        closed = dict(w.patches())
        assert streaminfo_patch(data[:42], tail[-1].data)[0][1][10:18] == closed[8][10:18]
