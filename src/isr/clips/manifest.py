"""A clip's manifest: what it holds, from which files, so that it can be verified.

Keys as DESIGN.md fixes them: ``source``, ``format``, ``from`` and ``to`` as asked,
``start`` and ``end`` as held, ``parts`` (each archived file used: its sidecar's
SHA-256, or null while it has none, e.g. while it is recorded; the range used as
``bytes`` — the file's bytes of the whole frames used, headers excluded — or, for
PCM, ``samples`` — sample frame indices —, each ``[first, end)``; and the part's
start and end) and ``gaps`` (the gaps inside, with their causes). Times are ISO
8601 with the local offset, to the millisecond.

Added to DESIGN.md's keys (nothing else changes): each part's ``chain``, the hash
chain's line that recorded the file (``{"seq": N, "line_sha256": "…"}``, the SHA-256
of that line's bytes; null while no line records it, e.g. while it is recorded),
so that ``isr verify --clip`` can prove the part (``isr.evidence.clipverify``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from isr.clips.plan import Plan
from isr.sidecar import iso, sidecar_path
from isr.sinks.files import read_regular

__all__ = ["download_name", "manifest", "sidecar_sha256"]

_UNSAFE = set('/\\:*?"<>|')


def manifest(
    plan: Plan,
    tz: tzinfo,
    sha256: Mapping[str, str | None],
    chain: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """``chain``: each file's chain line (``isr.evidence.lines.chain_refs``)."""
    chain = chain or {}
    unit = "samples" if plan.exact else "bytes"
    t0, t1 = plan.asked
    return {
        "source": plan.source,
        "format": plan.format,
        "from": iso(t0, tz),
        "to": iso(t1, tz),
        "start": iso(plan.start, tz),
        "end": iso(plan.end, tz),
        "parts": [
            {
                "file": p.name,
                "sha256": sha256.get(p.name),
                unit: [p.first, p.end] if plan.exact else list(p.byte_range),
                "start": iso(p.start, tz),
                "end": iso(p.stop, tz),
                "chain": dict(ref) if (ref := chain.get(p.name)) is not None else None,
            }
            for p in plan.parts
        ],
        "gaps": [
            {
                "start": iso(g.start, tz),
                "end": iso(g.end, tz),
                "seconds": round(g.seconds, 3),
                "cause": g.cause,
            }
            for g in plan.gaps
        ],
    }


def sidecar_sha256(audio: Path) -> str | None:
    """The SHA-256 that ``audio``'s sidecar gives, if any."""
    try:
        data = json.loads(read_regular(sidecar_path(audio), limit=16 << 20))
    except (OSError, ValueError):
        return None
    value = data.get("sha256") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def download_name(source: str, start: float, end: float, extension: str, tz: tzinfo) -> str:
    """``<source>_<YYYYmmdd_HHMMSS>-<HHMMSS>.<ext>`` from the clip's actual start and
    end in local time (a clip past midnight still names only the end's time of day);
    characters no file system takes in a name become ``_``."""
    a = datetime.fromtimestamp(start, tz)
    b = datetime.fromtimestamp(end, tz)
    safe = "".join("_" if c in _UNSAFE or ord(c) < 32 or ord(c) == 127 else c for c in source)
    return f"{safe}_{a:%Y%m%d_%H%M%S}-{b:%H%M%S}{extension}"
