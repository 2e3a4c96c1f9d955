"""The listing cache: scan once, rescan only directories whose mtime changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from isr.web.files import FileIndex


def _touch(path: Path, mtime: float, data: bytes = b"") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def _age(*dirs: Path, seconds: float = 100.0) -> None:
    """Make directories look long unchanged (a fresh mtime is rescanned, see RACY_NS)."""
    t = time.time() - seconds
    for d in dirs:
        os.utime(d, (t, t))


def _names(index: FileIndex, **kw: object) -> list[str]:
    _total, page, _ = index.query(hot=set(), **kw)  # type: ignore[arg-type]
    return [e.name for e in page]


def test_cache_rescans_only_changed_directories(tmp_path: Path) -> None:
    for s in range(3):
        for h in range(5):
            _touch(tmp_path / f"s{s}" / f"2026010{h}_000000.mp3", 1000 + s * 10 + h)
    _touch(tmp_path / "s0" / "x.mp3.json", 5000)
    _touch(tmp_path / ".isr" / "status.mp3", 9000)
    _age(tmp_path, *(tmp_path / f"s{s}" for s in range(3)))
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
    _age(tmp_path)
    index = FileIndex(tmp_path)
    assert _names(index) == ["b.mp3", "a.mp3"]
    # a.mp3 grows without its directory changing
    dir_mtime = os.stat(tmp_path).st_mtime_ns
    _touch(tmp_path / "a.mp3", 3000, b"12345")
    os.utime(tmp_path, ns=(dir_mtime, dir_mtime))
    scans = index.scans
    _total, page, _ = index.query(hot={"a.mp3"})
    assert [(e.name, e.size) for e in page] == [("a.mp3", 5), ("b.mp3", 1)]
    assert index.scans == scans  # re-statted, not rescanned


def test_paging_and_filter(tmp_path: Path) -> None:
    for i in range(25):
        _touch(tmp_path / f"f{i:02d}.mp3", 1000 + i)
    index = FileIndex(tmp_path)
    total, page, _ = index.query(hot=set(), offset=20, limit=10)
    assert total == 25 and [e.name for e in page] == [f"f{i:02d}.mp3" for i in range(4, -1, -1)]
    total, page, _ = index.query(hot=set(), q="F1")
    assert total == 10
    (tmp_path / "f10.mp3").unlink()
    index.forget("f10.mp3")
    total, _, _ = index.query(hot=set(), q="f1")
    assert total == 9


def test_a_directory_changed_within_its_mtime_granularity_is_rescanned(tmp_path: Path) -> None:
    """A coarse mtime (FAT: 2 s; ext4: a jiffy) may not move for a change made just
    after a scan: a directory modified shortly before its scan is not trusted yet."""
    _touch(tmp_path / "a.mp3", 1000)
    index = FileIndex(tmp_path)
    assert _names(index) == ["a.mp3"]
    same = os.stat(tmp_path).st_mtime_ns
    _touch(tmp_path / "b.mp3", 2000)
    (tmp_path / "a.mp3").unlink()
    os.utime(tmp_path, ns=(same, same))  # the same tick: the mtime did not move
    assert _names(index) == ["b.mp3"]
    _age(tmp_path)
    assert _names(index) == ["b.mp3"]
    scans = index.scans
    assert _names(index) == ["b.mp3"]
    assert index.scans == scans  # once old enough, trusted again


def test_rows_deleted_behind_an_unchanged_directory_mtime_are_not_shown(tmp_path: Path) -> None:
    """Retention deletes files itself; a directory mtime that did not move (NFS caching
    attributes, a coarse clock) must not keep them on the page."""
    for i in range(5):
        _touch(tmp_path / f"f{i}.mp3", 1000 + i)
    _age(tmp_path)
    index = FileIndex(tmp_path)
    assert _names(index, limit=2) == ["f4.mp3", "f3.mp3"]
    old = os.stat(tmp_path).st_mtime_ns
    (tmp_path / "f4.mp3").unlink()
    (tmp_path / "f2.mp3").unlink()
    os.utime(tmp_path, ns=(old, old))
    total, page, _ = index.query(hot=set(), limit=2)
    assert [e.name for e in page] == ["f3.mp3", "f1.mp3"]
    assert total == 3
    # a hot file that vanished (the recorder's retention raced it) goes too
    (tmp_path / "f3.mp3").unlink()
    os.utime(tmp_path, ns=(old, old))
    assert _names(index, limit=2) == ["f1.mp3", "f0.mp3"]


def test_names_that_are_not_utf8_are_left_out(tmp_path: Path) -> None:
    _touch(tmp_path / "ok é #1?.mp3", 1000)
    os.close(
        os.open(os.path.join(os.fsencode(tmp_path), b"bad-\xff.mp3"), os.O_CREAT | os.O_WRONLY)
    )
    (tmp_path / "sub").mkdir()
    os.mkdir(os.path.join(os.fsencode(tmp_path), b"dir-\xfe"))
    os.close(
        os.open(
            os.path.join(os.fsencode(tmp_path), b"dir-\xfe", b"x.mp3"), os.O_CREAT | os.O_WRONLY
        )
    )
    index = FileIndex(tmp_path)
    assert _names(index) == ["ok é #1?.mp3"]


def test_a_few_changes_move_only_their_entries_and_the_order_stays_right(
    tmp_path: Path,
) -> None:
    """Files that come, go, grow and get sidecars, a few at a time among many: the
    listing (moved entry by entry, not sorted again) equals a fresh scan's, always."""
    import random

    rng = random.Random(14)
    names = [f"s{s}/f{i:03d}.mp3" for s in range(3) for i in range(60)]
    for i, n in enumerate(names[:150]):
        _touch(tmp_path / n, 1000 + i)
    index = FileIndex(tmp_path)
    index.query(hot=set(), limit=1000)

    def listing(ix: FileIndex) -> list[tuple[str, int, int, int | None]]:
        _total, page, _ = ix.query(hot=set(), limit=1000)
        return [(e.name, e.size, e.mtime_ns, e.sidecar_mtime_ns) for e in page]

    for step in range(40):
        for _ in range(rng.randint(1, 4)):
            n = rng.choice(names)
            p = tmp_path / n
            what = rng.random()
            if what < 0.3 and p.exists():
                p.unlink()
            elif what < 0.5 and p.exists():
                p.with_name(p.name + ".json").write_text("{}")
            else:
                _touch(p, 2000 + step * 10 + rng.random(), b"x" * rng.randint(0, 9))
        got = listing(index)
        assert got == listing(FileIndex(tmp_path)), step
        assert len(index._by_name) == len(got) == len(index._sorted)
