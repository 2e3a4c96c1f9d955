"""``isr timeline`` as users run it: a child process over a small archive in Berlin time."""

from __future__ import annotations

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
    root = tmp_path / "recordings"
    root.mkdir()
    a = Archive(root, BERLIN)
    a.record("radio1", local("2026-11-24T12:00", BERLIN), 7200, titles={0: "Artist - Song"})
    a.record(
        "radio1",
        local("2026-11-24T14:30:05.2", BERLIN),
        1800,
        cause="connection reset",
        titles={600: "Other – Tune"},
    )
    a.record("Ünï cöde", local("2026-11-24T09:00", BERLIN), 60)
    yield a
    a.close()


def isr(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ISR_CONFIG"}
    env.update(TZ="Europe/Berlin", PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "isr", "timeline", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def test_prints_files_gaps_titles_and_coverage(archive: Archive) -> None:
    root = archive.root
    out = isr(
        "--dir",
        str(root),
        "radio1",
        "--from",
        "2026-11-24T12:00",
        "--to",
        "2026-11-24 15:00",
        cwd=root.parent,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    lines = out.stdout.splitlines()
    assert (
        lines[0] == "radio1: 2026-11-24 12:00:00 to 2026-11-24 15:00:00 (Europe/Berlin, UTC+01:00)"
    )
    assert "  start     end       length   file" in lines
    assert "  12:00:00  13:00:00  1:00:00  radio1/20261124_120000.mp3" in lines
    assert "  14:30:05  15:00:00  0:29:55  radio1/20261124_143005.mp3" in lines
    assert "  14:00:00  14:30:05  30 min 05 s  connection reset" in lines
    assert "  12:00:00  Artist - Song" in lines
    assert "  14:40:05  Other – Tune" in lines
    assert lines[-1] == "Recorded 2 h 29 min of 3 h (83.2 %); 1 gap"


def test_config_directory_and_defaults(archive: Archive) -> None:
    """``-c`` finds the recordings; without --from and --to the span runs from
    today's local midnight until now (whatever today holds of this archive)."""
    cfg = archive.root.parent / "isr.ini"
    cfg.write_text(f"[general]\noutput_directory = {archive.root}\n[tone]\ntype = tone\n")
    out = isr(
        "-c",
        str(cfg),
        "Ünï cöde",
        "--from",
        "2026-11-24",
        "--to",
        "2026-11-25",
        cwd=archive.root.parent,
    )
    assert out.returncode == 0, out.stderr
    assert "Ünï cöde/20261124_090000.mp3" in out.stdout
    assert out.stdout.splitlines()[-1] == "Recorded 1 min of 24 h (0.0 %); no gaps"
    out = isr("-c", str(cfg), "radio1", cwd=archive.root.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("radio1: ") and "00:00:00 to " in out.stdout.splitlines()[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["radio1", "--from", "yesterday"], "isr: not a time: 'yesterday'"),
        (
            ["radio1", "--from", "2026-11-24T15:00", "--to", "2026-11-24T14:00"],
            "isr: FROM must be before TO",
        ),
        (["radio1", "--to", "2026-13-01"], "isr: not a time: '2026-13-01'"),
        (["radio2", "--from", "2026-11-24"], "isr: no recordings of source 'radio2'"),
    ],
)
def test_bad_input_exits_2_with_one_line(archive: Archive, args: list[str], message: str) -> None:
    out = isr("--dir", str(archive.root), *args, cwd=archive.root.parent)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.splitlines() == [out.stderr.strip()] and out.stderr.startswith(message)
    assert "Traceback" not in out.stderr


def test_a_missing_directory_or_config_exits_2(tmp_path: Path) -> None:
    out = isr("--dir", str(tmp_path / "nowhere"), "radio1", cwd=tmp_path)
    assert (out.returncode, out.stderr.strip()) == (
        2,
        f"isr: no recordings directory '{tmp_path / 'nowhere'}'",
    )
    out = isr("-c", str(tmp_path / "missing.ini"), "radio1", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.startswith("isr: config error:")
    assert "Traceback" not in out.stderr
    out = isr("-c", "x.ini", "--dir", str(tmp_path), "radio1", cwd=tmp_path)
    assert out.returncode == 2 and "not allowed with argument" in out.stderr
