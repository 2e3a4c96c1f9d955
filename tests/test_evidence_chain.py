"""The hash chain file: links, two writers at once, a torn last line."""

from __future__ import annotations

import errno
import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from isr.evidence import chain
from isr.evidence.service import ChainWriter
from isr.evidence.verify import Report, check_chain


def _append_many(path_text: str, who: str, n: int) -> None:
    path = Path(path_text)
    for i in range(n):
        chain.append(path, [chain.entry("deleted", file=f"{who}{i}", by=who)], source="s")


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in path.read_bytes().splitlines()]


def _problems(path: Path) -> list[str]:
    report = Report()
    check_chain("s", path, report, {})
    return report.problems


def test_lines_are_numbered_and_linked(tmp_path: Path) -> None:
    path = chain.chain_path(tmp_path, "a/b c")
    assert path.name == "a%2Fb%20c.jsonl"
    chain.append(path, [chain.entry("started"), chain.entry("stopped")], source="a/b c")
    chain.append(path, [chain.entry("started")], source="a/b c")
    raws = path.read_bytes().splitlines()
    objs = [json.loads(r) for r in raws]
    assert [o["seq"] for o in objs] == [1, 2, 3]
    assert objs[0]["prev"] is None
    assert objs[1]["prev"] == chain.line_hash(raws[0])
    assert objs[2]["prev"] == chain.line_hash(raws[1])
    assert list(objs[0])[:9] == list(chain.FIELDS)
    assert chain.chain_files(tmp_path) == {"a/b c": path}


def test_two_processes_append_at_once(tmp_path: Path) -> None:
    """The recorder and the web UI: flock around the append keeps every link."""
    path = chain.chain_path(tmp_path, "s")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 150)) for w in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = _lines(path)
    assert len(lines) == 300
    assert [x["seq"] for x in lines] == list(range(1, 301))
    assert _problems(path) == []


def test_a_torn_last_line_is_ended_and_the_chain_goes_on(tmp_path: Path) -> None:
    path = chain.chain_path(tmp_path, "s")
    chain.append(path, [chain.entry("started"), chain.entry("closed", file="x")], source="s")
    data = path.read_bytes()
    torn = data[: len(data) - 20]  # a power cut in the middle of the last line
    path.write_bytes(torn)
    assert _problems(path) == ["chain s line 2: torn (cut short by a crash), the last line"]
    chain.append(path, [chain.entry("started")], source="s")
    raws = path.read_bytes().splitlines()
    assert len(raws) == 3
    after = json.loads(raws[2])
    assert after["seq"] == 2  # after the last whole line
    assert after["prev"] == chain.line_hash(torn.splitlines()[1])
    assert _problems(path) == ["chain s line 2: torn (cut short by a crash); the chain goes on"]


def test_lines_that_could_not_be_written_are_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: the batch waits for the next one, and so does what waits on it."""
    writer = ChainWriter(tmp_path, None)
    real = chain.append
    calls = 0

    def flaky(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(chain, "append", flaky)
    done: list[int] = []
    writer.add("s", chain.entry("started"))
    writer.then(lambda: done.append(1))
    writer.flush_now()
    assert done == [] and not chain.chain_path(tmp_path, "s").exists()
    writer.add("s", chain.entry("stopped"))
    writer.flush_now()
    assert done == [1]
    assert [x["event"] for x in _lines(chain.chain_path(tmp_path, "s"))] == ["started", "stopped"]
