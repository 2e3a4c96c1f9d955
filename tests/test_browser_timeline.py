"""The timeline page in real headless Chromium, over a real recording.

The real recorder records a ``tone`` for about ten seconds, split every 3 s, so the
day holds several files. The recorder runs in Berlin time and the browser in New York
time with a British locale (24-hour time fields): the page must show and take times as
the recorder's clock showed them. Every moment a test asks for is chosen from what the
API says of the files (their starts and ends), never from when the test ran, so no
verdict depends on where a second, a split or midnight fell.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import pytest

from tests.support.archive import Archive, local
from tests.support.browser import ARTIFACTS, axe_violations, chromium, web_process
from tests.support.recorder import RecorderProcess, wait_for
from tests.support.tools import require_tool

SERVER_ZONE = "Europe/Berlin"
BROWSER = {"locale": "en-GB", "timezone_id": "America/New_York"}
PHONE = {"width": 390, "height": 844}
CONFIG = (
    "[general]\nsplit_minutes = 0.05\nlog_file =\n"
    "[tone]\ntype = tone\nsample_rate = 8000\nchannels = 1\nfrequency = 440\n"
)
RATE = 8000
LONG_NAME = "a_very_long_station_name_with_underscores/20261124_140000_morning_show_part_two.wav"
TZ = ZoneInfo(SERVER_ZONE)


@dataclass(frozen=True)
class Segment:
    file: str
    start: float
    end: float


@dataclass(frozen=True)
class Recorded:
    root: Path
    url: str
    segments: list[Segment]


def _instant(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _wall(t: float) -> datetime:
    return datetime.fromtimestamp(t, TZ)


def _hms(t: float) -> str:
    return _wall(t).strftime("%H:%M:%S")


def _day(t: float) -> str:
    return _wall(t).date().isoformat()


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def _segments(url: str, source: str) -> list[Segment]:
    src = next(s for s in _get_json(url + "/api/sources")["sources"] if s["name"] == source)
    first = quote(src["first"])
    last = quote((datetime.fromisoformat(src["last"]) + timedelta(seconds=1)).isoformat())
    tl = _get_json(f"{url}/api/timeline?source={source}&from={first}&to={last}")
    return [Segment(s["file"], _instant(s["start"]), _instant(s["end"])) for s in tl["segments"]]


def _closed_files(root: Path) -> int:
    n = 0
    for sidecar in root.rglob("*.wav.json"):
        if json.loads(sidecar.read_text()).get("end"):
            n += 1
    return n


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """~10 s of tone in files of 3 s (recorder stopped), and ``isr web`` over them."""
    base = tmp_path_factory.mktemp("timeline")
    root = base / "recordings"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", SERVER_ZONE)
        with RecorderProcess(base, CONFIG) as rec:
            rec.wait_recording("tone")
            if not wait_for(lambda: _closed_files(root) >= 4, timeout=30):
                rec.stop()
                pytest.fail(f"fewer than four files closed:\n{rec.output}")
            assert rec.stop() == 0, rec.output
        # A file without a sidecar (under no source), for the file list on a phone.
        some = next(root.rglob("*.wav"))
        (root / LONG_NAME).parent.mkdir(parents=True)
        (root / LONG_NAME).write_bytes(some.read_bytes())
        with web_process(base, root) as url:
            yield Recorded(root, url, _segments(url, "tone"))


def _boundary(segments: list[Segment]) -> tuple[int, Segment, Segment]:
    """A whole second ``T`` one second before the end of a file ``a`` that the next,
    ``b``, continues without a gap, with T and T + 3 s on the same local day and
    inside ``a`` and ``b``: where the test plays from and what it exports."""
    for a, b in itertools.pairwise(segments):
        t = math.floor(a.end) - 1
        if (
            abs(b.start - a.end) < 0.01
            and t >= a.start
            and b.end - a.end >= 2.5
            and _day(t) == _day(t + 3)
        ):
            return t, a, b
    raise AssertionError(f"no two contiguous files to cross: {segments}")


def _errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _open(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function(
        "() => /^(Recorded|Nothing)/.test(document.getElementById('summary').textContent)"
    )


def _wait_day(page: Any, day: str) -> None:
    page.wait_for_function(
        "(d) => document.getElementById('bar').dataset.day === d && "
        "!document.getElementById('timeline').hasAttribute('aria-busy')",
        arg=day,
    )


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _clock_seconds(text: str) -> int:
    h, m, s = (int(x) for x in text.split(":"))
    return h * 3600 + m * 60 + s


def _seconds_of_day(t: float) -> float:
    w = _wall(t)
    return w.hour * 3600 + w.minute * 60 + w.second + w.microsecond / 1e6


def _playing(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        "() => { const p = document.getElementById('player'); return {ct: p.currentTime, "
        "paused: p.paused, ended: p.ended, src: p.src, "
        "shown: document.getElementById('hearing').textContent}; }"
    )
    return state


def _from_param(src: str) -> str:
    return parse_qs(urlsplit(src).query)["from"][0]


def _manifest(url: str, src: str) -> dict[str, Any]:
    manifest: dict[str, Any] = _get_json(url + "/api/clip.json?" + urlsplit(src).query)
    return manifest


def _wait_playing(page: Any, past: float = 0.2) -> None:
    page.wait_for_function(
        "(t) => { const p = document.getElementById('player'); "
        "return !p.paused && p.currentTime > t; }",
        arg=past,
        timeout=15_000,
    )


def _assert_clock_agrees(state: dict[str, Any], start: float) -> None:
    """The shown wall-clock time is the clip's start plus the position, as a clock
    shows it: the whole second, updated each frame (a frame late at most)."""
    heard = _seconds_of_day(start + state["ct"])
    shown = _clock_seconds(state["shown"])
    assert -0.1 <= heard - shown < 1.1, (state, _hms(start + state["ct"]))


WATCH = """() => {
  const p = document.getElementById('player');
  window.watch = {events: [], samples: [], src: p.src};
  for (const e of ['pause', 'ended', 'emptied', 'abort', 'error', 'waiting', 'stalled']) {
    p.addEventListener(e, () => window.watch.events.push(e));
  }
  window.setInterval(() => window.watch.samples.push([performance.now(), p.currentTime]), 100);
}"""


def _ffprobe_seconds(path: Path) -> float:
    out = subprocess.run(
        [
            require_tool("ffprobe"),
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip())


def test_play_from_a_moment_across_files_and_export_a_span(
    recorded: Recorded, tmp_path: Path
) -> None:
    t, a, b = _boundary(recorded.segments)
    day = _day(t)
    with chromium(**BROWSER) as browser:
        page = browser.new_page()
        errors = _errors(page)
        _open(page, recorded.url + "/timeline")
        assert page.locator("#source").input_value() == "tone"
        # Pick the day and a time, and press play.
        page.locator("#day").fill(day)
        _wait_day(page, day)
        page.locator("#at").fill(_hms(t))
        page.locator("#play").click()
        _wait_playing(page)
        page.evaluate(WATCH)
        state = _playing(page)
        # One clip of the timeline, asked from that moment; it starts there.
        assert urlsplit(state["src"]).path == "/api/clip"
        assert _from_param(state["src"]) == f"{day}T{_hms(t)}"
        manifest = _manifest(recorded.url, state["src"])
        start = _instant(manifest["start"])
        assert abs(start - t) < 1.0, manifest
        assert abs(_instant(manifest["parts"][0]["start"]) - start) < 1e-3
        _assert_clock_agrees(state, start)
        assert page.locator("#live").text_content() == f"Playing tone from {_hms(start)}."

        # It plays on past the end of file a into file b: same clip, no stop, no jump.
        # ...and its clock, a whole second drawn each frame, shows a time past it (it
        # may draw a frame after currentTime moves: the wait is for both).
        page.wait_for_function(
            """([t, end]) => {
              const [h, m, s] = document.getElementById('hearing').textContent.split(':');
              const past = (((+h * 3600 + +m * 60 + +s - end) % 86400) + 86400) % 86400;
              return document.getElementById('player').currentTime > t && past > 0
                && past < 43200;
            }""",
            arg=[a.end - start + 1.0, _seconds_of_day(a.end)],
            timeout=20_000,
        )
        state = _playing(page)
        watch = page.evaluate("window.watch")
        assert not state["paused"] and not state["ended"], state
        assert state["src"] == watch["src"]
        assert not {"pause", "ended", "emptied", "abort", "error"} & set(watch["events"]), watch
        samples = watch["samples"]
        for (t0, p0), (t1, p1) in itertools.pairwise(samples):
            assert p1 >= p0, samples  # never back
            assert p1 - p0 <= (t1 - t0) / 1000 + 0.5, samples  # never a jump ahead
        _assert_clock_agrees(state, start)
        past = (_clock_seconds(state["shown"]) - _seconds_of_day(a.end)) % 86400
        assert 0 < past < 43200, (state, a)
        assert page.locator("#bar line.playhead").get_attribute("visibility") == "visible"
        page.evaluate("document.getElementById('player').pause()")

        # Clicking the bar plays from the moment under the pointer.
        page.locator("#zoom").select_option("2m")
        view = page.evaluate(
            "() => { const b = document.getElementById('bar'); "
            "return [+b.dataset.viewStart / 1000, +b.dataset.viewEnd / 1000]; }"
        )
        box = page.locator("#bar").bounding_box()

        def x_of(when: float) -> float:
            return float(box["x"] + box["width"] * (when - view[0]) / (view[1] - view[0]))

        y = box["y"] + 30
        page.mouse.click(x_of(t + 0.5), y)
        page.wait_for_function(
            "(s) => document.getElementById('player').src !== s", arg=state["src"]
        )
        _wait_playing(page, 0.1)
        clicked = _playing(page)
        asked = _instant(_from_param(clicked["src"]))
        assert abs(asked - (t + 0.5)) < 1.0, (_from_param(clicked["src"]), _hms(t))
        assert abs(_instant(_manifest(recorded.url, clicked["src"])["start"]) - asked) < 1.0
        page.evaluate("document.getElementById('player').pause()")

        # Dragging along the bar chooses a span.
        page.mouse.move(x_of(t), y)
        page.mouse.down()
        page.mouse.move(x_of(t + 1.5), y, steps=4)
        page.mouse.move(x_of(t + 3), y, steps=4)
        page.mouse.up()
        got = [_clock_seconds(page.locator(f).input_value()) for f in ("#span-from", "#span-to")]
        want = [_seconds_of_day(t), _seconds_of_day(t + 3)]
        assert all(abs(g - w) <= 1 for g, w in zip(got, want, strict=True)), (got, want)
        assert float(page.locator("#bar rect.selection").get_attribute("width") or 0) > 2

        # Typed exactly, the span is exported with its manifest.
        page.locator("#span-from").fill(_hms(t))
        page.locator("#span-to").fill(_hms(t + 3))
        page.wait_for_function(
            "() => document.getElementById('span-info').textContent.includes('the clip holds')"
        )
        info = page.locator("#span-info").text_content() or ""
        assert "in 2 files" in info, info
        _shot(page, "timeline-exported")
        with page.expect_download() as dl:
            page.locator("#export-clip").click()
        clip = tmp_path / dl.value.suggested_filename
        dl.value.save_as(clip)
        assert clip.name.startswith("tone_") and clip.suffix == ".wav", clip.name
        assert abs(_ffprobe_seconds(clip) - 3.0) <= 2 / RATE, _ffprobe_seconds(clip)
        with page.expect_download() as dl:
            page.locator("#export-manifest").click()
        manifest = json.loads(Path(dl.value.path()).read_text())
        assert abs(_instant(manifest["start"]) - t) < 1 / RATE
        assert abs(_instant(manifest["end"]) - (t + 3)) < 1 / RATE
        assert [p["file"] for p in manifest["parts"]] == [a.file, b.file]
        assert errors == [], errors


def _tab_to(page: Any, element_id: str, key: str = "Tab", limit: int = 40) -> None:
    for _ in range(limit):
        page.keyboard.press(key)
        if page.evaluate("document.activeElement.id") == element_id:
            return
    pytest.fail(f"{key} never reached #{element_id}")


def _type_time(page: Any, element_id: str, t: float) -> None:
    """Into a focused 24-hour time field: hours, minutes, seconds, digits only."""
    assert page.evaluate("document.activeElement.id") == element_id
    page.keyboard.type(_hms(t).replace(":", ""))
    assert page.locator("#" + element_id).input_value() == _hms(t)


def test_keyboard_only_and_axe(recorded: Recorded, tmp_path: Path) -> None:
    t, _, _ = _boundary(recorded.segments)
    day = _day(t)
    first = recorded.segments[0].start
    with chromium(**BROWSER) as browser:
        page = browser.new_page()
        errors = _errors(page)
        _open(page, f"{recorded.url}/timeline?day={day}")
        violations = axe_violations(page)
        assert violations == [], json.dumps(violations, indent=1)[:3000]
        summary = page.locator("#summary").text_content() or ""
        assert summary.startswith("Recorded 1"), summary  # ~10 s
        assert "; 0 gaps." in summary, summary

        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        _tab_to(page, "bar")
        bar = page.locator("#bar")
        assert bar.get_attribute("role") == "slider"
        steps = [
            ("Home", "00:00:00"),
            ("ArrowRight", "00:01:00"),
            ("PageUp", "00:11:00"),
            ("ArrowUp", "00:12:00"),
            ("PageDown", "00:02:00"),
            ("ArrowLeft", "00:01:00"),
            ("ArrowDown", "00:00:00"),
            ("End", "23:59:59"),
        ]
        for key, shown in steps:
            page.keyboard.press(key)
            assert bar.get_attribute("aria-valuetext") == shown, key
        assert bar.get_attribute("aria-valuenow") == str(_day_seconds(day) - 1)

        # A time typed in the field moves the bar's cursor; Enter plays from it.
        _tab_to(page, "at")
        _type_time(page, "at", t)
        assert bar.get_attribute("aria-valuetext") == _hms(t)
        page.keyboard.press("Enter")
        _wait_playing(page)
        state = _playing(page)
        assert _from_param(state["src"]) == f"{day}T{_hms(t)}"
        _assert_clock_agrees(state, _instant(_manifest(recorded.url, state["src"])["start"]))

        # Back on the bar: a minute earlier is before the recording started, so Enter
        # plays from its first moment, and says so.
        _tab_to(page, "bar", key="Shift+Tab")
        page.keyboard.press("ArrowLeft")
        assert bar.get_attribute("aria-valuetext") == _hms(t - 60)
        page.keyboard.press("Enter")
        page.wait_for_function(
            "(s) => document.getElementById('player').src !== s", arg=state["src"]
        )
        _wait_playing(page, 0.1)
        state = _playing(page)
        start = _instant(_manifest(recorded.url, state["src"])["start"])
        assert abs(start - first) < 1e-3, (_hms(start), _hms(first))
        page.wait_for_function(
            "(s) => document.getElementById('live').textContent.includes(s)",
            arg=f"playing from {_hms(first)}, the next recording",
        )
        _assert_clock_agrees(state, start)
        page.evaluate("document.getElementById('player').pause()")

        # Export by keyboard: two times typed, then Enter on the link.
        _tab_to(page, "span-from")
        _type_time(page, "span-from", t)
        _tab_to(page, "span-to")
        _type_time(page, "span-to", t + 3)
        page.wait_for_function(
            "() => document.getElementById('span-info').textContent.includes('the clip holds')"
        )
        _tab_to(page, "export-clip")
        with page.expect_download() as dl:
            page.keyboard.press("Enter")
        clip = tmp_path / "clip.wav"
        dl.value.save_as(clip)
        assert abs(_ffprobe_seconds(clip) - 3.0) <= 2 / RATE

        # The gaps and titles list opens from the keyboard too.
        page.locator("#details summary").focus()
        page.keyboard.press("Enter")
        assert page.locator("#details").get_attribute("open") is not None
        assert page.locator("#gap-list").text_content() == "No gaps."
        violations = axe_violations(page)  # with a clip loaded, a span chosen and the list open
        assert violations == [], json.dumps(violations, indent=1)[:3000]
        _shot(page, "timeline-keyboard")
        assert errors == [], errors


def _day_seconds(day: str) -> int:
    d = datetime.fromisoformat(day).date()
    a = datetime(d.year, d.month, d.day, tzinfo=TZ)
    b = a + timedelta(days=1)
    return round(b.timestamp() - a.timestamp())


OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [];
  for (const e of document.querySelectorAll('body *')) {
    if (e.closest('.visually-hidden, thead, [hidden]')) continue;  // clipped on purpose
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > width + 0.5) wide.push(`${e.tagName}.${e.className}#${e.id}: ${r.right}`);
  }
  return {width: width, scrollWidth: document.documentElement.scrollWidth, wide: wide};
}"""

BREAKS = """() => {
  // For each name: where its lines break, as the character before each break.
  const out = [];
  for (const cell of document.querySelectorAll('th.name')) {
    const chars = [];
    for (const part of cell.querySelectorAll('.folder, .base')) {
      const walker = document.createTreeWalker(part, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        for (let i = 0; i < n.data.length; i++) {
          const r = document.createRange();
          r.setStart(n, i);
          r.setEnd(n, i + 1);
          const rect = r.getClientRects()[0];
          if (rect) chars.push([n.data[i], rect.top]);
        }
      }
    }
    const breaks = [];
    for (let i = 1; i < chars.length; i++) {
      if (chars[i][1] > chars[i - 1][1] + 2) breaks.push(chars[i - 1][0]);
    }
    out.push({name: chars.map((c) => c[0]).join(''), breaks: breaks,
              fits: cell.scrollWidth <= cell.clientWidth});
  }
  return out;
}"""


def _assert_fits(page: Any) -> None:
    got = page.evaluate(OVERFLOW)
    assert got["scrollWidth"] <= got["width"] and not got["wide"], got


def test_a_phone_screen(recorded: Recorded) -> None:
    t, _, _ = _boundary(recorded.segments)
    with chromium(viewport=PHONE, is_mobile=True, has_touch=True, **BROWSER) as browser:
        page = browser.new_page()
        errors = _errors(page)
        _open(page, f"{recorded.url}/timeline?day={_day(t)}")
        assert page.evaluate("innerWidth") == PHONE["width"]
        _assert_fits(page)
        page.locator("#details summary").click()
        page.locator("#span-from").fill(_hms(t))
        page.locator("#span-to").fill(_hms(t + 3))
        page.wait_for_function(
            "() => document.getElementById('span-info').textContent.includes('the clip holds')"
        )
        # A tap on the bar, on the recording, plays. (Not the bar's middle: noon has
        # a recording after it only when the test runs in the afternoon.)
        view = page.evaluate(
            "() => { const b = document.getElementById('bar'); "
            "return [+b.dataset.viewStart / 1000, +b.dataset.viewEnd / 1000]; }"
        )
        box = page.locator("#bar").bounding_box()
        x = box["x"] + box["width"] * (t + 0.5 - view[0]) / (view[1] - view[0])
        page.touchscreen.tap(x, box["y"] + 30)
        page.wait_for_function("() => document.getElementById('player').src !== ''")
        _assert_fits(page)
        assert axe_violations(page) == []
        _shot(page, "timeline-phone")

        # The file list: cards, names wrapping only after / _ -, actions on screen.
        page.goto(recorded.url + "/")
        page.locator("tr.file").first.wait_for()
        _assert_fits(page)
        names = page.evaluate(BREAKS)
        assert len(names) == len(recorded.segments) + 1, names
        for n in names:
            assert n["fits"] and set(n["breaks"]) <= set("/_-"), n
        long = next(n for n in names if n["name"] == LONG_NAME)
        assert len(long["breaks"]) >= 2, long  # it does wrap, and between words
        for row in page.locator("tr.file").all():
            for button in row.locator("td.actions > *").all():
                bb = button.bounding_box()
                assert bb is not None and bb["x"] >= 0 and bb["x"] + bb["width"] <= PHONE["width"]
        # A player opened in a card stays on the screen.
        page.locator("tr.file button.play").first.click()
        page.locator("tr.detail:not([hidden]) audio").wait_for()
        _assert_fits(page)
        assert [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")] == []
        _shot(page, "files-phone")
        assert errors == [], errors


def test_a_source_still_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The "now" mark on the bar; playing from near it goes on past the end of the first clip
    (the page asks for the next one) while the recorder keeps writing."""
    monkeypatch.setenv("TZ", SERVER_ZONE)
    root = tmp_path / "recordings"
    with RecorderProcess(tmp_path, CONFIG) as rec:
        rec.wait_recording("tone")
        assert wait_for(lambda: _closed_files(root) >= 1, timeout=20), rec.output
        with web_process(tmp_path, root) as url, chromium(**BROWSER) as browser:
            page = browser.new_page()
            errors = _errors(page)
            _open(page, url + "/timeline")
            summary = page.locator("#summary").text_content() or ""
            assert "now (still recording)" in summary, summary
            assert page.locator("#bar line.now").count() == 1
            assert page.locator("#bar text.now-label").text_content() == "now"
            assert page.locator("#source option").first.text_content() == "tone (recording)"
            # From two seconds before what the page knows was recorded.
            segments = _segments(url, "tone")
            known = segments[-1].end
            page.locator("#at").fill(_hms(math.floor(known) - 2))
            page.locator("#play").click()
            _wait_playing(page)
            first_src = _playing(page)["src"]
            first_end = _instant(_manifest(url, first_src)["end"])
            page.wait_for_function(
                "(s) => document.getElementById('player').src !== s", arg=first_src, timeout=20_000
            )
            _wait_playing(page, 0.5)
            state = _playing(page)
            start = _instant(_manifest(url, state["src"])["start"])
            assert abs(start - first_end) < 0.5, (_hms(start), _hms(first_end))
            _assert_clock_agrees(state, start)
            assert errors == [], errors
        assert rec.stop() == 0, rec.output


ODD = 'Radio "1" ü %41 & co'


@pytest.fixture
def days(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An archive the recorder's own segmenter wrote (no real time): radio1 on
    2026-11-24 from 13:00 to 15:00 with a title and a reconnect at 14:00 (4 s lost);
    on 2026-10-25, the day Berlin's clocks go back (25 hours), from 01:00 for 3 hours;
    a source with an odd name."""
    monkeypatch.setenv("TZ", SERVER_ZONE)
    root = tmp_path / "recordings"
    root.mkdir()
    a = Archive(root, TZ)
    a.record("radio1", local("2026-10-25T01:00", TZ), 3 * 3600)
    a.record("radio1", local("2026-11-24T13:00", TZ), 3600, titles={5: "Artist - Song"})
    a.record("radio1", local("2026-11-24T14:00:04", TZ), 3596, cause="connection reset")
    a.record(ODD, local("2026-11-24T09:00", TZ), 60)
    a.close()
    yield root


def test_a_day_in_words_a_long_day_and_an_odd_name(days: Path, tmp_path: Path) -> None:
    with web_process(tmp_path, days) as url, chromium(**BROWSER) as browser:
        page = browser.new_page()
        errors = _errors(page)
        _open(page, url + "/timeline?source=radio1&day=2026-11-24")
        # The month since the last recording is a gap too, dated as it began.
        assert page.locator("#summary").text_content() == (
            "Recorded 1 h 59 min, 13:00:00 to 15:00:00; 2 gaps: "
            "2026-10-25 03:00:00 30 d 10 h the recorder was not running; "
            "14:00:00 4 s connection reset; 1 title."
        )
        assert page.locator("#bar").get_attribute("aria-describedby") == "summary bar-help"
        assert page.locator("#gap-list li").all_text_contents() == [
            "2026-10-25 03:00:00 play from where the recording resumed 30 d 10 h, "
            "the recorder was not running",
            "14:00:00 play from 5 seconds before this gap 4 s, connection reset",
        ]
        assert page.locator("#title-list li").all_text_contents() == [
            "13:00:05 play from this title Artist - Song"
        ]
        assert page.locator("#bar rect.rec").count() == 2  # the gap parts them
        assert page.locator("#bar line.gap-mark title").last.text_content() == (
            "Gap at 14:00:00, 4 s: connection reset"
        )
        assert page.locator("#bar line.title-mark title").text_content() == (
            "13:00:05 Artist - Song"
        )
        assert page.locator("#bar line.now").count() == 0  # nothing is recording
        # Drawn where the recorder's clock puts it (the browser is in New York).
        box = page.locator("#bar rect.rec").first.bounding_box()
        bar = page.locator("#bar").bounding_box()
        assert abs((box["x"] - bar["x"]) / bar["width"] - 13 / 24) < 0.002, (box, bar)
        assert axe_violations(page) == []

        # The day the clocks go back has 25 hours; the bar and its keys know it.
        page.locator("#day").fill("2026-10-25")
        _wait_day(page, "2026-10-25")
        assert page.locator("#summary").text_content() == (
            "Recorded 3 h, 01:00:00 to 03:00:00; "
            "1 gap: 03:00:00 30 d 10 h the recorder was not running."
        )
        slider = page.locator("#bar")
        assert slider.get_attribute("aria-valuemax") == "90000"
        slider.focus()
        page.keyboard.press("Home")
        for _ in range(18):
            page.keyboard.press("PageUp")
        assert slider.get_attribute("aria-valuenow") == "10800"
        assert slider.get_attribute("aria-valuetext") == "02:00:00"  # the second 02:00
        page.keyboard.press("End")
        assert slider.get_attribute("aria-valuetext") == "23:59:59"
        assert slider.get_attribute("aria-valuenow") == "89999"

        # A source whose name needs escaping everywhere.
        page.locator("#source").select_option(ODD)
        page.locator("#day").fill("2026-11-24")
        _wait_day(page, "2026-11-24")
        page.wait_for_function(
            "(s) => document.getElementById('day-h').textContent.startsWith(s)", arg=ODD
        )
        assert page.locator("#summary").text_content() == (
            "Recorded 1 min, 09:00:00 to 09:01:00; 0 gaps."
        )
        assert parse_qs(urlsplit(page.url).query)["source"] == [ODD]
        page.locator("#span-from").fill("09:00:10")
        page.locator("#span-to").fill("09:00:20")
        href = page.locator("#export-manifest").get_attribute("href") or ""
        assert parse_qs(urlsplit(href).query)["source"] == [ODD], href
        # (The archive's frames are placeholders no cutter takes: the clip is 404.)
        page.wait_for_function(
            "() => !document.getElementById('span-info').textContent.endsWith('…')"
        )
        assert page.locator("#span-info").text_content() == (
            "09:00:10 to 09:00:20 (10 s): nothing was recorded in this span."
        )
        assert [e for e in errors if "status of 404" not in e] == [], errors


def _wav_with_sidecar(root: Path, source: str, start: datetime, seconds: int) -> None:
    """A 440 Hz tone WAV and the sidecar the recorder would write for it."""
    name = f"{source}/{start:%Y%m%d_%H%M%S}.wav"
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    n = seconds * RATE
    samples = bytearray()
    for i in range(n):
        samples += int(8000 * math.sin(2 * math.pi * 440 * i / RATE)).to_bytes(
            2, "little", signed=True
        )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(samples))
    end = start + timedelta(seconds=seconds)
    sidecar = {
        "source": source,
        "file": path.name,
        "format": "wav",
        "start": start.isoformat(timespec="milliseconds"),
        "end": end.isoformat(timespec="milliseconds"),
        "titles": [],
        "gaps": [],
    }
    path.with_name(path.name + ".json").write_text(json.dumps(sidecar))


def test_playing_goes_on_into_the_next_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clip ends at midnight; the page turns to the next day and plays on from there."""
    monkeypatch.setenv("TZ", SERVER_ZONE)
    root = tmp_path / "recordings"
    _wav_with_sidecar(root, "tone", datetime(2026, 11, 24, 23, 59, 56, tzinfo=TZ), 4)
    _wav_with_sidecar(root, "tone", datetime(2026, 11, 25, 0, 0, 0, tzinfo=TZ), 4)
    with web_process(tmp_path, root) as url, chromium(**BROWSER) as browser:
        page = browser.new_page()
        errors = _errors(page)
        _open(page, url + "/timeline?source=tone&day=2026-11-24")
        page.locator("#at").fill("23:59:58")
        page.locator("#play").click()
        _wait_playing(page, 0.1)
        first = _playing(page)["src"]
        assert _from_param(first) == "2026-11-24T23:59:58"
        page.wait_for_function(
            "(s) => document.getElementById('player').src !== s", arg=first, timeout=20_000
        )
        _wait_day(page, "2026-11-25")
        _wait_playing(page, 0.5)
        state = _playing(page)
        assert _instant(_from_param(state["src"])) == _instant("2026-11-25T00:00:00+01:00")
        _assert_clock_agrees(state, _instant(_manifest(url, state["src"])["start"]))
        assert page.locator("#day").input_value() == "2026-11-25"
        assert errors == [], errors
