"""The aiohttp application: routes, the guard (host, auth, origin: ``guard.py``), security
headers, analysis jobs (``jobs.py``) and its lifecycle.

``run_web`` serves until SIGINT/SIGTERM (``isr web``); ``start_web`` puts the same
application on a loop already running (``isr run``). HTTP statuses are decided here
and nowhere else: a name that cannot name a recording is 404, whatever the reason, so
a probe learns nothing about what lies outside the recordings directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import os
import sqlite3
import stat
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import jinja2
from aiohttp import web

from isr.archive.mirror import NotInStore, StoreMirror
from isr.archive.store import StoreError
from isr.clips.clip import Clipper
from isr.clock import local_zone
from isr.config import AlertsConfig, WebConfig
from isr.errors import BadTime, UnknownSource
from isr.evidence.deletions import basic_user, source_of, web_deleted
from isr.formats import served_type
from isr.metrics import make_registry, render
from isr.retention import log_deletion
from isr.sinks.files import is_locked, read_regular, replace_atomic
from isr.timeline.index import IndexClosed, TimelineIndex
from isr.timeline.query import sources_json
from isr.timeline.times import resolve_span
from isr.web import analyse, clips, coverage, guard, ranges, timeline_page
from isr.web.files import FileIndex
from isr.web.jobs import AnalysisJobs, JobError, QueueFull
from isr.web.paths import BadName, breakable, encode_name, resolve
from isr.web.recorder_status import RecorderStatus, read_status

log = logging.getLogger("isr.web")

WEB_DEFAULTS = WebConfig()
"""Defaults from the config's one key table: ``isr web`` without a config."""

HERE = Path(__file__).parent
PAGE_SIZE = 100
MAX_LIMIT = 1000
ANALYSIS_WORKERS = 1
ANALYSIS_QUEUE = 8
"""Analyses that may wait for a worker; one more is answered 503 with Retry-After."""
ANALYSIS_TIMEOUT = 300.0
"""Seconds one analysis may take before its worker is killed (a day-long FLAC on a
Raspberry Pi takes minutes; nothing legitimate takes this long here)."""
CLIENT_POLL_SECONDS = 0.25
STORE_REFRESH_SECONDS = 30.0
"""How often the UI over the store lists it for what is new."""
MAX_TIMELINE_DAYS = 31
"""The longest span ``/api/timeline`` answers, in local calendar days."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass
class WebState:
    root: Path
    threshold: float
    username: str
    password: str
    index: FileIndex
    templates: jinja2.Environment
    registry: Any
    allowed_hosts: frozenset[str] = frozenset()
    """Host names answered besides IP literals and localhost: ``[web] allowed_hosts``
    and, once started, this machine's own names."""
    auth_failures: guard.AuthFailures = field(default_factory=guard.AuthFailures)
    jobs: AnalysisJobs = field(default_factory=AnalysisJobs)
    started: float = field(default_factory=time.time)
    tz: tzinfo = field(default_factory=local_zone)
    timeline: TimelineIndex | None = None
    timeline_gate: asyncio.Lock = field(default_factory=asyncio.Lock)
    """One timeline job at a time: a request waiting for the index (its first build,
    say) waits here, on the loop, rather than in one of the few worker threads."""
    timeline_build: asyncio.Task[None] | None = None
    mirror: StoreMirror | None = None
    """Set when the UI is over the store (``isr web --archive``): ``root`` is then
    the mirror's directory, its audio files placeholders until fetched."""
    archive_url: str | None = None
    refresher: asyncio.Task[None] | None = None
    store_wanted: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by each request: the store is listed only while the UI is used."""

    def status(self) -> RecorderStatus:
        return read_status(self.root)


STATE = web.AppKey("isr_state", WebState)
STORE_REFRESH = web.AppKey("isr_store_refresh", float)


# -- names ------------------------------------------------------------------------


def _raw_name(request: web.Request, prefix: str) -> str:
    raw = request.rel_url.raw_path
    if not raw.startswith(prefix):
        raise web.HTTPNotFound()
    return raw[len(prefix) :]


def _lookup(request: web.Request, prefix: str) -> tuple[str, Path]:
    state = request.app[STATE]
    try:
        return resolve(state.root, _raw_name(request, prefix))
    except BadName:
        raise web.HTTPNotFound(text="no such recording") from None


def _analysis_cache_path(root: Path, name: str) -> Path:
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]
    return root / ".isr" / "analysis" / f"{digest}.rms"


# -- middleware and signals -----------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for k, v in SECURITY_HEADERS.items():
        response.headers.setdefault(k, v)


_credentials_ok = guard.credentials_ok  # the name the unit tests import


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host, then credentials, then origin: each refusal says why, and is logged."""
    state = request.app[STATE]
    where = f"{request.method} {request.rel_url.raw_path[:200]!r} from {request.remote}"
    if not guard.host_allowed(request.headers.get("Host"), state.allowed_hosts):
        log.warning("403 for %s: Host %r is not a name of this server", where, request.host)
        raise web.HTTPForbidden(text="unknown host name: add it to [web] allowed_hosts to use it")
    if request.path != "/healthz" and (state.username or state.password):
        await _authenticate(request, state, where)
    if guard.cross_origin_refused(
        request.method,
        request.headers.get("Sec-Fetch-Site"),
        request.headers.get("Origin"),
        request.headers.get("Host"),
    ):
        log.warning("403 for %s: cross-origin request", where)
        raise web.HTTPForbidden(text="cross-origin request refused")
    if state.mirror is not None and request.path != "/healthz":
        state.store_wanted.set()  # someone looks: the store may be listed again
    return await handler(request)


async def _authenticate(request: web.Request, state: WebState, where: str) -> None:
    """Basic auth; an address that failed lately waits its turn before it is checked."""
    header = request.headers.get("Authorization")
    address = request.remote or "?"
    if header is not None:
        wait = state.auth_failures.wait_for(address)
        if wait > 0:
            await asyncio.sleep(wait)
    if guard.credentials_ok(header, state.username, state.password):
        if header is not None:
            state.auth_failures.succeeded(address)
        return
    if header is None:
        log.info("401 for %s: no credentials", where)
    else:
        n = state.auth_failures.failed(address)
        log.warning(
            "401 for %s: wrong user name or password (%d from this address lately; "
            "its next attempt waits %.2f s)",
            where,
            n,
            state.auth_failures.delay(n),
        )
    raise web.HTTPUnauthorized(
        text="authentication required",
        headers={"WWW-Authenticate": 'Basic realm="ISR", charset="UTF-8"'},
    )


# -- routes ------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(render, request.app[STATE].registry)
    return web.Response(
        body=body,
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Prometheus-Format": "0.0.4"},
    )


def _status_json(status: RecorderStatus) -> dict[str, Any]:
    updated = status.raw.get("updated")
    return {
        "recorder_alive": status.alive,
        "recording": status.recording,
        # the page slices it as text: a malformed status file must not break the page
        "updated": updated if isinstance(updated, str) else None,
        "disk_free_mb": status.disk_free_mb,
        "sources": status.sources,
    }


async def api_status(request: web.Request) -> web.Response:
    status = await asyncio.to_thread(request.app[STATE].status)
    return web.json_response(_status_json(status))


def _int_param(request: web.Request, key: str, default: int, lo: float, hi: float) -> int:
    text = request.query.get(key)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{key} must be an integer") from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=f"{key} must be in {lo}..{hi}")
    return value


def _listing(
    state: WebState, q: str, folder: str, offset: int, limit: int, *, clamp: bool = False
) -> tuple[int, int, list[dict[str, Any]], list[str], RecorderStatus]:
    """``(total, offset, rows, folders, status)``; with ``clamp`` an offset past the
    end is moved back to the start of the last page (the page counts from 0)."""
    status = state.status()
    recording = set(status.recording)
    total, page, folders = state.index.query(
        q=q, folder=folder, offset=offset, limit=limit, hot=recording
    )
    if clamp and offset and offset >= total:
        offset = max(0, (total - 1) // limit * limit)
        if total:
            total, page, folders = state.index.query(
                q=q, folder=folder, offset=offset, limit=limit, hot=recording
            )
    now = time.time()
    rows = [state.index.describe(e, recording, now, alive=status.alive) for e in page]
    return total, offset, rows, folders, status


async def api_files(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query.get("q", "")
    folder = request.query.get("folder", "")
    limit = _int_param(request, "limit", PAGE_SIZE, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)

    def page() -> bytes:  # a thousand rows take milliseconds to encode: not on the loop
        total, _, rows, folders, _ = _listing(state, q, folder, offset, limit)
        data = {"total": total, "offset": offset, "limit": limit, "folders": folders, "files": rows}
        return json.dumps(data).encode()

    body = await asyncio.to_thread(page)
    return web.Response(body=body, content_type="application/json")


async def index_page(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query.get("q", "")
    folder = request.query.get("folder", "")
    # Any integer is clamped to 1..pages: a bookmark of page 9 still shows something
    # once retention has shortened the list.
    page = min(max(_int_param(request, "page", 1, -math.inf, math.inf), 1), 10**9)
    offset = (page - 1) * PAGE_SIZE
    template = "rows.html" if request.query.get("partial") == "rows" else "index.html"

    def render(offset: int) -> str:  # listing and template both off the loop
        total, offset, rows, folders, status = _listing(
            state, q, folder, offset, PAGE_SIZE, clamp=True
        )
        return state.templates.get_template(template).render(
            rows=rows,
            total=total,
            page=offset // PAGE_SIZE + 1,
            pages=max(1, math.ceil(total / PAGE_SIZE)),
            q=q,
            folder=folder,
            folders=folders,
            status=_status_json(status),
            threshold=state.threshold,
            now=time.time(),
            archive_url=state.archive_url,
        )

    html = await asyncio.to_thread(render, offset)
    return web.Response(
        text=html, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"}
    )


async def _send_file(
    request: web.Request, path: Path, name: str, *, attachment: bool
) -> web.StreamResponse:
    try:
        st = os.stat(path)
    except OSError:
        raise web.HTTPNotFound(text="no such recording") from None
    size = st.st_size
    headers = {
        "Content-Type": served_type(path.suffix) or "application/octet-stream",
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-cache",
    }
    if attachment:
        base = name.rsplit("/", 1)[-1]
        ascii_name = "".join(c if " " <= c < "\x7f" and c not in '"\\?' else "_" for c in base)
        headers["Content-Disposition"] = (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"
        )
    validator = ranges.etag(size, st.st_mtime_ns)
    if_range = request.headers.get("If-Range")
    try:
        rng = (
            ranges.parse_range(request.headers.get("Range"), size)
            if ranges.if_range_holds(if_range, validator, st.st_mtime)
            else None
        )
    except ranges.RangeNotSatisfiable:
        raise web.HTTPRequestRangeNotSatisfiable(
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"}
        ) from None
    mirror = request.app[STATE].mirror
    if mirror is not None:
        return await _send_through_mirror(request, mirror, name, size, rng, headers, st)
    # FileResponse applies the Range it reads from the request; hand it the one chosen
    # here, resolved against the size seen now, so it never serves past this size.
    forwarded = request.headers.copy()
    forwarded.popall("Range", None)
    forwarded.popall("If-Range", None)
    if rng is not None:
        forwarded["Range"] = f"bytes={rng[0]}-{rng[1]}"
    return _RangedFile(path, forwarded, headers=headers)


async def _send_through_mirror(
    request: web.Request,
    mirror: StoreMirror,
    name: str,
    size: int,
    rng: tuple[int, int] | None,
    headers: dict[str, str],
    st: os.stat_result,
) -> web.StreamResponse:
    """A file of the store: its range from the mirror's copy if it was fetched, else
    by a ranged GET passed on as it arrives (no need to fetch an hour to play its
    first second)."""
    first, last = rng if rng is not None else (0, size - 1)
    response = web.StreamResponse(status=206 if rng is not None else 200, headers=headers)
    response.last_modified = st.st_mtime
    response.headers["ETag"] = ranges.etag(size, st.st_mtime_ns)  # FileResponse's own
    if rng is not None:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    response.content_length = last - first + 1
    if request.method == "HEAD" or size == 0:
        await response.prepare(request)
        await response.write_eof()
        return response
    try:
        # Opening takes the name's lock (an eviction may hold it): not on the loop.
        chunks = await asyncio.to_thread(mirror.open, name, first, last)
    except (NotInStore, FileNotFoundError):
        raise web.HTTPNotFound(text="no such recording") from None
    try:
        head = await asyncio.to_thread(next, chunks, None)  # the store answers first
    except (StoreError, NotInStore) as exc:
        chunks.close()
        log.warning("cannot read %s from the store: %s", name, exc)
        raise web.HTTPBadGateway(text=f"the store did not give {name}: {exc}") from None
    await response.prepare(request)
    try:
        if head is not None:
            await response.write(head)
            await clips.write_chunks(response, chunks)
    except ConnectionError:
        log.debug("%s: the client went away", request.path)
        return response
    except (StoreError, OSError) as exc:  # the headers are out: all one can do is stop
        log.warning("reading %s from the store broke off: %s", name, exc)
        raise
    await response.write_eof()
    return response


class _RangedFile(web.FileResponse):
    """A FileResponse that sees the request with the Range this module decided on."""

    def __init__(self, path: Path, request_headers: Any, *, headers: dict[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._request_headers = request_headers

    async def prepare(self, request: web.BaseRequest) -> Any:
        return await super().prepare(request.clone(headers=self._request_headers))


async def stream(request: web.Request) -> web.StreamResponse:
    name, path = _lookup(request, "/stream/")
    return await _send_file(request, path, name, attachment=False)


async def download(request: web.Request) -> web.StreamResponse:
    name, path = _lookup(request, "/download/")
    return await _send_file(request, path, name, attachment=True)


def _is_recording(state: WebState, name: str, path: Path) -> bool:
    return name in state.status().recording or is_locked(path)


async def api_analyse(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    name, path = _lookup(request, "/api/analyse/")
    text = request.query.get("threshold")
    threshold = state.threshold
    if text:
        try:
            threshold = float(text)
        except ValueError:
            raise web.HTTPBadRequest(text="threshold must be a number") from None
        if not (0.0 <= threshold <= 1.0):
            raise web.HTTPBadRequest(text="threshold must be in 0..1")
    try:
        blob = await _unless_client_leaves(request, _analysis(state, name, path))
    except (FileNotFoundError, NotInStore):  # deleted (by retention, say) since the lookup
        raise web.HTTPNotFound(text="no such recording") from None
    except StoreError as exc:
        log.warning("cannot fetch %s from the store: %s", name, exc)
        raise web.HTTPBadGateway(text=f"the store did not give {name}: {exc}") from None
    except QueueFull as exc:
        log.warning("analysis of %s refused: %s", name, exc)
        raise web.HTTPServiceUnavailable(
            text=f"the analysis queue is full; try again in {exc.retry_after} s",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
    except analyse.AnalysisError as exc:
        # The details name server paths: they go to the log, the client gets the
        # recording's own (relative) name and a short reason.
        if not await asyncio.to_thread(os.path.isfile, path):
            raise web.HTTPNotFound(text="no such recording") from None
        log.warning("cannot analyse %s: %s", name, exc)
        public = isinstance(exc, (JobError, analyse.NotAudio))
        reason = str(exc) if public else "no audio could be decoded"
        raise web.HTTPUnprocessableEntity(text=f"cannot analyse {name}: {reason}") from None
    if blob is None:  # the client went away: nobody to answer
        return web.Response(status=499)
    # Built from bytes off the loop: a long waveform never holds it (DESIGN: one loop).
    body = await asyncio.to_thread(analyse.answer, blob, threshold)
    return web.Response(body=body, content_type="application/json")


async def _unless_client_leaves(
    request: web.Request, work: Coroutine[Any, Any, bytes]
) -> bytes | None:
    """``await work``, or cancel it (and return None) once the client has gone.

    aiohttp lets a handler run on after its client hung up; an analysis nobody waits
    for would hold the worker, so the connection is watched while it runs.
    """
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=CLIENT_POLL_SECONDS)
            if done:
                return task.result()
            transport = request.transport
            if transport is None or transport.is_closing():
                log.info("%s: the client went away; analysis withdrawn", request.path)
                return None
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _analysis(state: WebState, name: str, path: Path) -> bytes:
    """:func:`analyse.encode` bytes of a recording, from the cache or a worker."""
    st = await asyncio.to_thread(os.stat, path)
    key = (name, st.st_size, st.st_mtime_ns)
    cache = _analysis_cache_path(state.root, name)
    cached = await asyncio.to_thread(_read_cache, cache, key)
    if cached is not None:
        return cached
    if state.mirror is not None:
        await asyncio.to_thread(state.mirror.local, name)  # the bytes, not a placeholder
    # One job per file and size: a second request for it joins the first.
    blob = await state.jobs.run((name, st.st_size), str(path))
    recording = await asyncio.to_thread(_is_recording, state, name, path)
    if not recording:  # a growing file's result is stale at once
        await asyncio.to_thread(_write_cache, cache, key, blob)
    return blob


def _read_cache(cache: Path, key: tuple[str, int, int]) -> bytes | None:
    """The cached bytes when the first line names this file, size and mtime."""
    try:
        data = read_regular(cache, limit=1 << 30)
    except OSError:
        return None
    line, sep, blob = data.partition(b"\n")
    try:
        if not sep or json.loads(line) != list(key):
            return None
        analyse.decode(blob)
    except ValueError:
        return None
    return blob


def _write_cache(cache: Path, key: tuple[str, int, int], blob: bytes) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        replace_atomic(cache, json.dumps(list(key)).encode() + b"\n" + blob)
    except OSError as exc:
        log.warning("cannot cache analysis in %s: %s", cache, exc)


# -- the timeline ----------------------------------------------------------------

T = TypeVar("T")


def _json_error(cls: type[web.HTTPError], message: str) -> web.HTTPError:
    return cls(text=json.dumps({"error": message}), content_type="application/json")


async def _on_timeline(state: WebState, work: Callable[[TimelineIndex], T]) -> T:
    """``work(index)`` in a worker thread, one at a time, with the index's errors
    turned into statuses."""
    index = state.timeline
    if index is None:
        raise _json_error(web.HTTPServiceUnavailable, "the timeline index is not running")
    async with state.timeline_gate:
        try:
            return await asyncio.to_thread(work, index)
        except UnknownSource as exc:
            raise _json_error(web.HTTPNotFound, str(exc)) from None
        except IndexClosed:
            raise _json_error(web.HTTPServiceUnavailable, "the web UI is stopping") from None
        except sqlite3.Error as exc:
            log.error("the timeline index failed: %s", exc)
            raise _json_error(
                web.HTTPServiceUnavailable, "the timeline index is unavailable; see the log"
            ) from None


async def api_sources(request: web.Request) -> web.Response:
    state = request.app[STATE]

    def answer(index: TimelineIndex) -> bytes:
        return json.dumps(sources_json(index.sources(), state.tz)).encode()

    body = await _on_timeline(state, answer)
    return web.Response(body=body, content_type="application/json")


async def api_timeline(request: web.Request) -> web.Response:
    state = request.app[STATE]
    source = request.query.get("source", "")
    if not source:
        raise _json_error(web.HTTPBadRequest, "source is required")
    try:
        t0, t1 = resolve_span(
            request.query.get("from") or None,
            request.query.get("to") or None,
            state.tz,
            time.time(),
            max_days=MAX_TIMELINE_DAYS,
        )
    except BadTime as exc:
        raise _json_error(web.HTTPBadRequest, str(exc)) from None

    def answer(index: TimelineIndex) -> bytes:
        return index.timeline(source, t0, t1).encode(state.tz)

    body = await _on_timeline(state, answer)
    return web.Response(body=body, content_type="application/json")


async def _start_timeline(app: web.Application) -> None:
    """Build (or catch up) the index in the background: the server answers at once,
    and a timeline request made meanwhile waits for the build, off the loop."""
    state = app[STATE]

    async def build() -> None:
        try:
            await _on_timeline(state, lambda index: index.refresh())
        except web.HTTPError:
            pass  # logged where it happened, or the server is stopping
        except Exception:
            log.exception("the timeline index could not be built")

    state.timeline_build = asyncio.create_task(build())


async def _stop_timeline(app: web.Application) -> None:
    state = app[STATE]
    if state.timeline is not None:
        await asyncio.to_thread(state.timeline.close)  # a build under way gives up
    if state.timeline_build is not None:
        with contextlib.suppress(asyncio.CancelledError):
            await state.timeline_build


async def _start_refresher(app: web.Application) -> None:
    state = app[STATE]
    assert state.mirror is not None
    state.store_wanted.set()  # at start, whether or not anyone asks
    state.refresher = asyncio.create_task(
        _refresh_store(state.mirror, app[STORE_REFRESH], state.store_wanted)
    )


async def _refresh_store(mirror: StoreMirror, every: float, wanted: asyncio.Event) -> None:
    """List the store at start, then at most every ``every`` seconds while the UI is
    used (``wanted``: a request came since the last listing). A listing of a year of
    files is ~180 requests to the store, which a provider bills: an idle UI makes
    none. An unreachable store is logged (once until it answers again) and what is
    known stays served."""
    failing: str | None = None
    while True:
        await wanted.wait()
        wanted.clear()
        try:
            done = await asyncio.to_thread(mirror.refresh)
        except StoreError as exc:
            if str(exc) != failing:
                log.warning("cannot list the store %s: %s", mirror.store.cfg.url, exc)
            failing = str(exc)
        except Exception as exc:  # never the end of the refresher: logged, tried again
            if repr(exc) != failing:
                log.exception("listing the store %s failed", mirror.store.cfg.url)
            failing = repr(exc)
        else:
            if failing is not None or mirror.refreshes == 1:
                log.info(
                    "store %s: %d objects, %d new or changed, %d gone (%.1f s)",
                    mirror.store.cfg.url,
                    done.objects,
                    done.changed,
                    done.gone,
                    done.seconds,
                )
            failing = None
        await asyncio.sleep(every)


async def _stop_refresher(app: web.Application) -> None:
    state = app[STATE]
    if state.refresher is not None:
        state.refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await state.refresher
    if state.mirror is not None:
        await asyncio.to_thread(state.mirror.close)


class _Busy(Exception):
    pass


class _NotDeletable(Exception):
    """Something beside the recording cannot go with it: nothing is deleted."""


LOCK_TRIES = 10
LOCK_RETRY_SECONDS = 0.02


def _companions(state: WebState, name: str, path: Path) -> list[tuple[str, Path]]:
    """What goes with a recording: its sidecar and cached analysis, checked first.

    Each may be missing, or anything ``unlink`` removes (a file, a symlink); a directory
    in its place refuses the whole delete before the audio is touched.
    """
    out = []
    for what, extra in (
        ("sidecar", path.with_name(path.name + ".json")),
        ("cached analysis", _analysis_cache_path(state.root, name)),
    ):
        try:
            st = os.lstat(extra)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            raise _NotDeletable(f"its {what} is a directory")
        out.append((what, extra))
    return out


def _delete(
    state: WebState, name: str, path: Path, client: str | None = None, user: str | None = None
) -> None:
    """Remove a recording with its sidecar and cached analysis, unless it is recorded.

    The exclusive lock is held across the unlink: a recorder that locked the file a
    moment ago makes the lock fail, and none can lock it while it goes.
    """
    import fcntl

    companions = _companions(state, name, path)
    source = source_of(path)  # for the chain's deleted line, before the sidecar goes
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for attempt in range(LOCK_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # A recorder, or a probe (``is_locked``, here or elsewhere) that
                # holds the lock for an instant: only a lock that stays is busy.
                if attempt == LOCK_TRIES - 1:
                    raise _Busy() from None
                time.sleep(LOCK_RETRY_SECONDS)
                continue
            except OSError:
                pass  # no flock on this filesystem: the status file decides
            break
        if name in state.status().recording:
            raise _Busy()
        size = os.fstat(fd).st_size
        os.unlink(path)
    finally:
        os.close(fd)
    removed = []
    for what, extra in companions:
        try:
            extra.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:  # changed since the check: the audio is gone, say so
            log.warning("deleted %s but not its %s: %s", name, what, exc.strerror)
            continue
        removed.append(what)
    state.index.forget(name)
    log_deletion(state.root, name, size, "deleted in the web UI")
    web_deleted(state.root, name, size, source, client=client, user=user)
    log.info(
        "deleted %s (%d bytes)%s at the web UI's request",
        name,
        size,
        " with its " + " and ".join(removed) if removed else "",
    )


async def api_delete(request: web.Request) -> web.Response:
    state = request.app[STATE]
    name, path = _lookup(request, "/api/files/")
    if state.mirror is not None:
        raise web.HTTPForbidden(
            text=f"{name} is in the store: the web UI over the store deletes nothing "
            "(the store's own lifecycle rules do)"
        )
    try:
        user = basic_user(request.headers.get("Authorization")) if state.username else None
        await asyncio.to_thread(_delete, state, name, path, request.remote, user)
    except _Busy:
        raise web.HTTPConflict(text=f"{name} is being recorded") from None
    except _NotDeletable as exc:
        log.warning("did not delete %s: %s", name, exc)
        raise web.HTTPConflict(text=f"cannot delete {name}: {exc}") from None
    except FileNotFoundError:
        raise web.HTTPNotFound(text="no such recording") from None
    except OSError as exc:  # a read-only mount, say: a reason, not a server path
        log.warning("cannot delete %s: %s", name, exc)
        raise web.HTTPInternalServerError(text=f"cannot delete {name}: {exc.strerror}") from None
    return web.Response(status=204)


# -- application -------------------------------------------------------------------


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["urlname"] = encode_name
    env.filters["breakable"] = breakable
    env.filters["rowid"] = lambda name: "f" + hashlib.sha1(name.encode()).hexdigest()[:12]
    env.filters["size"] = human_size
    env.filters["duration"] = human_duration
    return env


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


async def _stop_jobs(app: web.Application) -> None:
    await app[STATE].jobs.close()


async def _learn_own_names(app: web.Application) -> None:
    state = app[STATE]
    state.allowed_hosts |= await asyncio.to_thread(guard.own_host_names)


def create_app(
    directory: Path,
    *,
    threshold: float = WEB_DEFAULTS.threshold,
    username: str = "",
    password: str = "",
    allowed_hosts: Iterable[str] = (),
    max_clip_hours: float = WEB_DEFAULTS.max_clip_hours,
    sources: Iterable[str] | None = None,
    min_coverage: float = AlertsConfig().min_coverage,
    mirror: StoreMirror | None = None,
    refresh_seconds: float = STORE_REFRESH_SECONDS,
) -> web.Application:
    """The application. ``sources`` names the config's sources when it is known: a
    source recorded but no longer among them is not expected any more (coverage).
    With ``mirror`` it serves the store through it, and ``directory`` is ignored."""
    if username and not password:
        # anyone would get in with an empty password while the config says auth is on
        raise ValueError("a web user name needs a password")
    root = Path(mirror.root if mirror is not None else directory).resolve()
    app = web.Application(middlewares=[_guard], client_max_size=1024)
    files = FileIndex(root)
    app[STATE] = WebState(
        root=root,
        threshold=threshold,
        username=username,
        password=password,
        index=files,
        templates=_templates(),
        registry=make_registry(root),
        jobs=AnalysisJobs(
            workers=ANALYSIS_WORKERS, max_waiting=ANALYSIS_QUEUE, timeout=ANALYSIS_TIMEOUT
        ),
        allowed_hosts=frozenset(guard.parse_allowed_hosts(" ".join(allowed_hosts))),
    )
    state = app[STATE]
    state.timeline = TimelineIndex(root, state.tz, files, per_recorder=mirror is not None)
    if mirror is not None:
        state.mirror = mirror
        state.archive_url = mirror.store.cfg.url
        app[STORE_REFRESH] = refresh_seconds
        app.on_startup.append(_start_refresher)
        app.on_cleanup.append(_stop_refresher)
    clips.setup(
        app,
        Clipper(
            root,
            state.tz,
            state.timeline,
            max_hours=max_clip_hours,
            fetch=mirror.local if mirror is not None else None,
            per_recorder=mirror is not None,
        ),
        lambda work: _on_timeline(state, work),
    )
    coverage.setup(
        app,
        lambda work: _on_timeline(state, work),
        state.templates,
        state.tz,
        configured=sources,
        min_coverage=min_coverage,
    )
    app.on_startup.append(_learn_own_names)
    app.on_startup.append(_start_timeline)
    app.on_cleanup.append(_stop_timeline)
    app.on_response_prepare.append(_security_headers)
    app.on_cleanup.append(_stop_jobs)
    app.router.add_get("/", index_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/files", api_files)
    app.router.add_get("/api/sources", api_sources)
    app.router.add_get("/api/timeline", api_timeline)
    app.router.add_get(
        "/timeline",
        timeline_page.handler(state.templates, state.tz, max_clip_hours=max_clip_hours),
    )
    app.router.add_get(r"/api/files/{name:[\s\S]+}", _method_not_allowed)
    app.router.add_delete(r"/api/files/{name:[\s\S]+}", api_delete)
    app.router.add_get(r"/api/analyse/{name:[\s\S]+}", api_analyse)
    app.router.add_get(r"/stream/{name:[\s\S]+}", stream)
    app.router.add_get(r"/download/{name:[\s\S]+}", download)
    app.router.add_static("/static/", HERE / "static", follow_symlinks=False)
    return app


async def _method_not_allowed(request: web.Request) -> web.Response:
    raise web.HTTPMethodNotAllowed(request.method, ["DELETE"])


IDLE_SECONDS = 10.0
"""A connection that has not sent a whole request head this long after it opened (or
after its last answer) is closed: idle and half-sent connections cost a socket each."""
LINGER_SECONDS = 10.0
"""The most spent reading a request body no route wanted (none reads one)."""


def runner_options() -> dict[str, Any]:
    """How the server runs: bounded idle and header time, one-line bad-request logs."""
    return {
        "access_log": None,
        "keepalive_timeout": IDLE_SECONDS,
        "lingering_time": LINGER_SECONDS,
        "logger": guard.ServerLog(logging.getLogger("isr.web.server"), {}),
    }


async def start_web(
    directory: Path,
    *,
    host: str = WEB_DEFAULTS.host,
    port: int = WEB_DEFAULTS.port,
    threshold: float = WEB_DEFAULTS.threshold,
    username: str = "",
    password: str = "",
    allowed_hosts: Iterable[str] = (),
    max_clip_hours: float = WEB_DEFAULTS.max_clip_hours,
    sources: Iterable[str] | None = None,
    min_coverage: float = AlertsConfig().min_coverage,
    mirror: StoreMirror | None = None,
) -> web.AppRunner:
    """Serve on the running loop; the caller awaits ``runner.cleanup()`` to stop."""
    app = create_app(
        directory,
        threshold=threshold,
        username=username,
        password=password,
        allowed_hosts=allowed_hosts,
        max_clip_hours=max_clip_hours,
        sources=sources,
        min_coverage=min_coverage,
        mirror=mirror,
    )
    runner = web.AppRunner(app, handle_signals=False, **runner_options())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(
            exc.errno, f"cannot serve the web UI on {host}:{port}: {exc.strerror}"
        ) from None
    shown = f"[{host}]" if ":" in host else host
    log.info("web UI on http://%s:%d/", shown, port)
    return runner


def run_web(
    directory: Path,
    *,
    host: str = WEB_DEFAULTS.host,
    port: int = WEB_DEFAULTS.port,
    threshold: float = WEB_DEFAULTS.threshold,
    username: str = "",
    password: str = "",
    allowed_hosts: Iterable[str] = (),
    max_clip_hours: float = WEB_DEFAULTS.max_clip_hours,
    sources: Iterable[str] | None = None,
    min_coverage: float = AlertsConfig().min_coverage,
    mirror: StoreMirror | None = None,
) -> None:
    """``isr web``: serve until SIGINT or SIGTERM."""
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = await start_web(
            directory,
            host=host,
            port=port,
            threshold=threshold,
            username=username,
            password=password,
            allowed_hosts=allowed_hosts,
            max_clip_hours=max_clip_hours,
            sources=sources,
            min_coverage=min_coverage,
            mirror=mirror,
        )
        try:
            await stop.wait()
        finally:
            log.info("web UI stopping")
            await runner.cleanup()

    asyncio.run(main())
