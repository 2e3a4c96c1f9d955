"""``type = stream`` over HLS: a live playlist's segments, their audio byte-copied.

A session resolves a master playlist to one variant's audio, then polls the media
playlist as RFC 8216 6.3.4 says (every target duration; half of it after a reload
that brought nothing new). Each segment is fetched once, in media sequence order,
with at most ``IN_FLIGHT`` fetches running; its audio is taken out of its
container (``isr.hls.ts``, ``fmp4``, packed audio), decrypted first where an
``EXT-X-KEY`` says AES-128, framed like a stream and handed to the segmenter.

Time: a segment's ``EXT-X-PROGRAM-DATE-TIME`` (given or counted on) is when its
first sample aired; without one, the live edge is taken as now and the window is
counted back from it. Segments that expired before they were fetched, or that
answered 404 (or garbage) after brief retries, end the file: the next one notes
the gap, with its cause and the missing segments' length. A date that jumps back,
or forward by more than a segment, ends the file too; a change of codec
parameters starts a new file where the new ones begin, with no gap.

What carries over from one session to the next (``HlsSource.last_seq``,
``next_time``): a reconnect goes on from the segment after the last one written if
the playlist still lists it, and then the next file notes no gap at all. Across a
restart of the recorder (or of the server's stream) the program dates do the same:
the first session takes every listed segment that ends after the last audio the
previous run wrote, and drops the frames of the first one that run had written
already, so a restart within the playlist's window loses nothing and repeats
nothing; without dates it starts at the live edge.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from isr.errors import HttpError, SourceError, SourceTimeout, UnsupportedFormat
from isr.framing.adts import AdtsFramer
from isr.framing.base import Frame
from isr.framing.mp3 import Mp3Framer
from isr.framing.sniff import sniff
from isr.hls import fmp4, ts
from isr.hls.crypto import DecryptError, decrypt, sequence_iv
from isr.hls.packed import leading_id3, read_id3
from isr.hls.playlist import (
    Key,
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    Segment,
    parse,
)
from isr.sidecar import sidecar_path
from isr.sinks.base import Sink
from isr.sinks.files import read_regular
from isr.sources.base import Source
from isr.urls import redact_url

__all__ = ["HlsSource", "is_hls"]

IN_FLIGHT = 3
"""Segment fetches running at once, ahead of the one being written."""
LIVE_EDGE_SEGMENTS = 3
"""A fresh start takes this many segments from the end (RFC 8216 6.3.3)."""
SEGMENT_TRIES = 3
"""Fetches of one segment (404, garbage, a reset) before it is a gap."""
RETRY_PAUSE = 0.5
MAX_PLAYLIST_BYTES = 4 << 20
MAX_SEGMENT_BYTES = 64 << 20
DATE_SLACK = 0.5
"""Seconds a program date may run early or late of the audio before it counts as
a jump (a segment's EXTINF rounds, encoders drift)."""
RESUME_SLACK = 0.01
"""Seconds a segment must reach past the last audio written to be taken again."""
SLIVER = 0.1
"""A segment shorter than this (EXTINF) may hold no whole frame: not a gap."""
PLAYLIST_TYPES = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl")


def is_hls(url: str, fmt: str) -> bool:
    """A source recorded as HLS: ``format = hls`` or an ``.m3u8`` URL."""
    return fmt == "hls" or urlsplit(url).path.lower().endswith(".m3u8")


@dataclass
class Audio:
    """One segment's audio: framed, with what its tags said."""

    fmt: str
    frames: list[Frame]
    titles: list[str] = field(default_factory=list)
    params: tuple[int, ...] = ()


class Missing(Exception):
    """A segment that could not be had: its cause ends up in a gap."""


class HlsSource(Source):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url = self.cfg.url
        self._hls_state()

    @classmethod
    def of_stream(cls, owner: Source, url: str) -> HlsSource:
        """A stream source whose URL answered with an HLS playlist (a playlist
        Content-Type, no ``.m3u8``) records this session as HLS: the same source
        (one status, segmenter, retry loop and HLS state across sessions), seen as an
        HlsSource. Each session asks the URL again, so a station that moves between
        ICY and HLS is followed, and ``url`` is the playlist it answered with now."""
        view = cls.__new__(cls)
        view.__dict__ = owner.__dict__  # not a copy: one source, two views of it
        if "last_seq" not in owner.__dict__:
            view.log.info("%s serves an HLS playlist: recorded as HLS", redact_url(url))
            view._hls_state()
            # The stream source's resume learnt where the last run stopped; what HLS
            # needs of it (:meth:`learn_end`) is learnt before the first session.
            view._to_learn = owner.__dict__.get("resumed_from")
        view.url = url
        return view

    def _hls_state(self) -> None:
        self.last_seq: int | None = None
        """Media sequence number of the last segment written (or given up)."""
        self.next_time: float | None = None
        """When the audio after the last segment written aired."""
        self.params: tuple[int, ...] = ()
        self.keys: dict[str, bytes] = {}
        self.inits: dict[tuple[str, tuple[int, int] | None], fmp4.AudioTrack] = {}
        self.variants: list[str] = []
        self.ended = False
        """The playlist said EXT-X-ENDLIST: what the URL serves next is a new stream."""
        self._tail: dict[int, float] = {}
        """Seconds from each listed segment's start to the live edge."""
        self._resume_at: float | None = None
        """The first segment written goes on from here (the last audio written
        before), dropping its frames before it."""
        self._end_known = False
        """The previous run's last audio ended exactly at ``segmenter.last_end``."""
        self._to_learn: tuple[Path | None, float | None] | None = None
        """A stream source found to be HLS: its resume's arguments, for learn_end."""

    def resume(self, last_file: Path | None, last_end: float | None) -> None:
        """Also: where the previous run's audio ended, exactly. A file a crash cut
        has its last write for an end, later than its audio by the playlist's
        latency (a second or more): its frames are counted instead (blocking I/O,
        one file, in the recorder's thread), so that the restart takes the right
        segments."""
        super().resume(last_file, last_end)
        self.learn_end(last_file, last_end)

    def learn_end(self, last_file: Path | None, last_end: float | None) -> None:
        """Whether the previous run's audio ended exactly at ``last_end``; counted from
        a crash-cut file's frames (blocking I/O: called in a thread)."""
        if last_file is None or last_end is None:
            return
        try:
            side = json.loads(read_regular(sidecar_path(last_file)))
            start = datetime.fromisoformat(side["start"]).timestamp()
            recovered = "recovered" in side
        except (OSError, ValueError, TypeError, KeyError):
            return
        if not recovered:
            self._end_known = True
            return
        suffix = last_file.suffix.lower()
        framer = Mp3Framer() if suffix == ".mp3" else AdtsFramer() if suffix == ".aac" else None
        if framer is None:
            return
        seconds = 0.0
        try:
            with open(last_file, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    seconds += sum(f.samples / f.sample_rate for f in framer.feed(chunk))
        except OSError as exc:
            self.log.warning("cannot count the audio of %s: %s", last_file, exc)
            return
        seconds += sum(f.samples / f.sample_rate for f in framer.flush())
        self.segmenter.resume_after(start + seconds)
        self.status.last_end = start + seconds
        self._end_known = True

    # -- HTTP --------------------------------------------------------------------------

    async def get(
        self, http: aiohttp.ClientSession, url: str, limit: int, brange: tuple[int, int] | None
    ) -> tuple[int, str, bytes]:
        headers = {}
        if brange is not None:
            headers["Range"] = f"bytes={brange[1]}-{brange[1] + brange[0] - 1}"
        try:
            async with http.get(url, headers=headers) as resp:
                body = bytearray()
                async for chunk in resp.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > limit:
                        raise HttpError(f"more than {limit} bytes from {redact_url(url)}")
                return resp.status, resp.content_type, bytes(body)
        except aiohttp.ClientError as exc:
            # Not all of them are OSErrors (a server that closed a kept-alive
            # connection, a bad payload): each is a failed request, retried.
            raise HttpError(f"{redact_url(url)}: {exc or type(exc).__name__}") from None

    async def load(self, http: aiohttp.ClientSession, url: str) -> MasterPlaylist | MediaPlaylist:
        status, ctype, body = await self.get(http, url, MAX_PLAYLIST_BYTES, None)
        if status != 200:
            raise HttpError(f"{status} from playlist {redact_url(url)}")
        try:
            return parse(body, url)
        except PlaylistError as exc:
            raise SourceError(f"{redact_url(url)} ({ctype}): {exc}") from None

    async def resolve(self, http: aiohttp.ClientSession) -> tuple[str, MediaPlaylist]:
        url = self.url
        pl = await self.load(http, url)
        if isinstance(pl, MasterPlaylist):
            _refuse_drm(pl.session_keys)
            self.variants = [describe_variant(i, pl) for i in range(len(pl.variants))]
            try:
                variant = pl.choose(self.cfg.hls_variant)
            except PlaylistError as exc:
                raise UnsupportedFormat(str(exc)) from None
            url = pl.audio_uri(variant)
            self.log.info(
                "master playlist: %d variants, recording #%d (%d bit/s) from %s",
                len(pl.variants),
                pl.variants.index(variant),
                variant.bandwidth,
                redact_url(url),
            )
            pl = await self.load(http, url)
            if isinstance(pl, MasterPlaylist):
                raise SourceError(f"{redact_url(url)} is a master playlist again")
        return url, pl

    # -- the session ---------------------------------------------------------------------

    async def session(self) -> None:
        if self._to_learn is not None:
            learn, self._to_learn = self._to_learn, None
            await asyncio.to_thread(self.learn_end, *learn)
        cfg = self.cfg
        auth = aiohttp.BasicAuth(cfg.username, cfg.password) if cfg.username else None
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=cfg.timeout_seconds, sock_read=cfg.timeout_seconds
        )
        async with aiohttp.ClientSession(
            auth=auth, timeout=timeout, headers={"User-Agent": "isr"}
        ) as http:
            url, pl = await self.resolve(http)
            self.log.info(
                "media playlist %s: target duration %g s, %d segments",
                redact_url(url),
                pl.target_duration,
                len(pl.segments),
            )
            last_new = time.monotonic()
            while True:
                started = time.monotonic()
                new = await self.take(http, pl)
                now = time.monotonic()
                if new:
                    last_new = now
                elif now - last_new > cfg.timeout_seconds:
                    raise SourceTimeout(f"no new segment for {cfg.timeout_seconds:g} s")
                if pl.ended:
                    self.ended = True
                    raise SourceError("the playlist ended (EXT-X-ENDLIST)")
                wait = pl.target_duration if new else pl.target_duration / 2
                await asyncio.sleep(max(0.05, wait - (time.monotonic() - started)))
                pl = await self._reload(http, url)

    async def _reload(self, http: aiohttp.ClientSession, url: str) -> MediaPlaylist:
        pl = await self.load(http, url)
        if isinstance(pl, MasterPlaylist):
            raise SourceError(f"{redact_url(url)} became a master playlist")
        return pl

    def wanted(self, pl: MediaPlaylist) -> list[Segment]:
        """The segments still to write, in order."""
        segs = list(pl.segments)
        for s in segs:
            if s.key is not None and s.key.drm:
                _refuse_drm([s.key])
        if self.last_seq is None:
            return self._resumed(segs) or segs[-LIVE_EDGE_SEGMENTS:]
        return [s for s in segs if s.sequence > self.last_seq]

    def _resumed(self, segs: list[Segment]) -> list[Segment]:
        """A first session after audio was written (a restart): the dated segments
        that end after that audio, all of them — what aired meanwhile, as far as the
        window reaches back. None without dates, or with nothing new."""
        since = self.segmenter.last_end
        if since is None or not self._end_known or any(s.date is None for s in segs):
            return []
        after = [s for s in segs if (s.date or 0.0) + s.duration > since + RESUME_SLACK]
        if not after:
            return []
        self._resume_at = since
        self.log.info(
            "going on from segment %d, %.1f s before the live edge: the last audio "
            "written ended %s",
            after[0].sequence,
            sum(s.duration for s in after),
            "inside the playlist's window" if len(after) < len(segs) else "before it",
        )
        return after

    async def take(self, http: aiohttp.ClientSession, pl: MediaPlaylist) -> bool:
        """Fetch and write the new segments of ``pl``; whether there were any."""
        todo = self.wanted(pl)
        if not todo:
            last = pl.segments[-1].sequence if pl.segments else None
            if last is not None and self.last_seq is not None and last < self.last_seq - 2:
                # The server started again from a lower number: a new stream.
                self.log.warning(
                    "the media sequence went back from %d to %d: starting again",
                    self.last_seq,
                    last,
                )
                self.segmenter.close()
                if not self.ended:  # else the end is the cause
                    self.segmenter.note_cause("the server restarted the stream")
                self.last_seq = None
                self.next_time = None
                return await self.take(http, pl)
            return False
        self._tail = {}
        left = 0.0
        for s in reversed(pl.segments):
            left += s.duration
            self._tail[s.sequence] = left
        if self.ended and not pl.ended:
            # A new stream after the end of the last one: its numbers may start
            # anywhere; the gap's cause is the end (noted when the session ended).
            self.log.info("a new stream after EXT-X-ENDLIST, from segment %d", todo[0].sequence)
            self.ended = False
            self.next_time = None
        elif self.last_seq is not None and todo[0].sequence > self.last_seq + 1:
            lost = todo[0].sequence - self.last_seq - 1
            self.gap(
                f"{lost} segment{'s' if lost > 1 else ''} expired before they were fetched",
                lost * pl.target_duration,
            )
        tasks: list[asyncio.Task[Audio]] = []
        try:
            for i, seg in enumerate(todo):
                while len(tasks) < min(len(todo), i + IN_FLIGHT):
                    tasks.append(asyncio.create_task(self.fetch(http, todo[len(tasks)])))
                try:
                    audio = await tasks[i]
                except Missing as exc:
                    self.log.warning("segment %d: %s: a gap", seg.sequence, exc)
                    self.gap(f"segment {seg.sequence}: {exc}", seg.duration)
                    self.last_seq = seg.sequence
                    continue
                if audio.frames:
                    self.write(seg, audio)
                self.last_seq = seg.sequence
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return True

    def gap(self, cause: str, seconds: float) -> None:
        """Audio is lost: the file ends and the next one notes the gap."""
        self.segmenter.close()
        self.segmenter.note_cause(cause)
        if self.next_time is not None:
            self.next_time += seconds

    # -- one segment ---------------------------------------------------------------------

    async def fetch(self, http: aiohttp.ClientSession, seg: Segment) -> Audio:
        problem = ""
        for attempt in range(SEGMENT_TRIES):
            if attempt:
                await asyncio.sleep(RETRY_PAUSE * attempt)
            try:
                got = await self.get(http, seg.uri, MAX_SEGMENT_BYTES, seg.byterange)
            except (aiohttp.ClientError, TimeoutError, HttpError) as exc:
                problem = str(exc) or type(exc).__name__
                continue
            status, ctype, body = got
            if status not in (200, 206):
                problem = f"HTTP {status}"
                continue
            try:
                return await self.audio_of(http, seg, body)
            except Missing as exc:
                problem = f"{exc} ({ctype or 'no Content-Type'}, {len(body)} bytes)"
                self.log.warning("segment %d: %s", seg.sequence, problem)
        raise Missing(problem)

    async def audio_of(self, http: aiohttp.ClientSession, seg: Segment, body: bytes) -> Audio:
        if seg.key is not None:
            key = await self.key(http, seg.key)
            try:
                body = decrypt(body, key, seg.key.iv or sequence_iv(seg.sequence))
            except DecryptError as exc:
                raise Missing(f"cannot decrypt: {exc}") from None
        titles: list[str] = []
        if seg.init is not None:
            track = await self.init(http, seg)
            got = fmp4.demux(body, track)
            fmt, es, problems = "aac", got.data, got.problems
        elif ts.looks_like_ts(body):
            t = ts.demux(body)
            if t.codec is None:
                what = f"{t.other} audio" if t.other else "no audio stream"
                raise UnsupportedFormat(f"the transport stream carries {what}: not supported")
            fmt, es, problems = t.codec, t.data, t.problems
            for tag in t.id3:
                if (title := read_id3(tag).display) is not None:
                    titles.append(title)
        else:
            n = leading_id3(body)
            if n:
                info = read_id3(body[:n])
                if info.display:
                    titles.append(info.display)
            es = body[n:]
            found = sniff(es[:16384])
            if found not in ("aac", "mp3"):
                raise Missing("not audio")
            fmt, problems = found, {}
        framer = AdtsFramer() if fmt == "aac" else Mp3Framer()
        frames = framer.feed(es) + framer.flush()
        if not frames and seg.duration < SLIVER:
            # An encoder's last segment at EXT-X-ENDLIST can hold no whole frame
            # (ffmpeg's is 0.023 s, one 12-byte ADTS frame): nothing aired is lost.
            self.log.info("segment %d: %.3f s without a whole frame", seg.sequence, seg.duration)
            return Audio(fmt, [], titles)
        if not frames:
            raise Missing("no audio frame in it")
        if problems or framer.dropped_bytes:
            self.log.info(
                "segment %d: %s; %d bytes dropped by the framer",
                seg.sequence,
                ", ".join(f"{k}: {v}" for k, v in sorted(problems.items())) or "clean",
                framer.dropped_bytes,
            )
        return Audio(fmt, frames, titles, _params(fmt, frames[0]))

    async def key(self, http: aiohttp.ClientSession, key: Key) -> bytes:
        assert key.uri is not None
        if key.uri not in self.keys:
            status, _, body = await self.get(http, key.uri, 1024, None)
            if status != 200 or len(body) != 16:
                raise Missing(f"the key answered {status} with {len(body)} bytes")
            self.keys[key.uri] = body
        return self.keys[key.uri]

    async def init(self, http: aiohttp.ClientSession, seg: Segment) -> fmp4.AudioTrack:
        assert seg.init is not None
        where = (seg.init, seg.init_range)
        if where not in self.inits:
            status, _, body = await self.get(http, seg.init, MAX_SEGMENT_BYTES, seg.init_range)
            if status not in (200, 206):
                raise Missing(f"the initialisation segment answered {status}")
            if seg.key is not None:
                key = await self.key(http, seg.key)
                try:
                    body = decrypt(body, key, seg.key.iv or sequence_iv(seg.sequence))
                except DecryptError as exc:
                    raise Missing(f"cannot decrypt the initialisation segment: {exc}") from None
            try:
                self.inits[where] = fmp4.parse_init(body)
            except fmp4.Fmp4Error as exc:
                raise UnsupportedFormat(f"fMP4 initialisation segment: {exc}") from None
        return self.inits[where]

    def write(self, seg: Segment, audio: Audio) -> None:
        frames = audio.frames
        seconds = sum(f.samples / f.sample_rate for f in frames)
        t0 = self.time_of(seg, seconds)
        if self._resume_at is not None:
            since, self._resume_at = self._resume_at, None
            frames, t0 = self._after(seg, frames, t0, since)
            if not frames:
                self.next_time = t0
                return
            seconds = sum(f.samples / f.sample_rate for f in frames)
        if self.params and audio.params != self.params and self.segmenter.sink is not None:
            self.log.info("segment %d: the codec parameters change: a new file", seg.sequence)
            frames = [replace(frames[0], new_link=True), *frames[1:]]
        self.params = audio.params
        for title in audio.titles:
            if title != self.status.title:
                self.status.title = title
                self.log.info("title: %s", title)
                self.board.changed()
                self.segmenter.note_title(title)
        self.status.format = audio.fmt
        new_writer = Mp3Framer().file_writer if audio.fmt == "mp3" else AdtsFramer().file_writer
        ext = ".mp3" if audio.fmt == "mp3" else ".aac"

        def make_sink(directory: Path, stem: str, extension: str | None) -> Sink:
            return Sink(directory, stem, extension or ext)

        self.segmenter.write_frames(frames, t0, make_sink, audio.fmt, new_writer)
        self.next_time = t0 + seconds
        self.count_bytes(sum(len(f.data) for f in frames))
        self.wrote_audio()

    def _after(
        self, seg: Segment, frames: list[Frame], t0: float, since: float
    ) -> tuple[list[Frame], float]:
        """The frames the last run did not write (it may have written part of this
        segment before a crash): dropped ones are noted as an overlap removed."""
        kept, t = frames_from(frames, t0, since)
        if len(kept) < len(frames):
            dropped = frames[: len(frames) - len(kept)]
            self.log.info(
                "segment %d: %d frames (%.3f s) the last run wrote already: dropped",
                seg.sequence,
                len(dropped),
                t - t0,
            )
            self.segmenter.note_overlap(sum(len(f.data) for f in dropped), t - t0)
        return kept, t

    def time_of(self, seg: Segment, seconds: float) -> float:
        """When the segment's first sample aired; a date that jumps ends the file."""
        expect = self.next_time
        if seg.date is not None:
            if expect is not None and self.segmenter.sink is not None:
                jump = seg.date - expect
                if jump < -DATE_SLACK or jump > max(seg.duration, seconds) + DATE_SLACK:
                    self.log.warning(
                        "segment %d: the program date jumps %+.3f s: a new file",
                        seg.sequence,
                        jump,
                    )
                    self.segmenter.close()
                    self.segmenter.note_cause(f"the program date jumped {jump:+.3f} s")
                    return seg.date
                if abs(jump) <= DATE_SLACK:
                    return expect  # one run of audio: its own count is the clock
            return seg.date
        if expect is not None:
            return expect  # counted on over what was written and what was lost
        # The live edge (the end of the last segment listed) is taken as now.
        return time.time() - self._tail.get(seg.sequence, seg.duration)


def frames_from(frames: list[Frame], t0: float, since: float) -> tuple[list[Frame], float]:
    """The frames (the first aired at ``t0``) that begin at ``since`` or later, within
    half a frame, and when the first of them aired."""
    t = t0
    for i, frame in enumerate(frames):
        length = frame.samples / frame.sample_rate
        if t + length / 2 > since:
            return frames[i:], t
        t += length
    return [], t


def _params(fmt: str, frame: Frame) -> tuple[int, ...]:
    """The header fields that a file must not change inside it."""
    d = frame.data
    if fmt == "aac" and len(d) >= 4:
        return (1, d[1] & 0x08, d[2] & 0xFD, d[3] >> 6)  # ID, profile, rate, channels
    if len(d) >= 4:
        return (2, d[1] & 0x1E, d[2] & 0x0C, d[3] >> 6)  # version, layer, rate, mode
    return ()


def _refuse_drm(keys: Any) -> None:
    for key in keys:
        if key.drm:
            raise UnsupportedFormat(
                f"the playlist is encrypted with {key.method}"
                f"{'' if key.keyformat == 'identity' else ' (' + key.keyformat + ')'}: "
                "DRM is not supported (only AES-128)"
            )


def describe_variant(index: int, pl: MasterPlaylist) -> str:
    v = pl.variants[index]
    extra = ", ".join(x for x in (v.codecs, v.resolution) if x)
    return f"#{index}: {v.bandwidth} bit/s{' (' + extra + ')' if extra else ''} {redact_url(v.uri)}"


async def probe(
    url: str,
    fmt: str,
    username: str = "",
    password: str = "",
    *,
    hls_variant: int | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """``isr check --probe``: what a stream source's URL serves now, if HLS: a master
    playlist's variants (the one recorded marked ``*``), or the media playlist's
    shape. Empty for a URL that is not HLS (its body is never read). Raises
    ``SourceError`` for a URL that cannot be fetched or parsed."""
    auth = aiohttp.BasicAuth(username, password) if username else None
    limits = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (
            aiohttp.ClientSession(auth=auth, timeout=limits, headers={"User-Agent": "isr"}) as http,
            http.get(url) as resp,
        ):
            if not (is_hls(url, fmt) or resp.content_type in PLAYLIST_TYPES):
                return []
            if resp.status != 200:
                raise HttpError(f"{resp.status} from {redact_url(url)}")
            body = await resp.content.read(MAX_PLAYLIST_BYTES)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise HttpError(f"{redact_url(url)}: {exc or type(exc).__name__}") from None
    if not is_hls(url, fmt) and b"#EXT-X-" not in body.upper():
        return []  # a plain M3U list served with the same type
    try:
        pl = parse(body, str(resp.url))
    except PlaylistError as exc:
        raise SourceError(f"{redact_url(url)}: {exc}") from None
    if isinstance(pl, MediaPlaylist):
        return [
            f"HLS media playlist: {len(pl.segments)} segments, target duration "
            f"{pl.target_duration:g} s{', ended' if pl.ended else ''}"
        ]
    try:
        chosen = pl.variants.index(pl.choose(hls_variant))
    except PlaylistError as exc:
        raise SourceError(str(exc)) from None
    lines = [f"HLS master playlist: {len(pl.variants)} variants"]
    for i in range(len(pl.variants)):
        mark = "*" if i == chosen else " "
        lines.append(f"{mark} {describe_variant(i, pl)}")
    return lines
