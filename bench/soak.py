"""Soak bench: the scenario of tests/test_soak.py, longer and with more streams.

N MP3 mounts (64 kbps) on a private Icecast on 127.0.0.1 plus a tone source are
recorded by the real ``isr record`` while the fault cycle repeats until ``--minutes``
have passed: steady, kill the source clients of some mounts, fill one source's disk
(a tmpfs in a private mount namespace; needs root), steady, restart Icecast, SIGKILL
and restart the recorder. Then every file is decoded and checked, the gaps are
matched against the faults, and the status/metrics samples against what was true.

    .venv/bin/python bench/soak.py --streams 50 --minutes 10

Prints a summary (JSON) and every problem found; exits 1 when there are problems.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.media import make_media  # noqa: E402
from tests.test_soak import MOUNTS_PER_FEEDER, Plan, run_soak  # noqa: E402


def cycle_seconds(plan: Plan) -> float:
    """A rough length of one fault cycle (reconnects and restarts add a few seconds)."""
    waits = plan.feeder_down + plan.disk_full + plan.icecast_down + plan.recorder_down
    return 4 * plan.steady + waits + 12.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20, help="MP3 mounts (default 20)")
    parser.add_argument("--minutes", type=float, default=5.0, help="how long (default 5)")
    parser.add_argument("--steady", type=float, default=20.0, help="seconds between faults")
    parser.add_argument(
        "--kill-mounts",
        type=int,
        default=MOUNTS_PER_FEEDER,
        help=f"mounts whose source client is killed (multiples of {MOUNTS_PER_FEEDER})",
    )
    parser.add_argument("--no-disk", action="store_true", help="skip the full-disk phase")
    parser.add_argument("--workers", type=int, default=2, help="parallel decoders at the end")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    if args.streams < 2:
        parser.error("--streams must be at least 2")

    plan = Plan(
        streams=args.streams,
        feeder_kill_mounts=args.kill_mounts,
        steady=args.steady,
        feeder_down=6.0,
        disk_full=8.0,
        icecast_down=4.0,
        recorder_down=4.0,
        tail=args.steady,
        disk=not args.no_disk,
    )
    plan.cycles = max(1, round(args.minutes * 60 / cycle_seconds(plan)))
    workdir = Path(tempfile.mkdtemp(prefix="isr-soak-"))
    started = time.monotonic()
    try:
        mp3 = make_media(workdir / "media" / "tone-64k.mp3", "mp3", 60, bitrate="64k")
        soak = run_soak(workdir / "run", mp3, plan, workers=args.workers)
        elapsed = time.monotonic() - started
        summary = {
            "streams": args.streams,
            "cycles": plan.cycles,
            "wall_seconds": round(elapsed, 1),
            "faults": [
                {"kind": f.kind, "sources": len(f.sources), "seconds": round(f.end - f.begin, 2)}
                for f in soak.faults
            ],
            **soak.summary,
            "problems": len(soak.problems),
        }
        print(json.dumps(summary, indent=1))
        for line in soak.problems:
            print("PROBLEM", line)
        if args.keep:
            print(f"kept {workdir}")
        return 1 if soak.problems else 0
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
