"""Driving a framer in tests: any chunking, with the byte accounting checked."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from isr.framing.base import Frame, Framer
from isr.framing.oggpage import EOS
from isr.framing.oggwriter import OggFrame
from tests.support.tools import require_tool

F = TypeVar("F", bound=Framer)


def run_framer(
    framer: F, data: bytes, chunks: Iterable[int] | None = None
) -> tuple[list[Frame], F]:
    """Feed ``data`` whole or in ``chunks``, then flush; every byte must be in a
    frame or counted as dropped, and the drops must add up by reason."""
    frames: list[Frame] = []
    if chunks is None:
        frames += framer.feed(data)
    else:
        pos = 0
        for size in chunks:
            frames += framer.feed(data[pos : pos + size])
            pos += size
        frames += framer.feed(data[pos:])
    frames += framer.flush()
    assert sum(len(f.data) for f in frames) + framer.dropped_bytes == len(data)
    drops = getattr(framer, "drops", None)
    if isinstance(drops, dict):
        assert sum(drops.values()) == framer.dropped_bytes
    return frames, framer


def granules_disagree(frames: Iterable[Frame]) -> list[OggFrame]:
    """The Ogg audio pages whose samples (their granule delta) differ from the count
    of their packets (``OggFrame.computed``, counted here for every page, as the
    framer counts only some): none in a stream whose granules are right, but for an
    end-trimmed last page of a link, which may be shorter."""
    out = []
    for f in frames:
        if isinstance(f, OggFrame) and not f.header and f.granule != -1:
            computed = f.computed
            if f.samples != computed and not (f.flags & EOS and 0 <= f.samples < computed):
                out.append(f)
    return out


def joined(frames: list[Frame]) -> bytes:
    return b"".join(f.data for f in frames)


def ffprobe_packets(path: Path) -> int:
    cmd = [require_tool("ffprobe"), "-v", "error", "-count_packets", "-select_streams", "a:0"]
    cmd += ["-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)]
    return int(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
