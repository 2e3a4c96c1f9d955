"""``isr verify --clip FILE``: a clip against its manifest, the archive and the chain.

The archives are the clips tests' (tests/support/clips.py: the recorder's own
framer, segmenter and sinks writing real encoded audio, or known PCM, at chosen
times), with the recorder's evidence service writing the chain as the files close.
Each clip is written by ``isr clip``'s own writer; each tampering has its exact
report line.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from isr.cli import main
from isr.clips.clip import Clipper
from isr.clips.export import write_clip
from isr.evidence import chain
from isr.evidence.clipverify import ClipReport, verify_clip
from isr.evidence.keys import generate, load_signer
from isr.evidence.lines import chain_refs
from isr.evidence.service import Evidence
from isr.framing.flac import FlacFramer
from isr.framing.xing import leading_tag_length
from isr.sidecar import Ledger
from isr.sinks.base import Sink
from isr.timeline.index import TimelineIndex
from tests.support.archive import local, write_status
from tests.support.clips import PcmArchive, StreamArchive, _release, signal
from tests.support.media import MediaFactory

BERLIN = ZoneInfo("Europe/Berlin")
T0 = "2026-11-24T14:00:01"
KINDS = ["mp3", "aac", "flac", "wav", "flacpcm"]
"""MP3, ADTS, native FLAC (stream formats: whole frames) and WAV, PCM-FLAC (samples)."""


@pytest.fixture(autouse=True)
def _berlin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Berlin")


def with_chain(archive: StreamArchive | PcmArchive, ev: Evidence) -> None:
    """The recorder's evidence service chains each file as it closes."""

    def closed(sink: Sink, ledger: Ledger, ok: bool) -> None:
        ev.closed(archive.source, sink.path, ledger, sink.digest.result())
        _release(sink, ledger, ok)

    archive.seg.on_close = closed


def make_archive(root: Path, kind: str, media: MediaFactory) -> str:
    """Record ``kind`` (about 13 s, files of 3 s) with its chain; returns the source."""
    ev = Evidence(root, BERLIN, check_pause=0.0)
    start = local(T0, BERLIN)
    if kind in ("wav", "flacpcm"):
        pcm = PcmArchive(root, BERLIN, "wav" if kind == "wav" else "flac", rate=8000)
        ev.start([pcm.source])
        with_chain(pcm, ev)
        pcm.session(signal(13, 8000, 2), start)
        source = pcm.source
    else:
        stream = StreamArchive(root, BERLIN, kind)
        ev.start([stream.source])
        with_chain(stream, ev)
        stream.session(media(kind, 14), start)
        source = stream.source
    assert ev.drain()
    ev.stop([source])
    return source


def make_clip(root: Path, source: str, out: Path, a: float = 4.2, b: float = 10.7) -> Path:
    start = local(T0, BERLIN)
    clipper = Clipper(root, BERLIN, TimelineIndex(root, BERLIN, in_memory=True))
    try:
        audio, _ = write_clip(clipper, source, start + a, start + b, out)
    finally:
        clipper.close()
    return audio


@dataclass
class Case:
    kind: str
    root: Path
    clip: Path
    source: str

    @property
    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.clip.with_name(self.clip.name + ".json").read_text())
        return data

    def write_manifest(self, m: dict[str, Any]) -> None:
        self.clip.with_name(self.clip.name + ".json").write_text(json.dumps(m, indent=2))

    def verify(self) -> ClipReport:
        return verify_clip(self.clip, self.root)

    def chain_path(self) -> Path:
        return chain.chain_path(self.root, self.source)


def extension(kind: str) -> str:
    return {"mp3": ".mp3", "aac": ".aac", "flac": ".flac", "wav": ".wav", "flacpcm": ".flac"}[kind]


@pytest.fixture(scope="module", params=KINDS)
def made(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, media: MediaFactory
) -> Case:
    kind: str = request.param
    base = tmp_path_factory.mktemp(f"clip-{kind}")
    root = base / "rec"
    source = make_archive(root, kind, media)
    clip = make_clip(root, source, base / f"clip{extension(kind)}")
    return Case(kind, root, clip, source)


@pytest.fixture
def case(made: Case, tmp_path: Path) -> Case:
    """A copy of the archive and the clip (verify runs on a copy, as elsewhere)."""
    root = tmp_path / "rec"
    shutil.copytree(made.root, root)
    clip = tmp_path / made.clip.name
    shutil.copy(made.clip, clip)
    shutil.copy(made.clip.with_name(made.clip.name + ".json"), clip.with_name(clip.name + ".json"))
    return Case(made.kind, root, clip, made.source)


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def clip_args(c: Case) -> list[str]:
    return ["verify", "--clip", str(c.clip), "--dir", str(c.root)]


# -- intact --------------------------------------------------------------------------


def test_a_clip_verifies(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    m = case.manifest
    assert len(m["parts"]) == 3
    lines = case.chain_path().read_bytes().splitlines()
    for part in m["parts"]:  # each part names the line that recorded its file
        ref = part["chain"]
        line = lines[ref["seq"] - 1]
        assert hashlib.sha256(line).hexdigest() == ref["line_sha256"]
        obj = json.loads(line)
        assert obj["event"] == "closed" and obj["file"] == part["file"]
        assert obj["sha256"] == part["sha256"]
        assert set(part) == {"file", "sha256", "bytes", "samples", "start", "end", "chain"} - {
            "samples" if case.kind in ("mp3", "aac", "flac") else "bytes"
        }
    report = case.verify()
    assert report.lines() == []
    assert report.ok and report.identical and report.proven == 3
    assert report.compared == case.clip.stat().st_size
    assert main(clip_args(case)) == 0
    out = capsys.readouterr().out
    assert out == (
        f"intact: {case.clip.name}; {report.compared} byte(s) compared, a byte-exact re-cut "
        "of 3 part(s); 3 part(s) proven by the chain\n"
    )


# -- the clip edited -----------------------------------------------------------------


def part_files(c: Case) -> list[Path]:
    return [c.root / p["file"] for p in c.manifest["parts"]]


def header_length(c: Case) -> int:
    data = c.clip.read_bytes()
    if c.kind == "mp3":
        return leading_tag_length(data)
    if c.kind in ("flac", "flacpcm"):
        return 42  # fLaC, STREAMINFO
    if c.kind == "wav":
        return 44
    return 0


def flac_offsets(data: bytes, start: int) -> list[int]:
    framer = FlacFramer()
    frames = framer.feed(data) + framer.flush()
    out, at = [], start
    for f in frames:
        out.append(at)
        at += len(f.data)
    return out


def test_one_byte_edited_in_the_audio_fails_naming_where(
    case: Case, capsys: pytest.CaptureFixture[str]
) -> None:
    m = case.manifest
    first, second = m["parts"][0], m["parts"][1]
    head = header_length(case)
    name = case.clip.name
    label = f"part 2, {second['file']}"
    if case.kind in ("mp3", "aac"):
        at = head + (first["bytes"][1] - first["bytes"][0]) + 1000
        where = f"the audio of {label} byte {second['bytes'][0] + 1000}"
    elif case.kind == "wav":
        at = head + (first["samples"][1] - first["samples"][0]) * 4 + 1000
        where = f"the audio of {label} byte {44 + second['samples'][0] * 4 + 1000}"
    elif case.kind == "flac":  # the third frame of the second part's, in the clip
        clip_frames = flac_offsets(case.clip.read_bytes()[head:], head)
        in_file = flac_offsets(part_files(case)[1].read_bytes()[42:], 42)
        in_first = flac_offsets(part_files(case)[0].read_bytes()[42:], 42)
        n1 = sum(1 for o in in_first if first["bytes"][0] <= o < first["bytes"][1])
        at = clip_frames[n1 + 2] + 50
        byte = in_file[in_file.index(second["bytes"][0]) + 2]
        where = f"frame 2 of {label} byte {byte}, renumbered"
    else:  # PCM-FLAC: a frame copied whole from the middle of the clip
        clip_frames = flac_offsets(case.clip.read_bytes()[head:], head)
        at = clip_frames[len(clip_frames) // 2] + 50
        flip(case.clip, at)
        (line,) = case.verify().problems
        assert re.fullmatch(
            rf"{name} byte {at} \(frame \d+ of part \d, card/\d+_\d+\.flac byte \d+, "
            r"renumbered\): differs from the archive \(1 byte\(s\) differ there\)",
            line,
        ), line
        return
    flip(case.clip, at)
    report = case.verify()
    expect = f"{name} byte {at} ({where}): differs from the archive (1 byte(s) differ there)"
    assert report.problems == [expect]
    assert not report.ok and not report.identical
    assert report.proven == 3, "the archive itself is intact"
    assert main(clip_args(case)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == expect
    assert out[1].startswith(f"1 problem(s): {name} is not what the archive holds;")


HEADERS = {
    "mp3": "its Xing/Info frame, made for the clip",
    "flac": "its fLaC header and STREAMINFO, made for the clip",
    "flacpcm": "its fLaC header and STREAMINFO, made for the clip",
    "wav": "its WAV header, made for the clip",
}


def test_one_byte_edited_in_a_header_fails_naming_it(case: Case) -> None:
    if case.kind == "aac":  # no header of its own: the first ADTS frame's header
        at = 3
        first = case.manifest["parts"][0]
        where = f"the audio of part 1, {first['file']} byte {first['bytes'][0] + 3}"
    else:
        at = {"mp3": 60, "flac": 20, "flacpcm": 20, "wav": 24}[case.kind]
        where = HEADERS[case.kind]
    flip(case.clip, at)
    assert case.verify().problems == [
        f"{case.clip.name} byte {at} ({where}): differs from the archive (1 byte(s) differ there)"
    ]


def test_bytes_added_to_the_clip_fail(case: Case) -> None:
    data = case.clip.read_bytes()
    case.clip.write_bytes(data + b"\0")
    assert case.verify().problems == [
        f"{case.clip.name}: {len(data) + 1} bytes; its manifest's ranges cut from the archive "
        f"give {len(data)}"
    ]


# -- the manifest edited ---------------------------------------------------------------


def test_a_range_edited_in_the_manifest_fails(case: Case) -> None:
    m = case.manifest
    part = m["parts"][1]
    if case.kind in ("mp3", "aac", "flac"):
        part["bytes"][1] -= 1  # no longer the end of a frame
        case.write_manifest(m)
        a, b = part["bytes"]
        assert case.verify().problems == [
            f"part 2 ({part['file']}): its bytes [{a}, {b}]: byte {b} is not where a frame "
            "of the file ends"
        ]
    else:  # one sample less of the middle part: the clip has one more than the cut
        part["samples"][0] += 1
        case.write_manifest(m)
        size = case.clip.stat().st_size
        problems = case.verify().problems
        if case.kind == "wav":
            assert problems[-1] == (
                f"{case.clip.name}: {size} bytes; its manifest's ranges cut from the archive "
                f"give {size - 4}"
            )
        else:
            assert problems[-1].startswith(f"{case.clip.name}: {size} bytes; its manifest's")
        assert problems[0].startswith(f"{case.clip.name} byte ")


def test_a_sha256_edited_in_the_manifest_fails(case: Case) -> None:
    m = case.manifest
    part = m["parts"][0]
    real = part["sha256"]
    part["sha256"] = "0" * 64
    case.write_manifest(m)
    n = part["chain"]["seq"]
    assert case.verify().problems == [
        f"part 1 ({part['file']}): the manifest says SHA-256 {'0' * 64}; the file and chain "
        f"{case.source} line {n} say {real} (the manifest was changed)"
    ]


def test_a_time_edited_in_the_manifest_fails(case: Case) -> None:
    m = case.manifest
    part = m["parts"][2]
    said = part["end"]
    part["end"] = said[:17] + f"{(int(said[17:19]) + 1) % 60:02d}" + said[19:]  # a second on
    case.write_manifest(m)
    problems = case.verify().problems
    got = re.fullmatch(
        rf"part 3 \({part['file']}\): its end {re.escape(part['end'])} is not when its audio "
        r"aired \((.*), from the file's start\)",
        problems[0],
    )
    assert got is not None, problems[0]
    aired = datetime.fromisoformat(got[1])
    assert aired.utcoffset() == datetime.fromisoformat(said).utcoffset()
    assert abs(aired.timestamp() - datetime.fromisoformat(said).timestamp()) <= 0.001
    assert problems[1] == f"manifest: the clip's end {m['end']} is not its last part's"


def redate(audio: Path, moved: float) -> None:
    """What the segmenter does when a young connection's media clock moves back:
    the file's start moves by ``moved`` and ``dated`` keeps the first one."""
    side = audio.with_name(audio.name + ".json")
    data = json.loads(side.read_text())
    start = datetime.fromisoformat(data["start"])
    data.setdefault("dated", data["start"])
    data["start"] = datetime.fromtimestamp(start.timestamp() - moved, start.tzinfo).isoformat(
        timespec="milliseconds"
    )
    side.write_text(json.dumps(data))


def test_a_file_redated_after_the_clip_was_made_still_verifies(case: Case) -> None:
    for audio in part_files(case):  # the clip took its times before the clock settled
        redate(audio, 0.019)
    assert case.verify().lines() == []


def test_a_part_moved_within_its_files_dating_but_not_as_one_fails(case: Case) -> None:
    audio = part_files(case)[1]
    redate(audio, 0.050)
    m = case.manifest
    part = m["parts"][1]
    start = datetime.fromisoformat(part["start"])  # 20 ms earlier: within the dating
    part["start"] = datetime.fromtimestamp(start.timestamp() - 0.020, start.tzinfo).isoformat(
        timespec="milliseconds"
    )
    case.write_manifest(m)
    span = datetime.fromisoformat(part["end"]).timestamp() - start.timestamp() + 0.020
    assert case.verify().problems == [
        f"part 2 ({part['file']}): it spans {span:.3f} s from {part['start']} to "
        f"{part['end']}, its audio {span - 0.020:.3f} s"
    ]


def test_a_part_moved_past_its_files_dating_fails(case: Case) -> None:
    audio = part_files(case)[1]
    redate(audio, 0.050)
    m = case.manifest
    part = m["parts"][1]
    for key in ("start", "end"):  # as one, but 60 ms earlier: before the file's start
        t = datetime.fromisoformat(part[key])
        part[key] = datetime.fromtimestamp(t.timestamp() - 0.060, t.tzinfo).isoformat(
            timespec="milliseconds"
        )
    case.write_manifest(m)
    problems = case.verify().problems
    assert [p.split(" is not when")[0] for p in problems] == [
        f"part 2 ({part['file']}): its start {part['start']}",
        f"part 2 ({part['file']}): its end {part['end']}",
    ]


def test_a_manifest_that_is_not_one(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    case.clip.with_name(case.clip.name + ".json").write_text("{not json")
    assert main(clip_args(case)) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{case.clip.name}.json: not a clip's manifest: not JSON")


# -- the archive changed ------------------------------------------------------------------


def test_an_archived_file_changed_after_the_clip_fails(case: Case) -> None:
    m = case.manifest
    part = m["parts"][1]
    path = case.root / part["file"]
    unit = "bytes" if "bytes" in part else "samples"
    at = part[unit][0] + 200 if unit == "bytes" else 44 + part["samples"][0] * 4 + 200
    if case.kind == "flacpcm":
        at = 42 + 2000  # inside its first frame
    flip(path, at)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    n = part["chain"]["seq"]
    assert case.verify().problems == [
        f"part 2 ({part['file']}): changed since it was recorded: its SHA-256 is {digest}; "
        f"the manifest and chain {case.source} line {n} say {part['sha256']}"
    ]


def test_an_archived_file_deleted_fails(case: Case) -> None:
    part = case.manifest["parts"][2]
    (case.root / part["file"]).unlink()
    assert case.verify().problems == [f"part 3 ({part['file']}): missing from the archive"]


def edit_line(c: Case, seq: int, **changes: Any) -> None:
    path = c.chain_path()
    lines = path.read_bytes().splitlines()
    obj = json.loads(lines[seq - 1])
    obj.update(changes)
    lines[seq - 1] = chain.encode(obj)
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_the_chain_line_of_a_part_edited_fails(case: Case) -> None:
    part = case.manifest["parts"][1]
    n = part["chain"]["seq"]
    edit_line(case, n, bytes=1)
    now = hashlib.sha256(case.chain_path().read_bytes().splitlines()[n - 1]).hexdigest()
    following = case.manifest["parts"][2]["chain"]["seq"]
    assert following == n + 1
    assert case.verify().problems == [
        f"part 2 ({part['file']}): chain {case.source} line {n} (seq {n}) changed: its "
        f"SHA-256 is {now}, the manifest says {part['chain']['line_sha256']}",
        # and so the next line's link breaks: the line of part 3 is not proven either
        f"chain {case.source} line {n + 1}: its prev is not the SHA-256 of line {n}: the "
        f"chain is broken before the line(s) that recorded part 3 (line {n + 1})",
    ]


def test_a_chain_line_before_the_parts_edited_fails(case: Case) -> None:
    parts = case.manifest["parts"]
    edit_line(case, 1, host="elsewhere")  # the "started" line
    lines = ", ".join(f"part {i} (line {p['chain']['seq']})" for i, p in enumerate(parts, 1))
    assert case.verify().problems == [
        f"chain {case.source} line 2: its prev is not the SHA-256 of line 1: the chain is "
        f"broken before the line(s) that recorded {lines}"
    ]
    assert case.verify().proven == 0


# -- a file still being recorded ------------------------------------------------------------


def test_a_part_still_being_recorded_is_unverifiable_not_tampered(
    tmp_path: Path, media: MediaFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "rec"
    ev = Evidence(root, BERLIN, check_pause=0.0)
    archive = StreamArchive(root, BERLIN, "mp3")
    ev.start(["radio"])
    with_chain(archive, ev)
    start = local(T0, BERLIN)
    aired = archive.session(media("mp3", 14), start, count=250, stop=False)
    assert ev.drain()
    growing = archive.files()[-1]
    write_status(root, {"radio": f"radio/{growing.name}"})
    clip = make_clip(root, "radio", tmp_path / "now.mp3", 1.0, 3600)
    m = json.loads((tmp_path / "now.mp3.json").read_text())
    last = m["parts"][-1]
    assert last["file"] == f"radio/{growing.name}"
    assert last["sha256"] is None and last["chain"] is None
    report = verify_clip(clip, root)
    assert report.problems == []
    assert report.unverifiable == [
        f"part 3 ({last['file']}): still being recorded when the clip was made and since "
        "(no SHA-256, no chain line): verify again once the chain records it"
    ]
    assert not report.ok and report.identical and report.proven == 2
    assert main(["verify", "--clip", str(clip), "--dir", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "unverifiable: " + report.unverifiable[0]
    assert out[1].startswith("not verified: now.mp3 matches the archive, but 1 of 3 part(s)")
    # The file goes on and closes: the chain records it, and the part is proven by it.
    archive.session(media("mp3", 14), aired[-1].end, skip=250, count=40, stop=True)
    assert ev.drain()
    ev.stop(["radio"])
    write_status(root, {})
    report = verify_clip(clip, root)
    n = [i for i, line in enumerate(chain.read_lines(chain.chain_path(root, "radio")), 1)
         if line.obj and line.obj["file"] == last["file"]][-1]  # fmt: skip
    assert report.problems == [] and report.unverifiable == []
    assert report.notes == [
        f"note: part 3 ({last['file']}): recorded by chain radio line {n} after the clip was made"
    ]
    assert report.ok and report.proven == 3


# -- usage -----------------------------------------------------------------------------------


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "rec"
    root.mkdir()
    lone = tmp_path / "lone.mp3"
    lone.write_bytes(b"\xff\xfb" * 100)
    assert main(["verify", "--clip", str(lone), "--dir", str(root)]) == 2
    assert "no manifest" in capsys.readouterr().err
    assert main(["verify", "--clip", str(tmp_path / "none.mp3"), "--dir", str(root)]) == 2
    assert "cannot read the clip" in capsys.readouterr().err
    assert main(["verify", "--clip", str(lone), "--dir", str(root), "--source", "radio"]) == 2
    assert "takes no --source" in capsys.readouterr().err
    assert main(["verify", "--clip", str(lone), "--dir", str(tmp_path / "nowhere")]) == 2
    assert "no recordings directory" in capsys.readouterr().err


def test_chain_refs_read_only_what_was_appended(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    path = chain.chain_path(root, "radio")
    closed = [
        chain.entry("closed", at="t", file=f"radio/{i}.mp3", sha256=f"{i:064d}", bytes=1)
        for i in range(3)
    ]
    chain.append(path, [chain.entry("started", at="t"), *closed[:2]], source="radio")

    def line_of(seq: int) -> dict[str, Any]:
        raw = path.read_bytes().splitlines()[seq - 1]
        return {"seq": seq, "line_sha256": hashlib.sha256(raw).hexdigest()}

    names = ["radio/0.mp3", "radio/1.mp3", "radio/2.mp3"]
    assert chain_refs(root, "radio", names) == {
        "radio/0.mp3": line_of(2),
        "radio/1.mp3": line_of(3),
        "radio/2.mp3": None,
    }
    chain.append(path, [closed[2]], source="radio")
    with path.open("ab") as fh:
        fh.write(b'{"seq":5,"file":"radio/0.mp3"')  # torn: records nothing
    assert chain_refs(root, "radio", names)["radio/2.mp3"] == line_of(4)
    assert chain_refs(root, "radio", names)["radio/0.mp3"] == line_of(2)
    deleted = chain.entry("deleted", at="t", file="radio/0.mp3", by="retention", why="old")
    chain.append(path, [deleted], source="radio")
    assert chain_refs(root, "radio", ["radio/0.mp3"]) == {"radio/0.mp3": None}
    # A chain replaced (another inode) is read anew.
    other = path.with_name("x")
    chain.append(other, [chain.entry("started", at="t"), closed[1]], source="radio")
    other.replace(path)
    assert chain_refs(root, "radio", names) == {
        "radio/0.mp3": None,
        "radio/1.mp3": line_of(2),
        "radio/2.mp3": None,
    }
    assert chain_refs(root, "nobody", names) == dict.fromkeys(names)


# -- a signed day seals the parts' lines ------------------------------------------------------


def test_parts_sealed_by_a_signed_day(
    tmp_path: Path, media: MediaFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "keys" / "isr.key"
    public = generate(key)
    root = tmp_path / "rec"
    ev = Evidence(root, BERLIN, sign=load_signer(key), check_pause=0.0)
    archive = StreamArchive(root, BERLIN, "mp3")
    ev.start(["radio"])
    with_chain(archive, ev)
    archive.session(media("mp3", 14), local(T0, BERLIN))
    assert ev.drain()
    ev.day(["radio"], "2026-11-24")
    ev.stop(["radio"])
    clip = make_clip(root, "radio", tmp_path / "sealed.mp3")
    report = verify_clip(clip, root, public_key=public)
    assert report.lines() == [] and report.ok
    assert report.sealed == 3 and report.keys == {public}
    assert report.summary().endswith(
        f"3 part(s) proven by the chain, 3 sealed by a signed day (key {public})"
    )
    day = next(
        line for line in chain.read_lines(chain.chain_path(root, "radio"))
        if line.obj and line.obj["event"] == "day"
    )  # fmt: skip
    other = generate(tmp_path / "keys" / "other.key")
    args = ["verify", "--clip", str(clip), "--dir", str(root), "--key", other]
    assert main(args) == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        f"chain radio line {day.number} (day 2026-11-24): signed by another key ({public})"
    )
    # With a config, the key is [evidence] signing_key's .pub, as for the archive.
    ini = tmp_path / "isr.ini"
    ini.write_text(
        f"[general]\noutput_directory = {root}\n[evidence]\nsigning_key = keys/other.key\n"
        "[radio]\ntype = tone\n"
    )
    assert main(["verify", "--clip", str(clip), "-c", str(ini)]) == 1
    assert "signed by another key" in capsys.readouterr().out
    ini.write_text(ini.read_text().replace("other.key", "isr.key"))
    assert main(["verify", "--clip", str(clip), "-c", str(ini)]) == 0
    assert capsys.readouterr().out.endswith(f"3 sealed by a signed day (key {public})\n")
    assert day.obj is not None
    sig = bytearray(base64.b64decode(day.obj["sig"]))
    sig[0] ^= 1
    edit = Case("mp3", root, clip, "radio")
    edit_line(edit, int(day.obj["seq"]), sig=base64.b64encode(bytes(sig)).decode())
    report = verify_clip(clip, root)
    assert report.problems == [f"chain radio line {day.number} (day 2026-11-24): bad signature"]
    assert report.sealed == 0 and report.proven == 3
