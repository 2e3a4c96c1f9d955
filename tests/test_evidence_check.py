"""The check of each closed file: a byte flipped on the disk between its close and
its check is caught and alerted; each format's own CRCs and structure."""

from __future__ import annotations

import asyncio
import hashlib
import json
import struct
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from isr import sidecar
from isr.alerts import Alerter
from isr.config import AlertsConfig
from isr.evidence import check as evcheck
from isr.evidence import pending, service
from isr.evidence.check import Mp3Walker, check_file
from isr.evidence.service import Evidence
from isr.framing.flac import crc16
from isr.framing.oggpage import page_crc, page_length
from isr.sinks.wav import WavSink
from isr.sources.tone import tone_block
from tests.support import segmenting
from tests.support.evidence import RATE, T0
from tests.support.media import MediaFactory
from tests.test_evidence_digest import _record


@pytest.mark.parametrize("then_fails", [False, True])
def test_a_byte_flipped_between_close_and_check_is_caught_and_alerted(
    tmp_path: Path, then_fails: bool
) -> None:
    """And alerted even when what the source asked to run after the check (its
    sidecar rewrites) fails."""

    def then() -> None:
        if then_fails:
            raise RuntimeError("what runs after the check failed")

    async def scenario() -> tuple[Alerter, list[Path]]:
        alerter = Alerter(AlertsConfig())
        ev = Evidence(tmp_path, UTC, alerter, check_pause=0.0)
        ev.checking_enabled = False  # the checker starts once the byte is flipped
        ev.start(["radio"])
        seg = segmenting.make_segmenter(tmp_path, split_seconds=2.0, source="radio")
        closed: list[Path] = []

        def on_close(sink: WavSink, ledger: object, kept: bool) -> None:
            closed.append(sink.path)
            ev.closed("radio", sink.path, ledger, sink.digest.result(), then=then)  # type: ignore[arg-type]

        seg.on_close = on_close  # type: ignore[assignment]
        pcm = tone_block(0, 5 * RATE, 440.0, RATE, 1)
        make = lambda d, stem, ext: WavSink(d, stem, sample_rate=RATE, channels=1)  # noqa: E731
        seg.write_pcm(pcm, 0, T0, RATE, 2, make, "wav")
        seg.close()
        data = bytearray(closed[0].read_bytes())
        data[1000] ^= 0x10  # a sample, not the header
        closed[0].write_bytes(data)
        ev.start_checker()
        assert await asyncio.to_thread(ev.drain)
        await asyncio.sleep(0.05)  # the results are applied on the loop
        await asyncio.to_thread(ev.stop, ["radio"])
        return alerter, closed

    alerter, closed = asyncio.run(scenario())
    first = json.loads(closed[0].with_name(closed[0].name + ".json").read_text())
    assert first["check"]["ok"] is False
    assert first["check"]["problems"] == ["its bytes from 80 on are not those written (SHA-256)"]
    alerts = [a for a in alerter.sent if a["event"] == "file_check_failed"]
    assert len(alerts) == 1
    assert alerts[0]["source"] == "radio" and alerts[0]["file"] == closed[0].name
    for other in closed[1:]:
        side = json.loads(other.with_name(other.name + ".json").read_text())
        assert side["check"] == {"ok": True, "problems": [], "at": side["check"]["at"]}


@pytest.mark.parametrize(
    ("kind", "fmt", "problem"),
    [
        ("vorbis", "ogg", "Ogg page CRC-32 does not match"),
        ("opus", "ogg", "Ogg page CRC-32 does not match"),
        ("flac", "flac", "bytes of frames whose CRC does not match"),
    ],
)
def test_a_flipped_byte_fails_the_formats_crc(
    tmp_path: Path, media: MediaFactory, kind: str, fmt: str, problem: str
) -> None:
    path, _, written = _record(tmp_path, fmt, media(kind, 5.0).read_bytes())[0]
    assert check_file(path, written).ok
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x40
    path.write_bytes(data)
    result = check_file(path, None)  # the format alone, no write-path account
    assert any(problem in p for p in result.problems), result.problems


def test_an_mp3_frame_header_damaged(tmp_path: Path, media: MediaFactory) -> None:
    path, _, written = _record(tmp_path, "mp3", media("mp3", 5.0).read_bytes())[0]
    assert check_file(path, written).ok
    data = bytearray(path.read_bytes())
    table = Mp3Walker()._table
    pos = 0
    while pos < len(data) // 2:  # from the Xing frame on, by the frames' lengths
        h = table[(data[pos + 1] & 0x1F) << 8 | data[pos + 2]]
        assert h is not None
        pos += h.length
    data[pos + 2] = 0xF0  # bitrate index 15: no frame starts here any more
    path.write_bytes(data)
    result = check_file(path, written)
    assert (
        result.problems[0] == f"its bytes from {written.reserve} on are not those written (SHA-256)"
    )
    assert result.problems[1].startswith(f"byte {pos}: no MP3 frame (")


def test_a_wav_header_against_its_size(tmp_path: Path) -> None:
    sink = WavSink(tmp_path, "x", sample_rate=RATE, channels=1)
    sink.write(tone_block(0, RATE, 440.0, RATE, 1))
    sink.close()
    assert check_file(sink.path, sink.digest.result()).ok
    with sink.path.open("ab") as fh:
        fh.write(b"\0" * 3)
    result = check_file(sink.path, None)
    assert result.problems == [
        f"the header says {2 * RATE} data bytes, the file holds {2 * RATE + 3}",
        f"the RIFF size is {2 * RATE + 72}, the file's is {2 * RATE + 75}",
        "1 bytes of a partial sample frame",
    ]
    assert struct.unpack("<I", sink.path.read_bytes()[4:8])[0] == 2 * RATE + 72


@pytest.mark.parametrize("on_loop", [True, False], ids=["recording", "owed-from-last-run"])
def test_a_checks_entry_goes_only_once_its_sidecar_holds_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_loop: bool
) -> None:
    """The uploader takes a file whose check is no longer owed as final. An entry
    removed before the sidecar held the check let it upload a sidecar that was then
    rewritten (the store kept the older one: a SIGKILL and a re-check at the next
    start did it in CI). The sidecar writes are slowed to make the old order fail."""
    seen: dict[str, Any] = {}
    real_remove = pending.remove

    def remove(entry: pending.Pending) -> None:
        side = json.loads((tmp_path / (entry.file + ".json")).read_text())
        seen[entry.file] = side.get("check")
        real_remove(entry)

    def slowly(write: Callable[..., None]) -> Callable[..., None]:
        def slow(*args: Any) -> None:
            time.sleep(0.2)
            write(*args)

        return slow

    def record(ev: Evidence) -> list[Path]:
        seg = segmenting.make_segmenter(tmp_path, split_seconds=2.0, source="radio")
        closed: list[Path] = []

        def on_close(sink: WavSink, ledger: object, kept: bool) -> None:
            closed.append(sink.path)
            ev.closed("radio", sink.path, ledger, sink.digest.result())  # type: ignore[arg-type]

        seg.on_close = on_close  # type: ignore[assignment]
        pcm = tone_block(0, 5 * RATE, 440.0, RATE, 1)
        make = lambda d, stem, ext: WavSink(d, stem, sample_rate=RATE, channels=1)  # noqa: E731
        seg.write_pcm(pcm, 0, T0, RATE, 2, make, "wav")
        seg.close()
        return closed

    async def recording() -> list[Path]:
        ev = Evidence(tmp_path, UTC, check_pause=0.0)
        ev.start(["radio"])
        closed = record(ev)
        assert await asyncio.to_thread(ev.drain)  # a stop leaves checks owed past its drain
        await asyncio.to_thread(ev.stop, ["radio"])
        return closed

    monkeypatch.setattr(pending, "remove", remove)
    monkeypatch.setattr(service, "write_sidecar", slowly(sidecar.write_sidecar))
    monkeypatch.setattr(service, "write_json_atomic", slowly(sidecar.write_json_atomic))
    if on_loop:
        closed = asyncio.run(recording())
    else:  # a run stopped with its checks owed; the next start does them
        first = Evidence(tmp_path, UTC, check_pause=0.0)
        first.checking_enabled = False
        first.start(["radio"])
        closed = record(first)
        first.stop(["radio"])
        assert len(pending.load(tmp_path)) == len(closed)
        again = Evidence(tmp_path, UTC, check_pause=0.0)
        again.start(["radio"])
        assert again.drain()
        again.stop(["radio"])
    assert len(closed) == 3
    assert sorted(seen) == sorted(p.name for p in closed)
    for name, check in seen.items():
        assert check is not None and check["ok"] is True, name
    assert pending.load(tmp_path) == []


def _frames(data: bytes | bytearray) -> list[int]:
    """Where each MP3 frame of ``data`` starts, by the frames' lengths."""
    table = Mp3Walker()._table
    starts = []
    pos = 0
    while pos + 4 <= len(data):
        h = table[(data[pos + 1] & 0x1F) << 8 | data[pos + 2]]
        assert h is not None
        starts.append(pos)
        pos += h.length
    return starts


@pytest.mark.parametrize("chunk", [evcheck.CHUNK, 4099])
def test_the_crc_of_protected_mp3_frames(
    tmp_path: Path, media: MediaFactory, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    path, _, _ = _record(tmp_path, "mp3", media("mp3", 5.0).read_bytes())[0]
    data = bytearray(path.read_bytes())
    frames = _frames(data)[1:]  # after the Xing frame: every frame protected
    for pos in frames:
        data[pos + 1] &= 0xFE
        side = 17 if data[pos + 3] >> 6 == 3 else 32
        crc = crc16(bytes(data[pos + 2 : pos + 4] + data[pos + 6 : pos + 6 + side]), 0xFFFF)
        data[pos + 4 : pos + 6] = crc.to_bytes(2, "big")
    bad = [frames[1], frames[len(frames) // 2], frames[-1]]
    for pos in bad:
        data[pos + 5] ^= 0x01
    path.write_bytes(data)
    monkeypatch.setattr(evcheck, "CHUNK", chunk)
    result = check_file(path, None)
    assert result.problems == [f"byte {pos}: MP3 frame CRC-16 does not match" for pos in bad]


@pytest.mark.parametrize(("fmt", "kind"), [("mp3", "mp3"), ("ogg", "vorbis")])
def test_a_byte_flipped_anywhere_is_caught(
    tmp_path: Path, media: MediaFactory, monkeypatch: pytest.MonkeyPatch, fmt: str, kind: str
) -> None:
    """In the head patched at close, at either side of it, at the chunks' seams
    and at the end: the check reads each chunk into one buffer kept for the file."""
    path, _, written = _record(tmp_path, fmt, media(kind, 5.0).read_bytes())[0]
    good = path.read_bytes()
    reserve = written.reserve
    assert reserve > 0
    monkeypatch.setattr(evcheck, "CHUNK", 4099)
    assert check_file(path, written).attested
    for at in (0, reserve - 1, reserve, 4098, 4099, 8198, len(good) // 2, len(good) - 1):
        data = bytearray(good)
        data[at] ^= 0x01
        path.write_bytes(data)
        result = check_file(path, written)
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        assert not result.attested
        assert result.problems[0] == (
            f"its first {reserve} bytes are not those written"
            if at < reserve
            else f"its bytes from {reserve} on are not those written (SHA-256)"
        )


@pytest.mark.parametrize(("fmt", "kind"), [("mp3", "mp3"), ("ogg", "vorbis"), ("ogg", "opus")])
def test_the_same_problems_however_the_file_is_read(
    tmp_path: Path, media: MediaFactory, monkeypatch: pytest.MonkeyPatch, fmt: str, kind: str
) -> None:
    """Damage across the chunks' seams is told alike whatever the chunk, and when
    what a chunk carries over does not fit in the room before the next."""
    path, _, written = _record(tmp_path, fmt, media(kind, 5.0).read_bytes())[0]
    data = bytearray(path.read_bytes())
    n = len(data)
    data[n // 5] ^= 0x10
    data[n // 3 : n // 3] = b"\xff\xfb\x90OggS\x00" + bytes(range(256)) * 3
    del data[n // 2 : n // 2 + 700]
    data[2 * n // 3] ^= 0x80
    del data[-300:]
    path.write_bytes(data)
    results = []
    for chunk, slack in ((evcheck.CHUNK, evcheck.SLACK), (4099, evcheck.SLACK), (1000, 16), (7, 8)):
        monkeypatch.setattr(evcheck, "CHUNK", chunk)
        monkeypatch.setattr(evcheck, "SLACK", slack)
        result = check_file(path, written)
        results.append((result.sha256, result.size, result.problems))
    assert results[0][2][0] == f"the file holds {len(data)} bytes, {n} were written"
    assert len(results[0][2]) > 2
    assert all(r == results[0] for r in results[1:]), results


def test_a_page_the_framer_would_refuse_is_damage_to_the_check(
    tmp_path: Path, media: MediaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Header-type bits Ogg leaves reserved, under a CRC that matches them: the
    framer takes no such page (``oggpage.page_length``), and the check, which reads
    pages with the same function, says where the bytes it could not walk begin."""
    path, _, _ = _record(tmp_path, "ogg", media("vorbis", 5.0).read_bytes())[0]
    data = bytearray(path.read_bytes())
    third = data.find(b"OggS", data.find(b"OggS", data.find(b"OggS") + 1) + 1)
    length = page_length(data, third)
    seq = int.from_bytes(data[third + 18 : third + 22], "little")
    data[third + 5] |= 0x08
    data[third + 22 : third + 26] = b"\0\0\0\0"
    crc = page_crc(bytes(data[third : third + length]))
    data[third + 22 : third + 26] = crc.to_bytes(4, "little")
    path.write_bytes(data)
    # Whole in one chunk; across chunks, by the fast walk (the buffer a multiple of 8
    # bytes) and byte by byte; a chunk that ends inside the page's header, before its
    # flags and after them.
    cuts = [third + 3, third + 6]
    sizes = [(evcheck.CHUNK, evcheck.SLACK), (4096, evcheck.SLACK), (1000, 16), (4099, 64)]
    sizes += [(7, 8)] + [(c, evcheck.SLACK + (-c - evcheck.SLACK) % 8) for c in cuts]
    for chunk, slack in sizes:
        monkeypatch.setattr(evcheck, "CHUNK", chunk)
        monkeypatch.setattr(evcheck, "SLACK", slack)
        problems = check_file(path, None).problems
        assert problems == [
            f"byte {third}: no Ogg page ({length} bytes)",
            f"byte {third + length}: Ogg page sequence {seq + 1} follows {seq - 1}",
        ], (chunk, slack)
