"""``isr verify --clip FILE``: a clip against its manifest, the archive and the chain.

The manifest (``FILE.json``) names, for each part, the archived file, its SHA-256,
the range used (``bytes`` of whole frames, or PCM ``samples``) and the chain line
that recorded the file (``chain``: ``seq`` and the SHA-256 of the line's bytes).
A clip is intact when:

1. **each part's file is the one the chain recorded**: the file hashes to the
   manifest's SHA-256; the chain line the manifest names is there, unchanged (its
   bytes hash to ``line_sha256``), says ``closed`` or ``repaired`` of that very file
   with that SHA-256, and every line from the chain's first up to it links to the
   one before (``prev``);
2. **the clip is exactly those ranges**: the clip is cut again from the archived
   files' ranges by the same cutter (``isr.clips``: the ranges must be whole frames
   of the file, or samples it holds) and compared with FILE byte for byte. A cut is
   deterministic in every format clipped today (the Xing/Info frame, STREAMINFO and
   WAV header are made from the parts alone; PCM-FLAC edge frames are VERBATIM
   frames of the decoded samples, which lossless decoding gives exactly), so the
   comparison covers headers and audio units alike: any byte changed, added or
   removed anywhere in the clip is found, and named by where it lies (the clip's
   own header, or which part, frame and file byte);
3. **the times are the files' times**: each part's ``start``/``end`` are when its
   first unit and the end of its last were aired (the file's start, as its sidecar
   says, plus the samples before them; a young connection's media clock may have
   moved that start back a little since the clip was made, so any start between the
   sidecar's and the one the file was first given, its ``dated``, is the file's),
   the part spans exactly its audio, and the clip's are its first part's start and
   its last part's end.

A part whose file was still being recorded when the clip was made (``sha256`` and
``chain`` null) is proven once the chain has recorded the file since (the clip's
bytes must then be those of the finished file's range); while no line records it,
the part is reported as **unverifiable** — not as tampered — and the clip is not
called intact. Reads only: it works on a copy of the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import numpy as np

from isr import formats
from isr.clips.body import Body, FileRange, Literal, Piece
from isr.clips.cutter import Cutter, Part
from isr.clips.flac import FlacFrames
from isr.clips.units import UnitTable
from isr.errors import QueryError
from isr.evidence import chain
from isr.evidence.lines import RECORDING_EVENTS, file_of
from isr.sinks.files import is_locked, open_regular, read_regular

__all__ = ["ClipReport", "manifest_path", "verify_clip"]

CHUNK = 1 << 20
TIME_SLACK = 0.0015
"""Seconds a manifest's time may differ from the files' (it is written to the ms)."""

_HEADERS = {
    "mp3": "its Xing/Info frame, made for the clip",
    "flac": "its fLaC header and STREAMINFO, made for the clip",
    "wav": "its WAV header, made for the clip",
}


@dataclass
class ClipReport:
    clip: Path
    problems: list[str] = field(default_factory=list)
    unverifiable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parts: int = 0
    proven: int = 0
    """Parts whose file hashed right and whose chain line holds."""
    compared: int = 0
    """Bytes of the clip compared with its re-cut."""
    identical: bool = False
    sealed: int = 0
    """Proven parts whose chain line a later signed ``day`` line seals (links intact
    from the part's line to it, its signature good)."""
    keys: set[str] = field(default_factory=set)
    """The public keys of those signatures."""

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unverifiable

    def lines(self) -> list[str]:
        return [*self.problems, *(f"unverifiable: {u}" for u in self.unverifiable), *self.notes]

    def summary(self) -> str:
        name = self.clip.name
        if self.problems:
            head = f"{len(self.problems)} problem(s): {name} is not what the archive holds"
        elif self.unverifiable:
            head = (
                f"not verified: {name} matches the archive, but {len(self.unverifiable)} "
                f"of {self.parts} part(s) cannot be proven yet"
            )
        else:
            head = f"intact: {name}"
        cut = "a byte-exact re-cut" if self.identical else "not a byte-exact re-cut"
        sealed = ""
        if self.sealed:
            sealed = f", {self.sealed} sealed by a signed day (key {', '.join(sorted(self.keys))})"
        return (
            f"{head}; {self.compared} byte(s) compared, {cut} of {self.parts} part(s); "
            f"{self.proven} part(s) proven by the chain{sealed}"
        )


def manifest_path(clip: Path) -> Path:
    return clip.with_name(clip.name + ".json")


# -- the manifest ----------------------------------------------------------------------


@dataclass
class _Part:
    index: int
    file: str
    sha256: str | None
    unit: str
    """``bytes`` or ``samples``."""
    range: tuple[int, int]
    start: str
    end: str
    seq: int | None
    line_sha256: str | None

    @property
    def label(self) -> str:
        return f"part {self.index} ({self.file})"


class _BadManifest(Exception):
    pass


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = read_regular(path, limit=64 << 20)
    except FileNotFoundError:
        raise QueryError(f"no manifest {str(path)!r} beside the clip") from None
    except OSError as exc:
        raise QueryError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise _BadManifest(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise _BadManifest("not a JSON object")
    return obj


def _parts(m: dict[str, Any]) -> list[_Part]:
    for key in ("source", "format", "from", "to", "start", "end", "parts", "gaps"):
        if key not in m:
            raise _BadManifest(f"no {key!r}")
    if not isinstance(m["source"], str) or not isinstance(m["parts"], list) or not m["parts"]:
        raise _BadManifest("its source or parts are not a clip's")
    out = []
    for i, p in enumerate(m["parts"], 1):
        if not isinstance(p, dict):
            raise _BadManifest(f"part {i} is not an object")
        unit = "samples" if "samples" in p else "bytes"
        rng = p.get(unit)
        file, sha, ref = p.get("file"), p.get("sha256"), p.get("chain")
        if (
            not isinstance(file, str)
            or not file
            or not (sha is None or isinstance(sha, str))
            or not isinstance(rng, list)
            or len(rng) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in rng)
            or not isinstance(p.get("start"), str)
            or not isinstance(p.get("end"), str)
            or not (ref is None or isinstance(ref, dict))
        ):
            raise _BadManifest(f"part {i} is not a clip's part")
        seq = ref.get("seq") if ref else None
        line = ref.get("line_sha256") if ref else None
        if ref is not None and (not isinstance(seq, int) or not isinstance(line, str)):
            raise _BadManifest(f"part {i}'s chain is not a chain line's seq and SHA-256")
        out.append(_Part(i, file, sha, unit, (rng[0], rng[1]), p["start"], p["end"], seq, line))
    return out


# -- the chain -------------------------------------------------------------------------


@dataclass
class _Chain:
    source: str
    lines: list[chain.Line]
    broken: int | None
    """The first line whose ``prev`` is not the line before it."""
    why: str = ""
    by_hash: dict[str, int] = field(default_factory=dict)
    by_seq: dict[int, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    days: list[int] = field(default_factory=list)
    """The lines of signed ``day`` lines, in order."""
    """The last line (number) that speaks of each file."""

    def line(self, n: int) -> chain.Line:
        return self.lines[n - 1]


def _read_chain(root: Path, source: str) -> _Chain | None:
    try:
        lines = list(chain.read_lines(chain.chain_path(root, source)))
    except OSError:
        return None
    broken, why = None, ""
    c = _Chain(source, lines, None)
    for i, line in enumerate(lines):
        n = i + 1
        c.by_hash.setdefault(line.hash, n)
        obj = line.obj
        if obj is None:
            continue
        c.by_seq.setdefault(int(obj["seq"]), n)
        if obj["event"] == "day" and isinstance(obj.get("sig"), str):
            c.days.append(n)
        if isinstance(obj.get("file"), str):
            c.last[obj["file"]] = n
        want = lines[i - 1].hash if i else None
        if broken is None and obj["prev"] != want:
            broken = n
            why = (
                "the first line links to a line before it"
                if i == 0
                else f"its prev is not the SHA-256 of line {n - 1}"
            )
    c.broken, c.why = broken, why
    return c


# -- verifying -------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    fd = open_regular(path, os.O_RDONLY, single_link=False)
    try:
        while chunk := os.read(fd, CHUNK):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def _instant(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


@dataclass
class _Proof:
    """What one part's file turned out to be."""

    part: _Part
    path: Path
    line: dict[str, Any] | None = None
    """The chain line that recorded the file (its facts)."""
    final: bool = True
    bad: bool = False
    """The file is not the one recorded (already reported: its bytes differ)."""
    n: int | None = None
    """The chain line that proves the file (it hashed to what the line says)."""


def verify_clip(
    clip: Path, root: Path, manifest: Path | None = None, *, public_key: str | None = None
) -> ClipReport:
    """Verify ``clip`` (its manifest ``clip.json`` unless ``manifest``) against the
    recordings directory ``root``. Raises QueryError when there is nothing to verify
    (no clip, no manifest: a usage error). ``public_key``: the key a day line that
    seals a part's line must be signed with (else any key the line names)."""
    report = ClipReport(clip)
    m_path = manifest if manifest is not None else manifest_path(clip)
    try:
        size = os.stat(clip).st_size
        fd = open_regular(clip, os.O_RDONLY, single_link=False)
        os.close(fd)
    except OSError as exc:
        raise QueryError(f"cannot read the clip {str(clip)!r}: {exc.strerror or exc}") from None
    try:
        m = _read_manifest(m_path)
        parts = _parts(m)
    except _BadManifest as exc:
        report.problems.append(f"{m_path.name}: not a clip's manifest: {exc}")
        return report
    report.parts = len(parts)
    source = str(m["source"])
    history = _read_chain(root, source)
    proofs = [_prove(root, source, p, history, report) for p in parts]
    _report_break(history, proofs, report)
    _seal(history, proofs, report, public_key)
    _recut(clip, size, m, proofs, report)
    return report


def _prove(root: Path, source: str, p: _Part, history: _Chain | None, report: ClipReport) -> _Proof:
    """Part ``p``'s file against its manifest's SHA-256 and the chain line that
    recorded it: one line for what does not hold."""
    path = file_of(root, p.file)
    proof = _Proof(p, path)
    where = p.label
    if not os.path.lexists(path):
        said = history.last.get(p.file) if history is not None else None
        obj = history.line(said).obj if history is not None and said is not None else None
        if obj is not None and obj["event"] == "deleted":
            report.problems.append(
                f"{where}: missing: chain {source} line {said} says it was deleted "
                f"(by {obj.get('by')}: {obj.get('why')})"
            )
        else:
            report.problems.append(f"{where}: missing from the archive")
        proof.bad = True
        return proof
    proof.final = not is_locked(path)
    try:
        digest = _sha256(path)
    except OSError as exc:
        report.problems.append(f"{where}: cannot read it: {exc.strerror or exc}")
        proof.bad = True
        return proof
    # The chain line: the one the manifest names, or (none named: the file was being
    # recorded) the one that has recorded it since, if any.
    n: int | None = None
    later = False
    if history is not None and p.seq is not None:
        n = history.by_hash.get(p.line_sha256 or "")
        if n is None:
            at = history.by_seq.get(p.seq)
            if at is None:
                report.problems.append(
                    f"{where}: chain {source} has no line seq {p.seq} (lines removed, or "
                    "the chain cut)"
                )
            else:
                report.problems.append(
                    f"{where}: chain {source} line {at} (seq {p.seq}) changed: its SHA-256 "
                    f"is {history.line(at).hash}, the manifest says {p.line_sha256}"
                )
            proof.bad = proof.bad or (p.sha256 is not None and digest != p.sha256)
            return proof
    elif history is not None:
        n = history.last.get(p.file)
        later = n is not None
    elif p.seq is not None:
        report.problems.append(
            f"{where}: the manifest names line seq {p.seq} of chain {source}, and there "
            "is no such chain"
        )
        proof.bad = True
        return proof
    obj = history.line(n).obj if history is not None and n is not None else None
    if n is not None and (
        obj is None or obj["event"] not in RECORDING_EVENTS or obj.get("file") != p.file
    ):
        if later:
            obj, n = None, None  # e.g. its deletion: nothing has recorded it
        else:
            report.problems.append(
                f"{where}: chain {source} line {n}, which the manifest names, does not "
                "record this file"
            )
            proof.bad = True
            return proof
    line = f"chain {source} line {n}"
    recorded = obj.get("sha256") if obj is not None else None
    if obj is not None:
        proof.line = obj
        if p.seq is not None and obj["seq"] != p.seq:
            report.problems.append(f"{where}: {line} has seq {obj['seq']}, the manifest {p.seq}")
    if p.sha256 is None and obj is None:
        still = "still being recorded" if not proof.final else "not recorded by the chain yet"
        report.unverifiable.append(
            f"{where}: {still} when the clip was made and since (no SHA-256, no chain "
            "line): verify again once the chain records it"
        )
        return proof
    if obj is None:  # a SHA-256 but no chain: the file matches the manifest at best
        if digest != p.sha256:
            report.problems.append(
                f"{where}: changed since the clip was made: its SHA-256 is {digest}, the "
                f"manifest says {p.sha256}"
            )
            proof.bad = True
        else:
            report.unverifiable.append(f"{where}: no line of chain {source} records it")
        return proof
    if later:
        report.notes.append(f"note: {where}: recorded by {line} after the clip was made")
    manifest_sha = p.sha256 if p.sha256 is not None else recorded
    if digest == recorded == manifest_sha:
        proof.n = n
        return proof
    if digest == recorded:
        report.problems.append(
            f"{where}: the manifest says SHA-256 {p.sha256}; the file and {line} say "
            f"{digest} (the manifest was changed)"
        )
    elif recorded == manifest_sha:
        report.problems.append(
            f"{where}: changed since it was recorded: its SHA-256 is {digest}; the "
            f"manifest and {line} say {recorded}"
        )
        proof.bad = True
    else:
        report.problems.append(
            f"{where}: its SHA-256 is {digest}, the manifest says {p.sha256}, {line} "
            f"says {recorded}"
        )
        proof.bad = digest != p.sha256
    return proof


def _report_break(history: _Chain | None, proofs: list[_Proof], report: ClipReport) -> None:
    """A chain broken before a part's line proves none of the lines after the break;
    the parts whose lines come before it, and whose files hashed right, are proven."""
    for pr in proofs:
        if pr.n is not None and (
            history is None or history.broken is None or pr.n < history.broken
        ):
            report.proven += 1
    if history is None or history.broken is None:
        return
    after = [pr for pr in proofs if pr.n is not None and pr.n >= history.broken]
    if after:
        report.problems.append(
            f"chain {history.source} line {history.broken}: {history.why}: the chain is "
            f"broken before the line(s) that recorded "
            + ", ".join(f"part {pr.part.index} (line {pr.n})" for pr in after)
        )


def _seal(
    history: _Chain | None, proofs: list[_Proof], report: ClipReport, public_key: str | None
) -> None:
    """Each proven part's line, sealed by the first signed ``day`` line after it: the
    chain up to that line existed when the day was signed."""
    if history is None:
        return
    judged: dict[int, bool] = {}
    for pr in proofs:
        if pr.n is None or (history.broken is not None and pr.n >= history.broken):
            continue
        day = next((d for d in history.days if d > pr.n), None)
        if day is None or (history.broken is not None and day >= history.broken):
            continue
        if day not in judged:
            judged[day] = _day_holds(history, day, report, public_key)
        if judged[day]:
            report.sealed += 1


def _day_holds(history: _Chain, n: int, report: ClipReport, public_key: str | None) -> bool:
    obj = history.line(n).obj
    assert obj is not None
    sig, key = obj.get("sig"), obj.get("key")
    label = f"chain {history.source} line {n} (day {obj.get('date')})"
    if not isinstance(sig, str) or not isinstance(key, str):
        return False
    if public_key is not None and key != public_key:
        report.problems.append(f"{label}: signed by another key ({key})")
        return False
    message = chain.day_message(
        history.source, str(obj.get("date")), int(obj["seq"]), obj.get("prev")
    )
    if obj.get("head") != obj.get("prev") or not chain.signature_ok(key, message, sig):
        report.problems.append(f"{label}: bad signature")
        return False
    report.keys.add(key)
    return True


def _cutter(name: str) -> Cutter | None:
    fmt = formats.of_extension(os.path.splitext(name)[1])
    return fmt.clip_cutter() if fmt is not None else None


def _recut(
    clip: Path, size: int, m: dict[str, Any], proofs: list[_Proof], report: ClipReport
) -> None:
    """Cut the clip again from the manifest's ranges and compare it with ``clip``."""
    cutters = {_cutter(pr.part.file) for pr in proofs}
    if None in cutters or len(cutters) != 1:
        report.problems.append(
            f"{manifest_path(clip).name}: its parts are not of one clippable format"
        )
        return
    cutter = cutters.pop()
    assert cutter is not None
    parts: list[Part] = []
    for pr in proofs:
        p = pr.part
        if not os.path.lexists(pr.path):
            return  # reported: nothing to cut from
        try:
            table = cutter.walk(pr.path, None, final=pr.final, name=p.file)
        except OSError as exc:
            report.problems.append(f"{p.label}: cannot read it: {exc.strerror or exc}")
            return
        units = _units(p, table)
        if isinstance(units, str):
            report.problems.append(f"{p.label}: its {p.unit} {list(p.range)}: {units}")
            return
        first, end = units
        parts.append(Part(p.file, pr.path, table, first, end, 0.0, 0.0))
        _check_times(pr, table, first, end, report)
    _check_clip_times(m, proofs, report)
    try:
        pieces = cutter.assemble(parts)
        body = Body(pieces)
        _compare(clip, size, body, m, proofs, report)
    except (OSError, ValueError) as exc:
        report.problems.append(f"{clip.name}: cannot be cut again from the archive: {exc}")


def _units(p: _Part, table: UnitTable) -> tuple[int, int] | str:
    a, b = p.range
    if not table.count:
        return "the file holds no audio the cutter knows"
    if table.exact != (p.unit == "samples"):
        return f"a {'PCM' if table.exact else 'frame'} file's range is not given in {p.unit}"
    if table.exact:
        if not 0 <= a < b <= table.total_samples:
            return f"not inside the file's {table.total_samples} samples"
        return a, b
    offsets = table.offsets
    i = int(np.searchsorted(offsets, a))
    j = int(np.searchsorted(offsets, b))
    if i >= len(offsets) or offsets[i] != a:
        return f"byte {a} is not where a frame of the file starts"
    if j >= len(offsets) or offsets[j] != b:
        return f"byte {b} is not where a frame of the file ends"
    if j <= i:
        return "no whole frame"
    return i, j


def _check_times(pr: _Proof, table: UnitTable, first: int, end: int, report: ClipReport) -> None:
    p = pr.part
    # The file's start as the clip was cut by lies between the sidecar's start now and
    # the one the file was first given: a young connection's media clock may still
    # move a file back by a few tens of ms after it closed, or after the clip was made
    # (isr.segment; the sidecar's ``dated``). The chain line's start, known at close,
    # lies in the same span.
    lo_origin, hi_origin = _sidecar_starts(pr.path)
    if lo_origin is None and pr.line is not None:
        lo_origin = hi_origin = _instant(pr.line.get("start"))
    if lo_origin is None or hi_origin is None or not table.rate:
        return
    lo, hi = (first, end) if table.exact else (table.sample(first), table.sample(end))
    said_start, said_end = _instant(p.start), _instant(p.end)
    wrong = False
    for key, said, offset in (("start", said_start, lo), ("end", said_end, hi)):
        want_lo, want_hi = lo_origin + offset / table.rate, hi_origin + offset / table.rate
        if said is None or not want_lo - TIME_SLACK <= said <= want_hi + TIME_SLACK:
            text = getattr(p, key)
            aired = datetime.fromtimestamp(want_lo, _zone_of(text) or _zone_of(p.start))
            report.problems.append(
                f"{p.label}: its {key} {text} is not when its audio aired "
                f"({aired.isoformat(timespec='milliseconds')}, from the file's start)"
            )
            wrong = True
    if wrong or said_start is None or said_end is None:
        return
    span = (hi - lo) / table.rate
    if abs((said_end - said_start) - span) > 2 * TIME_SLACK:
        report.problems.append(
            f"{p.label}: it spans {said_end - said_start:.3f} s from {p.start} to {p.end}, "
            f"its audio {span:.3f} s"
        )


def _zone_of(text: str) -> tzinfo | None:
    """The offset a manifest's time is written with (the clip's local time)."""
    try:
        return datetime.fromisoformat(text).tzinfo
    except ValueError:
        return None


def _check_clip_times(m: dict[str, Any], proofs: list[_Proof], report: ClipReport) -> None:
    first, last = proofs[0].part, proofs[-1].part
    if _instant(m.get("start")) != _instant(first.start):
        report.problems.append(
            f"manifest: the clip's start {m.get('start')} is not its first part's"
        )
    if _instant(m.get("end")) != _instant(last.end):
        report.problems.append(f"manifest: the clip's end {m.get('end')} is not its last part's")


def _sidecar_starts(audio: Path) -> tuple[float | None, float | None]:
    """The sidecar's start and the start its file was first given (``dated``)."""
    try:
        data = json.loads(read_regular(audio.with_name(audio.name + ".json"), limit=16 << 20))
    except (OSError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    start = _instant(data.get("start"))
    dated = _instant(data.get("dated"))
    if start is None:
        return None, None
    return start, max(start, dated) if dated is not None else start


def _where(
    piece: Piece, k: int, pieces: Sequence[Piece], fmt: str, offset: int, proofs: list[_Proof]
) -> tuple[str, _Proof | None]:
    """Where byte ``offset`` of ``piece`` (the ``k``-th) lies, for people."""
    by_path = {pr.path: pr for pr in proofs}
    if isinstance(piece, FileRange):
        pr = by_path.get(piece.path)
        label = f"part {pr.part.index}, {pr.part.file}" if pr else str(piece.path)
        return f"the audio of {label} byte {piece.offset + offset}", pr
    if isinstance(piece, FlacFrames):
        pr = by_path.get(piece.path)
        label = f"part {pr.part.index}, {pr.part.file}" if pr else str(piece.path)
        f = max(0, int(np.searchsorted(piece.bounds, offset, side="right")) - 1)
        return f"frame {f} of {label} byte {int(piece.offsets[f])}, renumbered", pr
    if k == 0 and isinstance(piece, Literal):
        return _HEADERS.get(fmt, "its header, made for the clip"), None
    if fmt == "flac":
        return "a frame re-encoded from the samples at an edge of a part", None
    return "bytes made for the clip, not copied from a file", None


def _compare(
    clip: Path, size: int, body: Body, m: dict[str, Any], proofs: list[_Proof], report: ClipReport
) -> None:
    fmt = str(m.get("format") or "")
    cut = _cutter_name(proofs)
    if cut:
        fmt = cut
    same = True
    fd = open_regular(clip, os.O_RDONLY, single_link=False)
    try:
        pos = 0
        for k, piece in enumerate(body.pieces):
            length = piece.length
            diff_at: int | None = None
            differing = 0
            at = 0
            for chunk in piece.read(0, length):
                mine = os.pread(fd, len(chunk), pos + at)
                n = min(len(mine), len(chunk))
                if n:
                    a = np.frombuffer(mine, np.uint8, n)
                    b = np.frombuffer(chunk, np.uint8, n)
                    ne = np.flatnonzero(a != b)
                    if len(ne):
                        differing += len(ne)
                        if diff_at is None:
                            diff_at = at + int(ne[0])
                if len(mine) < len(chunk):
                    differing += len(chunk) - len(mine)
                    if diff_at is None:
                        diff_at = at + len(mine)
                at += len(chunk)
            report.compared += min(length, max(0, size - pos))
            if diff_at is not None:
                same = False
                where, pr = _where(piece, k, body.pieces, fmt, diff_at, proofs)
                if pr is None or not pr.bad:
                    report.problems.append(
                        f"{clip.name} byte {pos + diff_at} ({where}): differs from the "
                        f"archive ({differing} byte(s) differ there)"
                    )
            pos += length
    finally:
        os.close(fd)
    if size != body.length:
        report.problems.append(
            f"{clip.name}: {size} bytes; its manifest's ranges cut from the archive give "
            f"{body.length}"
        )
    report.identical = same and size == body.length


def _cutter_name(proofs: list[_Proof]) -> str:
    ext = os.path.splitext(proofs[0].part.file)[1].lower()
    return {".mp3": "mp3", ".flac": "flac", ".wav": "wav", ".aac": "aac"}.get(ext, "")
