"""``Range: bytes=…`` parsing (RFC 9110 §14), pure so every case is tested directly.

aiohttp's FileResponse sends the range it is given and never more than the size it saw
when it opened the file, which is what makes a growing recording safe to serve. This
module decides *which* range: one satisfiable range gives 206, an unsatisfiable one
416, and anything else (no header, a malformed one, several ranges) is ignored as the
RFC allows, giving 200 with the whole file. ``If-Range`` is decided here too: aiohttp
reads only its date form and would honour a Range under a stale entity tag.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$", re.ASCII)
_MAX_DIGITS = 18
"""A position with more digits lies past any file (10**18 bytes is an exabyte); it is
never handed to ``int()``, which refuses strings over 4,300 digits (a 500 before)."""
_BEYOND = 10**_MAX_DIGITS


class RangeNotSatisfiable(ValueError):
    """No byte of the requested range exists (HTTP 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive byte positions, None to send the whole file.

    Raises RangeNotSatisfiable for a well-formed single range that selects nothing.
    """
    if header is None:
        return None
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    m = _SPEC.match(spec)
    if m is None:
        return None
    first_s, last_s = m.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix: the last N bytes
        suffix = _number(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"bytes=-{suffix} of {size}")
        return max(0, size - suffix), size - 1
    first = _number(first_s)
    last = _number(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # invalid syntax per RFC 9110 §14.1.1: ignore the header
    if first >= size:
        raise RangeNotSatisfiable(f"bytes={first}- of {size}")
    return first, min(last, size - 1)


def _number(digits: str) -> int:
    """A byte position; any that has more than 18 digits counts as ``10**18``."""
    digits = digits.lstrip("0") or "0"
    return _BEYOND if len(digits) > _MAX_DIGITS else int(digits)


def etag(size: int, mtime_ns: int) -> str:
    """The strong validator aiohttp's FileResponse sends: it changes with size and mtime."""
    return f'"{mtime_ns:x}-{size:x}"'


def if_range_holds(value: str | None, current_etag: str, mtime: float) -> bool:
    """Whether a Range may be honoured under ``If-Range`` (RFC 9110 §13.1.5), pure.

    An entity tag must match the current one strongly (a weak one never does); a date
    must be no earlier than the file's last modification (to the second, as
    ``Last-Modified`` is sent). A resume of a file that grew or was rewritten since
    the client saw it gets the whole file rather than bytes that no longer fit.
    """
    if value is None:
        return True
    value = value.strip()
    if value.startswith("W/"):
        return False
    if value.startswith('"'):
        return value == current_etag
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    if when.tzinfo is None:
        return False
    return int(mtime) <= when.timestamp()
