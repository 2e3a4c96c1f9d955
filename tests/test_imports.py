"""Every module imports on its own, in a fresh interpreter (aiohttp's
``tests/test_circular_imports.py``): a circular import that the usual import order
happens to hide fails here by name, before a user's first ``isr`` command meets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def _modules() -> list[str]:
    names = []
    for path in sorted((SRC / "isr").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue  # runs the command; ``isr.cli`` is imported on its own below
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


MODULES = _modules()


def _import(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_modules_are_found() -> None:
    assert {"isr", "isr.cli", "isr.sources.http", "isr.urls", "isr.framing.oggpage"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_on_its_own(module: str) -> None:
    result = _import(f"import {module}")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("module", "not_loaded"),
    [
        # The tone and the card share PCM code in ``pcm``; the tone needs no ALSA.
        ("isr.sources.tone", "isr.sources.soundcard"),
        # Config parses URLs with ``isr.urls``, not with a source module.
        ("isr.config", "isr.sources"),
        ("isr.urls", "isr.sources"),
        # The Ogg framer imports its writer and the page module, never the reverse.
        ("isr.framing.oggwriter", "isr.framing.ogg"),
        ("isr.framing.oggpage", "isr.framing.ogg"),
        ("isr.framing.oggpage", "isr.framing.oggwriter"),
    ],
)
def test_module_does_not_pull_in(module: str, not_loaded: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"loaded = sorted(m for m in sys.modules if m == {not_loaded!r} "
        f"or m.startswith({not_loaded + '.'!r}))\n"
        "assert not loaded, loaded\n"
    )
    result = _import(code)
    assert result.returncode == 0, result.stderr
