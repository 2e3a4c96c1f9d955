"""Config parsing: inheritance, every error names file/section/key, `isr check`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from isr.cli import main
from isr.config import KEYS, load
from isr.errors import ConfigError


def cfg_text(body: str) -> str:
    return body.strip() + "\n"


def test_general_keys_are_inherited_and_overridden() -> None:
    cfg = load(
        "x.ini",
        text=cfg_text(
            """
            [general]
            split_minutes = 15
            max_retries = 0
            timeout_seconds = 12
            [one]
            type = stream
            url = http://127.0.0.1:8000/a.mp3
            filename_pattern = {source}/%Y%m%d_%H%M%S
            [two]
            type = stream
            url = http://127.0.0.1:8000/b.mp3
            split_minutes = 0.1
            filename_pattern = {source}/%Y%m%d_%H%M%S
            [t]
            type = tone
            frequency = 1000
            filename_pattern = {source}/%Y%m%d_%H%M%S
            """
        ),
    )
    one, two, tone = cfg.sources
    assert one.split_minutes == 15 and one.max_retries == 0 and one.timeout_seconds == 12
    assert two.split_seconds == pytest.approx(6.0)
    assert tone.type == "tone" and tone.format == "wav" and tone.frequency == 1000
    assert one.format == "auto"
    assert cfg.output_directory == Path("recordings")


@pytest.mark.parametrize(
    ("body", "section", "key", "words"),
    [
        ("[s]\ntype = stream\n", "s", "url", "missing"),
        ("[s]\ntype = radio\n", "s", "type", "not one of"),
        ("[s]\nurl = http://h/x\n", "s", "type", "missing"),
        (
            "[general]\nsplit_minutes = 0\n[s]\ntype = tone\n",
            "general",
            "split_minutes",
            "greater than 0",
        ),
        ("[general]\nsplit_minutes = -5\n[s]\ntype = tone\n", "general", "split_minutes", "0"),
        ("[s]\ntype = tone\nsplit_minutes = soon\n", "s", "split_minutes", "not a number"),
        ("[s]\ntype = tone\nsample_rate = 44.1k\n", "s", "sample_rate", "whole number"),
        ("[general]\nlog_level = LOUD\n[s]\ntype = tone\n", "general", "log_level", "LOUD"),
        ("[s]\ntype = stream\nurl = ftp://h/x\n", "s", "url", "http"),
        (
            "[s]\ntype = stream\nurl = http://h/live.m3u8\nhls_variant = -1\n",
            "s",
            "hls_variant",
            "at least 0",
        ),
        ("[s]\ntype = stream\nurl = http://h/x\nformat = wav\n", "s", "format", "soundcard"),
        ("[s]\ntype = tone\nformat = mp3\n", "s", "format", "wav"),
        (
            "[s]\ntype = tone\nfilename_pattern = %Y/{station}\n",
            "s",
            "filename_pattern",
            "{station}",
        ),
        ("[s]\ntype = tone\nfilename_pattern = /abs/%H\n", "s", "filename_pattern", "relative"),
        ("[s]\ntype = tone\nfilename_pattern = a/../%H\n", "s", "filename_pattern", ".."),
        (
            "[a]\ntype = tone\n[b]\ntype = tone\n",
            "b",
            "filename_pattern",
            "{source}",
        ),
    ],
)
def test_errors_name_file_section_and_key(body: str, section: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        load("station.ini", text=body)
    err = info.value
    assert (err.file, err.section, err.key) == ("station.ini", section, key)
    text = str(err)
    assert text.startswith(f"station.ini: [{section}]: {key}: ")
    assert words in text


def test_no_sources_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no source sections"):
        load("c.ini", text="[general]\nsplit_minutes = 5\n")


def test_unparseable_file_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "c.ini"
    p.write_text("type = tone\n")
    with pytest.raises(ConfigError, match=r"c\.ini: line 1: 'type = tone' comes before any"):
        load(p)
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "missing.ini")


def test_unknown_key_warns_with_nearest(tmp_path: Path) -> None:
    cfg = load("c.ini", text="[s]\ntype = tone\nsplit_minuts = 5\n")
    assert any("did you mean 'split_minutes'" in w for w in cfg.warnings)
    p = tmp_path / "c.ini"
    p.write_text("[s]\ntype = tone\nsplit_minuts = 5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "isr", "check", "-c", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stderr.count("did you mean 'split_minutes'") == 1  # said once


def test_same_paths_allowed_with_source_placeholder() -> None:
    cfg = load(
        "c.ini",
        text="[general]\nfilename_pattern = {source}/%H%M%S\n[a]\ntype = tone\n[b]\ntype = tone\n",
    )
    assert [s.name for s in cfg.sources] == ["a", "b"]


def test_different_directories_do_not_collide() -> None:
    cfg = load(
        "c.ini",
        text="[a]\ntype = tone\noutput_directory = /tmp/a\n[b]\ntype = tone\n"
        "output_directory = /tmp/b\n",
    )
    assert len(cfg.sources) == 2


def test_every_key_has_help_and_a_valid_default() -> None:
    for key in KEYS:
        assert key.help.strip(), key.name
        if key.kind == "choice" and key.default:
            assert key.default in key.choices


def test_check_prints_sources_and_hides_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "c.ini"
    p.write_text(
        "[general]\nfilename_pattern = {source}/%Y%m%d_%H%M%S\n"
        "[radio]\ntype = stream\nurl = http://user:s3cret-url@127.0.0.1:8000/live\n"
        "password = s3cret-key\nusername = me\n[t]\ntype = tone\n"
    )
    assert main(["check", "-c", str(p)]) == 0
    out = capsys.readouterr().out
    assert "[radio] type=stream" in out and "[t] type=tone" in out
    assert "timeout_seconds = 30" in out
    assert "s3cret" not in out


def test_check_exit_status_2_with_one_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.ini"
    p.write_text("[general]\nsplit_minutes = 0\n[t]\ntype = tone\n")
    proc = subprocess.run(
        [sys.executable, "-m", "isr", "check", "-c", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{p}: [general]: split_minutes:" in lines[0]


def test_record_refuses_bad_config_with_status_2(tmp_path: Path) -> None:
    p = tmp_path / "bad.ini"
    p.write_text("[s]\ntype = stream\n")
    proc = subprocess.run(
        [sys.executable, "-m", "isr", "record", "-c", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "[s]: url: missing" in proc.stderr
    assert not (tmp_path / "recordings").exists()


def test_port_range_and_hints_for_common_slips() -> None:
    with pytest.raises(ConfigError, match=r"\[web\]: port: must be at most 65535"):
        load("c.ini", text="[web]\nport = 99999\n[t]\ntype = tone\n")
    with pytest.raises(ConfigError, match=r"did you mean \[general\]\?"):
        load("c.ini", text="[genral]\nsplit_minutes = 1\n[t]\ntype = tone\n")
    cfg = load("c.ini", text="[t]\ntype = tone\nurl http://127.0.0.1/x\n")
    assert any("missing '=' after 'url'" in w for w in cfg.warnings)
    with pytest.raises(ConfigError, match=r"line 3: 'frequency 880' is not 'key = value'"):
        load("c.ini", text="[t]\ntype = tone\nfrequency 880\n")


def test_a_password_that_breaks_the_url_is_a_config_error_without_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        load("c.ini", text="[s]\ntype = stream\nurl = http://dj:se/cret@127.0.0.1:8000/live\n")
    assert "percent-encoded" in str(info.value) and "cret" not in str(info.value)
    from isr.sources.http import redact_url

    assert "cret" not in redact_url("http://dj:se/cret@127.0.0.1:8000/live")


def test_dataclass_defaults_come_from_the_key_table() -> None:
    """Issue 13 item 5: one place holds each default; the dataclasses, the command
    line and the web app read it from the key table."""
    from isr.config import AlertsConfig, SourceConfig, WebConfig, default_of
    from isr.web.app import WEB_DEFAULTS

    web = WebConfig()
    for name in ("host", "port", "threshold"):
        assert getattr(web, name) == default_of("web", name)
        assert getattr(WEB_DEFAULTS, name) == default_of("web", name)
    alerts = AlertsConfig()
    for name in ("silence_threshold_db", "silence_seconds"):
        assert getattr(alerts, name) == default_of("alerts", name)
    fields = SourceConfig.__dataclass_fields__
    assert fields["timeout_seconds"].default == default_of("stream", "timeout_seconds")
    assert fields["sample_rate"].default == default_of("soundcard", "sample_rate")


def test_evidence_signing_key_is_relative_to_the_config(tmp_path: Path) -> None:
    ini = tmp_path / "isr.ini"
    ini.write_text("[t]\ntype = tone\n[evidence]\nsigning_key = keys/isr.key\n")
    cfg = load(ini)
    assert cfg.evidence.signing_key == tmp_path / "keys" / "isr.key"
    assert load(ini, text="[t]\ntype = tone\n").evidence.signing_key is None
