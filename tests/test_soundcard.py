"""Soundcard recording: the capture clock on fake time, then the real `isr record`
capturing a known signal through the real arecord and ALSA (no sound hardware)."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from isr.config import load
from isr.evidence.digest import WriteHash
from isr.recorder import Recorder
from isr.segment import Segmenter
from isr.sinks.wav import HEADER_BYTES, WavSink, parse_wav_header
from isr.sources.pcm import CaptureClock, CaptureWriter, ClockCheck
from isr.sources.tone import AMPLITUDE
from tests.support.alsa import TestCard
from tests.support.judge import decode_pcm
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.tools import descendants, pid_alive, require_tool

RATE = 8000
FRAME = 4  # stereo S16LE

# -- the capture clock on fake time --------------------------------------------------


class FakeSink:
    """A sink that only counts: an hour of audio costs no disk."""

    def __init__(self, directory: Path, stem: str) -> None:
        self.path = directory / f"{stem}.raw"
        self.bytes_written = 0
        self.sync_fd: int | None = None
        self.closed = False
        self.digest = WriteHash()  # not fed: nothing here reads the hash

    def write(self, data: bytes | memoryview) -> None:
        self.bytes_written += len(data)

    def close(self) -> None:
        self.closed = True


def simulate(
    tmp_path: Path,
    *,
    true_rate: float,
    seconds: float,
    split: float,
    rate: int = 44100,
    chunk: int = 1024,
    seed: int = 3,
) -> tuple[list[tuple[float, float, int]], logging.Logger, list[str]]:
    """A card whose frame n is captured at t0 + n / true_rate, delivered in chunks
    with 2-30 ms of jitter. Returns (named boundary, first frame, frames) per file."""
    files: list[tuple[Path, FakeSink]] = []
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    log = logging.getLogger(f"isr.test.sim{seed}")
    log.propagate = False
    log.addHandler(Keep())
    log.setLevel(logging.INFO)

    def make(directory: Path, stem: str, ext: str | None) -> Any:
        sink = FakeSink(directory, stem)
        files.append((sink.path, sink))
        return sink

    seg = Segmenter(
        source="card",
        directory=tmp_path,
        base_dir=tmp_path,
        pattern="%H%M%S",
        split_seconds=split,
        tz=UTC,
        log=log,
    )
    writer = CaptureWriter(seg, log, rate=rate, channels=2, make_sink=make, fmt="wav")
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 1, 1, 12, 0, 0, 300000, tzinfo=UTC).timestamp()
    block = bytes(chunk * FRAME)
    n = 0
    while n < seconds * true_rate:
        n += chunk
        arrival = t0 + n / true_rate + 0.002 + rng.uniform(0, 0.028)
        writer.feed(block, arrival)
    seg.close()
    out = []
    first = 0
    for path, sink in files:
        frames = sink.bytes_written // FRAME
        named = datetime.strptime(path.stem, "%H%M%S").replace(2026, 1, 1, tzinfo=UTC)
        out.append((named.timestamp(), first, frames))
        first += frames
    # The true capture time of each file's first frame, against its name.
    starts = [(named, t0 + f / true_rate, frames) for named, f, frames in out]
    return starts, log, records


def test_nominal_card_keeps_exact_files(tmp_path: Path) -> None:
    files, _, records = simulate(tmp_path, true_rate=44100, seconds=600, split=60)
    assert [frames for _, _, frames in files[1:-1]] == [60 * 44100] * (len(files) - 2)
    for named, start, _ in files[1:]:
        assert abs(start - named) < 0.025
    assert not any("drifts" in r for r in records)


def test_slow_card_is_reanchored_and_never_accumulates(tmp_path: Path) -> None:
    """44,099 Hz for 44,100: 82 ms an hour if nothing was done."""
    files, _, records = simulate(tmp_path, true_rate=44099, seconds=3600, split=60)
    errors = [start - named for named, start, _ in files[1:]]
    assert max(abs(e) for e in errors) < 0.025
    assert any("re-anchored" in r for r in records)
    middle = [frames for _, _, frames in files[1:-1]]
    assert min(middle) >= 60 * 44100 - 0.03 * 44100 and max(middle) <= 60 * 44100
    assert not any("drifts" in r for r in records)  # 0.002 % is no news


def test_drift_over_a_tenth_of_a_percent_is_logged(tmp_path: Path) -> None:
    files, _, records = simulate(tmp_path, true_rate=44100 * 0.998, seconds=600, split=30)
    warnings = [r for r in records if "drifts" in r]
    assert warnings and "0.20" in warnings[0], records
    errors = [start - named for named, start, _ in files[1:]]
    assert max(abs(e) for e in errors) < 0.08  # without re-anchoring: 1.2 s by the end


def test_clock_learns_from_an_earlier_arrival_at_once() -> None:
    clock = CaptureClock(1000, tolerance=0.01, window=10)
    clock.observe(100, 10.5)  # first read came late: origin guessed at 10.4
    assert clock.observe(200, 10.3) == pytest.approx(-0.3)  # ...the next came too soon
    assert clock.origin == pytest.approx(10.1)
    assert clock.observe(300, 10.395) == 0.0  # jitter within tolerance is left alone
    assert clock.time_of(300) == pytest.approx(10.4)
    assert clock.check(10.4) == ClockCheck(0.0, None)  # nothing left to correct


def test_clock_ignores_a_start_up_stall_until_it_has_seen_a_window() -> None:
    clock = CaptureClock(1000, tolerance=0.01, window=5)
    clock.observe(100, 0.1)  # a prompt first read: origin 0
    for i in range(2, 30):  # then three seconds of reads all 50 ms late
        clock.observe(i * 100, i * 0.1 + 0.05)
    assert clock.check(3.0).shift == 0.0  # too early to tell a stall from a clock
    for i in range(30, 80):
        clock.observe(i * 100, i * 0.1 + 0.002)
    assert clock.check(8.0).shift == 0.0  # the window holds the prompt reads
    for i in range(80, 200):  # a card really 50 ms behind for longer than a window
        clock.observe(i * 100, i * 0.1 + 0.05)
    assert clock.check(20.0).shift == pytest.approx(0.05)
    assert clock.time_of(200 * 100) == pytest.approx(20.05)


def test_a_wall_clock_step_is_followed_and_not_reported_as_drift() -> None:
    clock = CaptureClock(1000, tolerance=0.02, window=5, baseline=30)
    for i in range(1, 400):  # 40 s at the nominal rate: learned, drift baseline set
        clock.observe(i * 100, i * 0.1 + 0.004)
        if i % 30 == 0:
            assert clock.check(i * 0.1).shift == 0.0
    for i in range(400, 600):  # the clock is set 2.5 s back, then runs on
        clock.observe(i * 100, i * 0.1 + 0.004 - 2.5)
    check = clock.check(60.0 - 2.5)
    assert check.shift == pytest.approx(-2.5) and check.drift is None
    for i in range(600, 1000):
        clock.observe(i * 100, i * 0.1 + 0.004 - 2.5)
    later = clock.check(100.0 - 2.5)
    assert later.shift == 0.0 and later.drift == pytest.approx(0.0, abs=1e-4)


def test_a_clock_set_back_after_learning_is_a_step_not_a_new_start() -> None:
    clock = CaptureClock(1000, tolerance=0.02, window=5)
    for i in range(1, 70):  # 7 s of steady audio; no boundary, no early arrival
        clock.observe(i * 100, i * 0.1 + 0.004)
    assert clock.observe(7000, 7.0 + 0.004 - 3600) == 0.0  # not a learning move...
    assert clock.check(7.0 - 3600).shift == pytest.approx(-3600)  # ...a step, at the check


# -- the real recorder, arecord and ALSA ---------------------------------------------


@pytest.fixture
def card(tmp_path: Path) -> Any:
    require_tool("arecord")
    with TestCard(tmp_path / "card", rate=RATE, channels=2, seconds=40) as c:
        yield c


def read_pcm(path: Path) -> np.ndarray:
    data, rate = soundfile.read(path, dtype="int16", always_2d=True)
    assert rate == RATE
    return np.asarray(data)


def offset_in(signal: np.ndarray, part: np.ndarray) -> int:
    """Where ``part`` starts in ``signal`` (by its first 16 frames)."""
    head = part[:16]
    for i in range(len(signal) - len(head)):
        if np.array_equal(signal[i : i + len(head)], head):
            return i
    raise AssertionError("not a part of the known signal")


def config(extra: str = "", *, card_fmt: str = "wav", tone_fmt: str = "wav") -> str:
    return (
        "[general]\nsplit_minutes = 0.05\nlog_file = rec.log\nretry_delay_seconds = 0.3\n"
        "filename_pattern = {source}/%Y%m%d_%H%M%S\nsample_rate = 8000\nchannels = 2\n"
        f"{extra}"
        f"[card]\ntype = soundcard\ndevice = known signal\nformat = {card_fmt}\n"
        f"[tone]\ntype = tone\nfrequency = 441\nformat = {tone_fmt}\n"
    )


def files_of(root: Path, source: str) -> list[Path]:
    return sorted(p for p in (root / "recordings" / source).iterdir() if p.suffix != ".json")


def assert_tone_unbroken(files: list[Path]) -> None:
    parts = [read_pcm(f)[:, 0] for f in files]
    assert all(len(p) == 3 * RATE for p in parts[1:-1]), [len(p) for p in parts]
    joined = np.concatenate(parts).astype(float)
    n = np.arange(joined.size)
    expected = np.round(np.sin(2 * np.pi * ((n * 441 / RATE) % 1.0)) * AMPLITUDE * 32767)
    assert np.max(np.abs(joined - expected)) <= 1


def test_card_and_tone_are_sample_exact_across_splits(tmp_path: Path, card: TestCard) -> None:
    flac = require_tool("flac")
    with RecorderProcess(tmp_path, config(tone_fmt="flac"), env=card.env) as rec:
        # Three whole middle files (and over 10 s in all: the first holds at least
        # 1 s) wherever the boundaries fall and however slowly the recorder starts.
        assert wait_for(lambda: len(files_of(tmp_path, "card")) >= 5, timeout=40), rec.output
        assert rec.stop() == 0, rec.output
    cards = files_of(tmp_path, "card")
    assert len(cards) >= 5 and all(f.suffix == ".wav" for f in cards), rec.output
    parts = [read_pcm(f) for f in cards]
    assert [len(p) for p in parts[1:-1]] == [3 * RATE] * (len(parts) - 2)
    joined = np.concatenate(parts)
    assert len(joined) >= 10 * RATE
    assert np.array_equal(joined, card.signal[: len(joined)])  # sample for sample
    for f in cards[1:]:
        assert datetime.strptime(f.stem, "%Y%m%d_%H%M%S").second % 3 == 0
    tones = files_of(tmp_path, "tone")
    assert all(f.suffix == ".flac" for f in tones)
    assert_tone_unbroken(tones)
    check = subprocess.run([flac, "-t", "-s", *map(str, tones)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    log = (tmp_path / "rec.log").read_text()
    assert "capturing isr_test (device = known signal)" in log


def test_arecord_dying_and_a_vanished_device_are_retried(tmp_path: Path, card: TestCard) -> None:
    with RecorderProcess(tmp_path, config(), env=card.env) as rec:
        assert wait_for(lambda: rec.status()["sources"]["card"]["state"] == "recording")
        time.sleep(1.5)
        hidden = card.infile.with_suffix(".away")
        card.infile.rename(hidden)  # the device disappears...
        arecord = [p for p in descendants(rec.pid) if "arecord" in p.cmdline]
        assert len(arecord) == 1
        os.kill(arecord[0].pid, signal.SIGKILL)  # ...and arecord dies with it
        assert wait_for(lambda: "for reading failed" in (tmp_path / "rec.log").read_text(), 10)
        hidden.rename(card.infile)  # back again
        assert wait_for(lambda: rec.status()["sources"]["card"]["state"] == "recording", 10)
        time.sleep(2.0)
        status = rec.status()["sources"]
        assert rec.stop() == 0, rec.output
    log = (tmp_path / "rec.log").read_text()
    assert "exit status -9" in log
    # arecord's own words, logged and kept as the error:
    assert f"open {card.infile} for reading failed: No such file or directory" in log
    assert "audio open error: No such file or directory" in log
    # One recording lost (arecord killed) is one reconnect; the failed opens while
    # the device was gone are retries, not reconnects.
    assert status["card"]["reconnects"] == 1
    cards = files_of(tmp_path, "card")
    assert len(cards) >= 2
    for f in cards:  # each file is an unbroken run of the signal (each open restarts it)
        part = read_pcm(f)
        at = offset_in(card.signal, part)
        assert np.array_equal(part, card.signal[at : at + len(part)])
    assert status["tone"]["reconnects"] == 0
    assert_tone_unbroken(files_of(tmp_path, "tone"))


def test_full_disk_on_one_file_is_logged_and_retried(
    tmp_path: Path,
    card: TestCard,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ENOSPC injected into the card's first file; the tone source loses nothing."""
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(card.conf))
    real_write = WavSink.write
    failed: list[Path] = []

    def write(self: WavSink, data: bytes | memoryview) -> None:
        if self.path.parent.name == "card" and not failed and self.data_bytes > RATE * FRAME:
            failed.append(self.path)
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        real_write(self, data)

    monkeypatch.setattr(WavSink, "write", write)
    (tmp_path / "config.ini").write_text(config())
    cfg = load(tmp_path / "config.ini")

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(6.5, stop.set)
        await Recorder(cfg).run(stop)

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    assert failed
    assert "session ended: No space left on device" in caplog.text
    assert "state recording -> retrying" in caplog.text
    cards = files_of(tmp_path, "card")
    cut = cards.index(failed[0]) + 1
    assert len(cards) > cut
    # Everything written before the failure is kept; the retry starts a new file
    # (and, this card being a file, a new run of the signal).
    for session in (cards[:cut], cards[cut:]):
        joined = np.concatenate([read_pcm(f) for f in session])
        assert len(joined) >= RATE // 2
        assert np.array_equal(joined, card.signal[: len(joined)])
    assert_tone_unbroken(files_of(tmp_path, "tone"))


def test_sigkill_leaves_playable_files_and_no_orphan(tmp_path: Path, card: TestCard) -> None:
    ffmpeg = require_tool("ffmpeg")
    rec = RecorderProcess(tmp_path, config(tone_fmt="flac"), env=card.env)
    with rec:
        assert wait_for(lambda: rec.status()["sources"]["card"]["state"] == "recording")
        time.sleep(3.7)
        arecord = [p.pid for p in descendants(rec.pid) if "arecord" in p.cmdline]
        assert len(arecord) == 1
        rec.proc.kill()
        rec.proc.communicate(timeout=10)
        # PR_SET_PDEATHSIG: arecord dies with the recorder (it is no longer our
        # descendant, so the stray-process guard alone would not see it).
        assert wait_for(lambda: not pid_alive(arecord[0]), 5)
    crashed = files_of(tmp_path, "card") + files_of(tmp_path, "tone")
    for f in crashed:
        out = subprocess.run([ffmpeg, "-v", "error", "-i", str(f), "-f", "null", "-"],
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0 and not out.stderr, (f, out.stderr)
        # A FLAC file opened a moment before the kill may hold only its headers
        # (its audio was still queued for the encoder); the restart removes it.
        if f != files_of(tmp_path, "tone")[-1]:
            assert len(read_pcm_tolerant(f)) > 0
    # What the kill left of each tone file, in whole frames as ffmpeg decodes them: a
    # file opened just before may hold one frame, or none yet (libsndfile encodes
    # 4096 samples a frame), wherever the boundary fell before the kill.
    tone_samples = {f: len(decode_pcm(f)) for f in files_of(tmp_path, "tone")}
    card_files = files_of(tmp_path, "card")
    last_wav = card_files[-1]
    before = sum(len(read_pcm(f)) for f in card_files[:-1])
    # Restart: crash recovery, before recording starts, makes the header match the data.
    with RecorderProcess(tmp_path, config(tone_fmt="flac"), env=card.env) as again:
        assert wait_for(
            lambda: (
                again.status()["pid"] == again.pid
                and again.status()["sources"]["card"]["state"] == "recording"
            )
        )
        assert again.stop() == 0, again.output
    layout = parse_wav_header(last_wav.read_bytes()[:HEADER_BYTES])
    assert layout is not None
    assert layout.data_size == (last_wav.stat().st_size - HEADER_BYTES) // FRAME * FRAME
    data = read_pcm(last_wav)
    assert len(data) == layout.data_size // FRAME
    assert np.array_equal(data, card.signal[before : before + len(data)])
    assert last_wav in files_of(tmp_path, "card")  # never overwritten by the restart
    # Recovery keeps every whole frame (only a partial last one may go) and makes the
    # totals right for every reader; a file of headers alone does not survive it.
    for f, samples in tone_samples.items():
        if samples == 0:
            assert not f.exists(), f.name
        else:
            assert soundfile.info(str(f)).frames == samples, (f.name, samples)
    for f in files_of(tmp_path, "tone"):
        assert len(read_pcm_tolerant(f)) > 0, f.name


def read_pcm_tolerant(path: Path) -> np.ndarray:
    """soundfile decode of a crashed file: a FLAC of unknown length ends in an error."""
    blocks = []
    with soundfile.SoundFile(path) as f:
        while True:
            try:
                block = f.read(4096, dtype="int16", always_2d=True)
            except soundfile.LibsndfileError:
                break
            if not len(block):
                break
            blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros((0, 2), np.int16)


def test_status_json_shape_for_a_card(tmp_path: Path, card: TestCard) -> None:
    with RecorderProcess(tmp_path, config(), env=card.env) as rec:
        assert wait_for(lambda: rec.status()["sources"]["card"]["state"] == "recording")
        status = rec.status()["sources"]["card"]
        assert rec.stop() == 0
    assert status["type"] == "soundcard" and status["format"] == "wav"
    assert status["file"].startswith("card/") and math.isfinite(status["bytes"])
    json.dumps(status)
