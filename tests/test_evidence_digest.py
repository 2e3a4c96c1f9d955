"""The SHA-256 computed while writing: every format, patched heads included.

Real encoded media goes through its framer, the segmenter and the sinks as a stream
would; each closed file's write-path account must be the file on the disk: the hash
itself where nothing was patched, else the head kept in memory and the SHA-256 of
the rest, which the check's one read turns into the file's hash.
"""

from __future__ import annotations

import errno
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from isr import formats
from isr.evidence.check import check_file
from isr.evidence.digest import WriteHash, Written
from isr.framing.mp3 import Mp3Framer
from isr.segment import Segmenter
from isr.sidecar import Ledger
from isr.sinks.base import Sink
from isr.sinks.flac import FlacSink
from isr.sinks.wav import WavSink
from tests.support import segmenting
from tests.support.media import MediaFactory

T0 = 1_790_000_000.0  # a UTC second; files split every 2 s of audio


def _record(tmp_path: Path, fmt: str, data: bytes) -> list[tuple[Path, Ledger, Written]]:
    entry = formats.by_name(fmt)
    assert entry is not None
    cls = entry.framer_class()
    assert cls is not None
    framer = cls()
    closed: list[tuple[Path, Ledger, Written]] = []
    seg: Segmenter = segmenting.make_segmenter(tmp_path, split_seconds=2.0, pattern="%H%M%S")
    seg.on_close = lambda sink, ledger, kept: closed.append(
        (sink.path, ledger, sink.digest.result())
    )

    def make_sink(d: Path, stem: str, ext: str | None) -> Sink:
        return Sink(d, stem, ext or framer.extension)

    t = T0
    for i in range(0, len(data), 4000):  # chunks that split frames anywhere
        frames = framer.feed(data[i : i + 4000])
        seg.write_frames(frames, t, make_sink, fmt, framer.file_writer)
        t += sum(f.samples / f.sample_rate for f in frames)
    seg.write_frames(framer.flush(), t, make_sink, fmt, framer.file_writer)
    seg.close()
    return closed


@pytest.mark.parametrize(
    ("kind", "fmt", "patched"),
    [
        ("mp3", "mp3", True),  # the Xing frame's counts
        ("aac", "aac", False),
        ("vorbis", "ogg", True),  # header pages kept, though nothing patches them
        ("opus", "ogg", True),
        ("oggflac", "ogg", True),  # the first page's STREAMINFO
        ("flac", "flac", True),  # STREAMINFO
    ],
)
def test_stream_files_hash_as_written(
    tmp_path: Path, media: MediaFactory, kind: str, fmt: str, patched: bool
) -> None:
    closed = _record(tmp_path, fmt, media(kind, 5.0).read_bytes())
    assert len(closed) >= 2
    for path, ledger, written in closed:
        data = path.read_bytes()
        assert not written.broken
        assert written.size == len(data) == ledger.bytes
        assert (written.reserve > 0) == patched
        assert written.head == data[: written.reserve]
        assert written.rest_sha256 == hashlib.sha256(data[written.reserve :]).hexdigest()
        whole = hashlib.sha256(data).hexdigest()
        side = json.loads(path.with_name(path.name + ".json").read_text())
        assert side["sha256"] == (None if patched else whole) == ledger.sha256
        assert side["bytes"] == len(data)
        result = check_file(path, written)
        assert result.ok, result.problems
        assert result.attested and result.sha256 == whole


@pytest.mark.parametrize("cls", [WavSink, FlacSink])
def test_pcm_sinks_hash_as_written(tmp_path: Path, cls: type[WavSink] | type[FlacSink]) -> None:
    rng = np.random.default_rng(15)
    pcm = rng.integers(-3000, 3000, size=8000 * 2 * 3, dtype=np.int16).tobytes()
    sink = cls(tmp_path, "x", sample_rate=8000, channels=2)
    for i in range(0, len(pcm), 6400):
        sink.write(pcm[i : i + 6400])
    sink.close()
    written = sink.digest.result()
    data = sink.path.read_bytes()
    assert not written.broken and written.reserve > 0
    assert written.head == data[: written.reserve]
    assert written.rest_sha256 == hashlib.sha256(data[written.reserve :]).hexdigest()
    result = check_file(sink.path, written)
    assert result.ok and result.attested, result.problems


def test_a_patch_outside_the_reserved_head_breaks_the_account() -> None:
    h = WriteHash(4)
    h.update(b"head" + b"body")
    h.patch(0, b"HE")
    assert h.result().head == b"HEad" and not h.result().broken
    h.patch(5, b"x")
    assert h.result().broken and h.result().sha256 is None


def test_no_reserve_hashes_the_whole_file() -> None:
    h = WriteHash()
    h.update(b"abc")
    h.update(memoryview(b"def"))
    assert h.result().sha256 == hashlib.sha256(b"abcdef").hexdigest()


def test_a_file_finished_by_repair_after_a_failed_write_is_hashed_from_the_disk(
    tmp_path: Path, media: MediaFactory
) -> None:
    """A full disk: the file is finished by repair, not by its writer, so its head
    is not the one in memory: the write path gives up its account, and the check's
    read supplies the hash (of the repaired bytes), with no false alarm."""
    framer = Mp3Framer()
    closed: list[Written] = []
    seg = segmenting.make_segmenter(tmp_path, split_seconds=3600.0)
    seg.on_close = lambda sink, ledger, kept: closed.append(sink.digest.result())
    writes = 0

    def make_sink(d: Path, stem: str, ext: str | None) -> Sink:
        class Failing(Sink):
            def write(self, data: bytes | memoryview) -> None:
                nonlocal writes
                writes += 1
                if writes == 20:
                    raise OSError(errno.ENOSPC, "No space left on device")
                super().write(data)

        return Failing(d, stem, ".mp3")

    data = media("mp3", 5.0).read_bytes()
    t = T0
    with pytest.raises(OSError):
        for i in range(0, len(data), 4000):
            frames = framer.feed(data[i : i + 4000])
            seg.write_frames(frames, t, make_sink, "mp3", framer.file_writer)
            t += sum(f.samples / f.sample_rate for f in frames)
    seg.close()
    (written,) = closed
    assert written.broken and written.sha256 is None
    path = next(tmp_path.glob("*.mp3"))
    result = check_file(path, written)
    assert result.ok, result.problems
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
