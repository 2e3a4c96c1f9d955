"""``isr clip``: the clip and its manifest written beside it, never over a file, and a
clear error (exit 2) for a question without an answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from isr.cli import main
from isr.framing.xing import leading_tag_length
from tests.support.archive import local
from tests.support.clips import StreamArchive
from tests.support.media import MediaFactory

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def root(tmp_path: Path, media: MediaFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    monkeypatch.delenv("ISR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "rec"
    archive = StreamArchive(root, BERLIN, "mp3")
    archive.session(media("mp3", 14), local("2026-11-24T14:00:01", BERLIN))
    return root


def test_isr_clip_writes_the_clip_and_its_manifest(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["clip", "--dir", str(root), "radio", "2026-11-24T14:00:04.2", "2026-11-24 14:00:10"]
    assert main(args) == 0
    out = capsys.readouterr().out
    audio = tmp_path / "radio_20261124_140004-140010.mp3"
    assert f"{audio.name} (" in out
    manifest = json.loads(audio.with_name(audio.name + ".json").read_text())
    assert manifest["from"] == "2026-11-24T14:00:04.200+01:00"
    assert manifest["to"] == "2026-11-24T14:00:10.000+01:00"
    data = audio.read_bytes()
    used = b"".join(
        (root / p["file"]).read_bytes()[p["bytes"][0] : p["bytes"][1]] for p in manifest["parts"]
    )
    assert data[leading_tag_length(data) :] == used
    before = data
    # A second time: the file is there, so nothing is written (exit 1, one line).
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "exists" in err and "never overwrites" in err
    assert audio.read_bytes() == before
    # -o names the file; its manifest goes beside it.
    assert main([*args, "-o", str(tmp_path / "out" / "x.mp3")]) == 1  # no such folder
    (tmp_path / "out").mkdir()
    assert main([*args, "-o", str(tmp_path / "out" / "x.mp3")]) == 0
    assert (tmp_path / "out" / "x.mp3").read_bytes() == before
    assert json.loads((tmp_path / "out" / "x.mp3.json").read_text()) == manifest


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("yesterday", "2026-11-24T14:00:10", "not a time"),
        ("2026-11-24T14:00:10", "2026-11-24T14:00:04", "FROM must be before TO"),
        ("2026-11-24T00:00", "2026-11-25T00:00:01", "at most 24 hours"),
        ("2026-11-25T14:00", "2026-11-25T15:00", "nothing of 'radio' was recorded"),
    ],
)
def test_isr_clip_refuses_a_question_without_an_answer(
    root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    start: str,
    end: str,
    message: str,
) -> None:
    assert main(["clip", "--dir", str(root), "radio", start, end]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("radio_*"))


def test_isr_clip_of_an_unknown_or_odd_source(root: Path) -> None:
    span = ["2026-11-24T14:00", "2026-11-24T14:01"]
    for source in ("radio2", "a/b", "bell\x07"):
        result = subprocess.run(
            [sys.executable, "-m", "isr", "clip", "--dir", str(root), source, *span],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("isr: ") and "Traceback" not in result.stderr
