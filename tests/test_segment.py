"""The segmenter: names on boundaries, never overwrite, splits only between units."""

from __future__ import annotations

import json
import wave
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from isr.clock import MediaClock
from isr.framing.base import Frame, PassThrough
from isr.segment import Segmenter
from isr.sinks.base import Sink
from isr.sinks.wav import WavSink
from isr.sources.tone import tone_block
from tests.support import segmenting

T0 = datetime(2026, 11, 24, 13, 59, 58, 500000, tzinfo=UTC).timestamp()


def make_segmenter(tmp_path: Path, split: float = 3.0) -> Segmenter:
    return segmenting.make_segmenter(
        tmp_path, split_seconds=split, pattern="{source}/%H%M%S", source="radio1"
    )


def raw(ext: str):  # type: ignore[no-untyped-def]
    return lambda d, stem, _e: Sink(d, stem, ext)


def frames(n: int, size: int = 100, samples: int = 1152, rate: int = 48000) -> list[Frame]:
    return [Frame(bytes([i % 256]) * size, samples, rate) for i in range(n)]


def test_first_file_named_after_first_audio_then_boundaries(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    fs = frames(300)  # 300 * 24 ms = 7.2 s from 13:59:58.5
    seg.write_frames(fs, T0, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    names = sorted(p.name for p in (tmp_path / "radio1").glob("*.mp3"))
    assert names == ["135958.mp3", "140000.mp3", "140003.mp3"]
    joined = b"".join((tmp_path / "radio1" / n).read_bytes() for n in names)
    assert joined == b"".join(f.data for f in fs)  # nothing lost or doubled
    # Each file starts with the first frame whose time reached the boundary.
    second = (tmp_path / "radio1" / "140000.mp3").read_bytes()
    first_index = second[0]
    t_first = T0 + first_index * 0.024
    assert t_first >= T0 + 1.5 and t_first - 0.024 < T0 + 1.5


def test_sidecar_tells_start_end_titles(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    seg.write_frames(frames(10), T0, raw(".mp3"), "mp3", PassThrough)
    seg.note_title("It's a 'song'; really")
    seg.write_frames(frames(10), T0 + 0.24, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    side = json.loads((tmp_path / "radio1" / "135958.mp3.json").read_text())
    assert side["source"] == "radio1" and side["file"] == "radio1/135958.mp3"
    assert side["start"] == "2026-11-24T13:59:58.500+00:00"
    assert side["end"] == "2026-11-24T13:59:58.980+00:00"
    assert side["titles"] == [{"at": 0.24, "byte": 1000, "title": "It's a 'song'; really"}]


def test_title_carries_into_next_file(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    seg.note_title("A - B")
    seg.write_frames(frames(200), T0, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    side = json.loads((tmp_path / "radio1" / "140000.mp3.json").read_text())
    assert side["titles"] == [{"at": 0.0, "byte": 0, "title": "A - B"}]


def test_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "radio1").mkdir()
    (tmp_path / "radio1" / "135958.mp3").write_bytes(b"precious")
    (tmp_path / "radio1" / "135958_1.mp3").write_bytes(b"also precious")
    seg = make_segmenter(tmp_path)
    seg.write_frames(frames(5), T0, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    assert (tmp_path / "radio1" / "135958.mp3").read_bytes() == b"precious"
    assert (tmp_path / "radio1" / "135958_1.mp3").read_bytes() == b"also precious"
    assert (tmp_path / "radio1" / "135958_2.mp3").stat().st_size == 500


def test_reconnect_opens_a_new_file_even_within_a_slot(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path, split=3600)
    seg.write_frames(frames(5), T0, raw(".mp3"), "mp3", PassThrough)
    seg.close()  # connection lost
    seg.write_frames(frames(5), T0 + 0.5, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    assert sorted(p.name for p in (tmp_path / "radio1").glob("*.mp3")) == [
        "135958.mp3",
        "135959.mp3",
    ]


def pcm_write(seg: Segmenter, data: bytes, index: int, origin: float, channels: int = 2) -> None:
    seg.write_pcm(
        data,
        index,
        origin,
        8000,
        2 * channels,
        lambda d, stem, _e: WavSink(d, stem, sample_rate=8000, channels=channels),
        "wav",
    )


@pytest.mark.parametrize("chunk", [1, 7, 800, 8000, 24001])
def test_pcm_splits_on_the_exact_sample(tmp_path: Path, chunk: int) -> None:
    seg = make_segmenter(tmp_path)
    total = 8000 * 10
    signal = tone_block(0, total, 440.0, 8000, 2)
    fb = 4
    for start in range(0, total, chunk):
        end = min(total, start + chunk)
        pcm_write(seg, signal[start * fb : end * fb], start, T0)
    seg.close()
    files = sorted((tmp_path / "radio1").glob("*.wav"))
    assert [f.name for f in files] == ["135958.wav", "140000.wav", "140003.wav", "140006.wav"]
    counts = []
    joined = b""
    for f in files:
        with wave.open(str(f)) as w:
            counts.append(w.getnframes())
            joined += w.readframes(w.getnframes())
    assert counts == [12000, 24000, 24000, 20000]  # middle files exactly 3 s
    assert joined == signal


def test_pcm_phase_unbroken_across_joins(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    rate = 8000
    sig = tone_block(0, rate * 7, 440.0, rate, 1)
    pcm_write(seg, sig, 0, T0, channels=1)
    seg.close()
    parts = []
    for f in sorted((tmp_path / "radio1").glob("*.wav")):
        with wave.open(str(f)) as w:
            parts.append(np.frombuffer(w.readframes(w.getnframes()), "<i2"))
    joined = np.concatenate(parts).astype(float)
    n = np.arange(joined.size)
    expected = np.round(np.sin(2 * np.pi * 440 * n / rate) * 0.5 * 32767)
    assert np.max(np.abs(joined - expected)) <= 1


class TaggingWriter:
    """A writer that brackets each file, so tests can see begin/end/patches at work."""

    extension: str | None = None

    def begin(self, first: Frame) -> bytes:
        return b"HEAD"

    def write(self, frames: Sequence[Frame]) -> bytes:
        return b"".join(f.data for f in frames)

    def end(self) -> bytes:
        return b"TAIL"

    def patches(self) -> list[tuple[int, bytes]]:
        return [(0, b"head")]


def test_writer_brackets_every_file_and_patches_at_close(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    fs = frames(200)
    seg.write_frames(fs, T0, raw(".ogg"), "ogg", TaggingWriter)
    seg.close()
    files = sorted((tmp_path / "radio1").glob("*.ogg"))
    assert len(files) == 3
    inner = b""
    for f in files:
        data = f.read_bytes()
        assert data.startswith(b"head") and data.endswith(b"TAIL")
        inner += data[4:-4]
    assert inner == b"".join(f.data for f in fs)


def test_no_cut_before_a_frame_that_continues_a_packet(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    # 1.5 s per frame: frame 1 starts exactly at the 14:00:00 boundary but may not start a file
    fs = [
        Frame(b"a", 72000, 48000),
        Frame(b"b", 72000, 48000, cut=False),
        Frame(b"c", 72000, 48000),
    ]
    seg.write_frames(fs, T0, raw(".ogg"), "ogg", PassThrough)
    seg.close()
    assert [f.read_bytes() for f in sorted((tmp_path / "radio1").glob("*.ogg"))] == [b"ab", b"c"]


def test_new_link_starts_a_new_file_named_after_its_time(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path, split=3600)
    fs = [Frame(b"a", 48000, 48000), Frame(b"b", 48000, 48000, new_link=True, title="Next")]
    seg.write_frames(fs, T0, raw(".ogg"), "ogg", PassThrough)
    seg.close()
    names = sorted(p.name for p in (tmp_path / "radio1").glob("*.ogg"))
    assert names == ["135958.ogg", "135959.ogg"]
    side = json.loads((tmp_path / "radio1" / "135959.ogg.json").read_text())
    assert side["titles"] == [{"at": 0.0, "byte": 0, "title": "Next"}]


def test_a_first_file_under_a_second_runs_on_to_the_next_boundary(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    start = T0 + 1.2  # 13:59:59.7, 0.3 s before the 14:00:00 boundary
    seg.write_frames(frames(200), start, raw(".mp3"), "mp3", PassThrough)  # 4.8 s
    seg.close()
    names = sorted(p.name for p in (tmp_path / "radio1").glob("*.mp3"))
    assert names == ["135959.mp3", "140003.mp3"]


class FullDisk(Sink):
    """A sink on a disk that fills up after ``room`` bytes."""

    room = 0

    def write(self, data: bytes | memoryview) -> None:
        if self.bytes_written + len(data) > self.room:
            raise OSError(28, "No space left on device")
        super().write(data)


def test_a_file_that_never_got_audio_is_not_left_behind(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    for room in (0, 10):  # nothing fits; only the writer's header fits
        FullDisk.room = room
        with pytest.raises(OSError, match="No space"):
            seg.write_frames(
                frames(5), T0, lambda d, s, _e: FullDisk(d, s, ".ogg"), "ogg", TaggingWriter
            )
        seg.close()
    assert list(tmp_path.rglob("*")) == [tmp_path / "radio1"]  # no file, sidecar or temp


def test_a_session_after_an_outage_notes_the_gap_and_its_cause(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path, split=3600)
    seg.write_frames(frames(10), T0, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    seg.note_cause("No space left on device")
    seg.write_frames(frames(10), T0 + 5.0, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    second = sorted((tmp_path / "radio1").glob("*.json"))[1]
    gaps = json.loads(second.read_text())["gaps"]
    assert gaps == [{"at": 0.0, "seconds": 4.76, "cause": "No space left on device"}]


def test_files_outside_the_output_directory_have_absolute_names(tmp_path: Path) -> None:
    seg = segmenting.make_segmenter(
        tmp_path / "elsewhere",
        base_dir=tmp_path / "recordings",
        source="far",
        pattern="%H%M%S",
        split_seconds=60,
    )
    seg.write_frames(frames(3), T0, raw(".mp3"), "mp3", PassThrough)
    assert seg.ledger is not None
    assert seg.ledger.file == (tmp_path / "elsewhere" / "135958.mp3").as_posix()
    seg.close()


def sidecars(tmp_path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "radio1").glob("*.json"))]


def test_a_clock_that_jumps_ahead_ends_the_file_and_notes_the_gap(tmp_path: Path) -> None:
    """A stream clock re-anchored after a stall puts the next frames 3 s after the
    file's audio ends: the file keeps the span of its own audio, and a new file, named
    after the new time, starts with a gap of the 3 s that never came."""
    seg = make_segmenter(tmp_path, split=3600)
    fs = frames(20)  # 0.48 s
    seg.write_frames(fs[:10], T0, raw(".mp3"), "mp3", PassThrough)
    seg.write_frames(fs[10:], T0 + 0.24 + 3.0, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    names = sorted(p.name for p in (tmp_path / "radio1").glob("*.mp3"))
    assert names == ["135958.mp3", "140001.mp3"]
    first, second = sidecars(tmp_path)
    assert (first["start"], first["end"]) == (
        "2026-11-24T13:59:58.500+00:00",
        "2026-11-24T13:59:58.740+00:00",
    ), first
    assert second["start"] == "2026-11-24T14:00:01.740+00:00", second
    assert second["end"] == "2026-11-24T14:00:01.980+00:00", second
    assert [g["seconds"] for g in second["gaps"]] == [3.0], second
    assert second["gaps"][0]["at"] == 0.0
    assert "jumped +3.000 s" in second["gaps"][0]["cause"]
    joined = b"".join((tmp_path / "radio1" / n).read_bytes() for n in names)
    assert joined == b"".join(f.data for f in fs)  # nothing lost or doubled


def test_a_jump_waits_for_a_frame_that_may_start_a_file(tmp_path: Path) -> None:
    """Ogg pages that continue a packet cannot start a file: after the jump they end
    the old file on its own clock, and the new file starts at the next page that may."""
    seg = make_segmenter(tmp_path, split=3600)
    seg.write_frames([Frame(b"a", 4800, 48000)], T0, raw(".ogg"), "ogg", PassThrough)
    later = T0 + 0.1 + 2.0
    seg.write_frames([Frame(b"b", 4800, 48000, cut=False)], later, raw(".ogg"), "ogg", PassThrough)
    seg.write_frames(
        [Frame(b"c", 4800, 48000, cut=False), Frame(b"d", 4800, 48000)],
        later + 0.1,
        raw(".ogg"),
        "ogg",
        PassThrough,
    )
    seg.close()
    files = sorted((tmp_path / "radio1").glob("*.ogg"))
    assert [f.read_bytes() for f in files] == [b"abc", b"d"]
    first, second = sidecars(tmp_path)
    assert first["end"] == "2026-11-24T13:59:58.800+00:00", first  # 0.3 s of audio
    assert second["start"] == "2026-11-24T14:00:00.800+00:00", second
    assert [g["seconds"] for g in second["gaps"]] == [2.0], second


def test_frames_held_past_a_boundary_end_the_file_before_a_jump(tmp_path: Path) -> None:
    """Two frames past the boundary wait to start the next file; then the clock jumps:
    they end the last file (as a close would have them), and the jumped audio starts
    a file of its own with the gap."""
    seg = make_segmenter(tmp_path)
    fs = frames(65)  # 1.56 s from 13:59:58.5: the last two frames are past 14:00:00
    seg.write_frames(fs, T0, raw(".mp3"), "mp3", PassThrough)
    assert len(seg.held) == 2
    more = frames(10)
    seg.write_frames(more, T0 + 1.56 + 5.0, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    files = sorted((tmp_path / "radio1").glob("*.mp3"))
    assert [f.name for f in files] == ["135958.mp3", "140005.mp3"]
    assert files[0].read_bytes() == b"".join(f.data for f in fs)
    first, second = sidecars(tmp_path)
    assert first["end"] == "2026-11-24T14:00:00.060+00:00", first
    assert [g["seconds"] for g in second["gaps"]] == [5.0], second


def test_a_clock_re_anchored_for_drift_is_the_same_run(tmp_path: Path) -> None:
    """A stream clock re-anchored by a second (a sender whose clock runs slow) lost
    nothing: one file, no gap, and its span ends when the clock says its audio did."""
    seg = make_segmenter(tmp_path, split=3600)
    start = T0 - 60  # 13:58:58.5, well before the 14:00 boundary
    seg.write_frames(frames(10), start, raw(".mp3"), "mp3", PassThrough)
    seg.write_frames(frames(10), start + 0.24 + 1.05, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    (side,) = sidecars(tmp_path)
    assert side["gaps"] == []
    assert side["end"] == "2026-11-24T13:59:00.030+00:00", side


def test_titles_on_the_frames_that_end_a_file_at_a_jump_are_kept(tmp_path: Path) -> None:
    """A chained Ogg link of the same setup starts with a header page that may not
    start a file and carries the link's title: after a jump it ends the old file, and
    its title goes with it into the next one. So does a title on a frame held past a
    boundary when the jump comes."""
    seg = make_segmenter(tmp_path, split=3600)
    seg.note_title("A")
    seg.write_frames([Frame(b"a", 4800, 48000)], T0 - 60, raw(".ogg"), "ogg", PassThrough)
    header = Frame(b"h", 0, 48000, cut=False, title="B")
    later = T0 - 60 + 0.1 + 3.0
    seg.write_frames([header, Frame(b"d", 4800, 48000)], later, raw(".ogg"), "ogg", PassThrough)
    seg.close()
    old, new = sidecars(tmp_path)
    assert [t["title"] for t in old["titles"]] == ["A", "B"], old
    assert [t["title"] for t in new["titles"]] == ["B"], new
    assert new["gaps"] and new["gaps"][0]["seconds"] == 3.0

    held_dir = tmp_path / "held"
    seg = make_segmenter(held_dir)
    fs = frames(65)  # the last two are held past 14:00:00
    fs[64] = Frame(fs[64].data, fs[64].samples, fs[64].sample_rate, title="C")
    seg.write_frames(fs, T0, raw(".mp3"), "mp3", PassThrough)
    assert len(seg.held) == 2
    seg.write_frames(frames(10), T0 + 1.56 + 5.0, raw(".mp3"), "mp3", PassThrough)
    seg.close()
    old, new = sidecars(held_dir)
    assert [t["title"] for t in new["titles"]] == ["C"], new


def test_audio_late_not_lost_moves_the_files_before_the_jump_too(tmp_path: Path) -> None:
    """A young connection, driven through a real MediaClock: its first 10 s arrive 2 s
    late, the next 10 s 5 s late (long enough to re-anchor by 3 s: a jump, a new file
    with a gap of 3 s), then the backlog arrives at once and the rest on time. All of
    it was late, none lost: the jump's gap closes, the file before it moves back by
    the 2 s it was dated late, and no two files' times overlap."""
    seg = make_segmenter(tmp_path, split=3600)
    clock = MediaClock()
    step = 0.024
    media = written = 0.0
    start = T0 - 100  # far from a boundary

    def late(m: float) -> float:
        return 2.0 if m < 10 else 5.0 if m < 20 else 0.0

    while media < 30:
        media += step
        clock.observe(media, start + media + late(media))
        seg.write_frames(frames(1), clock.aired(written), raw(".mp3"), "mp3", PassThrough)
        written += step
    seg.close()
    sides = sidecars(tmp_path)
    assert len(sides) == 2, sides
    first, second = sides
    assert second["gaps"][0]["seconds"] == 0.0, second
    assert first["start"] == "2026-11-24T13:58:18.500+00:00", first  # when it aired
    assert first["end"] == second["start"], (first, second)
