"""A redundant pair: two recorders of one stream, each with an outage the other
covers, their files side by side as the web UI over the store sees them
(``<recorder id>/<path>``). The timeline lists no gap either filled, and a clip across
both outages holds every frame the server sent exactly once, spliced by content
where one recorder's files stop and the other's go on, though the two recorders'
clocks differ.

The archives are written by the recorder's own segmenter from real encoded audio
(ffmpeg's MP3), at airing times the test chose: no real time passes.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from isr.clips.clip import Clip, Clipper
from isr.framing.mp3 import Mp3Framer
from isr.framing.xing import leading_tag_length
from isr.timeline.coverage import Expected, measure
from isr.timeline.index import TimelineIndex
from tests.support.archive import local
from tests.support.clips import StreamArchive
from tests.support.judge import ffmpeg_errors, mp3val_problems
from tests.support.media import MediaFactory

BERLIN = ZoneInfo("Europe/Berlin")
FRAME = 1152 / 44100
SKEW = 0.27
"""rec2 dates every frame this much later than rec1: each dates by arrival."""


@pytest.fixture(autouse=True)
def _berlin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")


def frames_of(data: bytes) -> list[bytes]:
    framer = Mp3Framer()
    return [f.data for f in framer.feed(data) + framer.flush()]


def pair(root: Path, media: MediaFactory, outages: dict[str, list[tuple[int, int]]]) -> list[bytes]:
    """rec1 and rec2 record the same 20 s MP3, each missing the frames of its
    ``outages`` (``[a, b)``, in frames); returns every frame the server sent."""
    mp3 = media("mp3", 20)
    t = local("2026-11-24T14:00:01", BERLIN)
    sent: list[bytes] = []
    for rid, skew in (("rec1", 0.0), ("rec2", SKEW)):
        archive = StreamArchive(root / rid, BERLIN, "mp3")
        sent = [f.data for f in archive.frames_of(mp3)]
        at = 0
        for a, b in [*outages[rid], (len(sent), len(sent))]:
            if a > at:
                archive.session(mp3, t + skew + at * FRAME, skip=at, count=a - at)
            at = b
    return sent


def clip_of(root: Path, t0: float, t1: float) -> Clip:
    index = TimelineIndex(root, BERLIN, in_memory=True, per_recorder=True)
    return Clipper(root, BERLIN, index, per_recorder=True).make("radio", t0, t1)


def body(clip: Clip) -> bytes:
    assert clip.body is not None
    return b"".join(clip.body.read())


def where(sent: list[bytes], held: list[bytes], near: int) -> int:
    """The index in ``sent`` where ``held`` begins (its first frames), nearest ``near``."""
    n = min(8, len(held))
    found = [i for i in range(len(sent) - n + 1) if sent[i : i + n] == held[:n]]
    assert found, "the clip's first frames were never sent"
    return min(found, key=lambda i: abs(i - near))


def test_a_clip_across_both_outages_holds_every_frame_once(
    tmp_path: Path, media: MediaFactory
) -> None:
    root = tmp_path / "store"
    sent = pair(root, media, {"rec1": [(150, 300)], "rec2": [(400, 550)]})
    t = local("2026-11-24T14:00:01", BERLIN)
    t0, t1 = t + 50.5 * FRAME, t + 650.5 * FRAME
    clip = clip_of(root, t0, t1)
    data = body(clip)
    held = frames_of(data[leading_tag_length(data) :])
    # The clip's Xing/Info frame is its own; the audio frames follow, each once.
    held = held[1:] if held[0] not in sent else held
    i = where(sent, held, 50)
    assert held == sent[i : i + len(held)]
    assert abs(i - 50) <= SKEW / FRAME + 1
    assert abs(i + len(held) - 651) <= SKEW / FRAME + 1
    recorders = [p["file"].split("/")[0] for p in clip.manifest["parts"]]
    assert "rec1" in recorders and "rec2" in recorders
    assert clip.manifest["gaps"] == []
    out = tmp_path / "clip.mp3"
    out.write_bytes(data)
    assert ffmpeg_errors(out) == ""
    assert mp3val_problems(out) == []


def test_the_timeline_lists_only_what_neither_recorded(tmp_path: Path, media: MediaFactory) -> None:
    root = tmp_path / "store"
    sent = pair(root, media, {"rec1": [(150, 300), (600, 700)], "rec2": [(400, 550), (650, 720)]})
    t = local("2026-11-24T14:00:01", BERLIN)
    index = TimelineIndex(root, BERLIN, in_memory=True, per_recorder=True)
    timeline = index.timeline("radio", t, t + len(sent) * FRAME)
    # Each recorder's outage is filled by the other, but for 650..700 where both were out.
    (gap,) = timeline.gaps
    assert gap.start == pytest.approx(t + SKEW + 650 * FRAME, abs=0.01)
    assert gap.end == pytest.approx(t + 700 * FRAME, abs=0.01)
    by: dict[str, list[tuple[float, float]]] = {"rec1": [], "rec2": []}
    for g in sorted(timeline.filled):
        spans = by[(g.file or "").split("/")[0]]
        if spans and g.start - spans[-1][1] < 0.01:
            spans[-1] = (spans[-1][0], g.end)  # the next file of the same recorder
        else:
            spans.append((g.start, g.end))
    want = {
        "rec2": [(150 * FRAME, 300 * FRAME), (600 * FRAME, 650 * FRAME + SKEW)],
        "rec1": [(400 * FRAME + SKEW, 550 * FRAME + SKEW), (700 * FRAME, 720 * FRAME + SKEW)],
    }
    for rid, spans in want.items():
        flat = [x for span in by[rid] for x in span]
        assert flat == pytest.approx([t + x for span in spans for x in span], abs=0.01), rid
    # A clip across the pair's own gap holds both sides once and lists that gap.
    clip = clip_of(root, t + 500.5 * FRAME, t + 760.5 * FRAME)
    data = body(clip)
    held = frames_of(data[leading_tag_length(data) :])
    held = held[1:] if held[0] not in sent else held
    i = where(sent, held, 500)
    before = 650 - i
    assert held[:before] == sent[i:650]
    j = where(sent, held[before:], 700)
    assert j == 700 and held[before:] == sent[700 : 700 + len(held) - before]
    (listed,) = clip.manifest["gaps"]
    assert listed["seconds"] == pytest.approx(50 * FRAME - SKEW, abs=0.01)


def test_the_coverage_of_a_pair_is_their_union_and_names_who_filled_what(
    tmp_path: Path, media: MediaFactory
) -> None:
    root = tmp_path / "store"
    sent = pair(root, media, {"rec1": [(150, 300), (600, 700)], "rec2": [(400, 550), (650, 720)]})
    t = local("2026-11-24T14:00:01", BERLIN)
    end = t + len(sent) * FRAME
    timeline = TimelineIndex(root, BERLIN, in_memory=True, per_recorder=True).timeline(
        "radio", t, end + 1
    )
    got = measure(Expected("radio", t, end, end, recording=False), timeline, t, end)
    neither = 50 * FRAME - SKEW  # 650..700 of rec1's clock, less rec2's lag
    assert got.recorded_seconds == pytest.approx(len(sent) * FRAME - neither, abs=0.02)
    assert [g.seconds for g in got.gaps] == [pytest.approx(neither, abs=0.01)]
    shown = got.to_json(BERLIN)
    assert {f["by"].split("/")[0] for f in shown["filled"]} == {"rec1", "rec2"}
    assert sum(f["seconds"] for f in shown["filled"]) == pytest.approx(
        (150 + 150 + 50 + 20) * FRAME + SKEW + SKEW, abs=0.05
    )


def test_a_clip_goes_on_after_an_outage_both_recorders_shared(
    tmp_path: Path, media: MediaFactory
) -> None:
    """Both recorders lost frames 600..650 (the station went down), each had an
    outage of its own before: the clip holds everything before and after, once."""
    root = tmp_path / "store"
    sent = pair(root, media, {"rec1": [(150, 300), (600, 650)], "rec2": [(400, 550), (600, 650)]})
    t = local("2026-11-24T14:00:01", BERLIN)
    clip = clip_of(root, t + 50.5 * FRAME, t + 700.5 * FRAME)
    data = body(clip)
    held = frames_of(data[leading_tag_length(data) :])
    held = held[1:] if held[0] not in sent else held
    i = where(sent, held, 50)
    before = 600 - i
    assert held[:before] == sent[i:600]
    j = where(sent, held[before:], 650)
    assert j == 650 and held[before:] == sent[650 : 650 + len(held) - before]
    assert 650 + len(held) - before >= 700  # on to TO, not cut at the shared outage
    (gap,) = clip.manifest["gaps"]
    assert gap["seconds"] == pytest.approx(50 * FRAME, abs=SKEW + 0.01)
