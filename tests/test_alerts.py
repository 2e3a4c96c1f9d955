"""Alerts reach a local webhook receiver and a command; they are rate-limited and a
failing delivery is logged, never raised."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from isr.alerts import Alerter
from isr.config import AlertsConfig


async def receiver(received: list[dict[str, Any]]) -> tuple[web.AppRunner, int]:
    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def test_webhook_and_command_receive_the_event(tmp_path: Path) -> None:
    out = tmp_path / "alerts.txt"

    async def main() -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        runner, port = await receiver(received)
        try:
            alerter = Alerter(
                AlertsConfig(
                    webhook_url=f"http://127.0.0.1:{port}/hook",
                    command=f'echo "$ISR_EVENT $ISR_SOURCE $ISR_MESSAGE" >> {out}',
                )
            )
            assert alerter.fire("source_failed", "radio1", "gave up after 10 failures")
            assert not alerter.fire("source_failed", "radio1", "again")  # rate-limited
            assert alerter.fire("disk_low", "", "below 1024 MiB")
            await alerter.drain()
        finally:
            await runner.cleanup()
        return received

    received = asyncio.run(main())
    assert [(r["event"], r["source"]) for r in received] == [
        ("source_failed", "radio1"),
        ("disk_low", ""),
    ]
    assert received[0]["message"] == "gave up after 10 failures"
    assert out.read_text().splitlines() == [
        "source_failed radio1 gave up after 10 failures",
        "disk_low  below 1024 MiB",
    ]


def test_failed_delivery_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        # Nothing listens on port 9 of 127.0.0.1; the command fails too.
        alerter = Alerter(AlertsConfig(webhook_url="http://127.0.0.1:9/hook", command="exit 3"))
        alerter.fire("dead_air", "studio", "silence for 60 s")
        await alerter.drain()

    with caplog.at_level(logging.ERROR):
        asyncio.run(main())
    assert "alert webhook failed" in caplog.text
    assert "alert command failed: exit status 3" in caplog.text


def test_clear_allows_the_event_again() -> None:
    alerter = Alerter(AlertsConfig())
    assert alerter.fire("dead_air", "a")
    assert not alerter.fire("dead_air", "a")
    alerter.clear("dead_air", "a")
    assert alerter.fire("dead_air", "a")
    assert json.dumps(alerter.sent)  # the recent events are plain JSON
