"""The listing cache: scan once, rescan only directories whose mtime changed."""

from __future__ import annotations

import os
from pathlib import Path

from isr.web.files import FileIndex


def _touch(path: Path, mtime: float, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def _names(index: FileIndex, **kw: object) -> list[str]:
    _total, page, _ = index.query(hot=set(), **kw)  # type: ignore[arg-type]
    return [e.name for e in page]


def test_cache_rescans_only_changed_directories(tmp_path: Path) -> None:
    for s in range(3):
        for h in range(5):
            _touch(tmp_path / f"s{s}" / f"2026010{h}_000000.mp3", 1000 + s * 10 + h)
    _touch(tmp_path / "s0" / "x.mp3.json", 5000)
    _touch(tmp_path / ".isr" / "status.mp3", 9000)
    index = FileIndex(tmp_path)
    assert len(_names(index, limit=100)) == 15
    assert index.scans == 4  # the root and three sources; .isr is never entered
    assert _names(index, limit=1) == ["s2/20260104_000000.mp3"]
    assert index.scans == 4  # nothing changed: no directory scanned again
    _touch(tmp_path / "s1" / "new.mp3", 2000)
    assert _names(index, limit=1) == ["s1/new.mp3"]
    assert index.scans == 5  # only s1
    (tmp_path / "s2" / "20260104_000000.mp3").unlink()
    assert "s2/20260104_000000.mp3" not in _names(index, limit=100)
    _touch(tmp_path / "s3" / "deep" / "a.wav", 3000)
    assert _names(index, limit=1) == ["s3/deep/a.wav"]
    total, _page, folders = index.query(hot=set(), folder="s3/deep")
    assert total == 1 and folders == ["s0", "s1", "s2", "s3/deep"]


def test_hot_files_are_restatted_and_reordered(tmp_path: Path) -> None:
    _touch(tmp_path / "a.mp3", 1000, b"1")
    _touch(tmp_path / "b.mp3", 2000, b"1")
    index = FileIndex(tmp_path)
    assert _names(index) == ["b.mp3", "a.mp3"]
    # a.mp3 grows without its directory changing
    _touch(tmp_path / "a.mp3", 3000, b"12345")
    dir_mtime = os.stat(tmp_path).st_mtime_ns
    os.utime(tmp_path, ns=(dir_mtime, dir_mtime))
    _total, page, _ = index.query(hot={"a.mp3"})
    assert [(e.name, e.size) for e in page] == [("a.mp3", 5), ("b.mp3", 1)]


def test_paging_and_filter(tmp_path: Path) -> None:
    for i in range(25):
        _touch(tmp_path / f"f{i:02d}.mp3", 1000 + i)
    index = FileIndex(tmp_path)
    total, page, _ = index.query(hot=set(), offset=20, limit=10)
    assert total == 25 and [e.name for e in page] == [f"f{i:02d}.mp3" for i in range(4, -1, -1)]
    total, page, _ = index.query(hot=set(), q="F1")
    assert total == 10
    index.forget("f10.mp3")
    total, _, _ = index.query(hot=set(), q="f1")
    assert total == 9
