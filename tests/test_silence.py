"""Dead-air detection on PCM levels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from isr.silence import SilenceWatch, level_dbfs


def test_levels() -> None:
    assert level_dbfs(np.zeros(100, "<i2").tobytes()) == -math.inf
    square = np.array([32767, -32768] * 50, "<i2").tobytes()
    assert level_dbfs(square) == pytest.approx(0.0, abs=0.01)
    half_sine = (np.sin(np.arange(4410) * 2 * np.pi / 100) * 16384).astype("<i2").tobytes()
    assert level_dbfs(half_sine) == pytest.approx(-9.03, abs=0.05)


def test_silence_is_reported_once_then_its_end() -> None:
    watch = SilenceWatch(threshold_db=-50, seconds=2.0)
    events = [watch.feed(-80.0, 0.5) for _ in range(8)]
    assert events.count("silent") == 1 and events[3] == "silent"
    assert watch.feed(-20.0, 0.5) == "back"
    assert watch.feed(-20.0, 0.5) is None


def test_short_quiet_is_not_dead_air() -> None:
    watch = SilenceWatch(threshold_db=-50, seconds=2.0)
    for _ in range(3):
        assert watch.feed(-80.0, 0.5) is None
        assert watch.feed(-10.0, 0.5) is None
