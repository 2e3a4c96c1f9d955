"""The web UI over the store in a real browser (Debian's Chromium through Playwright):
`isr web --archive` as a user starts it, over recordings that exist only in a real
S3 HTTP server (moto's, on 127.0.0.1). List, play with a seek (the browser's ranged
requests answered from the store), download byte for byte, keyboard only, axe clean."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import axe_violations, chromium, web_process
from tests.support.media import MediaFactory
from tests.support.s3 import S3Server, two_recorders_in_the_store


def _row(name: str) -> str:
    return f'tr.file[data-name="{name}"]'


def test_the_store_in_the_browser(
    tmp_path: Path, s3: S3Server, media: MediaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = two_recorders_in_the_store(tmp_path, s3, media)
    for key, value in s3.environment().items():
        monkeypatch.setenv(key, value)
    archive = f"s3://{s3.bucket}/stations"
    with (
        web_process(tmp_path, tmp_path / "here", "--archive", archive) as url,
        chromium() as browser,
    ):
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        ranges: list[tuple[str, int]] = []

        def seen(response: Any) -> None:
            if "/stream/" in response.url:
                ranges.append((response.request.headers.get("range", ""), response.status))

        page.on("response", seen)
        page.goto(url + "/")
        for _ in range(50):  # the first listing of the store is under way
            if page.locator("tr.file").count() == len(sent):
                break
            page.wait_for_timeout(200)
            page.reload()
        assert page.locator("tr.file").count() == len(sent)
        assert archive in (page.locator("#store").text_content() or "")
        assert page.locator("button.delete").count() == 0

        name = sorted(n for n in sent if n.startswith("rec1/"))[1]
        row = page.locator(_row(name))
        toggle = row.locator("button.play")
        audio = page.locator(f"#{toggle.get_attribute('aria-controls')} audio")
        toggle.click()
        page.wait_for_function(
            "(el) => el.currentTime > 0.3", arg=audio.element_handle(), timeout=10_000
        )
        # Seek near the end: the browser asks for a later range, the store answers it.
        audio.evaluate("(el) => { el.currentTime = 2.2; }")
        page.wait_for_function(
            "(el) => el.currentTime > 2.3 && !el.error", arg=audio.element_handle(), timeout=10_000
        )
        assert any(status in (200, 206) for _, status in ranges), ranges
        assert all(status in (200, 206) for _, status in ranges), ranges
        toggle.click()

        with page.expect_download() as download:
            row.locator("a.download").click()
        saved = download.value.path()
        assert saved is not None and Path(saved).read_bytes() == sent[name]

        # Keyboard only: Tab reaches a row's play button and Enter opens its player.
        other = sorted(n for n in sent if n.startswith("rec2/"))[0]
        target = page.locator(_row(other)).locator("button.play")
        for _ in range(200):
            page.keyboard.press("Tab")
            if target.evaluate("(el) => document.activeElement === el"):
                break
        else:
            raise AssertionError("Tab never reached the play button")
        page.keyboard.press("Enter")
        assert target.get_attribute("aria-expanded") == "true"

        assert axe_violations(page) == []
        assert errors == []
