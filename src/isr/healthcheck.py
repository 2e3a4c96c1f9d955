"""Container health checks: ``python -m isr.healthcheck recorder DIR`` or ``web URL``.

The recorder is healthy while it is alive as ``isr.liveness`` judges it (its status
file fresh by a clock no wall-clock step moves, its lock held) and no source has
failed; the web UI while ``/healthz`` answers 200. Exit status 0 = healthy, 1 = not.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from isr.web.recorder_status import read_status


def recorder_healthy(directory: Path, now: float | None = None) -> tuple[bool, str]:
    """``now`` is the wall-clock time to judge by (default: the clock's)."""
    status = read_status(directory, now)
    if not status.alive:
        return False, status.why
    sources = status.sources
    failed = [n for n, s in sources.items() if isinstance(s, dict) and s.get("state") == "failed"]
    if failed:
        return False, f"failed sources: {', '.join(sorted(failed))}"
    return True, "recorder alive"


def web_healthy(url: str) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/healthz", timeout=5) as resp:
            return resp.status == 200, f"HTTP {resp.status}"
    except OSError as exc:
        return False, str(exc)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("recorder", "web"):
        print("usage: python -m isr.healthcheck recorder DIR | web URL", file=sys.stderr)
        return 2
    ok, why = recorder_healthy(Path(args[1])) if args[0] == "recorder" else web_healthy(args[1])
    print(why)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
