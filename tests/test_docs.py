"""The docs follow the code: the example config and the README's promises."""

from __future__ import annotations

from pathlib import Path

from isr.config import KEYS, load, render_example

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_is_generated_from_the_key_table() -> None:
    text = (ROOT / "config.example.ini").read_text()
    assert text == render_example(), (
        "config.example.ini is stale: regenerate it with "
        "`.venv/bin/python -c 'from isr.config import render_example as r; "
        'print(r(), end="")\' > config.example.ini`'
    )
    for key in KEYS:
        assert f"{key.name} =" in text, key.name


def test_example_config_is_valid() -> None:
    cfg = load(ROOT / "config.example.ini")
    assert {s.type for s in cfg.sources} == {"stream", "soundcard", "tone"}


def test_readme_quick_start_is_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
