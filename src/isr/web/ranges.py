"""``Range: bytes=…`` parsing (RFC 9110 §14), pure so every case is tested directly.

aiohttp's FileResponse sends the range it is given and never more than the size it saw
when it opened the file, which is what makes a growing recording safe to serve. This
module decides *which* range: one satisfiable range gives 206, an unsatisfiable one
416, and anything else (no header, a malformed one, several ranges) is ignored as the
RFC allows, giving 200 with the whole file.
"""

from __future__ import annotations

import re

_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$", re.ASCII)


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
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"bytes=-{suffix} of {size}")
        return max(0, size - suffix), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # invalid syntax per RFC 9110 §14.1.1: ignore the header
    if first >= size:
        raise RangeNotSatisfiable(f"bytes={first}- of {size}")
    return first, min(last, size - 1)
