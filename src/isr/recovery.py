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
Without a status file there is no such time: every WAV is then checked in the
background once recording runs (``sweep_wavs``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from isr.framing.repair import Repairer, holds_audio, repairer_for
from isr.sidecar import sidecar_path, write_json_atomic
from isr.sinks.files import is_locked
from isr.sinks.wav import repair_wav, repair_wavs

log = logging.getLogger("isr.recovery")


def open_files(status_path: Path, directory: Path) -> list[Path]:
    """The files a previous recorder had open, from its last status file."""
    try:
        status = json.loads(status_path.read_text(encoding="utf-8"))
        sources = status["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    out = []
    for entry in sources.values() if isinstance(sources, dict) else ():
        name = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(name, str) and name:
            path = Path(name)
            out.append(path if path.is_absolute() else directory / path)
    return out


def _started(status_path: Path) -> float | None:
    """When the recorder that wrote the status file started (None: unknown)."""
    try:
        started = json.loads(status_path.read_text(encoding="utf-8"))["started"]
        return datetime.fromisoformat(started).timestamp()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


STATUS_MARGIN = 60.0
"""Seconds before the status file's last write from which files are looked at: the
heartbeat rewrites it every 2 s, so this allows for a stalled loop and for coarse
mtimes (FAT keeps 2 s)."""


def _since(status_path: Path) -> float | None:
    """The earliest mtime of a file that the crashed recorder can have left open
    without its status file naming it (None: there is no status file).

    Such a file was opened after the status file's last write, and after that
    recorder started: a recorder that ran for months does not make every file of
    those months a suspect.
    """
    try:
        since = status_path.stat().st_mtime - STATUS_MARGIN
    except OSError:
        return None
    started = _started(status_path)
    return since if started is None else max(since, started - STATUS_MARGIN)


def _outermost(roots: list[Path]) -> list[Path]:
    """``roots`` without those inside another (a source's own directory may lie
    inside the output directory): each file is looked at once."""
    ordered = sorted(set(roots))
    return [r for r in ordered if not any(o != r and r.is_relative_to(o) for o in ordered)]


def changed_files(root: Path, since: float, suffixes: tuple[str, ...]) -> Iterator[Path]:
    """Files below ``root`` named ``*suffix`` (any case) and modified at or after
    ``since``, skipping dot-names; only directories modified since are looked into
    for files (see the module's docstring), and only files so named are stat'ed."""
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
                    and entry.is_file()
                    and entry.stat().st_mtime >= since
                ):
                    yield Path(entry.path)
            except OSError:
                continue


def _unfinished(side: Path) -> Path | None:
    """The audio file of a sidecar that has no end yet (None: finished or no file)."""
    audio = side.with_name(side.name[: -len(".json")])
    try:
        if not audio.is_file():
            return None
        data = json.loads(side.read_text(encoding="utf-8"))
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
        for path in changed_files(root, since, (".json", ".wav")):
            name = path.name.lower()
            if name.endswith(".json"):
                audio = _unfinished(path)
                if audio is not None:
                    unfinished.append(audio)
            elif name.endswith(".wav"):
                wavs.append(path)
    return unfinished, wavs


def sweep_wavs(roots: list[Path], before: float, stop: threading.Event) -> list[str]:
    """Check every WAV last written before ``before`` (this run's start: its own
    files are left alone), until ``stop``. For when no status file tells what a
    crash touched; runs while recording, so it may take its time."""
    done: list[str] = []
    for root in roots:
        for path, what in repair_wavs(root, before=before, stop=stop):  # logs each
            done.append(f"{path}: {what}")
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
        data: dict[str, Any] = json.loads(side.read_text(encoding="utf-8"))
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
    """Roots whose every WAV is still to be checked (no status file told what the
    last run touched): ``sweep_wavs`` once recording runs."""


def recover(directory: Path, extra_dirs: list[Path]) -> Recovery:
    """Repair after a crash (blocking I/O), before recording starts."""
    result = Recovery()
    done = result.done
    status_path = directory / ".isr" / "status.json"
    paths = open_files(status_path, directory)
    since = _since(status_path)
    roots = _outermost([directory, *extra_dirs])
    wavs: list[Path] = []
    if since is None:
        result.sweep = roots
    else:
        seen = set(paths)
        unfinished, wavs = _scan(roots, since)
        paths += [p for p in unfinished if p not in seen]
    for path in paths:
        if not path.exists() or is_locked(path):
            continue
        try:
            mtime = path.stat().st_mtime  # the last write of the crash, before we write
            fix = _repairer(path)
            what = fix(path) if fix is not None else None
            if what:
                done.append(f"{path}: {what}")
            if path.suffix.lower() != ".wav" and not holds_audio(path):
                # Killed right after it opened: headers only. No file, as when a
                # first write fails.
                path.unlink()
                sidecar_path(path).unlink(missing_ok=True)
                done.append(f"{path}: removed, no audio was written before the crash")
                continue
            note = "the recorder stopped unexpectedly; end is the file's last write"
            if finish_sidecar(path, note, mtime):
                done.append(f"{path}: sidecar completed")
        except OSError as exc:
            log.error("cannot repair %s: %s", path, exc.strerror or exc)
        except Exception:  # a damaged file must not keep the recorder from starting
            log.exception("cannot repair %s", path)
    for line in done:
        log.warning("crash recovery: repaired %s", line)
    repaired = set(paths)
    for path in wavs:
        if path in repaired:
            continue
        try:
            what = repair_wav(path)
        except OSError as exc:
            log.error("cannot repair %s: %s", path, exc.strerror or exc)
            continue
        if what:
            log.warning("repaired %s: %s", path, what)
            done.append(f"{path}: {what}")
    return result


def _read_end(path: Path) -> float | None:
    try:
        end = json.loads(sidecar_path(path).read_text(encoding="utf-8")).get("end")
        return datetime.fromisoformat(end).timestamp() if isinstance(end, str) else None
    except (OSError, ValueError, AttributeError):
        return None


def previous_positions(directory: Path) -> dict[str, tuple[Path | None, float | None]]:
    """Per source of the previous run: its last file and when that file's audio
    ended (after ``recover``, a crashed file's sidecar has its end too)."""
    try:
        status = json.loads((directory / ".isr" / "status.json").read_text(encoding="utf-8"))
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
        end = _read_end(path) if path.exists() else None
        if end is None and isinstance(entry.get("last_end"), str):
            try:
                end = datetime.fromisoformat(entry["last_end"]).timestamp()
            except ValueError:
                end = None
        out[name] = (path if path.exists() else None, end)
    return out
