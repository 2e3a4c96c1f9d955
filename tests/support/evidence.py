"""An archive with its hash chain, made in-process: real segmenter, sinks, chain
writer and checker, a PCM tone instead of a recorder process (fast and the same
every run)."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Any

from isr.evidence import chain
from isr.evidence.service import Evidence
from isr.sinks.wav import WavSink
from isr.sources.tone import tone_block
from tests.support import segmenting

T0 = 1_795_000_000.0
"""2026-11-18 something UTC: a whole second; files split every 2 s of audio."""
RATE = 8000


def record(
    root: Path,
    *,
    source: str = "radio",
    seconds: float = 7.0,
    sign: chain.Signer | None = None,
    day: str | None = None,
) -> Evidence:
    """Record ``seconds`` of tone into ``root/<source>/`` as 2-s WAV files, with the
    chain lines a recorder writes (started, closed..., a day line if asked, stopped)."""
    ev = Evidence(root, UTC, sign=sign, check_pause=0.0)
    ev.start([source])
    seg = segmenting.make_segmenter(
        root, split_seconds=2.0, pattern="{source}/%Y%m%d_%H%M%S", source=source
    )
    seg.on_close = lambda sink, ledger, kept: ev.closed(
        source, sink.path, ledger, sink.digest.result()
    )

    def make_sink(d: Path, stem: str, ext: str | None) -> WavSink:
        return WavSink(d, stem, sample_rate=RATE, channels=1)

    frames = int(seconds * RATE)
    pcm = tone_block(0, frames, 440.0, RATE, 1)
    for i in range(0, frames, 800):
        chunk = pcm[i * 2 : (i + 800) * 2]
        seg.write_pcm(chunk, i, T0, RATE, 2, make_sink, "wav")
    seg.close()
    assert ev.drain()
    if day is not None:
        ev.day([source], day)
    ev.stop([source])
    return ev


def lines(root: Path, source: str = "radio") -> list[dict[str, Any]]:
    path = chain.chain_path(root, source)
    return [json.loads(raw) for raw in path.read_bytes().splitlines()]


def closed_files(root: Path, source: str = "radio") -> list[tuple[int, dict[str, Any]]]:
    """(line number, line) of each ``closed`` line."""
    return [(n, obj) for n, obj in enumerate(lines(root, source), 1) if obj["event"] == "closed"]
