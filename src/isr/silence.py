"""Dead air on PCM sources: a level below a threshold for too long."""

from __future__ import annotations

import math

import numpy as np

FULL_SCALE = 32768.0


def level_dbfs(pcm: bytes | memoryview) -> float:
    """RMS level of S16LE samples in dBFS (a full-scale square wave is 0 dBFS)."""
    view = memoryview(pcm)
    samples = np.frombuffer(view[: len(view) // 2 * 2], dtype="<i2")
    if samples.size == 0:
        return -math.inf
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64)))) / FULL_SCALE
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


class SilenceWatch:
    """Says when a signal went quiet for ``seconds`` and when it came back."""

    def __init__(self, threshold_db: float, seconds: float) -> None:
        self.threshold_db = threshold_db
        self.seconds = seconds
        self.quiet_for = 0.0
        self.reported = False

    def feed(self, dbfs: float, duration: float) -> str | None:
        """``"silent"`` once the quiet lasted ``seconds``; ``"back"`` when sound returns
        after that; else None."""
        if dbfs < self.threshold_db:
            self.quiet_for += duration
            if not self.reported and self.quiet_for >= self.seconds:
                self.reported = True
                return "silent"
            return None
        self.quiet_for = 0.0
        if self.reported:
            self.reported = False
            return "back"
        return None
