"""Coverage against a plan of faults with known lengths, through the real recorder.

A live fake Icecast (a 2-second burst on connect) is recorded by the real ``isr
record``; the plan: the server goes away twice (for 6 s and 9 s), then the recorder is
stopped for 5 s and started again. What was really lost is known exactly from what the
server sent each connection (positions in one endless stream at a known byte rate), so
the report's gaps and recorded seconds are compared with it, fault by fault, within a
second each. The recorder's watch raises ``coverage_low`` once when the missing seconds
pass ``(1 - min_coverage) x 24 h``, and ``/metrics`` exports the last 24 hours.

The recorder and the report run in UTC; a fault or the test that straddles midnight
is summed over its two days, so no verdict depends on where a boundary falls.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_server import Connection, FakeStreamServer, Mount
from tests.support.media import MediaFactory
from tests.support.net import free_port
from tests.support.recorder import RecorderProcess, wait_for

RATE = 16000  # bytes per second of a 128 kbps MP3
BURST = 2 * RATE
MIN_COVERAGE = 0.9999  # 8.64 s of 24 h: the first drop (~4.4 s) is within it, two are not


def covered(conns: list[Connection]) -> list[tuple[int, int]]:
    """What the server sent, as the union of byte ranges of the one live stream."""
    spans = sorted((c.start, c.start + len(c.audio)) for c in conns if c.audio)
    out: list[list[int]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def report(root: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "ISR_CONFIG"}
    env["TZ"] = "UTC"
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 600))
    args = ["report", "--dir", str(root), "--from", day, "--format", "json"]
    out = subprocess.run(
        [sys.executable, "-m", "isr", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def merged_gaps(days: list[dict[str, Any]]) -> list[float]:
    """Each gap's seconds, a gap cut at midnight joined again."""
    out: list[tuple[str, str, float]] = []
    for d in days:
        for g in d["gaps"]:
            if out and out[-1][1] == g["start"]:
                out[-1] = (out[-1][0], g["end"], out[-1][2] + g["seconds"])
            else:
                out.append((g["start"], g["end"], g["seconds"]))
    return [s for _, _, s in out]


def figure(rec: RecorderProcess) -> Any:
    return rec.status()["sources"]["radio"]["coverage_24h"]


def alerts(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_coverage_matches_a_plan_of_drops_and_a_stop(tmp_path: Path, media: MediaFactory) -> None:
    mount = Mount(
        "/live",
        payload=media("mp3", 90).read_bytes(),
        status_line="HTTP/1.0 200 OK",
        byte_rate=RATE,
        live=True,
        replay_bytes=BURST,
    )
    port = free_port()
    log = tmp_path / "alerts.txt"
    with FakeStreamServer(mount) as srv:
        time.sleep(2.5)  # the live stream runs before we connect, so a burst exists
        config = (
            "[general]\nsplit_minutes = 60\nlog_file = rec.log\nretry_delay_seconds = 0.3\n"
            f"max_retries = 0\nmetrics_port = {port}\n"
            f"[alerts]\nmin_coverage = {MIN_COVERAGE}\n"
            f'command = echo "$ISR_EVENT $ISR_SOURCE $ISR_MISSING_SECONDS" >> {log}\n'
            f"[radio]\ntype = stream\nurl = {srv.url('/live')}\n"
        )
        env = {"TZ": "UTC"}
        plan: list[str] = []
        with RecorderProcess(tmp_path, config, env=env) as rec:
            rec.wait_recording()
            time.sleep(3)
            for pause in (6, 9):
                n = len(srv.connections_to("/live"))
                srv.pause()
                time.sleep(pause)
                srv.resume()
                assert wait_for(lambda: len(srv.connections_to("/live")) > n), rec.output  # noqa: B023
                rec.wait_recording()
                plan.append(f"drop {pause} s")
                time.sleep(3)
            # The watch measures within 10 s of a new file: the second drop took the
            # missing seconds past 8.64 s; the first did not.
            assert wait_for(lambda: alerts(log), timeout=20), rec.output
            assert rec.stop() == 0, rec.output
        first_run = alerts(log)
        time.sleep(5)
        plan.append("recorder stopped 5 s")
        with RecorderProcess(tmp_path, config, env=env) as rec:
            rec.wait_recording()
            time.sleep(3)
            assert wait_for(lambda: len(alerts(log)) > len(first_run), timeout=20), rec.output
            assert wait_for(lambda: figure(rec) is not None, timeout=5), rec.output
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                metrics = r.read().decode()
            status = rec.status()
            assert rec.stop() == 0, rec.output
            stopped = time.time()
        conns = srv.connections_to("/live")
    time.sleep(2)
    before = time.time()
    data = report(tmp_path / "recordings")  # the recorder is stopped: a gap up to now
    asked = time.time()

    spans = covered(conns)
    lost = [(b0 - a1) / RATE for (_, a1), (b0, _) in itertools.pairwise(spans)]
    recorded = sum(b - a for a, b in spans) / RATE
    assert len(lost) == 3 and all(x > 1.5 for x in lost), (plan, lost)
    days = [d for d in data["days"] if d["source"] == "radio"]
    gaps = merged_gaps(days)
    assert len(gaps) == 4, (plan, gaps, lost)
    for fault, got, want in zip(plan, gaps, lost, strict=False):
        assert abs(got - want) < 1.0, (fault, got, want)
    # and the time since the recorder stopped, up to the moment the report asked
    assert before - stopped - 1 < gaps[3] < asked - stopped + 1, (gaps, before, asked, stopped)
    lost.append(gaps[3])
    got_recorded = sum(d["recorded_seconds"] for d in days)
    assert abs(got_recorded - recorded) < 3.0, (got_recorded, recorded)
    expected = sum(d["expected_seconds"] for d in days)
    assert abs(expected - got_recorded - sum(gaps)) < 3.0, (expected, got_recorded, gaps)
    # The alert: once in the first run (after the second drop, not the first), once
    # again in the second run (a new process knows no alarm raised before).
    assert [line.split()[:2] for line in first_run] == [["coverage_low", "radio"]]
    # It fired at the first measure past the allowance: after the second drop ended,
    # or while it lasted (a measure then counts the time since the last file).
    budget = (1 - MIN_COVERAGE) * 86400
    missing = float(first_run[0].split()[2])
    assert budget < missing < sum(lost[:2]) + 1.5, (missing, lost)
    after = alerts(log)[len(first_run) :]
    assert [line.split()[:2] for line in after] == [["coverage_low", "radio"]]
    missing = float(after[0].split()[2])
    assert sum(lost[:3]) - 2 < missing < sum(lost[:3]) + 2, (missing, lost)
    # its figure: recorded / expected since the first recording, a minute or so ago
    ratio = status["sources"]["radio"]["coverage_24h"]
    assert ratio is not None and 0.3 < ratio < 1 - sum(lost[:3]) / 300
    line = next(x for x in metrics.splitlines() if x.startswith("isr_source_coverage_ratio{"))
    assert line.startswith('isr_source_coverage_ratio{source="radio"} ')
    assert float(line.split()[-1]) == pytest.approx(ratio, abs=0.01)
