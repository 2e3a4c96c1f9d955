"""Spotting the audio a server repeats after a reconnect.

Icecast starts every new listener with a burst of audio it already sent, so the
first seconds of a reconnect often repeat the end of the previous file. Frames
copied byte for byte repeat byte for byte (Ogg pages in their bodies: granules and
sequence numbers may differ), so the overlap is the longest run at the start of the
new connection that equals the end of what was written. Only keys are kept, not
the audio: a few bytes per frame.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from fastcrc.crc64 import xz as _crc64

from isr.framing.base import Frame
from isr.framing.oggpage import HEADER_SIZE, body_start


def frame_key(data: bytes) -> int:
    """What identifies a frame's audio: the CRC-64 of its bytes; for an Ogg page, of
    its body. (A CRC of a view of the bytes copies nothing; ``hash()`` of a slice
    copied the body and then cost three times as much, in SipHash.) Two frames'
    keys are equal by chance once in 2**64; a repeat is also judged by the clock."""
    if data[:4] == b"OggS" and len(data) > HEADER_SIZE:
        return _crc64(memoryview(data)[body_start(data) :])
    return _crc64(data)


class RecentFrames:
    """Keys of the last ``capacity`` frames written, in a compact array (8 bytes a
    frame: a thousand streams share one process)."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._keys = array("Q")

    def add(self, frames: Sequence[Frame]) -> None:
        self._keys.extend(frame_key(f.data) for f in frames)
        excess = len(self._keys) - self.capacity
        if excess >= max(1, self.capacity // 4):
            del self._keys[:excess]  # trimmed in batches, not on every frame

    def clear(self) -> None:
        del self._keys[:]

    def __len__(self) -> int:
        return min(len(self._keys), self.capacity)

    def overlap(self, frames: Sequence[Frame]) -> int:
        """How many leading ``frames`` repeat what was written: the longest start of
        ``frames`` that ends with the last frames written. When the repeat reaches
        back further than the frames remembered, all of them must recur in one run."""
        runs = self.overlaps(frames)
        return runs[-1] if runs else 0

    def overlaps(self, frames: Sequence[Frame]) -> list[int]:
        """Every count of leading ``frames`` that could be a repeat (ascending):
        each start of ``frames`` that ends with the last frames written.

        Audio that repeats itself (a looped jingle, silence, a test tone) matches at
        many lengths; only the media clock can tell which one the server repeated,
        so the caller chooses (``stream.py``)."""
        old = self._keys[-self.capacity :].tolist()
        if not old or not frames:
            return []
        new = [frame_key(f.data) for f in frames]
        first = new[0]
        runs: list[int] = []
        for p, key in enumerate(old):
            run = len(old) - p
            if key == first and run <= len(new) and old[p:] == new[:run]:
                runs.append(run)
        # The new frames may start before the remembered ones: find them all inside.
        n, q = len(old), -1
        while True:
            try:
                q = new.index(old[0], q + 1)
            except ValueError:
                break
            if q > len(new) - n:
                break
            if new[q : q + n] == old:
                runs.append(q + n)
        return sorted(set(runs))
