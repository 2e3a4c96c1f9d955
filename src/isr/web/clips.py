"""``GET /api/clip`` and ``GET /api/clip.json``: a clip of the timeline, and its manifest.

The question (``source``, ``from``, ``to``) is checked on the loop; the index is asked
through the app's timeline gate (one index job at a time, off the loop); the plan
(unit tables, perhaps a walk) is made in a worker thread. The answer has an exact
Content-Length before its first byte and honours one Range as ``/stream`` does (206,
416 past the end; a malformed or multiple Range gets the whole clip). The bytes go out
piece by piece: a recording's range through ``loop.sendfile`` (as aiohttp serves a
file), headers and renumbered frames written from a worker thread's reads. Nothing
blocks the loop.

Statuses: 400 for a question that cannot be asked (bad times, FROM not before TO, a
span over ``[web] max_clip_hours``, a malformed source name), 404 when nothing was
recorded in the span (or of the source), 409 when the format changes inside it (the
body names the moment, ``at``), 501 for recordings of a format no cutter knows yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import quote

from aiohttp import web

from isr import formats
from isr.archive.store import StoreError
from isr.clips.body import Body, FileRange, Literal
from isr.clips.clip import Clip, Clipper
from isr.errors import (
    BadTime,
    FormatChanged,
    NoAudio,
    NotClippable,
    QueryError,
    UnknownSource,
)
from isr.sidecar import iso
from isr.sinks.files import open_regular
from isr.timeline.index import TimelineIndex
from isr.timeline.query import Timeline
from isr.timeline.times import parse_time
from isr.web import ranges

__all__ = ["CLIPS", "ClipRoutes", "setup"]

log = logging.getLogger("isr.web")

T = TypeVar("T")
R = TypeVar("R")


class OnIndex(Protocol):
    """Runs ``work(index)`` the way the app runs every index job (its gate, its
    errors turned into statuses)."""

    def __call__(self, work: Callable[[TimelineIndex], T]) -> Awaitable[T]: ...


@dataclass
class ClipRoutes:
    clipper: Clipper
    on_index: OnIndex


CLIPS = web.AppKey("isr_clips", ClipRoutes)


def setup(app: web.Application, clipper: Clipper, on_index: OnIndex) -> None:
    """Add the two routes; the clipper's tables are closed with the app."""
    app[CLIPS] = ClipRoutes(clipper, on_index)
    app.router.add_get("/api/clip", api_clip)
    app.router.add_get("/api/clip.json", api_clip_json)

    warming: list[asyncio.Task[None]] = []

    async def warm(app: web.Application) -> None:
        # The cutters (and the CRC tables of FLAC's) are imported in the background
        # now, not by the first clip, whose first byte would wait ~0.1 s for them.
        warming.append(asyncio.create_task(asyncio.to_thread(_import_cutters)))

    async def close(app: web.Application) -> None:
        for task in warming:
            with contextlib.suppress(Exception):
                await task
        await asyncio.to_thread(clipper.close)

    app.on_startup.append(warm)
    app.on_cleanup.append(close)


def _import_cutters() -> None:
    for fmt in formats.FORMATS:
        try:
            fmt.clip_cutter()
        except Exception as exc:  # a broken install: the clip that needs it will say so
            log.warning("cannot load the clip cutter of %s: %s", fmt.name, exc)


def _error(cls: type[web.HTTPError], message: str, **extra: Any) -> web.HTTPError:
    return cls(text=json.dumps({"error": message, **extra}), content_type="application/json")


def _question(request: web.Request, clipper: Clipper) -> tuple[str, float, float]:
    q = request.query
    source = q.get("source", "")
    try:
        if not q.get("from") or not q.get("to"):
            raise BadTime("from and to are both required")
        t0 = parse_time(q["from"], clipper.tz)
        t1 = parse_time(q["to"], clipper.tz)
        clipper.check(source, t0, t1)
    except QueryError as exc:
        raise _error(web.HTTPBadRequest, str(exc)) from None
    return source, t0, t1


async def _clip(request: web.Request, *, body: bool) -> Clip:
    routes = request.app[CLIPS]
    clipper = routes.clipper
    source, t0, t1 = _question(request, clipper)
    timeline: Timeline = await routes.on_index(lambda index: index.timeline(source, t0, t1))
    try:
        return await asyncio.to_thread(clipper.cut, timeline, body=body)
    except (UnknownSource, NoAudio) as exc:
        raise _error(web.HTTPNotFound, str(exc)) from None
    except FormatChanged as exc:
        raise _error(web.HTTPConflict, str(exc), at=iso(exc.at, clipper.tz)) from None
    except NotClippable as exc:
        raise _error(web.HTTPNotImplemented, str(exc)) from None
    except QueryError as exc:
        raise _error(web.HTTPBadRequest, str(exc)) from None
    except StoreError as exc:  # the UI over the store: a file could not be fetched
        log.warning("clip of %s: %s", source, exc)
        raise _error(web.HTTPBadGateway, f"the store did not give a recording: {exc}") from None
    except FileNotFoundError as exc:  # deleted (retention) since the index listed it
        log.warning("clip of %s: %s", source, exc)
        raise _error(web.HTTPNotFound, "a recording in the span is gone; try again") from None
    except OSError as exc:
        log.error("clip of %s from %s to %s: %s", source, t0, t1, exc)
        raise _error(
            web.HTTPInternalServerError, "a recording cannot be read; see the log"
        ) from None


async def api_clip_json(request: web.Request) -> web.Response:
    clip = await _clip(request, body=False)
    return web.json_response(clip.manifest)


async def api_clip(request: web.Request) -> web.StreamResponse:
    clip = await _clip(request, body=True)
    body = clip.body
    assert body is not None
    size = body.length
    tag = body.etag()
    headers = {
        "Content-Type": clip.content_type,
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-cache",
        "ETag": tag,
    }
    if request.query.get("download", "") not in ("", "0"):
        name = clip.filename
        ascii_name = "".join(c if " " <= c < "\x7f" and c not in '"\\?' else "_" for c in name)
        headers["Content-Disposition"] = (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
        )
    try:
        # A date in If-Range never matches: a clip has no single modification time.
        honoured = ranges.if_range_holds(request.headers.get("If-Range"), tag, math.inf)
        rng = ranges.parse_range(request.headers.get("Range"), size) if honoured else None
    except ranges.RangeNotSatisfiable:
        raise web.HTTPRequestRangeNotSatisfiable(
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}
        ) from None
    start, end = (rng[0], rng[1] + 1) if rng is not None else (0, size)
    response = web.StreamResponse(status=206 if rng is not None else 200, headers=headers)
    if rng is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    response.content_length = end - start
    await response.prepare(request)
    if request.method != "HEAD":
        try:
            await send(request, response, body, start, end)
        except ConnectionError:  # the client left (a player seeking elsewhere, say)
            log.debug("%s: the client went away", request.path)
            return response
    await response.write_eof()
    return response


def _open(path: Path) -> IO[bytes]:
    return open(path, "rb", opener=lambda p, flags: open_regular(p, flags, single_link=False))


async def send(
    request: web.Request, response: web.StreamResponse, body: Body, start: int, end: int
) -> None:
    """Bytes ``[start, end)`` of ``body``: recordings' ranges by ``loop.sendfile``,
    literal bytes as they are, other pieces read in a worker thread."""
    loop = asyncio.get_running_loop()
    for span in body.spans(start, end):
        piece = span.piece
        if isinstance(piece, Literal):
            await response.write(piece.data[span.start : span.end])
            continue
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        if isinstance(piece, FileRange):
            opening = _job(_open, piece.path)
            try:
                f = await asyncio.shield(opening)
            except asyncio.CancelledError:  # it opens all the same: closed once it has
                opening.add_done_callback(_close_opened)
                raise
            try:
                # asyncio flushes what the transport holds (headers, a literal) first.
                await loop.sendfile(transport, f, piece.offset + span.start, span.end - span.start)
            finally:
                f.close()  # read-only: nothing to flush, no wait
            continue
        await write_chunks(response, piece.read(span.start, span.end))


async def write_chunks(response: web.StreamResponse, chunks: Generator[bytes, None, None]) -> None:
    """Write what a blocking generator yields, each chunk read in a worker thread; the
    generator is closed at the end, or once its running read ends (a client gone)."""
    job: asyncio.Future[bytes | None] | None = None
    try:
        while True:
            job = _job(next, chunks, None)
            chunk = await asyncio.shield(job)
            if chunk is None:
                break
            await response.write(chunk)
    finally:
        if job is not None and not job.done():  # a generator cannot be closed
            job.add_done_callback(functools.partial(_close_after, chunks))  # while it runs
        else:
            _close_quietly(chunks)


_running: set[asyncio.Future[Any]] = set()
"""Worker-thread jobs not finished yet: a request cancelled (its client left) while
one runs lets it run to its end, and its result is cleaned up then."""


def _job(fn: Callable[..., R], *args: Any) -> asyncio.Future[R]:
    job = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    _running.add(job)
    job.add_done_callback(_running.discard)
    return job


def _close_opened(job: asyncio.Future[IO[bytes]]) -> None:
    if not job.cancelled() and job.exception() is None:
        job.result().close()


def _close_after(chunks: Generator[bytes, None, None], job: asyncio.Future[Any]) -> None:
    _close_quietly(chunks)


def _close_quietly(chunks: Generator[bytes, None, None]) -> None:
    with contextlib.suppress(ValueError, OSError):
        chunks.close()
