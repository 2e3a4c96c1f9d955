"""The per-chunk path of a stream source, without the network: where its CPU goes.

Replays ``--seconds`` of a 128 kbps MP3 stream with ICY metadata every 16000 bytes,
cut into reads of ``--chunk`` bytes, through what ``sources/stream.py`` does per
read: ``IcyDemuxer.feed`` -> ``Mp3Framer.feed`` -> media-time sums ->
``Segmenter.write_frames`` (real files in a temp dir, split every minute of media
time, sidecars and all) -> ``RecentFrames.add``. Prints CPU microseconds per
stream-second (x 3.6 = CPU-ms per stream-hour) for each stage and variant.

Variants prototype changes to files this benchmark does not own, by patching
scratch copies of the functions at run time (nothing in src/ is modified):

- ``frame-slots``: ``Frame`` as a plain ``__slots__`` class instead of a frozen
  dataclass (whose ``__init__`` goes through ``object.__setattr__`` per field);
- ``silent-startswith``: ``Mp3Framer._silent`` testing ``buf.startswith`` at an
  offset instead of slicing ``bytes(buf[o:o + 4])`` on every frame;
- ``json-dumps``: ``write_json_atomic`` encoding with ``json.dumps`` and one write
  instead of streaming ``json.dump`` into a text file (sidecars at every open/close).

    .venv/bin/python bench/stream_path.py --chunk 1024 --chunk 8192 --variant all
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from isr import sidecar as sidecar_mod  # noqa: E402
from isr.clock import local_zone  # noqa: E402
from isr.framing import _sync  # noqa: E402
from isr.framing import base as framing_base  # noqa: E402
from isr.framing.mp3 import Mp3Framer  # noqa: E402
from isr.overlap import RecentFrames  # noqa: E402
from isr.segment import Segmenter  # noqa: E402
from isr.sinks.base import Sink  # noqa: E402
from isr.sources.icy import IcyDemuxer  # noqa: E402

METAINT = 16000
RATE = 16000  # bytes per second at 128 kbps


def make_stream(seconds: float, where: Path) -> bytes:
    """``seconds`` of 128 kbps MP3 with ICY metadata blocks inserted every METAINT."""
    path = where / "path.mp3"
    subprocess.run(
        [
            "ffmpeg",
            *("-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", f"sine=f=440:b=2:d={seconds}:r=44100", "-ac", "2"),
            *("-c:a", "libmp3lame", "-b:a", "128k", "-id3v2_version", "0"),
            *("-write_xing", "0", "-f", "mp3", str(path)),
        ],
        check=True,
    )
    audio = path.read_bytes()
    meta = b"StreamTitle='Artist - Song';"
    meta += b"\0" * (-len(meta) % 16)
    block = bytes([len(meta) // 16]) + meta
    out = bytearray()
    for i in range(0, len(audio), METAINT):
        out += audio[i : i + METAINT]
        out += block if (i // METAINT) % 4 == 0 else b"\0"
    return bytes(out)


cpu = time.process_time


def run_path(stream: bytes, chunk: int, out: Path) -> dict[str, float]:
    """One stream's worth of the per-read work; CPU seconds per stage."""
    tz = local_zone()
    log = logging.getLogger("bench.path")
    seg = Segmenter(
        source="s",
        directory=out,
        base_dir=out,
        pattern="%Y%m%d_%H%M%S",
        split_seconds=60.0,
        tz=tz,
        log=log,
    )
    icy = IcyDemuxer(METAINT)
    framer = Mp3Framer()
    recent = RecentFrames()
    t0 = 1_800_000_000.0  # a fixed media start: files split on its minutes

    def make(directory: Path, stem: str, ext: str | None = None) -> Sink:
        return Sink(directory, stem, framer.extension)

    stages = {"icy": 0.0, "framer": 0.0, "sums": 0.0, "segmenter": 0.0, "recent": 0.0}
    media = written = 0.0
    for pos in range(0, len(stream), chunk):
        data = stream[pos : pos + chunk]
        c0 = cpu()
        audio, _titles = icy.feed(data)
        c1 = cpu()
        frames = framer.feed(audio)
        c2 = cpu()
        for f in frames:
            media += f.samples / f.sample_rate
        size = 0
        c3 = cpu()
        seg.write_frames(frames, t0 + written, make, "mp3", framer.file_writer)
        c4 = cpu()
        for f in frames:
            written += f.samples / f.sample_rate
            size += len(f.data)
        recent.add(frames)
        c5 = cpu()
        stages["icy"] += c1 - c0
        stages["framer"] += c2 - c1
        stages["sums"] += (c3 - c2) + (c5 - c4) / 2
        stages["segmenter"] += c4 - c3
        stages["recent"] += (c5 - c4) / 2
    seg.close()
    return stages


# -- scratch prototypes ---------------------------------------------------------------------


class SlotsFrame:
    """``Frame`` without the frozen dataclass: a plain class with __slots__."""

    __slots__ = ("cut", "data", "new_link", "sample_rate", "samples", "title")

    def __init__(
        self,
        data: bytes,
        samples: int,
        sample_rate: int,
        cut: bool = True,
        new_link: bool = False,
        title: str | None = None,
    ) -> None:
        self.data = data
        self.samples = samples
        self.sample_rate = sample_rate
        self.cut = cut
        self.new_link = new_link
        self.title = title


def silent_startswith(self: Mp3Framer, buf: bytearray, i: int, h: _sync.Header) -> bool:
    b1 = buf[i + 1]
    if (b1 >> 1) & 3 != 1:
        return False
    mono = buf[i + 3] >> 6 == 3
    mpeg1 = (b1 >> 3) & 3 == 3
    side = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
    o = i + 4 + side + (0 if b1 & 1 else 2)
    if h.length >= o - i + 4 and buf.startswith((b"Xing", b"Info"), o):
        return True
    return h.length >= 40 and buf.startswith(b"VBRI", i + 36)


def json_dumps_atomic(path: Path, obj: Any) -> None:
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


VARIANTS: dict[str, list[tuple[Any, str, Any]]] = {
    "baseline": [],
    "frame-slots": [(_sync, "Frame", SlotsFrame), (framing_base, "Frame", SlotsFrame)],
    "silent-startswith": [(Mp3Framer, "_silent", silent_startswith)],
    "json-dumps": [(sidecar_mod, "write_json_atomic", json_dumps_atomic)],
}
VARIANTS["all"] = [
    p for k in ("frame-slots", "silent-startswith", "json-dumps") for p in VARIANTS[k]
]


@contextmanager
def patched(patches: Sequence[tuple[Any, str, Any]]) -> Iterator[None]:
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    try:
        for obj, name, value in patches:
            setattr(obj, name, value)
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=600.0, help="media seconds replayed")
    ap.add_argument("--chunk", type=int, action="append", help="read size (repeatable)")
    ap.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="repeatable")
    ap.add_argument("--repeat", type=int, default=3, help="best of")
    args = ap.parse_args()
    chunks = args.chunk or [1024, 8192]
    variants = args.variant or ["baseline", "frame-slots", "silent-startswith", "all"]
    if "baseline" not in variants:
        variants.insert(0, "baseline")
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="isr-bench-path-") as tmp:
        stream = make_stream(args.seconds, Path(tmp))
        media_seconds = len(stream) / (RATE * (1 + 1 / METAINT))
        print(
            f"{len(stream)} bytes = {media_seconds:.0f} s of 128 kbps MP3 + ICY; best of "
            f"{args.repeat}; CPU us per stream-second (x3.6 = CPU-ms per stream-hour)"
        )
        header = f"{'chunk':>6} {'variant':<18}" + "".join(
            f"{k:>10}" for k in ("icy", "framer", "sums", "segmenter", "recent", "total")
        )
        print(header)
        for chunk in chunks:
            for variant in variants:
                best: dict[str, float] | None = None
                for r in range(args.repeat):
                    out = Path(tmp) / f"out-{chunk}-{variant}-{r}"
                    out.mkdir()
                    with patched(VARIANTS[variant]):
                        stages = run_path(stream, chunk, out)
                    if best is None or sum(stages.values()) < sum(best.values()):
                        best = stages
                assert best is not None
                cells = [best[k] for k in ("icy", "framer", "sums", "segmenter", "recent")]
                cells.append(sum(cells))
                print(
                    f"{chunk:>6} {variant:<18}"
                    + "".join(f"{c / media_seconds * 1e6:>10.1f}" for c in cells)
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
