"""Pure parts of clips: unit tables (times to units), a body's byte ranges, FLAC frames
renumbered and re-encoded, and where a PCM FLAC clip is re-encoded."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from isr.clips.body import Body, FileRange, Literal
from isr.clips.cutter import Part
from isr.clips.flac import coded_lengths
from isr.clips.flacpcm import MIN_BLOCK, _Copy, _Pcm, _segments, verbatim_frame
from isr.clips.units import UnitTable
from isr.framing.flac import (
    FlacFramer,
    StreamInfo,
    coded_number,
    crc16,
    frame_header,
    renumber_frame,
    streaminfo_block,
)


def frames_table(sizes: list[int], samples: list[int], **kw: object) -> UnitTable:
    return UnitTable(
        "mp3",
        "k",
        "test",
        1000,
        10,
        np.asarray(sizes, dtype=np.uint32),
        np.asarray(samples, dtype=np.uint32),
        **kw,  # type: ignore[arg-type]
    )


def test_offsets_and_starts() -> None:
    t = frames_table([100, 101, 100], [1152, 1152, 576])
    assert t.count == 3
    assert t.offsets.tolist() == [10, 110, 211, 311]
    assert t.starts.tolist() == [0, 1152, 2304, 2880]
    assert (t.data_end, t.total_samples) == (311, 2880)


@pytest.mark.parametrize(
    ("position", "at", "end"),
    [
        (-5.0, 0, 0),
        (0.0, 0, 0),
        (0.5, 0, 1),
        (1151.9, 0, 1),
        (1152.0, 1, 1),  # a boundary belongs to the unit it starts
        (1151.9999999, 1, 1),  # float residue of (t - start) * rate is snapped
        (1152.0000001, 1, 1),
        (1152.5, 1, 2),
        (2879.0, 2, 3),
        (2880.0, 3, 3),
        (1e9, 3, 3),
    ],
)
def test_unit_at_and_unit_end(position: float, at: int, end: int) -> None:
    t = frames_table([100, 101, 100], [1152, 1152, 576])
    assert t.unit_at(position) == at
    assert t.unit_end(position) == end


def test_uniform_units_are_samples() -> None:
    t = UnitTable("wav", "k", "test", 8000, 80, unit_bytes=4, uniform_count=100, exact=True)
    assert (t.count, t.total_samples, t.data_end) == (100, 100, 480)
    assert (t.offset(10), t.sample(10)) == (120, 10)
    assert (t.unit_at(10.4), t.unit_end(10.4)) == (10, 11)
    assert (t.unit_at(10.0), t.unit_end(10.0)) == (10, 10)
    assert (t.unit_at(500), t.unit_end(500)) == (100, 100)


def test_every_range_of_a_body_is_those_bytes(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(bytes(range(256)) * 4)
    body = Body(
        [Literal(b"head"), FileRange(f, 5, 20), Literal(b""), FileRange(f, 1000, 3), Literal(b"!")]
    )
    whole = b"head" + (bytes(range(256)) * 4)[5:25] + (bytes(range(256)) * 4)[1000:1003] + b"!"
    assert body.length == len(whole) == 28
    assert b"".join(body.read()) == whole
    for start in range(body.length + 1):
        for end in range(start, body.length + 2):
            assert b"".join(body.read(start, end, chunk=3)) == whole[start:end], (start, end)
    assert [(type(s.piece).__name__, s.start, s.end) for s in body.spans(2, 26)] == [
        ("Literal", 2, 4),
        ("FileRange", 0, 20),
        ("FileRange", 0, 2),
    ]


def test_a_body_tells_when_its_bytes_differ(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(bytes(100))
    a = Body([Literal(b"x"), FileRange(f, 0, 50)])
    assert a.etag() == Body([Literal(b"x"), FileRange(f, 0, 50)]).etag()
    assert a.etag() != Body([Literal(b"y"), FileRange(f, 0, 50)]).etag()
    assert a.etag() != Body([Literal(b"x"), FileRange(f, 1, 50)]).etag()
    with pytest.raises(OSError, match="ends at byte"):
        b"".join(Body([FileRange(f, 90, 20)]).read())


# -- FLAC ---------------------------------------------------------------------------


def test_coded_lengths_are_those_of_the_coded_numbers() -> None:
    values = [0, 1, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x1FFFFF, 0x200000]
    values += [0x3FFFFFF, 0x4000000, 0x7FFFFFFF, 0x80000000, 2**36 - 1]
    got = coded_lengths(np.asarray(values, dtype=np.int64)).tolist()
    assert got == [len(coded_number(v)) for v in values]


def encoded_frames(pcm: np.ndarray, rate: int = 8000) -> tuple[bytes, list[bytes]]:
    """A FLAC file of ``pcm`` from libsndfile, and its frames."""
    buf = io.BytesIO()
    soundfile.write(buf, pcm, rate, format="FLAC", subtype="PCM_16")
    data = buf.getvalue()
    framer = FlacFramer()
    return data, [f.data for f in framer.feed(data) + framer.flush()]


def test_renumbering_a_frame_to_count_samples_keeps_it_whole() -> None:
    rng = np.random.default_rng(3)
    pcm = rng.integers(-3000, 3000, size=(20000, 2), dtype=np.int16)
    _, frames = encoded_frames(pcm)
    assert len(frames) >= 4
    for k, frame in enumerate(frames[:4]):
        h = frame_header(frame)
        assert h is not None and not h.variable and h.number == k
        for number in (0, 5, 0x10000 + k, 2**35):
            out = renumber_frame(frame, h, number, variable=True)
            h2 = frame_header(out)
            assert h2 is not None and h2.variable and h2.number == number
            assert h2.block_size == h.block_size
            assert crc16(out) == 0, "the frame's CRC-16 still holds"
            assert out[h2.length : -2] == frame[h.length : -2], "the subframes untouched"
        assert renumber_frame(frame, h, h.number) == frame


@pytest.mark.parametrize(("bits", "n"), [(16, 1), (16, 17), (16, 4096), (24, 333), (8, 40)])
def test_a_verbatim_frame_decodes_to_its_samples(bits: int, n: int) -> None:
    rng = np.random.default_rng(bits + n)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)
    pcm = rng.integers(lo, hi, size=(n, 2), dtype=np.int32)
    pcm[0] = [lo, hi - 1]
    rate = 44100
    frame = verbatim_frame(pcm, 0, rate, bits)
    h = frame_header(frame)
    assert h is not None and h.variable and h.block_size == n and h.bits == bits
    assert crc16(frame) == 0
    info = StreamInfo(16, 4096, 0, 0, rate, 2, bits, n)
    raw, got_rate = soundfile.read(
        io.BytesIO(streaminfo_block(info) + frame), dtype="int32", always_2d=True
    )
    assert got_rate == rate
    assert np.array_equal(np.asarray(raw) >> (32 - bits), pcm)


def pcm_table(blocks: list[int]) -> UnitTable:
    return UnitTable(
        "flac",
        "k",
        "test",
        8000,
        86,
        np.full(len(blocks), 1000, dtype=np.uint32),
        np.asarray(blocks, dtype=np.uint32),
        exact=True,
        facts={"variable": False, "number0": 0, "bits": 16},
    )


def segment_samples(segs: list[_Pcm | _Copy]) -> list[tuple[str, int]]:
    out = []
    for s in segs:
        if isinstance(s, _Copy):
            out.append(("copy", s.table.sample(s.end) - s.table.sample(s.first)))
        else:
            out.append(("pcm", s.samples))
    return out


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ((4095, 20483), (0, 5000)),  # 1 sample of a frame, then a file's 3-sample end
        ((0, 20483), (4090, 4100)),  # a short end joined to a short edge elsewhere
        ((3, 8), None),  # a clip of 5 samples: one frame
        ((4096, 8192), (0, 4096)),  # frames only
        ((100, 20483), (3, 4097)),
    ],
)
def test_re_encoded_runs_hold_16_samples_but_at_the_end(
    first: tuple[int, int], second: tuple[int, int] | None
) -> None:
    a = pcm_table([4096] * 5 + [3])  # 20483 samples: the file's last frame is 3
    b = pcm_table([4096] * 3)
    parts = [Part("a", Path("a"), a, *first, 0.0, 1.0)]
    if second is not None:
        parts.append(Part("b", Path("b"), b, *second, 1.0, 2.0))
    segs = _segments(parts)
    want = sum(p.end - p.first for p in parts)
    got = segment_samples(segs)
    assert sum(n for _, n in got) == want
    for kind, n in got[:-1]:
        assert n >= MIN_BLOCK or kind == "copy", got
    if want >= MIN_BLOCK:
        assert got[-1][1] >= MIN_BLOCK or got[-1][0] == "pcm", got
    # Runs in order: copies never overlap what is re-encoded.
    for s in segs:
        if isinstance(s, _Pcm):
            for _, t, lo, hi in s.ranges:
                assert 0 <= lo < hi <= t.total_samples
