"""A real recorder SIGKILLed: the repaired file's hash is that of its repaired
bytes, a chain cut mid-line is reported once, and the recorder goes on after it.

Nothing here depends on where an hour boundary falls: the file open at the kill
is the one the restart repairs, whichever it is.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path

import pytest

from isr.evidence.verify import verify
from isr.sinks.wav import repair_wav
from tests.support.recorder import RecorderProcess, wait_for

pytestmark = pytest.mark.slow

CONFIG = "[general]\nlog_file = rec.log\n[tone]\ntype = tone\nsample_rate = 8000\nchannels = 1\n"


def _chain(tmp_path: Path) -> Path:
    return tmp_path / "recordings" / ".isr" / "chain" / "tone.jsonl"


def _events(tmp_path: Path) -> list[dict[str, object]]:
    out = []
    for raw in _chain(tmp_path).read_bytes().splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            out.append({"event": "(torn)"})
    return out


def _record_then_kill(tmp_path: Path) -> str:
    """Record a few seconds, SIGKILL; the file that was open."""
    with RecorderProcess(tmp_path, CONFIG) as rec:
        rec.wait_recording("tone")
        assert wait_for(lambda: rec.status()["sources"]["tone"]["bytes"] > 32000), rec.output
        open_file: str = rec.status()["sources"]["tone"]["file"]
        rec.stop(signal.SIGKILL)
    return open_file


def _restart_until_repaired(tmp_path: Path, name: str) -> None:
    with RecorderProcess(tmp_path, CONFIG) as rec:
        rec.wait_recording("tone")
        assert wait_for(
            lambda: any(e["event"] == "repaired" and e["file"] == name for e in _events(tmp_path)),
            timeout=20,
        ), rec.output
        assert rec.stop() == 0, rec.output


def test_a_repaired_file_is_hashed_after_its_repair_and_verifies(tmp_path: Path) -> None:
    name = _record_then_kill(tmp_path)
    path = tmp_path / "recordings" / name
    before = path.read_bytes()
    _restart_until_repaired(tmp_path, name)
    after = path.read_bytes()
    # Its sizes are right now. Whether they had to change depends on where the kill
    # fell against the header's once-a-second update, so the verdict does not.
    assert after[:4] == b"RIFF" and repair_wav(path) is None
    line = next(e for e in _events(tmp_path) if e["event"] == "repaired" and e["file"] == name)
    assert line["sha256"] == hashlib.sha256(after).hexdigest()
    assert line["bytes"] == len(after)
    assert isinstance(line["note"], str)
    if after != before:
        assert "data size" in line["note"], line["note"]
    side = json.loads(path.with_name(path.name + ".json").read_text())
    assert side["sha256"] == line["sha256"] and side["check"]["ok"] is True
    report = verify(tmp_path / "recordings")
    assert report.problems == [], report.problems


def test_a_chain_torn_by_a_crash_is_reported_once_and_goes_on(tmp_path: Path) -> None:
    name = _record_then_kill(tmp_path)
    chain = _chain(tmp_path)
    data = chain.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    torn_at = last_start + (len(data) - last_start) // 2
    chain.write_bytes(data[:torn_at])  # a power cut in the middle of the last write
    torn_line = data[:torn_at].count(b"\n") + 1
    _restart_until_repaired(tmp_path, name)
    events = _events(tmp_path)
    assert events[torn_line - 1] == {"event": "(torn)"}
    assert [e["event"] for e in events[torn_line:]][:1] == ["started"]
    assert events[-1]["event"] == "stopped"
    report = verify(tmp_path / "recordings")
    assert report.problems == [
        f"chain tone line {torn_line}: torn (cut short by a crash); the chain goes on"
    ]


def test_verify_while_recording_finds_nothing_wrong(tmp_path: Path) -> None:
    """The open file, a close in progress and checks owed are no problems."""
    config = CONFIG.replace("[general]\n", "[general]\nsplit_minutes = 0.02\n")
    root = tmp_path / "recordings"
    with RecorderProcess(tmp_path, config) as rec:
        rec.wait_recording("tone")
        deadline = time.monotonic() + 40
        closed = 0
        while closed < 4:  # files close every 1.2 s: verify meets several closes
            report = verify(root)
            assert report.problems == [], (report.problems, rec.output)
            closed = sum(1 for e in _events(tmp_path) if e["event"] == "closed")
            assert time.monotonic() < deadline, rec.output
            time.sleep(0.01)
        assert rec.stop() == 0, rec.output
    assert verify(root).problems == []
