"""What every format's cutter does, and what it is given.

A cutter knows one container. ``walk`` reads a recording (or, for one that grew, the
part after the last walk) and returns its :class:`~isr.clips.units.UnitTable`;
``assemble`` turns the planned parts (which units of which files) into the pieces of
one playable file: fresh headers where the format needs them, then the units, as
they are or rewritten (FLAC frame numbers) where the format needs that.

The format registry (:mod:`isr.formats`, ``Format.cutter``) names each format's
cutter; a format without one cannot be clipped (the web UI answers 501, ``isr
clip`` exits with status 2). To plug in a new container (Ogg), write a module with an
object that has these two methods and name it in the registry's entries:

- ``walk`` returns the file's units in a :class:`~isr.clips.units.UnitTable`: their
  sizes and samples (an Ogg packet's samples from the granule positions; a unit's
  offset may be where the page that starts it starts, and sizes may be 0, so that a
  part's ``byte_range`` is the pages used), a ``key`` for the codec setup, what
  ``assemble`` needs in ``facts`` (JSON values: the header packets, say), ``walked``
  where a walk of the grown file goes on, and ``final``. Keep it fast: it runs before
  a clip's first byte, once per file (``tables.py`` keeps it).
- ``assemble`` returns pieces (``body.py``): :class:`~isr.clips.body.Literal` for
  what is made (headers, rebuilt pages), :class:`~isr.clips.body.FileRange` for bytes
  copied as they are, or a piece of its own that makes its bytes as they are read
  (``flac.FlacFrames``), with an exact length known before the first byte.
- A cutter whose format follows a change of codec setup as a new link (a chained
  Ogg stream) says so with ``chains = True``: the planner then refuses only a change
  of cutter, and ``assemble`` gets parts whose keys differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from isr.clips.body import Piece
from isr.clips.units import UnitTable

__all__ = ["Cutter", "Part"]


@dataclass(frozen=True)
class Part:
    """The units ``[first, end)`` of one recording that a clip holds (samples, when
    ``table.exact``), aired from ``start`` to ``stop`` (Unix seconds)."""

    name: str
    """The recording, relative to the recordings directory."""
    path: Path
    table: UnitTable
    first: int
    end: int
    start: float
    stop: float

    @property
    def byte_range(self) -> tuple[int, int]:
        """The file's bytes these units are (WAV: the samples' bytes; not for FLAC
        from PCM, whose parts count samples in frames)."""
        return self.table.offset(self.first), self.table.offset(self.end)

    @property
    def samples(self) -> int:
        """Samples per channel the part decodes to."""
        if self.table.exact:
            return self.end - self.first
        return self.table.sample(self.end) - self.table.sample(self.first)


class Cutter(Protocol):
    """One container's walk and assembly (see the module's docstring)."""

    def walk(
        self, path: Path, previous: UnitTable | None, *, final: bool, name: str = ""
    ) -> UnitTable:
        """The units of ``path``; ``previous`` is an earlier walk of the same file,
        which the new one extends (a file only grows). ``final``: the file is no
        longer written, so its end is the end of its last unit."""
        ...

    def assemble(self, parts: Sequence[Part]) -> list[Piece]:
        """The pieces of one file that plays ``parts`` in order (they share a key)."""
        ...
