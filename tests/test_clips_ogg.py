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

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from isr.clips.clip import Clip, Clipper
from isr.framing.oggcodecs import codec_for
from isr.framing.oggpage import OggPage, page_crc_ok, page_length
from isr.timeline.index import TimelineIndex
from tests.support.archive import local
from tests.support.clips import StreamArchive
from tests.support.judge import (
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
    # The manifest's pages are the clip's packets (each part from the page its first
    # packet begins on).
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
    # At a file join a Vorbis packet's samples are estimated; within one packet.
    slack = 2048 if kind == "vorbis" else 0
    assert all(abs(g - want) <= slack * 2 for g, want in granules)
    assert granules[-1][0] == granules[-1][1] or kind == "vorbis"


def audio_pages(link: dict[str, Any]) -> list[OggPage]:
    """The pages after the last header packet's page."""
    ps: list[OggPage] = link["pages"]
    n, count = 0, len(link["headers"])
    for i, page in enumerate(ps):
        n += sum(1 for _, whole in page.packets() if whole)
        if n >= count:
            return ps[i + 1 :]
    return []
