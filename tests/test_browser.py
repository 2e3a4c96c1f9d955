"""The web UI in real headless Chromium, beside a real recorder writing a tone.

One test drives the whole life of a recording (REC badge on, play, analyse, delete
refused then allowed, badge off) because starting the recorder, the web server and the
browser is the expensive part; a second checks keyboard use and axe-core.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from isr.sinks.files import is_locked
from tests.support.browser import ARTIFACTS, axe_source, chromium, web_process
from tests.support.recorder import RecorderProcess, wait_for

CONFIG = (
    "[general]\nsplit_minutes = 0.1\nlog_file =\n"
    "[tone]\ntype = tone\nsample_rate = 8000\nchannels = 1\nfrequency = 440\n"
)


def _current(rec: RecorderProcess) -> str:
    f = rec.status()["sources"]["tone"]["file"]
    return str(f) if f else ""


def _row(name: str) -> str:
    return f'tr.file[data-name="{name}"]'


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _axe(page: Any) -> list[dict[str, Any]]:
    page.evaluate(axe_source())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [v for v in result["violations"] if v["impact"] in ("serious", "critical")]


def test_recording_lifecycle_in_the_browser(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    with RecorderProcess(tmp_path, CONFIG) as rec:
        assert wait_for(lambda: _current(rec), timeout=20), rec.output
        # Wait for one finished file to play, analyse and delete.
        first = _current(rec)
        assert wait_for(lambda: _current(rec) not in ("", first), timeout=20)
        with web_process(tmp_path, recordings) as url, chromium() as browser:
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            recording = _current(rec)
            row = page.locator(_row(recording))
            # REC badge on the file being written; delete disabled there.
            row.locator(".rec").wait_for(state="visible", timeout=10_000)
            assert row.locator("button.delete").is_disabled()
            _shot(page, "browser-recording")
            status = page.evaluate(
                "async (n) => (await fetch('/api/files/' + n, {method: 'DELETE'})).status",
                recording,
            )
            assert status == 409
            assert (recordings / recording).exists()

            done = page.locator(_row(first))
            assert done.locator(".rec").is_hidden()
            # Play: the player opens lazily and currentTime advances.
            toggle = done.locator("button.play")
            audio = page.locator(f"#{toggle.get_attribute('aria-controls')} audio")
            assert audio.get_attribute("src") is None
            toggle.click()
            assert toggle.get_attribute("aria-expanded") == "true"
            page.wait_for_function(
                "(el) => el.currentTime > 0.3", arg=audio.element_handle(), timeout=10_000
            )
            assert audio.evaluate("(el) => document.activeElement === el")
            toggle.click()
            assert toggle.get_attribute("aria-expanded") == "false"
            assert audio.evaluate("(el) => el.paused")

            # The file being recorded plays too, from what is on disk so far.
            live = row.locator("button.play")
            live.click()
            live_audio = page.locator(f"#{live.get_attribute('aria-controls')} audio")
            page.wait_for_function(
                "(el) => el.currentTime > 0.2", arg=live_audio.element_handle(), timeout=10_000
            )
            live.click()

            # Analyse: the tone is loud from start to end.
            done.locator("button.analyse").click()
            svg = page.locator(
                f"#{done.locator('button.analyse').get_attribute('aria-controls')} svg"
            )
            svg.wait_for(timeout=20_000)
            assert svg.get_attribute("role") == "img"
            label = svg.get_attribute("aria-label") or ""
            assert "1 loud section" in label, label
            assert page.locator(".analysis svg rect.loud").count() >= 1
            page.wait_for_function(
                "() => document.getElementById('live').textContent.includes('Analysis of')"
            )
            _shot(page, "browser-analysed")

            # Delete asks, removes both rows, and moves focus to a neighbour.
            messages: list[str] = []

            def accept(dialog: Any) -> None:
                messages.append(dialog.message)
                dialog.accept()

            # The recorder closes a finished file's last descriptor at its next fsync.
            assert wait_for(lambda: not is_locked(recordings / first), timeout=15)
            page.once("dialog", accept)
            done.locator("button.delete").click()
            done.wait_for(state="detached", timeout=10_000)
            assert messages and first in messages[0]
            assert not (recordings / first).exists()
            assert not (recordings / (first + ".json")).exists()
            assert page.locator(f"#detail-{first}").count() == 0
            assert page.evaluate("document.activeElement.tagName") == "BUTTON"
            page.wait_for_function(
                "() => document.getElementById('live').textContent.startsWith('Deleted')"
            )

            # Declining the dialog keeps the file.
            others = [n for n in _names(page) if n != _current(rec)]
            if others:
                page.once("dialog", lambda d: d.dismiss())
                page.locator(_row(others[0])).locator("button.delete").click()
                time.sleep(0.3)
                assert (recordings / others[0]).exists()

            # The badge leaves when the file closes (status refreshed every 5 s),
            # and the next file shows up with its own badge.
            assert wait_for(lambda: _current(rec) != recording, timeout=15)
            row.locator(".rec").wait_for(state="hidden", timeout=12_000)
            assert not row.locator("button.delete").is_disabled()
            newer = _current(rec)
            page.locator(_row(newer)).locator(".rec").wait_for(state="visible", timeout=12_000)
            _shot(page, "browser-after-split")
            assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], (
                errors
            )
        assert rec.stop() == 0, rec.output


def _names(page: Any) -> list[str]:
    names: list[str] = page.eval_on_selector_all("tr.file", "rs => rs.map(r => r.dataset.name)")
    return names


def _focused(page: Any) -> dict[str, Any]:
    info: dict[str, Any] = page.evaluate(
        "() => { const e = document.activeElement; return {tag: e.tagName, "
        "cls: e.className, text: e.textContent, id: e.id}; }"
    )
    return info


def _tab_to(page: Any, cls: str, limit: int = 40, key: str = "Tab") -> None:
    for _ in range(limit):
        page.keyboard.press(key)
        if cls in str(_focused(page)["cls"]).split():
            return
    pytest.fail(f"Tab never reached a .{cls}")


@pytest.fixture
def static_dir(tmp_path: Path, media: Any) -> Path:
    root = tmp_path / "recordings"
    (root / "radio1").mkdir(parents=True)
    src = media("wav", 3, pattern="silence-tone-silence", tone_start=1.0, tone_end=2.0)
    for i in range(3):
        target = root / "radio1" / f"20261124_14000{i}.wav"
        target.write_bytes(src.read_bytes())
        target.with_name(target.name + ".json").write_text(
            json.dumps({"source": "radio1", "start": f"2026-11-24T14:00:0{i}+01:00", "end": None})
        )
    return root


def test_keyboard_only_and_axe(tmp_path: Path, static_dir: Path) -> None:
    with web_process(tmp_path, static_dir) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(url + "/")
        violations = _axe(page)
        assert violations == [], json.dumps(violations, indent=1)[:3000]

        page.keyboard.press("Tab")
        skip = _focused(page)
        assert skip["tag"] == "A" and "Skip" in skip["text"]
        assert page.locator("a.skip").is_visible()
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "recordings"

        _tab_to(page, "play")
        page.keyboard.press("Enter")
        toggle = page.locator("button.play").first
        assert toggle.get_attribute("aria-expanded") == "true"
        assert _focused(page)["tag"] == "AUDIO"
        _tab_to(page, "play", key="Shift+Tab")  # back out of the player's controls
        page.keyboard.press(" ")  # Space closes it again
        page.wait_for_function(
            "() => document.querySelector('button.play').getAttribute('aria-expanded') === 'false'"
        )

        page.locator("button.play").first.focus()
        _tab_to(page, "analyse")
        page.keyboard.press(" ")
        page.locator(".analysis svg[role=img]").first.wait_for(timeout=20_000)
        assert "1.0 s to 2.0 s" in (
            page.locator(".analysis svg").first.get_attribute("aria-label") or ""
        )

        before = len(_names(page))
        page.once("dialog", lambda d: d.accept())
        _tab_to(page, "delete")
        page.keyboard.press("Enter")
        page.wait_for_function(
            f"() => document.querySelectorAll('tr.file').length === {before - 1}"
        )
        assert _focused(page)["tag"] == "BUTTON"
        violations = _axe(page)  # with a player and a chart open
        assert violations == [], json.dumps(violations, indent=1)[:3000]
        _shot(page, "browser-keyboard")
