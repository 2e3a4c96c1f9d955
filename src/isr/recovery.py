"""Crash recovery at start: finish what a killed recorder left open.

We hold the directory lock, so the recorder that wrote the previous status file is
dead. The files it named as open were cut wherever the crash came: their WAV sizes
are made right, stream files are cut back to their last whole frame or page (an Ogg
file's last page gets its end-of-stream flag; totals in MP3 Xing and FLAC headers
are patched where the format has them), and their sidecars get an end time and a
note. Every WAV under the output directory is checked too: a WAV closed by a crash
that the status file did not name still gets sizes that match its data.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from isr.framing.repair import Repairer, repairer_for
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


def _repairer(path: Path) -> Repairer | None:
    if path.suffix.lower() == ".wav":
        return repair_wav
    return repairer_for(path)


def finish_sidecar(path: Path, note: str) -> bool:
    """Give a sidecar whose file was cut by a crash an end time (the file's mtime)."""
    side = sidecar_path(path)
    try:
        data: dict[str, Any] = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if data.get("end") is not None:
        return False
    start = data.get("start")
    mtime = os.stat(path).st_mtime
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
    for path in open_files(status_path, directory):
        if not path.exists() or is_locked(path):
            continue
        try:
            fix = _repairer(path)
            what = fix(path) if fix is not None else None
            if what:
                done.append(f"{path}: {what}")
            if finish_sidecar(path, "the recorder stopped unexpectedly; end is the file's mtime"):
                done.append(f"{path}: sidecar completed")
        except OSError as exc:
            log.error("cannot repair %s: %s", path, exc.strerror or exc)
    for line in done:
        log.warning("crash recovery: repaired %s", line)
    for root in sorted({directory, *extra_dirs}):
        for path, what in repair_wavs(root):  # logs each repair itself
            line = f"{path}: {what}"
            if line not in done:
                done.append(line)
    return done
