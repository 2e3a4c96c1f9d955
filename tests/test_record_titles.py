"""Every title that applies to audio written is in the sidecar of the file that
holds that audio, at its offset (issue 11 items 4 and 5)."""

from __future__ import annotations

import json
from pathlib import Path

from isr.framing.base import Frame, PassThrough
from isr.framing.xing import leading_tag_length
from isr.sinks.base import Sink
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.segmenting import make_segmenter

MP3_RATE = 16000  # 128 kbps in bytes per second


def test_titles_that_change_before_the_first_file_opens(
    tmp_path: Path, media: MediaFactory
) -> None:
    """The first file is held a second or more to date the burst; titles that came
    meanwhile, the first one included, land at their own offsets."""
    mp3 = media("mp3", 30, frequency=440).read_bytes()
    titles = ["First - Song", "Second - Song", "Third - Song", "Fourth - Song"]
    mount = Mount(
        "/live",
        payload=mp3,
        metaint=2000,
        titles=titles,
        title_every=5000,  # a new title every 0.31 s: four in the held second
        byte_rate=MP3_RATE,
        loop=False,
    )
    with FakeStreamServer(mount) as srv:
        config = (
            "[general]\nsplit_minutes = 60\nlog_file = rec.log\n"
            f"[radio]\ntype = stream\nurl = {srv.url('/live')}\n"
        )
        with RecorderProcess(tmp_path, config) as rec:
            rec.wait_recording()
            conn = srv.wait_connections(1, "/live")[0]
            assert wait_for(lambda: len(conn.titles) >= 6, timeout=20)
            assert rec.stop() == 0, rec.output
    files = sorted((tmp_path / "recordings").rglob("*.mp3"))
    assert files
    sent = bytes(conn.audio)
    noted: list[tuple[int, str]] = []  # (offset in the audio sent, title) from sidecars
    for f in files:
        data = f.read_bytes()
        xing = leading_tag_length(data)
        start = sent.find(data[xing : xing + 4096])
        assert start >= 0
        side = json.loads(f.with_name(f.name + ".json").read_text())
        noted += [(start + t["byte"] - xing, t["title"]) for t in side["titles"]]
    # Each title the server sent is in a sidecar, once, in order, within a few
    # frames of where the server put it: the framer emits a frame once two more
    # follow it, and at the start once it has locked on (five frames in).
    head = files[0].read_bytes()
    first = sent.find(head[leading_tag_length(head) :][:4096])
    frame = 418
    want = [(o, t) for o, t in conn.titles if o < first + sum(f.stat().st_size for f in files)]
    assert [t for _, t in noted][: len(want)] == [t for _, t in want], (noted, want)
    for (at, _), (o, _) in zip(noted, want, strict=False):
        if o <= first + 6 * frame:  # before any frame was out: the file's first title
            assert at == first, (noted, want)
        else:
            assert -3 * frame <= at - o <= frame, (noted, want)


def test_a_title_is_listed_once_at_one_moment(tmp_path: Path) -> None:
    """An Ogg link's title arrives on its first frame while the file opens with the
    same title: one entry. A newer title at the same byte replaces an older one."""
    seg = make_segmenter(tmp_path)
    seg.title = "Same"
    make = lambda d, stem, _e: Sink(d, stem, ".mp3")  # noqa: E731
    frame = Frame(b"\xff" * 100, 1152, 44100, title="Same")
    t0 = 1_700_000_000.0
    seg.write_frames([frame, Frame(b"\xfe" * 100, 1152, 44100)], t0, make, "mp3", PassThrough)
    seg.note_title("Other")
    seg.note_title("Newer")  # nothing aired under "Other"
    seg.write_frames(
        [Frame(b"\xfd" * 100, 1152, 44100, title="Newer")],
        t0 + 2 * 1152 / 44100,
        make,
        "mp3",
        PassThrough,
    )
    path = seg.sink.path if seg.sink else None
    seg.close()
    assert path is not None
    titles = json.loads(path.with_name(path.name + ".json").read_text())["titles"]
    assert [(t["byte"], t["title"]) for t in titles] == [(0, "Same"), (200, "Newer")]
