"""What the index keeps for coverage: each recording's check result, and timelines
without titles."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from zoneinfo import ZoneInfo

from isr.timeline.index import INDEX_FILE, SCHEMA_VERSION, TimelineIndex
from tests.support.archive import Archive, local

BERLIN = ZoneInfo("Europe/Berlin")


def _set_check(audio: Path, ok: bool) -> None:
    side = audio.with_name(audio.name + ".json")
    data = json.loads(side.read_text())
    data["check"] = {"ok": ok, "problems": [] if ok else ["byte 7: x"], "at": data["end"]}
    side.write_text(json.dumps(data))


def test_the_index_keeps_each_check_result(tmp_path: Path) -> None:
    a = Archive(tmp_path, BERLIN)
    a.record("radio1", local("2026-11-24T10:00", BERLIN), 3 * 3600, titles={5: "A"})
    a.close()
    files = sorted((tmp_path / "radio1").glob("*.mp3"))
    _set_check(files[0], True)
    _set_check(files[1], False)
    index = TimelineIndex(tmp_path, BERLIN)
    try:
        tl = index.timeline(
            "radio1", local("2026-11-24T00:00", BERLIN), local("2026-11-25T00:00", BERLIN)
        )
        assert [r.check_ok for r in tl.segments] == [True, False, None]
        assert tl.titles
        bare = index.timeline(
            "radio1",
            local("2026-11-24T00:00", BERLIN),
            local("2026-11-25T00:00", BERLIN),
            titles=False,
        )
        assert bare.titles == () and bare.segments == tl.segments and bare.gaps == tl.gaps
    finally:
        index.close()


def test_an_index_of_the_schema_before_is_rebuilt(tmp_path: Path) -> None:
    a = Archive(tmp_path, BERLIN)
    a.record("radio1", local("2026-11-24T10:00", BERLIN), 3600)
    a.close()
    (tmp_path / ".isr").mkdir(exist_ok=True)
    with sqlite3.connect(tmp_path / ".isr" / INDEX_FILE) as old:
        old.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        old.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION - 1),))
    old.close()
    index = TimelineIndex(tmp_path, BERLIN)
    try:
        index.refresh()
        assert index.builds == 1
        assert [s.name for s in index.sources()] == ["radio1"]
    finally:
        index.close()
