"""Finding the repeated audio at the start of a reconnect."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from isr.framing.base import Frame
from isr.overlap import RecentFrames, frame_key


def fr(i: int) -> Frame:
    return Frame(struct.pack(">I", i) * 8, 1152, 44100)


def test_burst_repeating_the_tail_is_found() -> None:
    recent = RecentFrames()
    recent.add([fr(i) for i in range(100)])
    assert recent.overlap([fr(i) for i in range(60, 130)]) == 40


def test_no_overlap_after_a_long_gap() -> None:
    recent = RecentFrames()
    recent.add([fr(i) for i in range(100)])
    assert recent.overlap([fr(i) for i in range(200, 230)]) == 0


def test_a_match_that_does_not_reach_the_end_is_no_overlap() -> None:
    recent = RecentFrames()
    recent.add([fr(i) for i in range(100)])
    assert recent.overlap([fr(i) for i in (50, 51, 52, 999)]) == 0


def test_longest_run_wins_with_repeated_frames() -> None:
    silence = Frame(b"\x00" * 32, 1152, 44100)
    recent = RecentFrames()
    recent.add([fr(1), silence, silence, silence])
    assert recent.overlap([fr(1), silence, silence, silence, silence]) == 4


def test_ogg_pages_compare_by_body() -> None:
    body = b"vorbis-audio" * 10
    page_a = b"OggS\x00\x00" + b"\x11" * 8 + b"\x22" * 12 + b"\x01" + b"\x78" + body
    page_b = b"OggS\x00\x00" + b"\x33" * 8 + b"\x44" * 12 + b"\x01" + b"\x78" + body
    assert frame_key(page_a) == frame_key(page_b)
    assert frame_key(page_a[:-1] + b"!") != frame_key(page_b)


def test_capacity_bounds_memory() -> None:
    recent = RecentFrames(capacity=10)
    recent.add([fr(i) for i in range(1000)])
    assert len(recent) == 10
    assert recent.overlap([fr(i) for i in range(995, 1005)]) == 5


@given(
    total=st.integers(1, 200),
    cut=st.integers(0, 200),
    extra=st.integers(0, 50),
)
def test_overlap_is_exactly_the_repeated_part(total: int, cut: int, extra: int) -> None:
    cut = min(cut, total)
    recent = RecentFrames()
    recent.add([fr(i) for i in range(total)])
    again = [fr(i) for i in range(cut, total + extra)]
    expected = total - cut if again else 0
    assert recent.overlap(again) == expected


def test_a_repeat_reaching_back_past_the_remembered_frames() -> None:
    recent = RecentFrames(capacity=10)
    recent.add([fr(i) for i in range(100)])  # remembers 90..99
    assert recent.overlap([fr(i) for i in range(80, 120)]) == 20
    assert recent.overlap([fr(i) for i in range(80, 95)]) == 0  # never reaches 99
