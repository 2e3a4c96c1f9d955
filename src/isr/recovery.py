"""Crash recovery at start: finish what a killed recorder left open.

We hold the directory lock, so the recorder that wrote the previous status file is
dead. The files it named as open were cut wherever the crash came: their WAV sizes
are made right, stream files are cut back to their last whole frame or page (an Ogg
file's last page gets its end-of-stream flag; totals in MP3 Xing and FLAC headers
are patched where the format has them), and their sidecars get an end time and a
note. A file opened after the status file's last write is found by its sidecar,
which has no end yet; a WAV written then gets sizes that match its data too.

All of that happens before recording starts, so it must not cost time in
proportion to the archive: a year of hourly files is 10^5 files, and opening each
on a cold disk takes minutes. A file opened after the status file's last write
was modified after it, and only a directory modified since can hold a file
created since (creating a file, or replacing a sidecar atomically, changes its
directory's mtime): one walk lists the directories and looks inside only those.
Without a readable status file there is no such time: the whole archive is then
swept in the background once recording runs (``sweep``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from isr.framing.repair import Repairer, holds_audio, repairer_for
from isr.sidecar import sidecar_path, write_json_atomic
from isr.sinks.files import NOFOLLOW, is_locked, read_regular
from isr.sinks.wav import repair_wav

log = logging.getLogger("isr.recovery")


def _read_json(path: Path) -> Any:
    """A JSON file in the recordings directory, read without following a symlink
    and without blocking on a FIFO planted in its place."""
    return json.loads(read_regular(path))


def open_files(status_path: Path, directory: Path, roots: list[Path] | None = None) -> list[Path]:
    """The audio files a previous recorder had open, from its last status file.

    The status file lies in a directory others may write to, so a name in it is
    only taken when it is an audio file (by extension) inside ``roots`` (default:
    ``directory``) by its words, ``..`` resolved: a forged status file cannot send
    the repair, which cuts and deletes, to a file elsewhere.
    """
    try:
        status = _read_json(status_path)
        sources = status["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    out = []
    for entry in sources.values() if isinstance(sources, dict) else ():
        name = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            path = Path(name)
            path = path if path.is_absolute() else directory / path
            if _repairer(path) is not None and inside(path, roots or [directory]):
                out.append(path)
            else:
                log.warning("crash recovery: ignoring %r named by %s", name, status_path)
    return out


def inside(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` lies below one of ``roots``, judged by its words (``..``
    collapsed), the roots also as they resolve: symlinked directories stay legal."""
    lexical = Path(os.path.normpath(os.path.abspath(path)))
    for root in roots:
        for r in {Path(os.path.normpath(os.path.abspath(root))), root.resolve()}:
            if lexical != r and lexical.is_relative_to(r):
                return True
    return False


STATUS_MARGIN = 60.0
"""Seconds before the status file's last write from which files are looked at: the
heartbeat rewrites it every 2 s, so this allows for a stalled loop and for coarse
mtimes (FAT keeps 2 s)."""
SWEEP_PENDING = "sweep-pending"
"""Marker in ``.isr/`` while a sweep of the whole archive is owed: a run stopped
before its sweep ended leaves it, and the next start sweeps again."""


def _since(status_path: Path) -> float | None:
    """The earliest mtime of a file that the crashed recorder can have left open
    without its status file naming it: such a file was opened after the status
    file's last write. None when the status file is missing or unreadable (a
    power cut can leave it empty): then nothing tells what the crash touched.
    """
    try:
        since = status_path.stat().st_mtime - STATUS_MARGIN
        status = _read_json(status_path)
    except (OSError, ValueError):
        return None
    return since if isinstance(status, dict) and "sources" in status else None


def _outermost(roots: list[Path]) -> list[Path]:
    """``roots``, resolved, without those inside another (a source's own directory
    may lie inside the output directory): each file is looked at once. Resolved,
    because the walk does not follow symlinks: a source directory linked from
    inside the output directory is walked as a root of its own."""
    ordered = sorted({r.resolve() for r in roots})
    return [r for r in ordered if not any(o != r and r.is_relative_to(o) for o in ordered)]


def changed_files(
    root: Path, since: float, suffixes: tuple[str, ...]
) -> Iterator[tuple[Path, float]]:
    """Files below ``root`` named ``*suffix`` (any case) and modified at or after
    ``since``, with their mtime, skipping dot-names; only directories modified since
    are looked into for files (see the module's docstring), and only files so named
    are stat'ed. ``since = -inf`` walks everything. A symlink is never followed: a
    linked file is not ours to repair, and a linked directory is walked only when
    it is a root of its own (a source's ``output_directory``)."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            changed = directory.stat().st_mtime >= since
            entries = sorted(os.scandir(directory), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif (
                    changed
                    and entry.name.lower().endswith(suffixes)
                    and entry.is_file(follow_symlinks=False)
                ):
                    mtime = entry.stat(follow_symlinks=False).st_mtime
                    if mtime >= since:
                        yield Path(entry.path), mtime
            except OSError:
                continue


def _unfinished(side: Path) -> Path | None:
    """The audio file of a sidecar that has no end yet (None: finished or no file)."""
    audio = side.with_name(side.name[: -len(".json")])
    try:
        if not stat.S_ISREG(audio.lstat().st_mode):
            return None  # a symlink is not ours to repair
        data = _read_json(side)
    except (OSError, ValueError):
        return None
    return audio if isinstance(data, dict) and "end" in data and data["end"] is None else None


def _scan(roots: list[Path], since: float) -> tuple[list[Path], list[Path]]:
    """One walk: (audio files with an unfinished sidecar, WAVs) changed since ``since``.

    The status file names the open files as of its last write, and a file opened
    after that (a roll a moment before the crash) is missing from it; every file
    gets its sidecar, without an end, when it opens, so the sidecars name them all.
    """
    unfinished: list[Path] = []
    wavs: list[Path] = []
    for root in roots:
        for path, _ in changed_files(root, since, (".json", ".wav")):
            if path.name.lower().endswith(".json"):
                audio = _unfinished(path)
                if audio is not None:
                    unfinished.append(audio)
            else:
                wavs.append(path)
    return unfinished, wavs


def sweep(
    directory: Path,
    roots: list[Path],
    before: float,
    stop: threading.Event,
    repaired: list[tuple[Path, str]] | None = None,
) -> list[str]:
    """Repair every crashed file under ``roots`` last written before ``before``
    (this run's start: its own files are left alone): files whose sidecar has no
    end, and WAVs whose sizes do not match their data. For when no status file
    tells what a crash touched; runs while recording, so it may take its time.
    Stops early when ``stop`` is set; the marker goes once the sweep is whole."""
    done: list[str] = []
    for root in roots:
        for path, mtime in changed_files(root, -math.inf, (".json", ".wav")):
            if stop.is_set():
                return done
            if mtime >= before:
                continue
            if path.name.lower().endswith(".json"):
                audio = _unfinished(path)
                try:
                    old = audio is not None and audio.stat().st_mtime < before
                except OSError:
                    continue  # deleted meanwhile
                if audio is not None and old:
                    _repair_crashed(audio, done, repaired)
            else:
                _repair_wav(path, done)
    (directory / ".isr" / SWEEP_PENDING).unlink(missing_ok=True)
    return done


def _repairer(path: Path) -> Repairer | None:
    if path.suffix.lower() == ".wav":
        return repair_wav
    return repairer_for(path)


def finish_sidecar(path: Path, note: str, mtime: float) -> bool:
    """Give a sidecar whose file was cut by a crash an end time (``mtime``, the
    file's last write as the crash left it)."""
    side = sidecar_path(path)
    try:
        data: dict[str, Any] = _read_json(side)
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("end") is not None:
        return False
    start = data.get("start")
    try:
        tz = datetime.fromisoformat(start).tzinfo if isinstance(start, str) else None
    except ValueError:
        tz = None
    data["end"] = datetime.fromtimestamp(mtime, tz).isoformat(timespec="milliseconds")
    data["recovered"] = note
    write_json_atomic(side, data)
    return True


@dataclass
class Recovery:
    """What ``recover`` did, and what it left for after the start."""

    done: list[str] = field(default_factory=list)
    """One line per repair, also logged."""
    sweep: list[Path] = field(default_factory=list)
    """Roots still to be swept whole (no status file told what the last run
    touched, or a sweep was cut short): ``sweep`` once recording runs."""
    repaired: list[tuple[Path, str]] = field(default_factory=list)
    """Crashed files kept after their repair, with what was done: each is hashed
    and chained as ``repaired`` (``isr.evidence``)."""


def _repair_crashed(
    path: Path, done: list[str], repaired: list[tuple[Path, str]] | None = None
) -> None:
    """Finish a file a crash left open: cut it back to whole frames, complete its
    sidecar; remove it when it holds no audio. Logs what it did and appends it to
    ``done``, and the file kept to ``repaired``."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode):
        log.warning("crash recovery: %s is not a regular file (a symlink?): left alone", path)
        return
    if is_locked(path):
        return
    before = len(done)
    try:
        if _finish(path, done) and repaired is not None:
            repaired.append((path, "; ".join(line.split(": ", 1)[-1] for line in done[before:])))
    finally:
        for line in done[before:]:
            log.warning("crash recovery: repaired %s", line)


def _finish(path: Path, done: list[str]) -> bool:
    """Repair ``path``; True when it was kept and changed (its hash is owed then).

    A file the status file named as open may have closed cleanly in the moment
    before the crash (the status is written a beat after a roll): whole, its sidecar
    ended. Nothing is done to it, and it is not "repaired": its check and upload
    went on as for any closed file, and a second check would rewrite a sidecar the
    store may already hold.
    """
    try:
        mtime = path.stat().st_mtime  # the last write of the crash, before we write
        ended = _has_end(sidecar_path(path))
        fix = _repairer(path)
        what = fix(path) if fix is not None else None
        if what:
            done.append(f"{path}: {what}")
        elif ended:
            return False
        if path.suffix.lower() != ".wav" and not holds_audio(path):
            # Killed right after it opened: headers only. No file, as when a
            # first write fails.
            path.unlink()
            sidecar_path(path).unlink(missing_ok=True)
            done.append(f"{path}: removed, no audio was written before the crash")
            return False
        note = "the recorder stopped unexpectedly; end is the file's last write"
        if finish_sidecar(path, note, mtime):
            done.append(f"{path}: sidecar completed")
        return True
    except FileNotFoundError:
        pass  # deleted meanwhile (retention, the web UI)
    except OSError as exc:
        log.error("cannot repair %s: %s", path, exc.strerror or exc)
    except Exception:  # a damaged file must not keep the recorder from starting
        log.exception("cannot repair %s", path)
    return False


def _has_end(side: Path) -> bool:
    try:
        data = _read_json(side)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("end") is not None


def _repair_wav(path: Path, done: list[str]) -> None:
    try:
        what = repair_wav(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        log.error("cannot repair %s: %s", path, exc.strerror or exc)
        return
    if what:
        log.warning("repaired %s: %s", path, what)
        done.append(f"{path}: {what}")


def recover(directory: Path, extra_dirs: list[Path]) -> Recovery:
    """Repair after a crash (blocking I/O), before recording starts."""
    result = Recovery()
    done = result.done
    status_path = directory / ".isr" / "status.json"
    paths = open_files(status_path, directory, [directory, *extra_dirs])
    since = _since(status_path)
    roots = _outermost([directory, *extra_dirs])
    wavs: list[Path] = []
    marker = directory / ".isr" / SWEEP_PENDING
    if since is None or os.path.lexists(marker):
        marker.parent.mkdir(parents=True, exist_ok=True)
        _create(marker)
        result.sweep = roots
    if since is not None:
        seen = set(paths)
        unfinished, wavs = _scan(roots, since)
        paths += [p for p in unfinished if p not in seen]
    for path in paths:
        _repair_crashed(path, done, result.repaired)
    repaired = set(paths)
    for path in wavs:
        if path not in repaired:
            _repair_wav(path, done)
    return result


def _create(path: Path) -> None:
    """Create an empty file unless something (even a symlink) is there already."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644))


def _read_end(path: Path) -> float | None:
    try:
        end = _read_json(sidecar_path(path)).get("end")
        return datetime.fromisoformat(end).timestamp() if isinstance(end, str) else None
    except (OSError, ValueError, AttributeError):
        return None


def previous_positions(
    directory: Path, repaired: Iterable[tuple[Path, str]] = ()
) -> dict[str, tuple[Path | None, float | None]]:
    """Per source of the previous run: its last file and when that file's audio
    ended (after ``recover``, a crashed file's sidecar has its end too). Only a
    regular file counts: a source reads the end of it, and a FIFO named by a
    forged status file would block the start. A file crash recovery ``repaired``
    that ends later than the one the status file names is the source's last: a
    kill a moment after a split, before the status file named the new file."""
    try:
        status = _read_json(directory / ".isr" / "status.json")
        sources = status["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out: dict[str, tuple[Path | None, float | None]] = {}
    for name, entry in sources.items() if isinstance(sources, dict) else ():
        if not isinstance(entry, dict):
            continue
        name_of_file = entry.get("file") or entry.get("last_file")
        if not isinstance(name_of_file, str) or not name_of_file:
            continue
        path = Path(name_of_file)
        path = path if path.is_absolute() else directory / path
        try:
            regular = stat.S_ISREG(path.lstat().st_mode)
        except OSError:
            regular = False
        end = _read_end(path) if regular else None
        if end is None and isinstance(entry.get("last_end"), str):
            try:
                end = datetime.fromisoformat(entry["last_end"]).timestamp()
            except ValueError:
                end = None
        out[name] = (path if regular else None, end)
    for path, _ in repaired:
        try:
            source = _read_json(sidecar_path(path)).get("source")
        except (OSError, ValueError, AttributeError):
            continue
        end = _read_end(path)
        if not isinstance(source, str) or end is None:
            continue
        known = out.get(source)
        if known is None or known[1] is None or end > known[1]:
            out[source] = (path, end)
    return out
