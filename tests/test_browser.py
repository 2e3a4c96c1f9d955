"""The web UI in real headless Chromium, beside a real recorder writing a tone.

One test drives the whole life of a recording (REC badge on, play, analyse, delete
refused then allowed, badge off) because starting the recorder, the web server and the
browser is the expensive part; a second checks keyboard use and axe-core.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from isr.sinks.files import is_locked
from tests.support.browser import ARTIFACTS, axe_violations, chromium, web_process
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
                f"#{done.locator('button.analyse').get_attribute('aria-controls')} svg.chart"
            )
            svg.wait_for(timeout=20_000)
            assert svg.get_attribute("role") == "img"
            label = svg.get_attribute("aria-label") or ""
            assert "1 loud section" in label, label
            assert page.locator(".analysis svg.chart rect.loud").count() >= 1
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
            try:
                done.wait_for(state="detached", timeout=10_000)
            except Exception as exc:  # say what the page said, and whether the file went
                said = page.locator("#live").text_content()
                gone = not (recordings / first).exists()
                raise AssertionError(f"row stayed; page said {said!r}; gone: {gone}") from exc
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


def _write_status(root: Path, sources: dict[str, Any]) -> None:
    now = datetime.now().astimezone().isoformat()
    (root / ".isr").mkdir(exist_ok=True)
    data = {"version": 1, "updated": now, "started": now, "sources": sources}
    (root / ".isr" / "status.json").write_text(json.dumps(data))


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
    # The newest file's tone is quiet (RMS 0.063, -24 dBFS), the others' loud (-9 dBFS).
    for i, amplitude in enumerate((0.5, 0.5, 0.0891)):
        src = media(
            "wav",
            3,
            pattern="silence-tone-silence",
            tone_start=1.0,
            tone_end=2.0,
            amplitude=amplitude,
        )
        target = root / "radio1" / f"20261124_14000{i}.wav"
        target.write_bytes(src.read_bytes())
        target.with_name(target.name + ".json").write_text(
            json.dumps({"source": "radio1", "start": f"2026-11-24T14:00:0{i}+01:00", "end": None})
        )
    return root


def test_keyboard_only_and_axe(tmp_path: Path, static_dir: Path) -> None:
    with web_process(tmp_path, static_dir) as url, chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.clock.install()  # time flows; fast_forward fires the 5 s status refresh now
        page.goto(url + "/")
        violations = axe_violations(page, serious_only=True)
        assert violations == [], json.dumps(violations, indent=1)[:3000]

        # A source writing outside the recordings directory is named by an absolute
        # path: the strip shows the source, no row gets a badge for it, nothing throws.
        _write_status(
            static_dir,
            {
                "elsewhere": {"state": "recording", "file": str(tmp_path / "other" / "x.wav")},
                "radio1": {"state": "recording", "file": "radio1/20261124_140000.wav"},
            },
        )
        page.clock.fast_forward(5000)
        page.wait_for_function(
            "() => document.getElementById('sources').textContent.includes('elsewhere')"
        )
        assert page.locator("#recorder").text_content() == "Recorder running"
        page.locator(_row("radio1/20261124_140000.wav")).locator(".rec").wait_for(state="visible")
        assert page.locator("tr.file .rec:visible").count() == 1
        assert errors == []

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
        quiet = page.locator(".analysis svg[role=img]").first.get_attribute("aria-label") or ""
        assert "1.0 s to 2.0 s" in quiet
        assert re.search(r"peak level -24\.0 dBFS, mean level -28\.[789] dBFS", quiet), quiet
        assert "threshold -26.0 dBFS" in quiet
        label = page.locator(".analysis .threshold-label").first
        assert label.text_content() == "threshold -26.0 dBFS" and label.is_visible()

        # One fixed dBFS scale (-60 at the bottom, 0 at the top, one unit per dB): the
        # quiet file's bars stand 15 dB lower than a loud one's, not as high.
        loud_row = page.locator("tr.file").nth(1)
        loud_row.locator("button.analyse").click()
        page.locator(".analysis svg[role=img]").nth(1).wait_for(timeout=20_000)
        tops = page.eval_on_selector_all(
            ".analysis svg[role=img] path.bar", "ps => ps.map(p => p.getBBox().y)"
        )
        assert len(tops) == 2 and abs(tops[0] - 24.0) < 0.3 and abs(tops[1] - 9.0) < 0.3, tops
        loud = page.locator(".analysis svg[role=img]").nth(1).get_attribute("aria-label") or ""
        assert re.search(r"peak level -9\.0 dBFS, mean level -13\.[789] dBFS", loud), loud
        page.locator("button.play").first.focus()
        _tab_to(page, "analyse")

        before = len(_names(page))
        page.once("dialog", lambda d: d.accept())
        _tab_to(page, "delete")
        page.keyboard.press("Enter")
        page.wait_for_function(
            f"() => document.querySelectorAll('tr.file').length === {before - 1}"
        )
        assert _focused(page)["tag"] == "BUTTON"
        violations = axe_violations(page, serious_only=True)  # with a player and a chart open
        assert violations == [], json.dumps(violations, indent=1)[:3000]
        _shot(page, "browser-keyboard")

        # Files that retention deleted behind the page's back: analysing or playing
        # one says so and takes its row away.
        for name, button in (("20261124_140001.wav", "analyse"), ("20261124_140000.wav", "play")):
            (static_dir / "radio1" / name).unlink()
            row = page.locator(_row("radio1/" + name))
            row.locator("button." + button).click()
            row.wait_for(state="detached", timeout=10_000)
            page.wait_for_function(
                "(n) => document.getElementById('live').textContent.startsWith(n + ' no longer')",
                arg="radio1/" + name,
            )
        assert _names(page) == []
        assert errors == []
