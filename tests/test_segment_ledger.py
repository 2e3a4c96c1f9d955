"""The ledger the segmenter writes is true to the audio (issue 11 item 8): a new
file for a change of stream setup is no gap, and a file's end is the end of its
audio even when its writer held the last page back until close."""

from __future__ import annotations

import asyncio
import itertools
import json
import types
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import pytest

from isr.evidence.service import Evidence
from isr.framing.base import Frame, PassThrough
from isr.sidecar import Ledger, write_sidecar
from isr.sinks.base import Sink
from tests.support.segmenting import make_segmenter

RATE = 48000


def make(d: Path, stem: str, ext: str | None = None) -> Sink:
    return Sink(d, stem, ".opus")


def ledgers(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*.opus.json"))]


def span(ledger: dict[str, object]) -> float:
    start = datetime.fromisoformat(str(ledger["start"]))
    end = datetime.fromisoformat(str(ledger["end"]))
    return (end - start).total_seconds()


T0 = datetime(2026, 11, 24, 14, 0, 10, tzinfo=UTC).timestamp()


def test_a_new_file_for_a_new_setup_is_no_gap(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    seg.resume_after(T0 - 5.0)  # a previous session: its gap belongs to the first file only
    seg.note_cause("connection reset")
    a = [Frame(b"a%d" % i, 960, RATE) for i in range(100)]  # 2 s
    b = [Frame(b"b0", 960, RATE, new_link=True)] + [Frame(b"b", 960, RATE)] * 49
    seg.write_frames(a + b, T0, make, "opus", PassThrough)
    seg.close()
    first, second = ledgers(tmp_path)
    assert first["gaps"] == [{"at": 0.0, "seconds": 5.0, "cause": "connection reset"}]
    assert second["gaps"] == []
    assert span(first) == 2.0 and span(second) == 1.0


class HoldingWriter(PassThrough):
    """Like the Ogg writer: holds everything back until ``end``."""

    def __init__(self) -> None:
        self.held = b""

    def write(self, frames: Sequence[Frame]) -> bytes:
        self.held += b"".join(f.data for f in frames)
        return b""

    def end(self) -> bytes:
        out, self.held = self.held, b""
        return out


def test_the_end_is_the_end_of_the_audio_held_back(tmp_path: Path) -> None:
    seg = make_segmenter(tmp_path)
    frames = [Frame(b"x" * 10, 960, RATE) for _ in range(300)]  # 6 s
    seg.write_frames(frames[:1], T0, make, "opus", HoldingWriter)
    seg.write_frames(frames[1:], T0 + 0.02, make, "opus", HoldingWriter)
    seg.close()
    (ledger,) = ledgers(tmp_path)
    assert span(ledger) == 6.0
    assert (tmp_path / str(ledger["file"])).stat().st_size == 3000


def test_a_clock_moved_back_moves_the_start_with_it(tmp_path: Path) -> None:
    """A stream that stalled, then caught up, proves its audio was aired earlier:
    the file's span stays the length of its audio (was 1 s short)."""
    seg = make_segmenter(tmp_path)
    frames = [Frame(b"x" * 10, 960, RATE) for _ in range(250)]  # 5 s
    seg.write_frames(frames[:150], T0, make, "opus", PassThrough)  # 3 s
    seg.write_frames(frames[150:], T0 + 3.0 - 1.0, make, "opus", PassThrough)
    seg.close()
    (ledger,) = ledgers(tmp_path)
    assert span(ledger) == 5.0
    assert datetime.fromisoformat(str(ledger["start"])).timestamp() == T0 - 1.0
    assert datetime.fromisoformat(str(ledger["dated"])).timestamp() == T0


def test_frames_held_past_a_boundary_start_the_next_file(tmp_path: Path) -> None:
    """One frame past the boundary is held, not written: the next call's frames
    join it and the new file, named after the boundary, starts with it."""
    seg = make_segmenter(tmp_path, split_seconds=3.0, pattern="%H%M%S")
    boundary = datetime(2026, 11, 24, 14, 0, 3, tzinfo=UTC).timestamp()
    frames = [Frame(b"%03d" % i, 960, RATE) for i in range(200)]  # 20 ms each
    t0 = boundary - 1.5 + 0.005  # clear of float residue at the boundary
    seg.write_frames(frames[:76], t0, make, "opus", PassThrough)  # 1.5 s, then one past
    assert seg.held == frames[75:76]
    seg.write_frames(frames[76:], t0 + 76 * 0.02, make, "opus", PassThrough)
    seg.close()
    first, second = sorted(tmp_path.glob("*.opus"))
    assert first.read_bytes() == b"".join(f.data for f in frames[:75])
    assert second.name == "140003.opus"
    assert second.read_bytes() == b"".join(f.data for f in frames[75:])
    assert span(ledgers(tmp_path)[1]) == 2.5


def test_a_young_session_moves_back_as_one_run(tmp_path: Path) -> None:
    """While a connection is young its clock's estimate settles: a move back in its
    second file moves the first too, so the files abut and each spans its audio."""
    seg = make_segmenter(tmp_path, split_seconds=3.0, pattern="%H%M%S")
    seg.resume_after(T0 - 10.0)
    frames = [Frame(b"%03d" % i, 960, RATE) for i in range(400)]  # 20 ms, 3 bytes each
    t0 = T0 + 0.505  # the first file: 1.5 s to the boundary at 14:00:12
    seg.write_frames(frames[:150], t0, make, "opus", PassThrough)  # 3 s: into file two
    seg.write_frames(frames[150:], t0 + 3.0 - 0.7, make, "opus", PassThrough)
    seg.close()
    files = ledgers(tmp_path)
    assert len(files) >= 3
    for ledger in files:
        audio = (tmp_path / str(ledger["file"])).stat().st_size / 3 * 0.02
        assert abs(span(ledger) - audio) < 1e-6, ledger
    for one, two in itertools.pairwise(files):
        assert two["start"] == one["end"]
    first = files[0]
    assert datetime.fromisoformat(str(first["start"])).timestamp() == t0 - 0.7
    assert first["gaps"] == [
        {"at": 0.0, "seconds": round(10.505 - 0.7, 3), "cause": "the recorder was not running"}
    ]
    # the start each was first given: a clip made meanwhile took its times from it
    assert datetime.fromisoformat(str(first["dated"])).timestamp() == t0


def test_later_only_the_open_file_moves(tmp_path: Path) -> None:
    """A sender whose clock runs fast moves the clock back bit by bit for ever: what
    was closed was dated right when it was, and stays."""
    seg = make_segmenter(tmp_path, split_seconds=3.0, pattern="%H%M%S")
    frames = [Frame(b"%04d" % i, 960, RATE) for i in range(4000)]  # 80 s
    t0 = T0 + 1.5 + 0.005
    seg.write_frames(frames[:3500], t0, make, "opus", PassThrough)  # 70 s
    before = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    seg.write_frames(frames[3500:], t0 + 70.0 - 0.2, make, "opus", PassThrough)
    seg.close()
    after = {p.name: p.read_text() for p in tmp_path.glob("*.json") if p.name in before}
    open_one = max(before)  # the file open at the move
    assert {k: v for k, v in after.items() if k != open_one} == {
        k: v for k, v in before.items() if k != open_one
    }


def test_a_settling_clock_rewrites_earlier_sidecars_seldom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A young connection's clock settles in many small steps: the earlier files'
    sidecars follow it, written at most once per REDATE_SECONDS and at the close,
    not once per step (that cost a sixth of a rolling stream's CPU)."""
    seg = make_segmenter(tmp_path, split_seconds=3.0, pattern="%H%M%S")
    frames = [Frame(b"%03d" % i, 960, RATE) for i in range(1000)]  # 20 ms each
    t0 = T0 + 0.505
    seg.write_frames(frames[:200], t0, make, "opus", PassThrough)  # 4 s: two files
    writes: list[str] = []

    def counting(audio: Path, ledger: Ledger, tz: tzinfo) -> None:
        writes.append(audio.name)
        write_sidecar(audio, ledger, tz)

    monkeypatch.setattr("isr.segment.write_sidecar", counting)
    now = [1000.0]
    monkeypatch.setattr("isr.segment.time.monotonic", lambda: now[0])  # no loop here
    t = t0 + 4.0
    for i in range(200, 400, 2):  # 100 steps, each 2 ms early, 10 ms of real time apart
        t -= 0.002
        seg.write_frames(frames[i : i + 2], t, make, "opus", PassThrough)
        t += 0.04
        now[0] += 0.01
    first = sorted(tmp_path.glob("*.opus"))[0].name
    # 100 steps over one second: a rewrite at the first step and one a second later,
    # and one when the open file rolls over its boundary (a close) — not 100.
    assert 1 <= writes.count(first) <= 3, writes
    seg.close()
    files = ledgers(tmp_path)
    assert datetime.fromisoformat(str(files[0]["start"])).timestamp() == t0 - 0.2
    for one, two in itertools.pairwise(files):
        assert two["start"] == one["end"]


def test_a_kill_after_a_settling_clock_leaves_sidecars_that_abut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The earlier files' sidecars are rewritten on the settled clock before the
    close: the open file's must go with them. A recorder SIGKILLed in between left
    the open file (repaired from its sidecar) 0.165 s after its neighbour, with no
    gap to say why (the soak test, once in some twenty runs)."""
    seg = make_segmenter(tmp_path, split_seconds=3.0, pattern="%H%M%S")
    frames = [Frame(b"%03d" % i, 960, RATE) for i in range(400)]  # 20 ms each
    now = [1000.0]
    monkeypatch.setattr("isr.segment.time.monotonic", lambda: now[0])
    t0 = T0 + 0.505
    seg.write_frames(frames[:200], t0, make, "opus", PassThrough)  # 4 s: two files
    seg.write_frames(frames[200:210], t0 + 4.0 - 0.165, make, "opus", PassThrough)
    now[0] += 2.0  # past the throttle: the next write rewrites the moved sidecars
    seg.write_frames(frames[210:220], t0 + 4.2 - 0.165, make, "opus", PassThrough)
    # No close: what a SIGKILL leaves on the disk.
    one, two = ledgers(tmp_path)
    assert "end" in one and two.get("end") is None
    moved = t0 - datetime.fromisoformat(str(one["start"])).timestamp()
    assert moved == pytest.approx(0.165, abs=0.001)
    assert two["start"] == one["end"]


def test_a_check_written_after_a_settling_clock_takes_the_open_files_sidecar_along(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check of a closed file writes its sidecar from the ledger, which the
    settling clock has moved since its last rewrite: the open file's sidecar must
    follow at once, not at the next throttled rewrite, or a SIGKILL in between
    leaves the same hole as above."""
    now = [1000.0]
    # The segmenter's clock only: the loop below keeps the real one.
    monkeypatch.setattr("isr.segment.time", types.SimpleNamespace(monotonic=lambda: now[0]))
    seg = make_segmenter(tmp_path, split_seconds=3.0, pattern="%H%M%S")
    frames = [Frame(b"%03d" % i, 960, RATE) for i in range(400)]  # 20 ms each

    async def main() -> None:
        ev = Evidence(tmp_path, UTC, check_pause=0.0)
        ev.checking_enabled = False  # the check runs once the clock has moved
        ev.start(["s"])
        seg.on_close = lambda sink, ledger, kept: ev.closed(
            "s", sink.path, ledger, sink.digest.result(), then=seg.flush_redated
        )
        t0 = T0 + 0.505
        seg.write_frames(frames[:200], t0, make, "opus", PassThrough)  # 4 s: two files
        now[0] += 2.0  # past the throttle: the next write rewrites the moved sidecars...
        seg.write_frames(frames[200:210], t0 + 4.0 - 0.1, make, "opus", PassThrough)
        # ...and the one after waits for the throttle: 0.065 s more, only in memory.
        seg.write_frames(frames[210:220], t0 + 4.2 - 0.165, make, "opus", PassThrough)
        ev.start_checker()
        assert await asyncio.to_thread(ev.drain)
        ev.stop(["s"])

    asyncio.run(main())
    # No close: what a SIGKILL leaves on the disk.
    one, two = ledgers(tmp_path)
    assert "check" in one and two.get("end") is None
    assert two["start"] == one["end"]
