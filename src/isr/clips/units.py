"""A recording's units (frames, or PCM samples) with their byte offsets and times.

A :class:`UnitTable` is what a cutter's walk over one file found: where its first
unit starts, the size and the sample count of every unit after it, and the codec
parameters all its units share (``key``). The time of unit ``k`` is the file's start
(its sidecar) plus ``starts[k] / rate``, so a time becomes a unit by a binary search,
and a run of units becomes a byte range, without reading the file again.

Stream formats store each unit (an MP3 or ADTS frame, a FLAC frame): ~140,000 for
an hour of MP3, 0.8 MB as two ``uint32`` arrays, and a few kB once compressed (a
stream's frames are alike). WAV needs no walk at all: its units are sample frames
of ``unit_bytes`` each, by arithmetic.

Pure: no I/O here (``tables.py`` keeps them, the cutters walk the files).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["EMPTY", "UnitTable", "join_arrays"]

EMPTY: npt.NDArray[np.uint32] = np.zeros(0, dtype=np.uint32)

_SNAP_SECONDS = 1e-6
"""A sample position within a microsecond of a whole number is that number: the float
residue of ``(time - start) * rate`` with Unix times (~2e-7 s today), so that a time
on a unit boundary belongs to the unit it starts."""


def join_arrays(a: npt.NDArray[np.uint32], b: list[int]) -> npt.NDArray[np.uint32]:
    """``a`` with the values of ``b`` appended (a growing file's table extended)."""
    if not b:
        return a
    return np.concatenate([a, np.asarray(b, dtype=np.uint32)])


@dataclass(frozen=True, eq=False)
class UnitTable:
    """The units of one file, as far as a walk found whole ones."""

    cutter: str
    """The cutter that walked it (``mp3``, ``aac``, ``flac``, ``wav``)."""
    key: str
    """The codec parameters every unit shares: files whose keys differ cannot be one
    clip (409)."""
    describe: str
    """``key`` for people: ``MPEG-1 Layer III, 44100 Hz``."""
    rate: int
    data_start: int
    """Byte offset of the first unit (after headers)."""
    sizes: npt.NDArray[np.uint32] = field(default_factory=lambda: EMPTY)
    """Bytes of each unit; empty when the units are uniform (``unit_bytes``)."""
    samples: npt.NDArray[np.uint32] = field(default_factory=lambda: EMPTY)
    """PCM samples (per channel) each unit decodes to."""
    unit_bytes: int = 0
    """Uniform units (WAV sample frames): bytes of each; ``uniform_count`` of them."""
    uniform_count: int = 0
    exact: bool = False
    """PCM: a clip is cut at the exact sample, not between units."""
    walked: int = 0
    """Where a walk of this file goes on when it has grown (the end of the last unit
    known to be whole)."""
    final: bool = True
    """The walk reached the end of a file that is no longer written."""
    facts: Mapping[str, Any] = field(default_factory=dict)
    """What the cutter needs besides (JSON values): a first header, STREAMINFO, ..."""

    # -- sizes ---------------------------------------------------------------------

    @property
    def uniform(self) -> bool:
        return self.unit_bytes > 0

    @property
    def count(self) -> int:
        return self.uniform_count if self.uniform else len(self.sizes)

    @functools.cached_property
    def offsets(self) -> npt.NDArray[np.int64]:
        """Byte offset of each unit, and of the end of the last (``count + 1``)."""
        out = np.empty(len(self.sizes) + 1, dtype=np.int64)
        out[0] = self.data_start
        np.cumsum(self.sizes, dtype=np.int64, out=out[1:])
        out[1:] += self.data_start
        return out

    @functools.cached_property
    def starts(self) -> npt.NDArray[np.int64]:
        """Samples before each unit, and in all (``count + 1``)."""
        out = np.zeros(len(self.samples) + 1, dtype=np.int64)
        np.cumsum(self.samples, dtype=np.int64, out=out[1:])
        return out

    @property
    def data_end(self) -> int:
        return self.offset(self.count)

    @property
    def total_samples(self) -> int:
        return self.sample(self.count)

    @property
    def seconds(self) -> float:
        return self.total_samples / self.rate if self.rate else 0.0

    def offset(self, k: int) -> int:
        """Byte offset of unit ``k`` (``count``: the end of the last one)."""
        if self.uniform:
            return self.data_start + k * self.unit_bytes
        return int(self.offsets[k])

    def sample(self, k: int) -> int:
        """Samples before unit ``k``."""
        if self.uniform:
            return k
        return int(self.starts[k])

    # -- from times to units ---------------------------------------------------------

    def unit_at(self, position: float) -> int:
        """The unit that holds sample ``position`` (0 before the first; ``count`` past
        the last): where a clip from that moment starts."""
        position = _snap(position, self.rate)
        if position <= 0:
            return 0
        if self.uniform:
            return min(self.uniform_count, math.floor(position))
        k = int(np.searchsorted(self.starts, position, side="right")) - 1
        return min(max(k, 0), self.count) if position < self.starts[-1] else self.count

    def unit_end(self, position: float) -> int:
        """The end (exclusive) of the units a clip to sample ``position`` holds: the
        unit that holds the instant just before it is the last one."""
        position = _snap(position, self.rate)
        if position <= 0:
            return 0
        if self.uniform:
            return min(self.uniform_count, math.ceil(position))
        k = int(np.searchsorted(self.starts, position, side="left"))
        return min(k, self.count)


def _snap(position: float, rate: int) -> float:
    nearest = round(position)
    return float(nearest) if abs(position - nearest) < _SNAP_SECONDS * rate else position
