"""A segmenter for tests that drive it directly, in UTC, writing into a temp dir."""

from __future__ import annotations

import logging
from datetime import UTC
from pathlib import Path

from isr.segment import Segmenter


def make_segmenter(
    directory: Path,
    *,
    split_seconds: float = 3600.0,
    pattern: str = "%Y%m%d_%H%M%S",
    source: str = "s",
    base_dir: Path | None = None,
) -> Segmenter:
    return Segmenter(
        source=source,
        directory=directory,
        base_dir=base_dir or directory,
        pattern=pattern,
        split_seconds=split_seconds,
        tz=UTC,
        log=logging.getLogger("test"),
    )
