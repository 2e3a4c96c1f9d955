"""The coverage page in real headless Chromium, over the real ``isr web``.

The archive is written by the recorder's own segmenter, in Berlin time, for the last
days up to a few seconds ago: full days, and one day with a 10-minute hole. The
verdicts are about those days only (chosen from the archive, not from the clock), so
none depends on when the test runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from isr.timeline.coverage import day_bounds
from tests.support.archive import Archive
from tests.support.browser import ARTIFACTS, axe_violations, chromium, web_process

BERLIN = ZoneInfo("Europe/Berlin")


@dataclass(frozen=True)
class Served:
    url: str
    full: date
    holed: date

    @property
    def percent(self) -> str:
        """The holed day's coverage as the page shows it (floored; the day may be
        one of 23 or 25 hours)."""
        t0, t1 = day_bounds(self.holed, BERLIN)
        return f"{math.floor((1 - 600 / (t1 - t0)) * 10000) / 100:.2f} %"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("coverage")
    root = base / "recordings"
    root.mkdir()
    today = datetime.now(BERLIN).date()
    full, holed = today - timedelta(days=4), today - timedelta(days=2)
    start, _ = day_bounds(full, BERLIN)
    hole, _ = day_bounds(holed, BERLIN)
    hole += 12 * 3600  # noon that day (no DST change falls at noon)
    a = Archive(root, BERLIN)
    a.record("radio1", start, int(hole - start))
    a.record("radio1", hole + 600, int(time.time() - hole - 600 - 5), cause="connection reset")
    a.record("radio2", start, 3600)
    a.close()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", "Europe/Berlin")
        with web_process(base, root) as url:
            yield Served(url, full, holed)


def _cell(page: Any, source: str, day: date) -> Any:
    section = page.locator("section.source", has=page.locator("h2", has_text=source))
    return section.locator(f'td[data-day="{day}"]')


def test_the_calendar_shows_the_days_and_a_gap_looks_different(served: Served) -> None:
    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(served.url + "/coverage")
        assert page.locator("section.source h2").all_text_contents() == ["radio1", "radio2"]
        # 42 days per source: the cells expected and the cells not, none outside
        cells = page.locator("section.source").first.locator("td.cov")
        assert cells.count() == 42
        full, holed = _cell(page, "radio1", served.full), _cell(page, "radio1", served.holed)
        assert full.get_attribute("class") == "cov cov-full"
        assert "cov-full" not in (holed.get_attribute("class") or "")
        colour = "getComputedStyle(e).backgroundColor"
        assert full.evaluate(f"e => {colour}") != holed.evaluate(f"e => {colour}")
        assert "100 %" in full.inner_text()
        assert served.percent in holed.inner_text()  # 10 min of the day, floored
        title = holed.locator("a").get_attribute("title")
        assert title == f"{served.holed}: {served.percent} recorded, 1 gap"
        before = served.full - timedelta(days=1)
        assert "cov-na" in (_cell_na(page, "radio1", before).get_attribute("class") or "")
        # the text alternative: the summary, and every day as a list
        summary = page.locator("section.source").first.locator(".cov-summary").inner_text()
        assert f"with gaps: {served.holed} ({served.percent})" in summary, summary
        page.locator("details.as-list summary").first.click()
        row = page.locator("details.as-list tr", has_text=str(served.holed)).first
        assert "10 min" in row.inner_text() and "connection reset" in row.inner_text()
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)[:3000]
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "coverage.png"), full_page=True)
        # a click on a day leads to that day's timeline
        holed.locator("a").click()
        page.wait_for_url("**/timeline?**")
        q = parse_qs(urlsplit(page.url).query)
        assert q == {"source": ["radio1"], "day": [str(served.holed)]}
        page.wait_for_function("document.querySelector('#day').value !== ''")
        assert page.locator("#day").input_value() == str(served.holed)
        assert errors == [], errors


def _cell_na(page: Any, source: str, day: date) -> Any:
    section = page.locator("section.source", has=page.locator("h2", has_text=source))
    return section.locator("td.cov-na", has_text=f"{day}:")


def test_keyboard_only(served: Served) -> None:
    with chromium() as browser:
        page = browser.new_page()
        page.goto(served.url + "/coverage")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        page.keyboard.press("Enter")  # to the main part
        target = f"day={served.holed}"
        for _ in range(80):
            page.keyboard.press("Tab")
            href = page.evaluate("document.activeElement.getAttribute('href') || ''")
            if target in href:
                break
        else:
            pytest.fail(f"no link to {target} reached with Tab")
        assert page.evaluate("document.activeElement.closest('td').dataset.day") == str(
            served.holed
        )
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"  # the focus is visible
        page.keyboard.press("Enter")
        page.wait_for_url("**/timeline?**")
        assert parse_qs(urlsplit(page.url).query)["day"] == [str(served.holed)]
        # back, and the source picker works from the keyboard too
        page.goto(served.url + "/coverage")
        for _ in range(10):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "source":
                break
        page.keyboard.press("ArrowDown")  # All sources -> radio1
        for _ in range(6):  # through the last day's fields (day, month, year) to Show
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "Show":
                break
        assert page.evaluate("document.activeElement.textContent") == "Show"
        page.keyboard.press("Enter")
        page.wait_for_url("**/coverage?**")
        assert page.locator("section.source h2").all_text_contents() == ["radio1"]
        assert axe_violations(page) == []


def test_a_phone_screen(served: Served) -> None:
    with chromium(viewport={"width": 390, "height": 844}) as browser:
        page = browser.new_page()
        page.goto(served.url + "/coverage")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width
        assert axe_violations(page) == []
