"""`isr record` fed by the source clients stations really use (issue 11, item 8).

One real Icecast; liquidsoap 2.1 encodes one playlist of tagged tracks to six mounts
(Opus, Ogg FLAC, Vorbis, MP3, native FLAC, ADTS AAC through its ffmpeg encoder);
ices2 sends Ogg Vorbis files as they are, each track a new link with a new rate and
channel count; ezstream sends MP3 files (ID3v2, ID3v1 and Info frame included) and
Ogg Opus files byte for byte; darkice encodes the tests' ALSA card live to MP3, Vorbis
and Opus. Track changes happen during the recording, and the recorder cuts 3 s files,
so links, splits and the stop fall wherever they fall.

The real-time part runs once for the module (all mounts in one recorder), then each
test judges one thing of one mount: every file by tools no one here wrote, every
sidecar's start and end against the audio its file holds, the gaps, the titles.
"""

from __future__ import annotations

import functools
import itertools
import json
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.support.alsa import PCM_TEST, TestCard
from tests.support.icecast import Icecast
from tests.support.judge import (
    ffprobe_info,
    ffprobe_start_time,
    flac_test,
    mp3val_problems,
    mutagen_duration,
    ogginfo_warnings,
    opusinfo_warnings,
)
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.source_clients import (
    LONG_COMMENT,
    PAGE_SPANNING_COMMENT,
    SourceClient,
    Track,
    make_tracks,
    start_darkice,
    start_ezstream,
    start_ices2,
    start_liquidsoap,
)
from tests.support.tools import require_tool

SPLIT_MINUTES = 0.05
RECORD_SECONDS = 16.0
"""Long enough for four or five track changes and five splits on every mount."""
TIME_TOLERANCE = 0.1
"""Seconds a sidecar's span may differ from the audio its file holds, and a file's start
from the last one's end: about one packet, the part of a file's first unit that a
decoder starting there cannot play."""
PACKET = 0.05
"""Seconds: longer than any codec packet here (a FLAC block of 4096 samples is 93 ms,
but FLAC and the others are sample-exact where a packet is compared)."""


@dataclass(frozen=True)
class Feed:
    """One mount: who feeds it and what ISR must make of it."""

    client: str
    mount: str
    ext: str
    titled: bool = True
    """Whether the track titles reach ISR (in the Ogg comment header or as ICY)."""
    quirks: tuple[str, ...] = ()
    """Checker warnings that the client's own stream earns (seen on its raw stream,
    read from Icecast without ISR): a faithful copy keeps them."""
    first_quirks: tuple[str, ...] = ()
    """The same, for the client's first frames: only in the first file."""


FEEDS: dict[str, Feed] = {
    "ls_opus": Feed("liquidsoap", "/ls.opus", ".opus"),
    "ls_oggflac": Feed("liquidsoap", "/ls.oga", ".oga"),
    "ls_vorbis": Feed("liquidsoap", "/ls.ogg", ".ogg"),
    "ls_mp3": Feed("liquidsoap", "/ls.mp3", ".mp3"),
    "ls_flac": Feed("liquidsoap", "/ls.flac", ".flac"),
    "ls_aac": Feed("liquidsoap", "/ls.aac", ".aac"),
    "ices_vorbis": Feed("ices2", "/ices.ogg", ".ogg"),
    "ez_mp3": Feed("ezstream", "/ez.mp3", ".mp3"),
    "ez_opus": Feed("ezstream", "/ez.opus", ".opus"),
    # darkice 1.3's first MP3 frame has a wrong CRC (its frames carry CRCs), and its
    # OpusHead a pre-skip of 0.
    "dk_mp3": Feed(
        "darkice", "/dk.mp3", ".mp3", titled=False, first_quirks=("Wrong CRC in 1 frames",)
    ),
    "dk_vorbis": Feed("darkice", "/dk.ogg", ".ogg", titled=False),
    "dk_opus": Feed(
        "darkice", "/dk.opus", ".opus", titled=False, quirks=("Implausibly low preskip",)
    ),
}
DARKICE_FORMATS = {"dk_mp3": "mp3", "dk_vorbis": "vorbis", "dk_opus": "opus"}
LIQUIDSOAP_FORMATS = {
    "ls_opus": "opus",
    "ls_oggflac": "oggflac",
    "ls_vorbis": "vorbis",
    "ls_mp3": "mp3",
    "ls_flac": "flac",
    "ls_aac": "aac",
}


@dataclass
class Recording:
    out: Path
    log: str
    status: dict[str, Any]
    tracks: dict[str, list[Track]]

    def files(self, name: str) -> list[Path]:
        folder = self.out / name
        files = sorted(f for f in folder.iterdir() if f.suffix != ".json")
        assert len(files) >= 4, (name, [f.name for f in files], self.lines(name))
        return files

    def lines(self, name: str) -> str:
        """The recorder's log lines about one source, for failure messages."""
        return "\n".join(line for line in self.log.splitlines() if f"isr.source.{name}:" in line)

    def why(self, problems: dict[str, Any] | list[str], name: str) -> str:
        """A failure message: the problems first, then what the recorder logged."""
        if isinstance(problems, dict):
            problems = [f"{key}: {value}" for key, value in problems.items()]
        listed = "\n".join(problems)
        return f"{listed}\n--- the recorder's log of {name} ---\n{self.lines(name)}"


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    base = tmp_path_factory.mktemp("source-clients")
    media = base / "media"
    clients: list[SourceClient] = []
    # darkice reads the tests' ALSA card: seeded noise, paced at the card's rate.
    with Icecast() as server, TestCard(base / "card", rate=48000, seconds=60) as card:
        try:
            # Lengths that are no multiple of the split: links fall all over the files.
            lengths = [3.7, 4.4, 5.1]
            # No long COMMENT for liquidsoap: it sends every tag in the query of its ICY
            # title update, and Icecast 2.4.4 drops a request line that long unanswered.
            ls_tracks = make_tracks(media / "liquidsoap", "flac", lengths, comments=[0])
            outputs = {FEEDS[n].mount: fmt for n, fmt in LIQUIDSOAP_FORMATS.items()}
            clients.append(start_liquidsoap(server, ls_tracks, outputs))
            ices_tracks = make_tracks(
                media / "ices2",
                "vorbis",
                [3.3, 4.1, 3.7],
                rates=[44100, 22050, 32000],
                channels=[2, 1, 2],
                comments=[LONG_COMMENT, PAGE_SPANNING_COMMENT],
            )
            clients.append(start_ices2(server, ices_tracks, FEEDS["ices_vorbis"].mount))
            comments = [LONG_COMMENT, PAGE_SPANNING_COMMENT]
            mp3_tracks = make_tracks(media / "mp3", "mp3", lengths, comments=comments)
            clients.append(
                start_ezstream(server, mp3_tracks, FEEDS["ez_mp3"].mount, "MP3", name="ez_mp3")
            )
            opus_tracks = make_tracks(media / "opus", "opus", lengths, comments=comments)
            clients.append(
                start_ezstream(server, opus_tracks, FEEDS["ez_opus"].mount, "Ogg", name="ez_opus")
            )
            dk_outputs = {FEEDS[n].mount: fmt for n, fmt in DARKICE_FORMATS.items()}
            clients.append(start_darkice(server, dk_outputs, device=PCM_TEST, alsa_env=card.env))
            config = (
                f"[general]\nsplit_minutes = {SPLIT_MINUTES}\nlog_file = rec.log\n"
                "filename_pattern = {source}/%Y%m%d_%H%M%S\n"
            )
            for name, feed in FEEDS.items():
                config += f"[{name}]\ntype = stream\nurl = {server.url(feed.mount)}\n"
            with RecorderProcess(base, config) as rec:
                assert wait_for(
                    lambda: all(s["state"] == "recording" for s in rec.status()["sources"].values())
                ), rec.output
                time.sleep(RECORD_SECONDS)
                status = rec.status()
                for client in clients:
                    assert client.running, client.log_tail()
                assert rec.stop() == 0, rec.output
        except BaseException:
            for client in clients:
                print(client.log_tail())
            print(server.log_tail())
            raise
        finally:
            for client in clients:
                client.stop()
    tracks = {n: ls_tracks for n in LIQUIDSOAP_FORMATS}
    tracks.update(ices_vorbis=ices_tracks, ez_mp3=mp3_tracks, ez_opus=opus_tracks)
    yield Recording(base / "recordings", (base / "rec.log").read_text(), status, tracks)


# -- what a file holds ------------------------------------------------------------------


def ogg_pages(data: bytes) -> Iterator[tuple[int, int, list[int], bytes]]:
    """(flags, granule, packet sizes, body) of each page, from the raw bytes (RFC 3533);
    a packet left open at the page's end is not listed."""
    p = 0
    while p + 27 <= len(data):
        assert data[p : p + 4] == b"OggS", f"no page at byte {p}"
        flags, granule = data[p + 5], struct.unpack_from("<q", data, p + 6)[0]
        lacing = data[p + 27 : p + 27 + data[p + 26]]
        sizes, size = [], 0
        for value in lacing:
            size += value
            if value < 255:
                sizes.append(size)
                size = 0
        start = p + 27 + len(lacing)
        p = start + sum(lacing)
        yield flags, granule, sizes, data[start:p]


def sidecar(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".json").read_text())
    return data


def span(side: dict[str, Any]) -> tuple[float, float]:
    """The sidecar's start and end, as Unix times."""
    assert side["start"] and side["end"], side
    start = datetime.fromisoformat(side["start"]).timestamp()
    return start, datetime.fromisoformat(side["end"]).timestamp()


@functools.cache
def decoded(path: Path) -> tuple[str, float]:
    """(what ``ffmpeg -v error`` says, seconds it decodes) from one decode of the whole
    file, at its own rate and channel count (read by mutagen, in process): one ffmpeg
    per file instead of three keeps the module's judging short on a busy machine."""
    import mutagen

    parsed = mutagen.File(str(path))
    assert parsed is not None, f"mutagen does not recognise {path.name}"
    info = parsed.info
    rate, channels = int(getattr(info, "sample_rate", 48000)), int(info.channels)
    args = [require_tool("ffmpeg"), "-nostdin", "-v", "error", "-i", str(path)]
    result = subprocess.run(
        [*args, "-f", "s16le", "-acodec", "pcm_s16le", "-"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    errors = result.stderr.decode(errors="replace").strip()
    if result.returncode != 0 and not errors:
        errors = f"ffmpeg exited with status {result.returncode}"
    return errors, len(result.stdout) // (2 * channels) / rate


def played_seconds(path: Path) -> float:
    """Seconds of audio ffmpeg decodes from the file (it stops at a bad packet)."""
    return decoded(path)[1]


def held_seconds(path: Path) -> float:
    """Seconds of audio the file holds as the media clock counts them: what a decoder
    plays, plus the Opus pre-skip (counted in the granules, not played)."""
    seconds = played_seconds(path)
    if path.suffix == ".opus":
        head = next(ogg_pages(path.read_bytes()))[3]
        seconds += struct.unpack_from("<H", head, 10)[0] / 48000
    return seconds


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FEEDS))
def test_every_file_passes_the_tools(recording: Recording, name: str) -> None:
    """ffmpeg decodes every file without a word, and the format's own checker agrees."""
    feed = FEEDS[name]
    problems: dict[str, list[str]] = {}
    files = recording.files(name)
    for f in files:
        found = []
        if f.suffix != feed.ext:
            found.append(f"extension {f.suffix}, not {feed.ext}")
        if errors := decoded(f)[0]:
            found.append(errors)
        if f.suffix in (".ogg", ".oga"):
            found += ogginfo_warnings(f)
        if f.suffix == ".opus":
            found += opusinfo_warnings(f)
        if f.suffix in (".ogg", ".oga", ".opus") and abs(ffprobe_start_time(f)) > 0.001:
            found.append(f"starts at {ffprobe_start_time(f)} s, not 0")
        if f.suffix in (".oga", ".flac") and (text := flac_test(f)):
            found.append(text)
        if f.suffix == ".mp3":
            found += mp3val_problems(f)
        quirks = feed.quirks + (feed.first_quirks if f == files[0] else ())
        found = [line for line in found if not any(q in line for q in quirks)]
        if found:
            problems[f.name] = found
    assert problems == {}, recording.why(problems, name)


@pytest.mark.parametrize("name", list(FEEDS))
def test_every_file_plays_as_long_as_it_says(recording: Recording, name: str) -> None:
    """What a decoder plays is what the container declares (Ogg granules, the Info
    frame ISR writes into MP3, FLAC's STREAMINFO): no stale audio, no dead end.
    ADTS declares no length, so AAC files are judged by the other tests only."""
    if FEEDS[name].ext == ".aac":
        pytest.skip("ADTS declares no duration")
    problems = []
    for f in recording.files(name):
        played, declared = played_seconds(f), mutagen_duration(f)
        if abs(played - declared) > PACKET:
            problems.append(f"{f.name}: plays {played:.3f} s, declares {declared:.3f} s")
    assert problems == [], recording.why(problems, name)


@pytest.mark.parametrize("name", list(FEEDS))
def test_each_sidecar_spans_the_audio_its_file_holds(recording: Recording, name: str) -> None:
    """A sidecar's start and end are the times of its file's first and last audio as
    the media clock counts them: its span is the audio held, give or take a packet."""
    problems = []
    for f in recording.files(name):
        start, end = span(sidecar(f))
        held = held_seconds(f)
        if abs((end - start) - held) > TIME_TOLERANCE:
            problems.append(f"{f.name}: sidecar spans {end - start:.3f} s, file holds {held:.3f} s")
    assert problems == [], recording.why(problems, name)


@pytest.mark.parametrize("name", list(FEEDS))
def test_the_files_of_one_connection_abut(recording: Recording, name: str) -> None:
    """One connection, nothing lost: each file starts when the one before it ended,
    however the media clock learned the source's pace (bursty senders such as
    liquidsoap's Vorbis or Icecast's re-paged ices2 Vorbis move it by tenths of a
    second in the first seconds)."""
    problems = []
    for before, f in itertools.pairwise(recording.files(name)):
        late = span(sidecar(f))[0] - span(sidecar(before))[1]
        if abs(late) > TIME_TOLERANCE:
            problems.append(f"{f.name}: starts {late:+.3f} s after the last end")
    assert problems == [], recording.why(problems, name)


@pytest.mark.parametrize("name", list(FEEDS))
def test_no_gap_where_nothing_was_lost(recording: Recording, name: str) -> None:
    """One connection from start to stop: no sidecar may list a gap, not even at a
    file that a new rate or channel count started (ices2: every track)."""
    assert recording.status["sources"][name]["reconnects"] == 0
    gaps = {f.name: sidecar(f)["gaps"] for f in recording.files(name) if sidecar(f)["gaps"]}
    assert gaps == {}, recording.why(gaps, name)


def test_a_new_rate_or_channel_count_starts_a_new_file(recording: Recording) -> None:
    """ices2 changes both at every track: each change is a file boundary, and no file
    mixes two setups (the gap test above then judged real chain splits)."""
    setups = []
    for f in recording.files("ices_vorbis"):
        streams = ffprobe_info(f)["streams"]
        assert len(streams) == 1, f.name
        setups.append((int(streams[0]["sample_rate"]), int(streams[0]["channels"])))
        links = sum(1 for flags, *_ in ogg_pages(f.read_bytes()) if flags & 2)  # BOS
        assert links == 1, f.name
    changes = sum(1 for a, b in itertools.pairwise(setups) if a != b)
    assert changes >= 2, setups


@pytest.mark.parametrize("name", list(FEEDS))
def test_every_file_but_the_last_holds_playable_audio(recording: Recording, name: str) -> None:
    """A file of a few milliseconds with nothing a decoder plays is no recording. The
    last file may be short (the stop can fall just after a split), but not empty."""
    files = recording.files(name)
    empty = {f.name: f.stat().st_size for f in files[:-1] if played_seconds(f) < PACKET}
    assert empty == {}, recording.why(empty, name)


@pytest.mark.parametrize("name", [n for n, feed in FEEDS.items() if feed.titled])
def test_titles_follow_the_tracks(recording: Recording, name: str) -> None:
    """Each file names the tracks it holds, from the tags the client sent. A client
    may send its first title after the recording began (liquidsoap sends it as an
    update of its own, which a loaded machine delays past the first split): the
    files closed before it hold none, and every file from the first titled one on
    names a track (a new file opens with the title in force)."""
    known = {t.stream_title for t in recording.tracks[name]}
    seen: list[str] = []
    titled = False
    for f in recording.files(name):
        titles = [t["title"] for t in sidecar(f)["titles"]]
        titled = titled or bool(titles)
        assert titles or not titled, f.name
        assert set(titles) <= known, (f.name, titles)
        seen += titles
    assert len(set(seen)) >= 2, seen  # the track changed while it was recorded
