"""``isr verify`` against tampering: each case with its exact report line.

The archive is made in-process (tests/support/evidence.py: the real segmenter,
sinks, chain writer and checker); the crash cases with a real recorder process are
in tests/test_evidence_crash.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from datetime import UTC, date
from pathlib import Path

import pytest

from isr.cli import main
from isr.config import load
from isr.evidence import chain
from isr.evidence.keys import generate, load_signer
from isr.evidence.service import Evidence
from isr.evidence.verify import verify
from isr.keeper import Keeper
from isr.retention import Recording
from tests.support import evidence as ev

DAY = "2026-11-18"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive") / "recordings"
    key = root.parent / "keys" / "isr.key"
    generate(key)
    ev.record(root, sign=load_signer(key), day=DAY)
    return root


@pytest.fixture
def copy(archive: Path, tmp_path: Path) -> Path:
    """A copy of the archive (verify works on a copy, as on another machine)."""
    out = tmp_path / "recordings"
    shutil.copytree(archive, out)
    return out


def problems(root: Path, **kw: object) -> list[str]:
    return verify(root, **kw).problems  # type: ignore[arg-type]


def public_key(archive: Path) -> str:
    return (archive.parent / "keys" / "isr.key.pub").read_text().strip()


def test_the_archive_as_recorded_is_intact(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ev.lines(archive)
    events = [x["event"] for x in lines]
    assert events[0] == "started" and events[-2:] == ["day", "stopped"]
    closed = ev.closed_files(archive)
    assert len(closed) >= 3
    for _, line in closed:
        data = (archive / line["file"]).read_bytes()
        assert line["sha256"] == hashlib.sha256(data).hexdigest()
        assert line["bytes"] == len(data)
        side = json.loads((archive / (line["file"] + ".json")).read_text())
        assert side["sha256"] == line["sha256"] and side["check"]["ok"] is True
    assert not (archive / ".isr" / "checks").exists() or not list(
        (archive / ".isr" / "checks").iterdir()
    )
    report = verify(archive, public_key=public_key(archive))
    assert report.problems == []
    assert report.files == len(closed) and report.signed_days == 1
    assert main(["verify", "--dir", str(archive), "--key", public_key(archive)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"intact: 1 chain(s), {len(lines)} line(s), {len(closed)} file(s) re-hashed, "
        f"1 signed day(s), signed by {public_key(archive)}"
    ]


def test_one_byte_changed(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    n, line = ev.closed_files(copy)[1]
    path = copy / line["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    expected = (
        f"{line['file']} (chain radio line {n}): changed: {len(data)} bytes, SHA-256 {digest}; "
        f"the chain says {line['bytes']} bytes, {line['sha256']}"
    )
    assert problems(copy) == [expected]
    assert main(["verify", "--dir", str(copy)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == expected and out[1].startswith("1 problem(s): ")


def test_a_file_deleted_by_hand(copy: Path) -> None:
    n, line = ev.closed_files(copy)[0]
    (copy / line["file"]).unlink()
    assert problems(copy) == [
        f"{line['file']} (chain radio line {n}): missing, and no line says it was deleted"
    ]


def test_a_file_deleted_by_retention_is_no_problem(copy: Path) -> None:
    _, line = ev.closed_files(copy)[0]
    path = copy / line["file"]
    service = Evidence(copy, UTC)
    deleted: list[str] = []

    def on_delete(rec: Recording, why: str) -> None:
        deleted.append(rec.path.name)
        assert rec.source is not None
        service.deleted(rec.source, rec.path, rec.size, "retention", why)

    cfg = load(
        copy / "c.ini",
        text=f"[radio]\ntype = tone\noutput_directory = {copy}\nretention_days = 1\n",
    )
    keeper = Keeper(cfg, None, set, on_delete=on_delete)  # type: ignore[arg-type]
    os.utime(path, (ev.T0 - 3 * 86400, ev.T0 - 3 * 86400))
    keeper.sweep()
    service.chain.flush_now()
    assert deleted == [path.name] and not path.exists()
    last = ev.lines(copy)[-1]
    assert (last["event"], last["file"], last["by"], last["why"]) == (
        "deleted",
        line["file"],
        "retention",
        "older than retention_days",
    )
    assert problems(copy) == []


def test_a_file_added_by_hand(copy: Path) -> None:
    _, line = ev.closed_files(copy)[0]
    added = Path(line["file"]).with_name("20261118_000000.wav").as_posix()
    shutil.copyfile(copy / line["file"], copy / added)
    assert problems(copy) == [f"{added}: present, but no chain lists it"]


def _rewrite(root: Path, edit: Callable[[list[bytes]], list[bytes]]) -> list[bytes]:
    path = chain.chain_path(root, "radio")
    raws = edit(path.read_bytes().splitlines())
    path.write_bytes(b"".join(r + b"\n" for r in raws))
    return raws


def test_a_chain_line_edited(copy: Path) -> None:
    n, _ = ev.closed_files(copy)[1]

    def edit(raws: list[bytes]) -> list[bytes]:
        raws[n - 1] = raws[n - 1].replace(b'"end":"2026', b'"end":"2025')
        return raws

    _rewrite(copy, edit)
    assert problems(copy) == [
        f"chain radio line {n + 1}: its prev is not the SHA-256 of line {n} "
        f"(line {n} changed, or lines moved)"
    ]


def test_a_chain_line_removed(copy: Path) -> None:
    n, line = ev.closed_files(copy)[1]
    _rewrite(copy, lambda raws: raws[: n - 1] + raws[n:])
    assert problems(copy) == [
        f"chain radio line {n}: its prev is not the SHA-256 of line {n - 1} "
        f"(line {n - 1} changed, or lines moved)",
        f"{line['file']}: present, but no chain lists it",
    ]


def test_two_chain_lines_swapped(copy: Path) -> None:
    n, _ = ev.closed_files(copy)[0]
    _rewrite(copy, lambda raws: [*raws[: n - 1], raws[n], raws[n - 1], *raws[n + 1 :]])
    assert problems(copy) == [
        f"chain radio line {n}: its prev is not the SHA-256 of line {n - 1} "
        f"(line {n - 1} changed, or lines moved)",
        f"chain radio line {n + 1}: links to line {n - 1}, not to line {n} "
        "(lines moved or inserted)",
        f"chain radio line {n + 2}: links to line {n}, not to line {n + 1} "
        "(lines moved or inserted)",
    ]


def test_a_day_line_with_a_wrong_signature(copy: Path, archive: Path) -> None:
    n = next(i for i, x in enumerate(ev.lines(copy), 1) if x["event"] == "day")

    def edit(raws: list[bytes]) -> list[bytes]:
        obj = json.loads(raws[n - 1])
        sig = bytearray(base64.b64decode(obj["sig"]))
        sig[0] ^= 1
        obj["sig"] = base64.b64encode(bytes(sig)).decode()
        raws[n - 1] = chain.encode(obj)
        return raws

    _rewrite(copy, edit)
    assert problems(copy, public_key=public_key(archive)) == [
        f"chain radio line {n} (day {DAY}): bad signature",
        f"chain radio line {n + 1}: its prev is not the SHA-256 of line {n} "
        f"(line {n} changed, or lines moved)",
    ]


def test_a_day_line_signed_by_another_key(copy: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    generate(other)
    mine = (tmp_path / "other.key.pub").read_text().strip()
    n = next(i for i, x in enumerate(ev.lines(copy), 1) if x["event"] == "day")
    key = ev.lines(copy)[n - 1]["key"]
    assert problems(copy, public_key=mine) == [
        f"chain radio line {n} (day {DAY}): signed by another key ({key})"
    ]


def test_narrowed_by_source_and_days(copy: Path) -> None:
    _, line = ev.closed_files(copy)[0]
    (copy / line["file"]).unlink()
    assert problems(copy, first=date(2026, 11, 19)) == []
    assert problems(copy, sources=["other"]) == ["chain other: there is none"]
    assert len(problems(copy, sources=["radio"])) == 1


def test_keygen_writes_the_pair_and_prints_the_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "isr.ini"
    ini.write_text("[t]\ntype = tone\n[evidence]\nsigning_key = keys/isr.key\n")
    assert main(["keygen", "-c", str(ini)]) == 0
    public = capsys.readouterr().out.strip()
    key = tmp_path / "keys" / "isr.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "isr.key.pub").read_text().strip() == public
    assert len(base64.b64decode(public)) == 32
    assert main(["keygen", "-c", str(ini)]) == 1  # never over an existing key
    assert "exists already" in capsys.readouterr().err
    ini.write_text("[t]\ntype = tone\n")
    assert main(["keygen", "-c", str(ini)]) == 2
    assert "[evidence]: signing_key: not set" in capsys.readouterr().err


def test_a_file_deleted_through_the_web_ui_is_no_problem(copy: Path) -> None:
    from isr.evidence.deletions import basic_user, source_of, web_deleted

    _, line = ev.closed_files(copy)[1]
    path = copy / line["file"]
    source = source_of(path)
    size = path.stat().st_size
    path.unlink()
    path.with_name(path.name + ".json").unlink()
    user = basic_user("Basic " + base64.b64encode(b"alice:secret").decode())
    assert web_deleted(copy, line["file"], size, source, client="192.0.2.7", user=user)
    last = ev.lines(copy)[-1]
    assert {k: last[k] for k in ("event", "file", "bytes", "by", "why", "client", "user")} == {
        "event": "deleted",
        "file": line["file"],
        "bytes": size,
        "by": "web",
        "why": "deleted in the web UI",
        "client": "192.0.2.7",
        "user": "alice",
    }
    assert problems(copy) == []


def test_the_delete_route_appends_who_deleted_what(copy: Path) -> None:
    """DELETE /api/files/<name> through the real app, with Basic auth."""
    from aiohttp.test_utils import TestClient, TestServer

    from isr.web.app import create_app

    _, line = ev.closed_files(copy)[0]
    size = (copy / line["file"]).stat().st_size

    async def scenario() -> int:
        app = create_app(copy, username="alice", password="pw")
        async with TestClient(TestServer(app, host="127.0.0.1")) as c:
            auth = "Basic " + base64.b64encode(b"alice:pw").decode()
            r = await c.delete("/api/files/" + line["file"], headers={"Authorization": auth})
            return r.status

    assert asyncio.run(scenario()) == 204
    last = ev.lines(copy)[-1]
    assert (last["event"], last["file"], last["bytes"], last["by"]) == (
        "deleted",
        line["file"],
        size,
        "web",
    )
    assert (last["client"], last["user"], last["why"]) == (
        "127.0.0.1",
        "alice",
        "deleted in the web UI",
    )
    assert problems(copy) == []
