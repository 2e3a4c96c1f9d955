"""An archive written the way the recorder writes it, at any time of any day.

The recorder's own :class:`~isr.segment.Segmenter` cuts the files and writes their
sidecars (gaps, titles, ends), fed with one-second frames whose airing times the
test chooses: no real time passes, and no wall-clock boundary matters.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from isr.framing.base import Frame, PassThrough
from isr.segment import Segmenter
from isr.sidecar import Ledger
from isr.sinks.base import Sink

RATE = 8000
FRAME = b"\xff\xfb" + bytes(98)
"""100 bytes per one-second frame: content does not matter to the index."""


def _sink(directory: Path, stem: str, ext: str | None) -> Sink:
    return Sink(directory, stem, ext or ".mp3")


def _release(sink: Sink, ledger: Ledger, ok: bool) -> None:
    # The recorder's syncer closes the fsync descriptor after the file; without it
    # the file would stay locked, i.e. "being recorded".
    if sink.sync_fd is not None:
        os.close(sink.sync_fd)
        sink.sync_fd = None


class Archive:
    """``root`` with one Segmenter per source (pattern ``{source}/%Y%m%d_%H%M%S``)."""

    def __init__(self, root: Path, tz: tzinfo, *, split_seconds: float = 3600.0) -> None:
        self.root = root
        self.tz = tz
        self.split_seconds = split_seconds
        self.segmenters: dict[str, Segmenter] = {}

    def segmenter(self, source: str) -> Segmenter:
        if source not in self.segmenters:
            self.segmenters[source] = Segmenter(
                source=source,
                directory=self.root,
                base_dir=self.root,
                pattern="{source}/%Y%m%d_%H%M%S",
                split_seconds=self.split_seconds,
                tz=self.tz,
                log=logging.getLogger("test.archive"),
                on_close=_release,
            )
        return self.segmenters[source]

    def record(
        self,
        source: str,
        start: float,
        seconds: int,
        *,
        titles: Mapping[int, str] | None = None,
        cause: str | None = None,
        stop: bool = True,
    ) -> None:
        """``seconds`` of audio aired from ``start``; ``titles`` maps a second (from
        ``start``) to the title that begins there. A session after an earlier one of
        the same source records the gap since (with ``cause``). ``stop=False`` leaves
        the last file open (being recorded)."""
        seg = self.segmenter(source)
        if cause is not None:
            seg.note_cause(cause)
        for i in range(seconds):
            if titles and i in titles:
                seg.note_title(titles[i])
            seg.write_frames([Frame(FRAME, RATE, RATE)], start + i, _sink, "mp3", PassThrough)
        if stop:
            seg.close()

    def stop(self, source: str) -> None:
        self.segmenters[source].close()

    def close(self) -> None:
        for seg in self.segmenters.values():
            seg.close()
            if seg.sink is not None and seg.sink.sync_fd is not None:
                os.close(seg.sink.sync_fd)


def sidecar(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".json").read_text())
    return data


def local(text: str, tz: tzinfo) -> float:
    """Unix seconds of a local time in ``tz`` (its first occurrence)."""
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def write_status(root: Path, files: Mapping[str, str]) -> None:
    """A fresh status file of a live recorder recording ``files`` (source -> name)."""
    now = datetime.now().astimezone().isoformat()
    (root / ".isr").mkdir(exist_ok=True)
    data = {
        "version": 1,
        "pid": os.getpid(),
        "host": "h",
        "started": now,
        "updated": now,
        "sources": {s: {"state": "recording", "file": f} for s, f in files.items()},
    }
    (root / ".isr" / "status.json").write_text(json.dumps(data))
