"""``isr report`` as users run it: a child process over an archive in Berlin time, in
text, CSV and JSON, with a config and with only --dir, and every bad input refused
in one line with exit status 2."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.support.archive import Archive, local

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    """radio1 from 2025-10-25 12:00 to 2025-10-27 00:00 (the 26th has 25 hours), with a
    reconnect that lost 30 s; a file of it that failed its check; ``old`` (a source
    since removed from the config) for an hour on the 25th."""
    root = tmp_path / "recordings"
    root.mkdir()
    a = Archive(root, BERLIN)
    start = local("2025-10-25T12:00", BERLIN)
    drop = local("2025-10-26T10:00", BERLIN)
    a.record("radio1", start, int(drop - start))
    a.record(
        "radio1",
        drop + 30,
        int(local("2025-10-27T00:00", BERLIN) - drop - 30),
        cause="connection reset",
    )
    a.record("old", local("2025-10-25T20:00", BERLIN), 3600)
    a.close()
    side = root / "radio1" / "20251026_040000.mp3.json"
    data = json.loads(side.read_text())
    data["check"] = {"ok": False, "problems": ["byte 99: MP3 frame CRC-16 does not match"]}
    side.write_text(json.dumps(data))
    yield a


def isr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ISR_CONFIG"}
    env.update(TZ="Europe/Berlin", PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "isr", "report", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


SPAN = ("--from", "2025-10-24", "--to", "2025-10-26")


def test_text_is_a_table_a_person_reads(archive: Archive) -> None:
    out = isr("--dir", str(archive.root), *SPAN, cwd=archive.root.parent)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "Coverage from 2025-10-24 to 2025-10-26 (Europe/Berlin)"
    assert lines[2].split() == [
        "source",
        "day",
        "expected",
        "recorded",
        "coverage",
        "gaps",
        "failed",
        "checks",
    ]
    rows = {tuple(line.split()[:2]): line for line in lines[3:8]}
    assert rows["old", "2025-10-25"].split()[2:] == ["4", "h", "1", "h", "25.00", "%", "1", "0"]
    assert rows["radio1", "2025-10-25"].split()[2:] == ["12", "h", "12", "h", "100", "%", "0", "0"]
    assert rows["radio1", "2025-10-26"].split()[2:] == [
        "25",
        "h",
        "24",
        "h",
        "59",
        "min",
        "99.96",
        "%",
        "1",
        "1",
    ]
    # the day the clocks went back: each time says which of the two 02:00-03:00 it is
    gap = next(line for line in lines if "connection reset" in line)
    assert gap.split() == [
        "radio1",
        "2025-10-26",
        "10:00:00+01:00",
        "10:00:30+01:00",
        "30.0",
        "s",
        "connection",
        "reset",
    ]
    assert "radio1  2025-10-26  radio1/20251026_040000.mp3" in lines
    assert "radio1: 99.97 % of 2 days (30.0 s missing), 1 gap, 1 failed check" in lines


def test_csv_and_json(archive: Archive) -> None:
    out = isr("--dir", str(archive.root), *SPAN, "--format", "csv", cwd=archive.root.parent)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["source"], r["date"]) for r in rows] == [
        ("old", "2025-10-25"),
        ("old", "2025-10-26"),
        ("radio1", "2025-10-25"),
        ("radio1", "2025-10-26"),
    ]
    day = rows[3]
    assert day["expected_seconds"] == "90000.000" and day["recorded_seconds"] == "89970.000"
    assert day["coverage"] == "0.999666" and day["gaps"] == "1" and day["gap_seconds"] == "30.000"
    assert day["failed_checks"] == "1"
    out = isr(
        "--dir", str(archive.root), *SPAN, "--format", "JSON", "--source", "radio1",
        cwd=archive.root.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [d["date"] for d in data["days"]] == ["2025-10-25", "2025-10-26"]
    d = data["days"][1]
    assert d["expected_seconds"] == 90000 and d["recorded_seconds"] == 89970
    assert d["gaps"] == [
        {
            "start": "2025-10-26T10:00:00.000+01:00",
            "end": "2025-10-26T10:00:30.000+01:00",
            "seconds": 30.0,
            "cause": "connection reset",
        }
    ]
    assert d["failed_checks"] == ["radio1/20251026_040000.mp3"]


def test_with_a_config_removed_sources_stop_and_unrecorded_ones_show(archive: Archive) -> None:
    root = archive.root
    config = root.parent / "isr.ini"
    config.write_text(
        "[general]\noutput_directory = recordings\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
        "[radio1]\ntype = stream\nurl = http://127.0.0.1:9/a\n"
        "[radio9]\ntype = stream\nurl = http://127.0.0.1:9/b\n"
    )
    out = isr("-c", str(config), *SPAN, "--format", "json", cwd=root.parent)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    days = [(d["source"], d["date"]) for d in data["days"]]
    assert ("old", "2025-10-25") in days and ("old", "2025-10-26") not in days
    old = data["days"][0]
    assert old["expected_seconds"] == 3600 and old["coverage"] == 1
    assert data["never_recorded"] == ["radio9"]
    out = isr("-c", str(config), *SPAN, cwd=root.parent)
    assert "radio9: configured, but nothing of it was ever recorded" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "2025-13-01"), "isr: --from '2025-13-01' is not a day of the calendar"),
        (("--to", "yesterday"), "isr: --to 'yesterday' is not a day (YYYY-MM-DD)"),
        (("--from", "2025-10-26", "--to", "2025-10-20"), "isr: FROM (2025-10-26) is after TO"),
        (("--from", "2020-01-01", "--to", "2025-10-26"), "days asked; at most 400 at a time"),
        (("--format", "xml"), "isr: --format 'xml': one of text, csv, json"),
        (("--source", "nope"), "isr: no recordings of source 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    archive: Archive, args: tuple[str, ...], message: str
) -> None:
    out = isr("--dir", str(archive.root), *args, cwd=archive.root.parent)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and message in out.stderr, out.stderr


def test_no_directory(tmp_path: Path) -> None:
    out = isr("--dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr == f"isr: no recordings directory {str(tmp_path / 'nowhere')!r}\n"
