"""Crash recovery at start: finish what a killed recorder left open.

We hold the directory lock, so the recorder that wrote the previous status file is
dead. The files it named as open were cut wherever the crash came: their WAV sizes
are made right, stream files are cut back to their last whole frame or page (an Ogg
file's last page gets its end-of-stream flag; totals in MP3 Xing and FLAC headers
are patched where the format has them), and their sidecars get an end time and a
note. A file opened after the status file's last write is found by its sidecar,
which has no end yet. Every WAV under the output directory is checked too: a WAV
closed by a crash that the status file did not name still gets sizes that match
its data.
"""

from __future__ import annotations

import json
import logging
import os
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


def unfinished_files(roots: list[Path], since: float) -> list[Path]:
    """Audio files whose sidecar, changed since ``since``, has no end yet.

    The status file names the open files as of its last write, and a file opened
    after that (a roll a moment before the crash) is missing from it; every file
    gets its sidecar, without an end, when it opens, so the sidecars name them all.
    Only sidecars changed since the crashed recorder started are read.
    """
    out: list[Path] = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.endswith(".json") or name.startswith("."):
                    continue
                side = Path(dirpath) / name
                audio = side.with_name(name[: -len(".json")])
                try:
                    if side.stat().st_mtime < since or not audio.is_file():
                        continue
                    data = json.loads(side.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(data, dict) and "end" in data and data["end"] is None:
                    out.append(audio)
    return out


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


def recover(directory: Path, extra_dirs: list[Path]) -> list[str]:
    """Repair after a crash (blocking I/O). Returns one line per repair, also logged."""
    done: list[str] = []
    status_path = directory / ".isr" / "status.json"
    paths = open_files(status_path, directory)
    since = _started(status_path)
    if since is not None:
        seen = set(paths)
        roots = sorted({directory, *extra_dirs})
        paths += [p for p in unfinished_files(roots, since - 1.0) if p not in seen]
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
    for root in sorted({directory, *extra_dirs}):
        for path, what in repair_wavs(root):  # logs each repair itself
            line = f"{path}: {what}"
            if line not in done:
                done.append(line)
    return done


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
