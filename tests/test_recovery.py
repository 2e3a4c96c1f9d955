"""Crash recovery: a SIGKILLed recorder's files are finished at the next start."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import soundfile

from isr.framing.base import Framer
from isr.recovery import previous_positions, recover
from isr.sinks.wav import parse_wav_header
from tests.support.fake_server import FakeStreamServer, Mount
from tests.support.judge import (
    ffmpeg_errors,
    ffprobe_duration,
    flac_test,
    mp3val_problems,
    mutagen_duration,
    ogginfo_warnings,
    sessions,
)
from tests.support.media import MediaFactory
from tests.support.recorder import RecorderProcess, wait_for
from tests.test_wav import crashed_wav


def test_recover_cuts_a_partial_frame_and_completes_the_sidecar(
    tmp_path: Path, media: MediaFactory
) -> None:
    mp3 = media("mp3", 5).read_bytes()
    start = mp3.find(b"\xff\xfb", 2000)  # a frame boundary past the tags
    cut = tmp_path / "radio" / "20261124_140000.mp3"
    cut.parent.mkdir()
    cut.write_bytes(mp3[start : start + 40000])  # ends inside a frame
    side = cut.with_name(cut.name + ".json")
    side.write_text(
        json.dumps(
            {
                "source": "radio",
                "start": "2026-11-24T14:00:00.000+01:00",
                "end": None,
                "titles": [],
                "gaps": [],
            }
        )
    )
    (tmp_path / ".isr").mkdir()
    (tmp_path / ".isr" / "status.json").write_text(
        json.dumps({"sources": {"radio": {"file": "radio/20261124_140000.mp3"}}})
    )
    done = recover(tmp_path, []).done
    assert any("partial frame" in line for line in done)
    assert cut.stat().st_size < 40000
    assert mp3val_problems(cut) == []
    data = json.loads(side.read_text())
    assert data["end"] is not None and data["end"].endswith("+01:00")
    assert "unexpectedly" in data["recovered"]
    assert recover(tmp_path, []).done == []  # nothing left to do


def test_files_opened_after_the_last_status_write_are_found_by_their_sidecars(
    tmp_path: Path, media: MediaFactory
) -> None:
    """A roll a moment before a SIGKILL: the status file (written a beat later)
    never named the new file, whose sidecar says it was never closed."""
    mp3 = media("mp3", 5).read_bytes()
    start = mp3.find(b"\xff\xfb", 2000)
    (tmp_path / ".isr").mkdir()
    (tmp_path / ".isr" / "status.json").write_text(
        json.dumps(
            {
                "started": "2026-11-24T14:00:00+00:00",
                "sources": {"radio": {"file": "radio/20261124_140000.mp3"}},
            }
        )
    )
    radio = tmp_path / "radio"
    radio.mkdir()

    def made(name: str, data: bytes, end: str | None, mtime: float) -> Path:
        path = radio / name
        path.write_bytes(data)
        side = path.with_name(name + ".json")
        side.write_text(
            json.dumps({"source": "radio", "start": "2026-11-24T14:00:00+00:00", "end": end})
        )
        os.utime(side, (mtime, mtime))
        os.utime(path, (mtime, mtime))  # its last write, which recovery takes for its end
        return path

    t0 = 1795528800.0  # 2026-11-24T14:00:00Z, when the crashed recorder started
    named = made("20261124_140000.mp3", mp3[start : start + 20000], None, t0 + 60)
    rolled = made("20261124_140100.mp3", mp3[start : start + 30001], None, t0 + 61)
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x00"  # an empty ID3v2 tag, no frame
    headers = made("20261124_140200.mp3", tag, None, t0 + 62)
    closed = made(
        "20261124_135900.mp3", mp3[start : start + 10001], "2026-11-24T14:00:00+00:00", t0 + 1
    )
    older = made("20261123_120000.mp3", mp3[start : start + 10001], None, t0 - 86400)
    _aged(tmp_path / ".isr" / "status.json", t0 + 60.5)  # its last write, before the roll
    recovery = recover(tmp_path, [])
    done = recovery.done
    assert json.loads(named.with_name(named.name + ".json").read_text())["end"] is not None
    assert json.loads(rolled.with_name(rolled.name + ".json").read_text())["end"] is not None
    assert mp3val_problems(rolled) == []
    assert not headers.exists() and any("no audio" in line for line in done)
    # Closed normally, or left by an earlier recorder: not this crash's to touch.
    assert closed.stat().st_size == 10001 and older.stat().st_size == 10001
    assert json.loads(older.with_name(older.name + ".json").read_text())["end"] is None
    # The source's last file is the rolled one (its end, the last write, is the
    # latest), not the one the status file named: a restart goes on from there.
    assert previous_positions(tmp_path)["radio"][0] == named
    assert previous_positions(tmp_path, recovery.repaired)["radio"] == (rolled, t0 + 61)


def test_a_file_closed_cleanly_a_beat_before_the_crash_is_left_alone(
    tmp_path: Path, media: MediaFactory
) -> None:
    """The status file still names the file a roll closed a moment before a SIGKILL
    (it is written a beat later): whole, its sidecar ended and checked, maybe already
    uploaded. Recovery must neither touch it nor call it repaired (a repaired file is
    checked again, which rewrote its sidecar after the store had taken it)."""
    radio = tmp_path / "radio"
    radio.mkdir()
    wav = radio / "20261124_140000.wav"
    soundfile.write(wav, [[0.1], [0.2]] * 4000, 8000, subtype="PCM_16")
    mp3 = radio / "20261124_140003.mp3"
    mp3.write_bytes(media("mp3", 3).read_bytes())
    sides = {}
    for path in (wav, mp3):
        side = path.with_name(path.name + ".json")
        side.write_text(
            json.dumps(
                {
                    "source": "radio",
                    "start": "2026-11-24T14:00:00.000+00:00",
                    "end": "2026-11-24T14:00:03.000+00:00",
                    "sha256": "00" * 32,
                    "check": {"ok": True, "problems": [], "at": "2026-11-24T14:00:03.065+00:00"},
                }
            )
        )
        sides[side] = side.read_bytes()
    before = {p: p.read_bytes() for p in (wav, mp3)}
    (tmp_path / ".isr").mkdir()
    status = tmp_path / ".isr" / "status.json"
    for name in (wav.name, mp3.name):
        status.write_text(json.dumps({"sources": {"radio": {"file": f"radio/{name}"}}}))
        recovery = recover(tmp_path, [])
        assert recovery.repaired == [] and recovery.done == []
    assert {p: p.read_bytes() for p in (wav, mp3)} == before
    assert {side: side.read_bytes() for side in sides} == sides


def _status(root: Path, started: str | None) -> None:
    (root / ".isr").mkdir(exist_ok=True)
    status: dict[str, object] = {"sources": {}}
    if started is not None:
        status["started"] = started
    (root / ".isr" / "status.json").write_text(json.dumps(status))


def _aged(path: Path, mtime: float) -> None:
    os.utime(path, (mtime, mtime))


def test_recover_looks_only_in_directories_changed_since_the_last_status_write(
    tmp_path: Path,
) -> None:
    """A year of closed files must not be opened at every start: only directories
    modified since the status file's last write can hold a file it did not name."""
    t0 = 1795528800.0  # the crashed run started
    _status(tmp_path, "2026-11-24T14:00:00+00:00")  # last written now
    old_day = tmp_path / "card" / "2025" / "01" / "01"
    old_day.mkdir(parents=True)
    stale = old_day / "20250101_000000.wav"
    crashed_wav(stale, 100)  # wrong sizes, but from long before: not this crash's
    stale.touch()  # ...even one whose own mtime is recent is not looked at
    for d in (old_day, old_day.parent, old_day.parent.parent):
        _aged(d, t0 - 86400 * 300)
    today = tmp_path / "card" / "2026" / "11" / "24"
    today.mkdir(parents=True)
    fresh = today / "20261124_140000.wav"
    crashed_wav(fresh, 200)
    done = recover(tmp_path, []).done
    assert [line.split(":")[0] for line in done] == [str(fresh)]
    sizes = [parse_wav_header(p.read_bytes()[:4096]) for p in (fresh, stale)]
    assert [layout.data_size if layout else None for layout in sizes] == [800, 0]


@pytest.mark.parametrize("status", [None, "", '{"sources": '])
def test_without_a_readable_status_file_the_archive_is_swept_once_recording_runs(
    tmp_path: Path, media: MediaFactory, status: str | None
) -> None:
    """No status file, or one a power cut left empty or cut: nothing tells what
    the crash touched, so everything is checked, in the background."""
    out = tmp_path / "recordings"
    if status is not None:
        (out / ".isr").mkdir(parents=True)
        (out / ".isr" / "status.json").write_text(status)
    old = out / "card" / "2025" / "20250101_000000.wav"
    old.parent.mkdir(parents=True)
    crashed_wav(old, 300)
    mp3 = media("mp3", 5).read_bytes()
    start = mp3.find(b"\xff\xfb", 2000)
    cut = out / "radio" / "20250101_000000.mp3"
    cut.parent.mkdir()
    cut.write_bytes(mp3[start : start + 30001])  # ends inside a frame
    cut.with_name(cut.name + ".json").write_text(
        json.dumps({"source": "radio", "start": "2025-01-01T00:00:00+00:00", "end": None})
    )
    for p in (old, cut, cut.with_name(cut.name + ".json")):
        _aged(p, time.time() - 86400)
    assert recover(out, []).sweep == [out.resolve()]  # nothing before the start
    assert (out / ".isr" / "sweep-pending").exists()
    config = (
        "[general]\nlog_file = rec.log\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
        "[tone]\ntype = tone\nformat = wav\n"
    )
    with RecorderProcess(tmp_path, config) as rec:
        assert wait_for(lambda: "for crashed files:" in (tmp_path / "rec.log").read_text())
        assert rec.stop() == 0, rec.output
    log = (tmp_path / "rec.log").read_text()
    assert f"repaired {old.resolve()}: data size 0 -> 1200" in log, log
    assert "for crashed files: 3 repaired" in log, log  # the WAV; the MP3 and its sidecar
    assert f"crash recovery: repaired {cut.resolve()}: cut 326 bytes of a partial" in log, log
    assert soundfile.info(str(old)).frames == 300
    assert mp3val_problems(cut) == [] and cut.stat().st_size < 30001
    assert json.loads(cut.with_name(cut.name + ".json").read_text())["end"] is not None
    assert not (out / ".isr" / "sweep-pending").exists()  # whole: not owed again
    # The tone's own WAVs were written by this run: the sweep leaves them alone.
    assert all("repaired" not in line for line in log.splitlines() if "/tone/" in line), log


def test_a_sweep_cut_short_is_owed_at_the_next_start(tmp_path: Path) -> None:
    _status(tmp_path, "2026-11-24T14:00:00+00:00")
    assert recover(tmp_path, []).sweep == []
    (tmp_path / ".isr" / "sweep-pending").touch()  # a run stopped mid-sweep
    assert recover(tmp_path, []).sweep == [tmp_path.resolve()]


def test_a_source_directory_linked_from_inside_the_output_is_walked_too(
    tmp_path: Path,
) -> None:
    out = tmp_path / "recordings"
    elsewhere = tmp_path / "disk2" / "card"
    elsewhere.mkdir(parents=True)
    out.mkdir()
    (out / "card").symlink_to(elsewhere)
    _status(out, "2026-11-24T14:00:00+00:00")
    crashed = elsewhere / "20261124_140000.wav"
    crashed_wav(crashed, 200)
    done = recover(out, [out / "card"]).done
    assert [line.split(":")[0] for line in done] == [str(crashed.resolve())]


def test_sigkill_then_restart_recovers_and_overwrites_nothing(
    tmp_path: Path, media: MediaFactory
) -> None:
    mount = Mount("/live", payload=media("mp3", 60).read_bytes(), byte_rate=16000)
    with FakeStreamServer(mount) as srv:
        config = (
            "[general]\nlog_file = rec.log\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
            f"[radio]\ntype = stream\nurl = {srv.url('/live')}\n"
            "[tone]\ntype = tone\n"
        )
        with RecorderProcess(tmp_path, config) as first:
            assert wait_for(
                lambda: all(s["bytes"] > 20000 for s in first.status()["sources"].values())
            )
            time.sleep(1.3)  # mid-second: the WAV header lags what was written
            first.stop(signal.SIGKILL)
        before = {p: p.stat().st_size for p in (tmp_path / "recordings").rglob("*.*")}
        with RecorderProcess(tmp_path, config) as second:
            assert wait_for(
                lambda: (
                    second.status()["pid"] == second.pid
                    and second.status()["sources"]["radio"]["state"] == "recording"
                )
            )
            assert second.stop() == 0, second.output
    log = (tmp_path / "rec.log").read_text()
    assert "crash recovery" in log or "repaired" in log
    for path in (tmp_path / "recordings").rglob("*"):
        if path.suffix in (".mp3", ".wav"):
            assert ffmpeg_errors(path) == "", path.name
            side = json.loads(path.with_name(path.name + ".json").read_text())
            assert side["end"] is not None, path.name
    # Files of the first run were only repaired (cut back or re-headed), never rewritten.
    for path, size in before.items():
        if path.suffix in (".mp3", ".wav"):
            assert path.stat().st_size <= size
    # Two runs, two connections: the restart's files start with a gap, wherever an
    # hour boundary fell in either run.
    assert len(sessions(sorted((tmp_path / "recordings").rglob("*.mp3")))) == 2


def _killed_file(path: Path, framer: Framer, source: bytes, keep: int) -> int:
    """Write ``source`` through the framer's own file writer as a recorder would,
    but stop as a SIGKILL would: no end(), no patches, a partial frame last.
    Returns the samples of the whole frames written."""
    frames = framer.feed(source) + framer.flush()
    writer = framer.file_writer()
    body = writer.begin(frames[0]) + writer.write(frames[:keep])
    partial = frames[keep].data[: len(frames[keep].data) // 2]
    path.write_bytes(body + partial)
    return sum(f.samples for f in frames[:keep])


def test_recover_patches_xing_counts_and_flac_totals(tmp_path: Path, media: MediaFactory) -> None:
    from isr.framing.flac import FlacFramer
    from isr.framing.mp3 import Mp3Framer

    rec = tmp_path / "rec"
    rec.mkdir()
    mp3 = rec / "a.mp3"
    flac = rec / "b.flac"
    mp3_samples = _killed_file(mp3, Mp3Framer(), media("mp3", 12).read_bytes(), keep=300)
    flac_samples = _killed_file(flac, FlacFramer(), media("flac", 12).read_bytes(), keep=80)
    (rec / ".isr").mkdir()
    (rec / ".isr" / "status.json").write_text(
        json.dumps({"sources": {"a": {"file": "a.mp3"}, "b": {"file": "b.flac"}}})
    )
    done = "\n".join(recover(rec, []).done)
    assert "Xing/Info counts patched" in done and "total samples patched" in done
    assert mp3val_problems(mp3) == []
    assert mutagen_duration(mp3) == pytest.approx(mp3_samples / 44100, abs=0.03)
    assert flac_test(flac) == ""
    info = soundfile.info(str(flac))
    assert info.frames == flac_samples
    assert ffprobe_duration(flac) == pytest.approx(info.frames / info.samplerate, abs=0.01)


def test_recover_ends_an_ogg_file_on_a_whole_page_with_eos(
    tmp_path: Path, media: MediaFactory
) -> None:
    from isr.framing.ogg import OggFramer

    rec = tmp_path / "rec"
    rec.mkdir()
    ogg = rec / "a.ogg"
    _killed_file(ogg, OggFramer(), media("vorbis", 12).read_bytes(), keep=8)
    (rec / ".isr").mkdir()
    (rec / ".isr" / "status.json").write_text(json.dumps({"sources": {"a": {"file": "a.ogg"}}}))
    done = "\n".join(recover(rec, []).done)
    assert "partial page" in done and "end-of-stream flag set" in done
    assert ogginfo_warnings(ogg) == []
    assert ffmpeg_errors(ogg) == ""


def test_a_failed_write_leaves_a_whole_file_and_its_sidecar_comes_later(
    tmp_path: Path, media: MediaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that fills mid-file: the file ends on its last whole write with true
    totals, and its sidecar is written once the disk takes new files again."""
    import logging
    from datetime import UTC

    from isr import segment
    from isr.framing.mp3 import Mp3Framer
    from isr.sinks.base import Sink

    class Disk(Sink):
        room = 30_000

        def write(self, data: bytes | memoryview) -> None:
            if self.bytes_written + len(data) > Disk.room:
                # as the kernel does: part of the write lands, then ENOSPC
                os.write(self.fd, bytes(data)[: Disk.room - self.bytes_written])
                os.ftruncate(self.fd, self.bytes_written)  # Sink.write cuts it back...
                raise OSError(28, "No space left on device")
            super().write(data)

    def disk(directory: Path, stem: str, ext: str | None) -> Sink:
        return Disk(directory, stem, ".mp3")

    framer = Mp3Framer()
    frames = framer.feed(media("mp3", 10).read_bytes()) + framer.flush()
    seg = segment.Segmenter(
        source="s",
        directory=tmp_path,
        base_dir=tmp_path,
        pattern="%H%M%S",
        split_seconds=3600,
        tz=UTC,
        log=logging.getLogger("test"),
    )
    real = segment.write_sidecar  # type: ignore[attr-defined]
    full = {"on": True}

    def sidecar_on_a_full_disk(*args: object) -> None:
        if full["on"] and seg.sink is None:  # the close-time write
            raise OSError(28, "No space left on device")
        real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(segment, "write_sidecar", sidecar_on_a_full_disk)
    with pytest.raises(OSError, match="No space"):
        for i in range(0, len(frames), 10):
            seg.write_frames(frames[i : i + 10], 1e9 + i * 0.026, disk, "mp3", framer.file_writer)
    seg.close()
    (first,) = tmp_path.glob("*.mp3")
    assert mp3val_problems(first) == []  # whole frames, Xing counts of what is there
    assert json.loads(first.with_name(first.name + ".json").read_text())["end"] is None
    full["on"] = False
    Disk.room = 10**9
    seg.write_frames(frames[:10], 1e9 + 100, disk, "mp3", framer.file_writer)
    assert json.loads(first.with_name(first.name + ".json").read_text())["end"] is not None
    seg.close()


def test_recover_a_flac_file_written_by_libsndfile(tmp_path: Path) -> None:
    """Soundcard FLAC files come from libsndfile, whose STREAMINFO is not the last
    metadata block: the repair must still find the frames."""
    import numpy as np

    from isr.framing.repair import repair_flac

    path = tmp_path / "card.flac"
    t = np.arange(44100 * 6) / 44100
    signal = (np.sin(2 * np.pi * 440 * t) * 0.4 * 32767).astype("<i2")
    soundfile.write(str(path), np.stack([signal, signal], axis=1), 44100, subtype="PCM_16")
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) - 777])  # a power cut inside the last frame
    what = repair_flac(path) or ""
    assert "partial frame" in what and "total samples patched" in what
    assert flac_test(path) == ""
    info = soundfile.info(str(path))
    assert 0 < info.frames < len(signal) and info.frames % 4096 == 0
