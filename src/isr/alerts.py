"""Alerts: a webhook POST and/or a command, for events a station must hear about.

Events: ``source_failed`` (max_retries reached), ``source_recovered``,
``disk_low``, ``dead_air`` (PCM level below ``silence_threshold_db`` for
``silence_seconds``, or a stream with no byte for ``timeout_seconds``),
``file_check_failed`` (a closed file's check found the disk holding other bytes
than were written, or a frame, page or CRC wrong: ``isr.evidence.check``; the
payload names the ``file``), ``coverage_low`` (a source's last 24 hours fell below
``min_coverage``: ``isr.evidence.watch``; the payload has ``coverage`` and
``missing_seconds``) and ``coverage_ok`` (they no longer are).
Delivery never blocks recording: each alert is a task of its own with a timeout,
the same event for the same source is sent at most once per ``repeat_seconds``,
and failures are logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from typing import Any

from isr.config import AlertsConfig

log = logging.getLogger("isr.alerts")

DELIVERY_TIMEOUT = 10.0


class Alerter:
    def __init__(self, cfg: AlertsConfig, repeat_seconds: float = 300.0) -> None:
        self.cfg = cfg
        self.repeat_seconds = repeat_seconds
        self._last: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._previous: asyncio.Task[None] | None = None
        self.sent: list[dict[str, Any]] = []
        """Events fired (kept short), for the status file and tests."""

    @property
    def enabled(self) -> bool:
        return bool(self.cfg.webhook_url or self.cfg.command)

    def fire(self, event: str, source: str = "", message: str = "", **extra: Any) -> bool:
        """Send ``event`` unless the same one was sent lately; returns whether it was."""
        key = (event, source)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.repeat_seconds:
            return False
        self._last[key] = now
        payload: dict[str, Any] = {
            "event": event,
            "source": source,
            "message": message,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": socket.gethostname(),
        }
        payload.update(extra)
        log.warning("alert %s%s: %s", event, f" [{source}]" if source else "", message)
        self.sent = [*self.sent[-49:], payload]
        if not self.enabled:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return True
        task = loop.create_task(self._deliver(payload, self._previous), name=f"alert-{event}")
        self._previous = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def clear(self, event: str, source: str = "") -> None:
        """Allow ``event`` again at once (the condition ended)."""
        self._last.pop((event, source), None)

    async def _deliver(self, payload: dict[str, Any], previous: asyncio.Task[None] | None) -> None:
        if previous is not None:  # alerts arrive in the order they were raised
            await asyncio.wait({previous})
        if self.cfg.webhook_url:
            try:
                async with asyncio.timeout(DELIVERY_TIMEOUT):
                    await self._post(payload)
            except Exception as exc:  # delivery must never hurt recording
                log.error("alert webhook failed: %s", exc or type(exc).__name__)
        if self.cfg.command:
            try:
                async with asyncio.timeout(DELIVERY_TIMEOUT):
                    await self._run(payload)
            except Exception as exc:
                log.error("alert command failed: %s", exc or type(exc).__name__)

    async def _post(self, payload: dict[str, Any]) -> None:
        import aiohttp  # only loaded when a webhook is configured

        async with (
            aiohttp.ClientSession() as session,
            session.post(self.cfg.webhook_url, json=payload) as resp,
        ):
            if resp.status >= 300:
                raise RuntimeError(f"HTTP {resp.status} from the webhook")

    async def _run(self, payload: dict[str, Any]) -> None:
        env = dict(os.environ)
        for key, value in payload.items():
            env[f"ISR_{key.upper()}"] = str(value)
        env["ISR_ALERT_JSON"] = json.dumps(payload)
        proc = await asyncio.create_subprocess_shell(
            self.cfg.command,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode:
            text = err.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"exit status {proc.returncode}: {text[-1] if text else ''}")

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for alerts under way (at stop), at most ``timeout`` seconds."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
