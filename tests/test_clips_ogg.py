"""Clips of Ogg recordings (Vorbis, Opus, Ogg FLAC) that the recorder's own framer,
segmenter and file writer wrote from real encoded audio (ffmpeg's, flac's), at airing
times the test chose: ``isr.clips`` directly and ``/api/clip`` over HTTP.

A clip is judged against the archive: its audio packets are a contiguous run of the
packets the files hold, from the one aired at FROM to the one aired at TO (within a
packet), re-paged as one stream from granule 0 that ffmpeg, ogginfo and opusinfo
accept, with the duration asked for. A clip across a new link (another setup) is a
chained Ogg stream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from isr.clips.clip import Clip, Clipper
from isr.clips.ogg import CUTTER
from isr.evidence.clipverify import verify_clip
from isr.framing.oggcodecs import codec_for
from isr.framing.oggpage import OggPage, page_crc_ok, page_length
from isr.timeline.index import TimelineIndex
from tests.support.archive import local
from tests.support.clips import StreamArchive
from tests.support.judge import (
    decoded_duration,
    ffmpeg_errors,
    ffprobe_duration,
    ogginfo_warnings,
    opusinfo_warnings,
)
from tests.support.media import MediaFactory

BERLIN = ZoneInfo("Europe/Berlin")
T0 = "2026-11-24T14:00:01"
KINDS = {"vorbis": ".ogg", "opus": ".opus", "oggflac": ".oga"}
FORMATS = {"vorbis": "ogg", "opus": "opus", "oggflac": "ogg"}


@pytest.fixture(autouse=True)
def _berlin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")


def clipper(root: Path) -> Clipper:
    return Clipper(root, BERLIN, TimelineIndex(root, BERLIN, in_memory=True))


def clip_bytes(clip: Clip) -> bytes:
    assert clip.body is not None
    data = b"".join(clip.body.read())
    assert len(data) == clip.length
    return data


def pages(data: bytes) -> list[OggPage]:
    out, p = [], 0
    while p < len(data):
        n = page_length(data, p)
        assert n > 0, f"no page at byte {p}"
        assert page_crc_ok(data[p : p + n])
        out.append(OggPage.parse(data, p))
        p += n
    return out


def links(data: bytes) -> list[dict[str, Any]]:
    """Each logical stream of ``data`` in order: serial, headers, audio packets, pages."""
    out: list[dict[str, Any]] = []
    partial = b""
    for page in pages(data):
        if page.bos:
            out.append({"serial": page.serial, "packets": [], "pages": []})
        link = out[-1]
        assert page.serial == link["serial"]
        link["pages"].append(page)
        for piece, whole in page.packets():
            partial += piece
            if whole:
                link["packets"].append(partial)
                partial = b""
    for link in out:
        codec = codec_for(link["packets"][0])
        assert codec is not None
        codec.header_packets.append(link["packets"][0])
        n = 1
        while not codec.headers_done:
            codec.add_header(link["packets"][n])
            n += 1
        link["codec"] = codec
        link["headers"] = link["packets"][:n]
        link["audio"] = link["packets"][n:]
    return out


def audio_of(paths: list[Path]) -> list[bytes]:
    return [p for path in paths for link in links(path.read_bytes()) for p in link["audio"]]


def files(root: Path, ext: str) -> list[Path]:
    return sorted((root / "radio").glob(f"*{ext}"))


def judge(path: Path, kind: str) -> None:
    assert ffmpeg_errors(path) == ""
    warnings = opusinfo_warnings(path) if kind == "opus" else ogginfo_warnings(path)
    assert warnings == []


def check_stream(link: dict[str, Any]) -> None:
    """Sequence numbers from 0, BOS first, EOS last, granule 0 at the start."""
    ps: list[OggPage] = link["pages"]
    assert [p.sequence for p in ps] == list(range(len(ps)))
    assert ps[0].bos and not any(p.bos for p in ps[1:])
    assert ps[-1].eos and not any(p.eos for p in ps[:-1])


def contiguous(run: list[bytes], within: list[bytes]) -> list[int]:
    """Where ``run`` is in ``within`` (a tone's packets repeat: maybe more than once)."""
    found = [
        i
        for i in range(len(within) - len(run) + 1)
        if within[i] == run[0] and within[i : i + len(run)] == run
    ]
    assert found, "the clip's packets are no run of the archive's"
    return found


@pytest.mark.parametrize("kind", ["vorbis", "opus", "oggflac"])
def test_an_ogg_clip_is_the_packets_from_from_to_to_re_paged(
    tmp_path: Path, media: MediaFactory, kind: str
) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, FORMATS[kind])
    archive.session(media(kind, 14), local(T0, BERLIN))
    archived = files(root, KINDS[kind])
    assert len(archived) >= 4
    t0 = local("2026-11-24T14:00:04.23", BERLIN)
    t1 = local("2026-11-24T14:00:10.71", BERLIN)
    clip = clipper(root).make("radio", t0, t1)
    data = clip_bytes(clip)
    out = tmp_path / f"clip{KINDS[kind]}"
    out.write_bytes(data)
    m = clip.manifest
    assert [p["file"] for p in m["parts"]] == [
        f"radio/20261124_1400{s}{KINDS[kind]}" for s in ("03", "06", "09")
    ]
    (link,) = links(data)
    check_stream(link)
    # Headers once: the first file's, as it has them.
    first = links(archived[1].read_bytes())[0]
    if kind != "oggflac":  # Ogg FLAC's STREAMINFO gets the clip's total samples
        assert link["headers"] == first["headers"]
    # The audio: a contiguous run of the archive's packets, across three files.
    every = audio_of(archived)
    in_files = [len(audio_of([f])) for f in archived]
    assert any(
        in_files[0] <= at < sum(in_files[:2]) and at + len(link["audio"]) > sum(in_files[:3])
        for at in contiguous(link["audio"], every)
    ), "from the second file to the fourth"
    # The manifest's byte ranges run from where the part's first packet begins to where
    # the packet after its last begins: cut again from them, the clip is the same
    # (``isr verify --clip``).
    out.with_name(out.name + ".json").write_text(json.dumps(m))
    report = verify_clip(out, root)
    assert report.identical, report.lines()
    judge(out, kind)
    rate = link["codec"].sample_rate
    packet = 2048 / 44100 if kind == "vorbis" else (0.02 if kind == "opus" else 4096 / rate)
    # It starts at most a packet before FROM and ends at most one after TO, and plays
    # for what it holds (Vorbis: less its first packet; Opus: less the pre-skip).
    assert 0 <= t0 - clip.plan.start <= packet and 0 <= clip.plan.end - t1 <= packet
    assert abs(ffprobe_duration(out) - (clip.plan.end - clip.plan.start)) <= packet
    # Granule 0 at the start: each page's granule is what the packets up to its last
    # whole one decode to from a decoder start (Vorbis: the first packet to nothing).
    decoded, prev = [], 0
    for packet in link["audio"]:
        n, prev = link["codec"].packet_samples(packet, prev)
        decoded.append(n)
    granules, total, k = [], 0, 0
    for page in link["pages"][len(link["pages"]) - len(audio_pages(link)) :]:
        ends = sum(1 for _, whole in page.packets() if whole)
        total += sum(decoded[k : k + ends])
        k += ends
        granules.append((page.granule_position, total if ends else -1))
    assert granules[0][0] == granules[0][1], "the first audio page's granule counts from 0"
    assert [g for g, _ in granules] == [want for _, want in granules]


def audio_pages(link: dict[str, Any]) -> list[OggPage]:
    """The pages after the last header packet's page."""
    ps: list[OggPage] = link["pages"]
    n, count = 0, len(link["headers"])
    for i, page in enumerate(ps):
        n += sum(1 for _, whole in page.packets() if whole)
        if n >= count:
            return ps[i + 1 :]
    return []


def test_a_clip_across_a_new_link_is_chained(tmp_path: Path, media: MediaFactory) -> None:
    # One connection whose stream is chained: a second link of another setup (another
    # bitrate, so another Vorbis setup header) starts a new file.
    stream = tmp_path / "chained.ogg"
    a, b = media("vorbis", 7), media("vorbis", 7, bitrate="64k", frequency=660)
    stream.write_bytes(a.read_bytes() + b.read_bytes())
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, "ogg")
    archive.session(stream, local(T0, BERLIN))
    archived = files(root, ".ogg")
    setups = [links(f.read_bytes())[0]["headers"][2] for f in archived]
    change = next(i for i in range(1, len(setups)) if setups[i] != setups[i - 1])
    t_link = local(T0, BERLIN) + 7.0  # about where the second link starts
    clip = clipper(root).make("radio", t_link - 2.5, t_link + 2.5)
    data = clip_bytes(clip)
    out = tmp_path / "clip.ogg"
    out.write_bytes(data)
    chain = links(data)
    assert len(chain) == 2, "a new setup inside the span is a new link"
    assert chain[0]["serial"] != chain[1]["serial"]
    for link in chain:
        check_stream(link)
        assert link["pages"][0].granule_position == 0
    assert chain[0]["headers"][2] == setups[change - 1]
    assert chain[1]["headers"][2] == setups[change]
    every = audio_of(archived)
    assert contiguous(chain[0]["audio"] + chain[1]["audio"], every)
    out.with_name(out.name + ".json").write_text(json.dumps(clip.manifest))
    assert verify_clip(out, root).identical
    judge(out, "vorbis")
    info = ogginfo_text(out)
    assert info.count("New logical stream") == 2
    # It plays through: a decoder gets both links (ffprobe's duration is the last
    # link's alone, from its last granule).
    assert abs(decoded_duration(out) - (clip.plan.end - clip.plan.start)) <= 0.1


def ogginfo_text(path: Path) -> str:
    import subprocess

    return subprocess.run(
        ["ogginfo", str(path)], capture_output=True, text=True, check=False
    ).stdout


@pytest.mark.parametrize("kind", ["vorbis", "opus", "oggflac"])
def test_any_range_of_an_ogg_clip_is_those_bytes_of_the_whole(
    tmp_path: Path, media: MediaFactory, kind: str
) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, FORMATS[kind])
    archive.session(media(kind, 11), local(T0, BERLIN))
    clip = clipper(root).make(
        "radio", local("2026-11-24T14:00:02.5", BERLIN), local("2026-11-24T14:00:10.2", BERLIN)
    )
    assert clip.body is not None
    whole = clip_bytes(clip)
    size = len(whole)
    for lo, hi in ((0, 1), (size - 100, size), (size // 3, 2 * size // 3), (27, 4000)):
        assert b"".join(clip.body.read(lo, hi)) == whole[lo:hi]
    step = 3001
    joined = b"".join(
        b"".join(clip.body.read(lo, lo + step, chunk=1000)) for lo in range(0, size, step)
    )
    assert joined == whole
    assert b"".join(clip.body.read(size, size + 10)) == b""


def test_api_clip_serves_an_ogg_clip_with_ranges(tmp_path: Path, media: MediaFactory) -> None:
    import asyncio
    from urllib.parse import urlencode

    from aiohttp.test_utils import TestClient, TestServer

    from isr.sidecar import iso
    from isr.web.app import create_app

    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, "opus")
    archive.session(media("opus", 11), local(T0, BERLIN))
    query = urlencode(
        {
            "source": "radio",
            "from": iso(local("2026-11-24T14:00:02.5", BERLIN), BERLIN),
            "to": iso(local("2026-11-24T14:00:10.2", BERLIN), BERLIN),
        }
    )

    async def main() -> None:
        async with TestClient(TestServer(create_app(root), host="127.0.0.1")) as c:
            r = await c.get("/api/clip?" + query)
            assert r.status == 200
            whole = await r.read()
            assert int(r.headers["Content-Length"]) == len(whole)
            assert r.headers["Content-Type"].startswith("audio/ogg")
            size = len(whole)
            for rng, lo, hi in (
                ("bytes=-100", size - 100, size),
                (f"bytes={size // 3}-{2 * size // 3 - 1}", size // 3, 2 * size // 3),
            ):
                r = await c.get("/api/clip?" + query, headers={"Range": rng})
                assert r.status == 206
                assert r.headers["Content-Range"] == f"bytes {lo}-{hi - 1}/{size}"
                assert await r.read() == whole[lo:hi]
            joined = b""
            for lo in range(0, size, 7919):
                r = await c.get("/api/clip?" + query, headers={"Range": f"bytes={lo}-{lo + 7918}"})
                joined += await r.read()
            assert joined == whole
            r = await c.get("/api/clip?" + query, headers={"Range": f"bytes={size}-"})
            assert r.status == 416
            r = await c.get("/api/clip?" + query + "&download=1")
            assert r.headers["Content-Disposition"].startswith('attachment; filename="radio_')
            assert ".opus" in r.headers["Content-Disposition"]
            out = tmp_path / "clip.opus"
            out.write_bytes(await r.read())
            judge(out, "opus")

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["vorbis", "opus", "oggflac"])
def test_a_growing_ogg_file_is_walked_on(tmp_path: Path, media: MediaFactory, kind: str) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, FORMATS[kind], split_seconds=60)
    archive.session(media(kind, 6), local(T0, BERLIN))
    (path,) = files(root, KINDS[kind])
    full = path.read_bytes()
    whole = CUTTER.walk(path, None, final=True)
    assert whole.count == len(audio_of([path]))
    grow = tmp_path / f"grow{KINDS[kind]}"
    table = None
    n = len(full)
    for cut in (100, n // 7, n // 7 + 1, n // 3, n // 2, n - 3, n):
        grow.write_bytes(full[:cut])
        table = CUTTER.walk(grow, table, final=cut == n)
        assert table.offset(table.count) <= cut
    assert table is not None
    assert table.key == whole.key and table.data_start == whole.data_start
    assert table.sizes.tolist() == whole.sizes.tolist()
    assert table.samples.tolist() == whole.samples.tolist()
    assert table.walked == whole.walked == n


@pytest.mark.parametrize("kind", ["vorbis", "opus", "oggflac"])
def test_an_ogg_clip_across_a_gap_and_into_the_growing_file(
    tmp_path: Path, media: MediaFactory, kind: str
) -> None:
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, FORMATS[kind])
    source = media(kind, 8)
    first = archive.session(source, local(T0, BERLIN))
    resumed = first[-1].end + 4.0  # a reconnect 4 s later
    archive.session(source, resumed, stop=False)  # the last file is still written
    try:
        archived = files(root, KINDS[kind])
        clip = clipper(root).make("radio", resumed - 5.3, resumed + 60)
        data = clip_bytes(clip)
        out = tmp_path / f"clip{KINDS[kind]}"
        out.write_bytes(data)
        m = clip.manifest
        assert m["parts"][-1]["file"] == f"radio/{archived[-1].name}"
        assert m["parts"][-1]["sha256"] is None, "the file being recorded"
        (gap,) = m["gaps"]
        assert gap["cause"] == "connection reset"
        (link,) = links(data)
        check_stream(link)
        # Both sides of the gap, and of the growing file what is written of it (its last
        # page is held back by the writer until the file closes).
        every = audio_of(archived)
        written = audio_of(archived[:-1]) + links(archived[-1].read_bytes())[0]["audio"]
        assert every == written
        (at,) = [a for a in contiguous(link["audio"], every) if a > 0]
        assert at + len(link["audio"]) == len(every)
        judge(out, kind)
    finally:
        archive.close()
