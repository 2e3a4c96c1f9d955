"""Pure parts of the web UI: name resolution, Range parsing, status reading, RMS maths."""

from __future__ import annotations

import base64
import itertools
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isr.web.analyse import RmsAccumulator, loud_sections
from isr.web.app import _credentials_ok, human_duration
from isr.web.files import start_from_name, wav_duration
from isr.web.paths import BadName, encode_name, split_name
from isr.web.ranges import RangeNotSatisfiable, etag, if_range_holds, parse_range
from isr.web.recorder_status import interpret


@pytest.mark.parametrize(
    ("raw", "segments"),
    [
        ("a.mp3", ("a.mp3",)),
        ("radio%201/x.mp3", ("radio 1", "x.mp3")),
        ("r/2026/11/x.ogg", ("r", "2026", "11", "x.ogg")),
        ("%C3%A9t%C3%A9.wav", ("été.wav",)),
        ("%252e%252e/x.mp3", ("%2e%2e", "x.mp3")),  # double-encoded stays literal
    ],
)
def test_split_name_accepts(raw: str, segments: tuple[str, ...]) -> None:
    assert split_name(raw) == segments


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "/etc/passwd",
        "../x.mp3",
        "a/../../x.mp3",
        "%2e%2e/x.mp3",
        "a/%2E%2E/%2e%2e/x.mp3",
        "a%2Fb.mp3",
        "..%2Fx.mp3",
        "a%5Cb.mp3",
        "a\\b.mp3",
        "..\\x.mp3",
        "a//b.mp3",
        "./a.mp3",
        ".isr/status.json",
        "%2eisr/status.json",
        "a%00.mp3",
        "%ff.mp3",
    ],
)
def test_split_name_refuses(raw: str) -> None:
    with pytest.raises(BadName):
        split_name(raw)


def test_encode_name_round_trips() -> None:
    name = "radio 1/a%b?#.mp3"
    assert encode_name(name) == "radio%201/a%25b%3F%23.mp3"
    assert "/".join(split_name(encode_name(name))) == name


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-", 100, (0, 99)),
        ("bytes=0-0", 100, (0, 0)),
        ("bytes=10-19", 100, (10, 19)),
        ("bytes=90-500", 100, (90, 99)),  # last clipped to the size
        ("bytes=-10", 100, (90, 99)),  # suffix
        ("bytes=-500", 100, (0, 99)),  # suffix longer than the file
        ("bytes=99-", 100, (99, 99)),
        ("BYTES=1-2", 100, (1, 2)),
        ("bytes=0-1,5-6", 100, None),  # several ranges: ignored, 200
        ("bytes=5-2", 100, None),  # invalid: ignored
        ("bytes=-", 100, None),
        ("items=0-1", 100, None),
        ("bytes=a-b", 100, None),
        ("bytes", 100, None),
        ("bytes=0-" + "9" * 5000, 100, (0, 99)),  # int() refuses 4,300+ digits: no 500
        ("bytes=-" + "9" * 5000, 100, (0, 99)),
        ("bytes=" + "0" * 5000 + "10-19", 100, (10, 19)),
        ("bytes=99-" + "9" * 19, 100, (99, 99)),
    ],
)
def test_parse_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=" + "9" * 5000 + "-", 100),
        ("bytes=" + "9" * 19 + "-" + "9" * 5000, 100),
    ],
)
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_status_freshness() -> None:
    data = {
        "updated": "2026-11-24T14:00:03+01:00",
        "sources": {
            "a": {"state": "recording", "file": "a/x.mp3"},
            "b": {"state": "retrying", "file": None, "last_error": "refused"},
            "c": {"state": "recording", "file": "/elsewhere/y.wav"},
        },
    }
    t = interpret(data, 0).updated
    assert t is not None
    fresh = interpret(data, t + 14.9)
    assert fresh.alive and fresh.recording == ["a/x.mp3"]
    stale = interpret(data, t + 15.1)
    assert not stale.alive and stale.recording == []
    assert not interpret({"updated": "garbage"}, t).alive


def test_basic_auth_check() -> None:
    good = "Basic " + base64.b64encode(b"ann:s3cr:t").decode()
    assert _credentials_ok(good, "ann", "s3cr:t")
    assert not _credentials_ok(good, "ann", "s3cr")
    assert not _credentials_ok(None, "ann", "s3cr:t")
    assert not _credentials_ok("Basic !!!", "ann", "x")
    assert not _credentials_ok("Bearer abc", "ann", "x")


def test_if_range() -> None:
    tag = etag(2000, 1_700_000_000_123_456_789)
    assert tag == f'"{1_700_000_000_123_456_789:x}-7d0"'
    assert if_range_holds(None, tag, 1e9)
    assert if_range_holds(tag, tag, 1e9)
    assert not if_range_holds(etag(1000, 1_700_000_000_123_456_789), tag, 1e9)  # it grew
    assert not if_range_holds("W/" + tag, tag, 1e9)  # weak never matches
    assert not if_range_holds('"other"', tag, 1e9)
    # dates: the file not modified after the date (to the second Last-Modified has)
    assert if_range_holds("Sun, 09 Sep 2001 01:46:40 GMT", tag, 1e9 + 0.7)
    assert not if_range_holds("Sun, 09 Sep 2001 01:46:39 GMT", tag, 1e9)
    assert not if_range_holds("yesterday", tag, 1e9)


def _wav_head(rate: int, channels: int, extra_chunk: bytes = b"") -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (
        b"RIFF\xff\xff\xff\xffWAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + extra_chunk
        + b"data\x00\x00\x00\x00"
    )


def test_wav_duration_counts_bytes_present() -> None:
    head = _wav_head(8000, 2)
    assert wav_duration(head, len(head) + 32000 * 3) == pytest.approx(3.0)
    odd = b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd chunk padded
    head2 = _wav_head(8000, 1, odd)
    assert wav_duration(head2, len(head2) + 16000) == pytest.approx(1.0)
    assert wav_duration(b"junk", 100) is None


def test_start_from_name() -> None:
    t = start_from_name("radio/20261124_140000.mp3")
    assert t is not None
    assert start_from_name("news.mp3") is None
    assert human_duration(3723.4) == "1:02:03"


def test_square_wave_rms_is_one_and_sine_is_root_half() -> None:
    acc = RmsAccumulator(1000, 100)
    square = np.where(np.arange(1000) % 10 < 5, 1.0, -1.0)
    acc.feed(np.stack([square, -square], axis=1))
    assert acc.result() == pytest.approx([1.0] * 10)
    acc2 = RmsAccumulator(48000)
    t = np.arange(48000) / 48000
    acc2.feed(0.5 * np.sin(2 * np.pi * 440 * t))
    assert acc2.result() == pytest.approx([0.5 / math.sqrt(2)] * 10, rel=1e-3)


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=0, max_value=2999), max_size=12),
    seed=st.integers(0, 2**16),
)
def test_rms_is_the_same_however_the_blocks_fall(cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(3000, 2))
    whole = RmsAccumulator(8000, 100)
    whole.feed(x)
    pieces = RmsAccumulator(8000, 100)
    bounds = [0, *sorted(cuts), 3000]
    for a, b in itertools.pairwise(bounds):
        pieces.feed(x[a:b])
    assert pieces.frames == 3000
    assert np.allclose(pieces.result(), whole.result())
    assert len(whole.result()) == 4  # 3 whole windows of 800 frames and a partial one


def test_loud_sections_merge() -> None:
    rms = [0.0, 0.2, 0.3, 0.0, 0.05, 0.01, 0.5]
    assert loud_sections(rms, 0.05, 0.1) == [[0.1, 0.3], [0.4, 0.5], [0.6, 0.7]]
    assert loud_sections(rms, 0.05, 0.1, duration=0.65)[-1] == [0.6, 0.65]
    assert loud_sections([], 0.05, 0.1) == []
    assert loud_sections([1.0, 1.0], 0.5, 0.1) == [[0.0, 0.2]]
