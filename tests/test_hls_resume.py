"""A restarted HLS source goes on from the audio after the last it wrote: the
frames of the first segment that the last run had written already are dropped."""

from __future__ import annotations

import pytest

from isr.framing.base import Frame
from isr.sources.hls import frames_from

RATE = 44100
LENGTH = 1024 / RATE


def segment(n: int) -> list[Frame]:
    return [Frame(b"%03d" % i, 1024, RATE) for i in range(n)]


@pytest.mark.parametrize(
    ("since", "kept"),
    [
        (100.0 - 1.0, 43),  # the last run ended before this segment: all of it
        (100.0, 43),  # ...exactly at its start
        (100.0 + 10 * LENGTH, 33),  # a crash cut it after 10 frames
        (100.0 + 10 * LENGTH + 0.004, 33),  # float and rounding residue: still 33
        (100.0 + 10.6 * LENGTH, 32),  # past half of frame 10: it was written
        (100.0 + 43 * LENGTH, 0),  # all of it was written
    ],
)
def test_frames_from(since: float, kept: int) -> None:
    frames = segment(43)
    left, t = frames_from(frames, 100.0, since)
    assert left == frames[43 - kept :]
    assert t == pytest.approx(100.0 + (43 - kept) * LENGTH)
