"""``isr verify``: the archive against its hash chains. Reads only.

Every chain under ``.isr/chain/`` is read whole: each line's ``prev`` must be the
SHA-256 of the line before it and each signed ``day`` line's signature must hold.
Then every file the chains list as closed or repaired, and not deleted since, is
hashed again and compared; every audio file in the directory must be listed by a
chain. Not problems: the file being recorded (named by the status file, or
locked), and a closed file whose check is still owed (``.isr/checks/``): that one
is compared with the write path's account the entry holds instead.

One line per problem, then a summary; ``ok`` when there is none.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from isr.evidence import chain, pending
from isr.evidence.check import check_file
from isr.formats import AUDIO_EXTENSIONS
from isr.sinks.files import is_locked, open_regular, read_regular

CHUNK = 1 << 20


@dataclass
class Listed:
    source: str
    line: int
    """Line number of the chain line that last spoke of the file."""
    event: str
    sha256: str | None
    size: int | None
    start: str | None


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    chains: int = 0
    lines: int = 0
    files: int = 0
    signed_days: int = 0
    keys: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = "intact" if self.ok else f"{len(self.problems)} problem(s)"
        keys = f", signed by {', '.join(sorted(self.keys))}" if self.keys else ""
        return (
            f"{head}: {self.chains} chain(s), {self.lines} line(s), {self.files} file(s) "
            f"re-hashed, {self.signed_days} signed day(s){keys}"
        )


def _day_of(iso_time: object) -> date | None:
    if not isinstance(iso_time, str):
        return None
    try:
        return datetime.fromisoformat(iso_time).date()
    except ValueError:
        return None


def _in_range(day: date | None, first: date | None, last: date | None) -> bool:
    if day is None:
        return True
    return (first is None or day >= first) and (last is None or day <= last)


def sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    fd = open_regular(path, os.O_RDONLY, single_link=False)
    try:
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest(), size


def check_chain(
    source: str,
    path: Path,
    report: Report,
    listed: dict[str, Listed],
    *,
    first: date | None = None,
    last: date | None = None,
    public_key: str | None = None,
) -> None:
    """The links and signatures of one chain; fills ``listed`` with its files."""
    problems = report.problems
    where = f"chain {source}"
    by_hash: dict[str, int] = {}
    followers: dict[str | None, int] = {}
    previous: chain.Line | None = None
    torn_before = False
    try:
        lines = list(chain.read_lines(path))
    except OSError as exc:
        problems.append(f"{where}: cannot read {path}: {exc.strerror or exc}")
        return
    report.chains += 1
    report.lines += len(lines)
    for line in lines:
        obj = line.obj
        n = line.number
        by_hash.setdefault(line.hash, n)
        if obj is None:
            nxt = lines[n] if n < len(lines) else None
            if nxt is None and not line.terminated:
                problems.append(f"{where} line {n}: torn (cut short by a crash), the last line")
            elif nxt is not None and nxt.obj is not None and nxt.obj["prev"] == line.hash:
                problems.append(f"{where} line {n}: torn (cut short by a crash); the chain goes on")
            else:
                problems.append(f"{where} line {n}: not a chain line")
            torn_before = True
            previous = line
            continue
        in_range = _in_range(_day_of(obj.get("at")), first, last)
        prev = obj.get("prev")
        expected = previous.hash if previous is not None else None
        if prev != expected and in_range:
            problems.append(f"{where} line {n}: {_link_problem(n, prev, by_hash, previous)}")
        elif prev == expected:
            other = followers.get(prev)
            if other is not None and in_range:
                problems.append(f"{where} line {n}: forks: line {other} follows the same line")
        followers.setdefault(prev, n)
        if previous is not None and previous.obj is not None and not torn_before:
            want = int(previous.obj["seq"]) + 1
            if obj["seq"] != want and prev == expected and in_range:
                problems.append(f"{where} line {n}: seq {obj['seq']}, {want} expected")
        torn_before = False
        previous = line
        if obj["event"] == "day" and in_range:
            _check_day(source, where, n, obj, report, public_key)
        file = obj.get("file")
        if isinstance(file, str) and obj["event"] in ("closed", "repaired", "deleted"):
            listed[file] = Listed(
                source,
                n,
                obj["event"],
                obj.get("sha256") if isinstance(obj.get("sha256"), str) else None,
                obj.get("bytes") if isinstance(obj.get("bytes"), int) else None,
                obj.get("start") if isinstance(obj.get("start"), str) else None,
            )


def _link_problem(
    n: int, prev: object, by_hash: dict[str, int], previous: chain.Line | None
) -> str:
    before = n - 1
    if previous is None:
        return "the first line links to a line before it (lines were removed from the start)"
    target = by_hash.get(prev) if isinstance(prev, str) else None
    if target is not None and target < before:
        return f"links to line {target}, not to line {before} (lines moved or inserted)"
    return f"its prev is not the SHA-256 of line {before} (line {before} changed, or lines moved)"


def _check_day(
    source: str,
    where: str,
    n: int,
    obj: dict[str, Any],
    report: Report,
    public_key: str | None,
) -> None:
    sig, key = obj.get("sig"), obj.get("key")
    label = f"{where} line {n} (day {obj.get('date')})"
    if obj.get("head") != obj.get("prev"):
        report.problems.append(f"{label}: its head is not its prev")
    if not isinstance(sig, str) or not isinstance(key, str):
        if public_key is not None:
            report.problems.append(f"{label}: not signed")
        return
    if public_key is not None and key != public_key:
        report.problems.append(f"{label}: signed by another key ({key})")
        return
    message = chain.day_message(source, str(obj.get("date")), int(obj["seq"]), obj.get("prev"))
    if not chain.signature_ok(key, message, sig):
        report.problems.append(f"{label}: bad signature")
        return
    report.signed_days += 1
    report.keys.add(key)


def _open_files(root: Path) -> set[str]:
    """Files the status file names as being recorded."""
    try:
        status = json.loads(read_regular(root / ".isr" / "status.json"))
        sources = status["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    out = set()
    for entry in sources.values() if isinstance(sources, dict) else ():
        name = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            out.add(name)
    return out


def _scan(roots: Iterable[Path]) -> Iterable[Path]:
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                    yield Path(dirpath) / name


def _name(root: Path, path: Path) -> str:
    try:
        rel = Path(os.path.relpath(path, root))
    except ValueError:
        return path.absolute().as_posix()
    return path.absolute().as_posix() if rel.parts[:1] == ("..",) else rel.as_posix()


def _file_day(root: Path, name: str) -> date | None:
    try:
        data = json.loads(read_regular(_path(root, name).with_name(Path(name).name + ".json")))
        return _day_of(data.get("start"))
    except (OSError, ValueError, AttributeError):
        return None


def _path(root: Path, name: str) -> Path:
    p = Path(name)
    return p if p.is_absolute() else root / p


def verify(
    root: Path,
    *,
    sources: Iterable[str] | None = None,
    first: date | None = None,
    last: date | None = None,
    public_key: str | None = None,
    extra_roots: Iterable[Path] = (),
) -> Report:
    report = Report()
    wanted = set(sources) if sources is not None else None
    listed: dict[str, Listed] = {}
    # The checks owed are read before the chains: a check that ends meanwhile has
    # its line in the chain read next, or its entry here.
    owed = {e.file: e for e in pending.load(root)}
    for source, path in chain.chain_files(root).items():
        if wanted is None or source in wanted:
            check_chain(source, path, report, listed, first=first, last=last, public_key=public_key)
    if wanted is not None:
        for source in sorted(wanted - set(chain.chain_files(root))):
            report.problems.append(f"chain {source}: there is none")
    recording = _open_files(root)
    for name in sorted(listed):
        entry = listed[name]
        if not _in_range(_day_of(entry.start), first, last):
            continue
        path = _path(root, name)
        where = f"{name} (chain {entry.source} line {entry.line})"
        exists = os.path.lexists(path)
        if entry.event == "deleted":
            if exists and name not in owed:
                report.problems.append(f"{where}: present, but the chain says it was deleted")
            continue
        if not exists:
            report.problems.append(f"{where}: missing, and no line says it was deleted")
            continue
        try:
            digest, size = sha256_of(path)
        except OSError as exc:
            report.problems.append(f"{where}: cannot read it: {exc.strerror or exc}")
            continue
        report.files += 1
        if digest != entry.sha256 or (entry.size is not None and size != entry.size):
            report.problems.append(
                f"{where}: changed: {size} bytes, SHA-256 {digest}; "
                f"the chain says {entry.size} bytes, {entry.sha256}"
            )
    unlisted: list[str] = []
    for path in _scan([root, *extra_roots]):
        name = _name(root, path)
        if name in listed:
            continue
        if wanted is not None or first is not None or last is not None:
            owner = owed.get(name)
            if wanted is not None and owner is not None and owner.source not in wanted:
                continue
            if not _in_range(_file_day(root, name), first, last):
                continue
        if name in recording or is_locked(path):
            continue
        owner = owed.get(name)
        if owner is not None:
            if owner.written is not None:
                result = check_file(path, owner.written)
                report.files += 1
                if not result.attested and not owner.written.broken:
                    report.problems.append(
                        f"{name}: changed since it was written (its check is owed): "
                        + "; ".join(result.problems[:1])
                    )
            continue
        if wanted is not None and _source_of(root, name) not in wanted:
            continue
        unlisted.append(name)
    for name in _still_unlisted(root, unlisted):
        report.problems.append(f"{name}: present, but no chain lists it")
    return report


LATE_SECONDS = 3.0
"""How long a file written moments ago may take to be listed: the recorder releases
a file's lock as it closes it, and notes the check it owes a moment later."""


def _still_unlisted(root: Path, names: list[str]) -> list[str]:
    """Of ``names`` (unlisted when the scan met them), those still unlisted: a file
    that closed while this ran (the recorder goes on) is listed by now, or owes its
    check; one written in the last seconds gets up to LATE_SECONDS to become so."""
    deadline = time.monotonic() + LATE_SECONDS
    while names:
        again: dict[str, Listed] = {}
        for source, path in chain.chain_files(root).items():
            check_chain(source, path, Report(), again)
        late = {e.file for e in pending.load(root)} | set(again)
        names = [name for name in names if name not in late]
        if not any(_written_lately(root, name) for name in names):
            break
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    return names


def _written_lately(root: Path, name: str) -> bool:
    try:
        return time.time() - os.stat(_path(root, name)).st_mtime < 2 * LATE_SECONDS
    except OSError:
        return False


def _source_of(root: Path, name: str) -> str | None:
    try:
        data = json.loads(read_regular(_path(root, name).with_name(Path(name).name + ".json")))
    except (OSError, ValueError):
        return None
    source = data.get("source") if isinstance(data, dict) else None
    return source if isinstance(source, str) else None
