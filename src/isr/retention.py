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

from isr.formats import AUDIO_EXTENSIONS
from isr.sidecar import sidecar_path
from isr.sinks.files import NOFOLLOW, open_regular, read_regular, write_all

log = logging.getLogger("isr.retention")

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
        source = json.loads(read_regular(sidecar_path(path))).get("source")
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


DELETIONS_LOG = "deletions.log"


def log_deletion(root: Path, name: str, size: int, why: str) -> None:
    """Append one line to ``.isr/deletions.log``: time, name, size, reason, separated
    by tabs, each field escaped (``escape_field``), so a station can show what left
    its archive, when and why, and no file name can forge a line.

    The log is appended to only when it is a regular file of its own (no symlink,
    no hard link), in one write(2) with ``O_APPEND``: the web UI and retention may
    append at once.
    """
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    line = "\t".join(escape_field(f) for f in (stamp, name, str(size), why)) + "\n"
    path = root / ".isr" / DELETIONS_LOG
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
        except FileExistsError:
            fd = open_regular(path, os.O_WRONLY | os.O_APPEND)
        try:
            write_all(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("cannot append to %s: %s", path, exc.strerror or exc)


_NAMED_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_field(text: str) -> str:
    """A field of ``deletions.log`` with no tab, no line break and nothing unprintable.

    Backslash escapes as in C and Python: ``\\\\``, ``\\t``, ``\\n``, ``\\r``;
    ``\\xNN`` for other ASCII control characters and for a byte of a file name that
    is not UTF-8; ``\\uNNNN`` / ``\\UNNNNNNNN`` for other unprintable characters
    (U+2028 and U+0085 end lines for some readers). Printable text is kept as it is.
    """
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's escape of a non-UTF-8 byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def unescape_field(field: str) -> str:
    """The text ``escape_field`` was given (bytes that were not UTF-8 come back as
    ``os.fsdecode`` gives them): for tools that read the log."""
    out = []
    i = 0
    while i < len(field):
        ch = field[i]
        if ch != "\\" or i + 1 == len(field):
            out.append(ch)
            i += 1
            continue
        kind = field[i + 1]
        simple = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}.get(kind)
        if simple is not None:
            out.append(simple)
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}.get(kind)
        digits = field[i + 2 : i + 2 + width] if width else ""
        try:
            code = int(digits, 16) if width and len(digits) == width else -1
        except ValueError:
            code = -1
        if code < 0:
            out.append(ch)
            i += 1
            continue
        out.append(chr(code + 0xDC00 if kind == "x" and code >= 0x80 else code))
        i += 2 + len(digits)
    return "".join(out)
