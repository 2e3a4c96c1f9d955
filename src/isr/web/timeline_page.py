"""``GET /timeline``: the page that shows a source's day as a bar, plays and exports.

The page is a template and a script (``static/timeline.js``); everything it shows
comes from ``/api/sources``, ``/api/timeline`` and ``/api/clip.json``, and it plays
``/api/clip``. The server adds only what the browser cannot know: the recorder's
local zone (times are shown as the recorder's clock showed them, wherever the
browser is), today's date there, and the longest clip it may ask for.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, tzinfo

import jinja2
from aiohttp import web

__all__ = ["handler", "zone_name"]

ZONEINFO_DIRS = ("/usr/share/zoneinfo/", "/usr/lib/zoneinfo/", "/usr/share/lib/zoneinfo/")
_ZONE = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^\d{2}:\d{2}(?::\d{2})?$")
_ZOOM = re.compile(r"^(?:day|rec|6h|1h|10m|2m)$")


def zone_name(tz: tzinfo, localtime: str = "/etc/localtime") -> str:
    """The IANA name of ``tz`` for the browser's ``Intl`` (``""`` if it has none).

    A zone read from ``/etc/localtime`` is keyed ``localtime``; its name is where
    that link points under a zoneinfo directory. Without a name the page falls back
    to the UTC offsets the API's times carry.
    """
    key = getattr(tz, "key", None)
    if isinstance(key, str) and key != "localtime" and _ZONE.match(key):
        return key
    if key == "localtime":
        target = os.path.realpath(localtime)
        for base in ZONEINFO_DIRS:
            if target.startswith(base):
                name = target[len(base) :]
                for prefix in ("posix/", "right/"):
                    name = name.removeprefix(prefix)
                if _ZONE.match(name):
                    return name
    return ""


def _param(request: web.Request, key: str, pattern: re.Pattern[str]) -> str:
    """A query value the script may start from, or ``""`` if it is not one."""
    value = request.query.get(key, "")
    return value if pattern.match(value) else ""


def handler(
    templates: jinja2.Environment,
    tz: tzinfo,
    *,
    max_clip_hours: float,
    today: Callable[[], date] | None = None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The ``GET /timeline`` handler. ``?source=&day=&at=`` pick what it opens on
    (a bookmark); the script checks them against the API."""
    zone = zone_name(tz)

    def local_today() -> date:
        return datetime.now(tz).date()

    def render(source: str, day: str, at: str, zoom: str) -> str:
        return templates.get_template("timeline.html").render(
            zone=zone,
            today=(today or local_today)().isoformat(),
            source=source,
            day=day,
            at=at,
            zoom=zoom,
            max_clip_hours=max_clip_hours,
        )

    async def timeline_page(request: web.Request) -> web.Response:
        source = request.query.get("source", "")[:200]
        html = await asyncio.to_thread(
            render,
            source,
            _param(request, "day", _DAY),
            _param(request, "at", _CLOCK),
            _param(request, "zoom", _ZOOM),
        )
        return web.Response(
            text=html,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    return timeline_page
