"""Container health checks: ``python -m isr.healthcheck recorder DIR`` or ``web URL``.

The recorder is healthy while its status file is fresh (a heartbeat at least every
2 s; older than 15 s means it is gone); the web UI while ``/healthz`` answers 200.
Exit status 0 = healthy, 1 = not.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from isr.status import STALE_SECONDS


def recorder_healthy(directory: Path, now: float | None = None) -> tuple[bool, str]:
    path = directory / ".isr" / "status.json"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
        updated = datetime.fromisoformat(status["updated"]).timestamp()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no readable status file at {path}: {exc}"
    age = (time.time() if now is None else now) - updated
    if age > STALE_SECONDS:
        return False, f"status file is {age:.0f} s old: the recorder is gone"
    failed = [n for n, s in status.get("sources", {}).items() if s.get("state") == "failed"]
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
