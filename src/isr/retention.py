"""Retention: delete recordings older than ``retention_days``, and nothing else.

The plan is pure (``plan``); the scan and the deletions sit at the edges and run
off the event loop. Retention trusts no clock that looks wrong: a Raspberry Pi
without a real-time clock boots in 1970 or in the past and jumps when NTP syncs,
and deleting by such a clock could wipe an archive. So it waits while the wall
clock is behind the newest recording, or has jumped against the monotonic clock.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from isr.sidecar import sidecar_path

log = logging.getLogger("isr.retention")

AUDIO_EXTENSIONS = frozenset({".mp3", ".aac", ".ogg", ".opus", ".oga", ".flac", ".wav"})
DAY = 86400.0
CLOCK_JUMP_TOLERANCE = 300.0
"""Seconds the wall clock may move against the monotonic clock between checks."""


@dataclass(frozen=True)
class Recording:
    path: Path
    mtime: float
    size: int
    source: str | None
    """From the sidecar; None when it has none (then [general] retention applies)."""


def scan(root: Path) -> Iterator[Recording]:
    """Every audio file under ``root``, outside ``.isr/``."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as exc:
            log.warning("cannot list %s: %s", directory, exc.strerror or exc)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .isr/, temporary files
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                path = Path(entry.path)
                if path.suffix.lower() not in AUDIO_EXTENSIONS:
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield Recording(path, st.st_mtime, st.st_size, _source_of(path))


def _source_of(path: Path) -> str | None:
    try:
        with open(sidecar_path(path), encoding="utf-8") as fh:
            source = json.load(fh).get("source")
    except (OSError, ValueError, AttributeError):
        return None
    return source if isinstance(source, str) else None


def plan(
    recordings: Iterable[Recording],
    now: float,
    days_by_source: dict[str, float],
    default_days: float,
    protected: set[Path],
) -> list[Recording]:
    """What retention deletes: older than its source's ``retention_days`` (0 = keep),
    never a protected file (being recorded). Oldest first."""
    out = []
    for rec in recordings:
        days = days_by_source.get(rec.source, default_days) if rec.source else default_days
        if days <= 0 or rec.path in protected:
            continue
        if rec.mtime < now - days * DAY:
            out.append(rec)
    out.sort(key=lambda r: r.mtime)
    return out


class ClockGuard:
    """Says why the wall clock cannot be trusted for deleting, or None."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def check(self, wall: float, mono: float, newest_mtime: float | None) -> str | None:
        reason = None
        if newest_mtime is not None and wall < newest_mtime - 60:
            reason = f"the wall clock is {newest_mtime - wall:.0f} s behind the newest recording"
        elif self._last is not None:
            last_wall, last_mono = self._last
            jump = (wall - last_wall) - (mono - last_mono)
            if abs(jump) > CLOCK_JUMP_TOLERANCE:
                reason = f"the wall clock jumped {jump:+.0f} s against the monotonic clock"
        self._last = (wall, mono)
        return reason


def delete(rec: Recording, root: Path, why: str) -> bool:
    """Delete a recording with its sidecar, and append it to ``.isr/deletions.log``."""
    try:
        rec.path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.error("cannot delete %s: %s", rec.path, exc.strerror or exc)
        return False
    side = sidecar_path(rec.path)
    try:
        side.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("cannot delete %s: %s", side, exc.strerror or exc)
    try:
        name = rec.path.relative_to(root).as_posix()
    except ValueError:
        name = str(rec.path)
    log_deletion(root, name, rec.size, why)
    log.info("deleted %s (%s)", name, why)
    return True


def log_deletion(root: Path, name: str, size: int, why: str) -> None:
    """Append to ``.isr/deletions.log``: time, name, size, reason (tab-separated), so
    a station can show what left its archive, when and why."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        state = root / ".isr"
        state.mkdir(parents=True, exist_ok=True)
        with open(state / "deletions.log", "a", encoding="utf-8") as fh:
            fh.write(f"{stamp}\t{name}\t{size}\t{why}\n")
    except OSError as exc:
        log.error("cannot append to deletions.log: %s", exc.strerror or exc)
