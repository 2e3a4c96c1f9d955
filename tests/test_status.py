"""The status board's heartbeat: it must stop when the recorder stops it."""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path

from isr.status import StatusBoard


def test_a_stop_that_meets_a_change_still_stops_the_heartbeat(tmp_path: Path) -> None:
    """A source reports its last state change in the same loop turn as the recorder
    cancels the heartbeat. Python 3.11's ``wait_for`` then returned the change and
    dropped the cancel: the heartbeat beat on and the recorder never finished
    stopping (seen in CI as a two-minute hang after a stop)."""
    (tmp_path / ".isr").mkdir()
    board = StatusBoard(tmp_path, UTC, interval=0.5)

    async def main() -> bool:
        task = asyncio.create_task(board.run())
        while board.writes == 0:  # the first beat is written: it waits for a change
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        board.changed()  # the change and the cancel meet in one turn of the loop
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3 * board.interval)
        if not done:
            task.cancel()  # leave no task behind for asyncio.run to wait on
        return task in done and task.cancelled()

    assert asyncio.run(main())
