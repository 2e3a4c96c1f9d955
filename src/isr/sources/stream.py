"""``type = stream``: an Icecast/SHOUTcast stream, byte-copied into framed files.

Per connection: open (``http.open_stream``), strip ICY metadata (``icy``), pick the
format (config, else Content-Type confirmed by sniffing), frame it, time the
frames on the media clock and hand them to the segmenter. Every (re)connect
starts a new file; the first one is named after the moment its first audio was
aired, which is why the first second after a connect is held back, and longer
while audio still comes faster than real time: the server's burst of older audio
must all arrive before we can tell how old it is.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from isr import formats
from isr.clock import MediaClock
from isr.errors import SourceError, UnsupportedFormat
from isr.framing.base import Frame, Framer
from isr.framing.sniff import format_from_content_type, sniff, unsupported
from isr.overlap import RecentFrames
from isr.segment import SinkFactory
from isr.sinks.base import Sink
from isr.sources.base import Source
from isr.sources.http import HlsFound, StreamResponse, open_stream, redact_url
from isr.sources.icy import IcyDemuxer

READ_SIZE = 65536
SNIFF_BYTES = 32768
"""Bytes sniffed at most before the format is chosen (Ogg pages can be large)."""
SNIFF_MIN_BYTES = 4096
"""A format that sniffing recognises in this many bytes is taken at once."""
SNIFF_SECONDS = 2.0
SETTLE_SECONDS = 1.0
"""Hold frames this long after a connect, until the burst has arrived."""
SETTLE_MAX_MEDIA = 60.0
SETTLE_JITTER = 0.1
"""Seconds the anchor may move back in one read of a settled (real-time) stream."""
DROP_LOG_SECONDS = 10.0
NOT_AUDIO = frozenset({"text/html", "application/xhtml+xml", "text/plain", "application/json"})
OVERLAP_TOLERANCE = 1.5
"""Seconds the repeated frames and the media clock may disagree on a repeat's length."""


def make_framer(fmt: str) -> Framer:
    """A framer for a stream of format ``fmt``, its class imported now (the registry)."""
    entry = formats.by_name(fmt)
    if entry is None or entry.framer is None:
        raise SourceError(f"no framer for format {fmt!r}")
    try:
        cls = entry.framer_class()
    except (ImportError, AttributeError):
        raise SourceError(f"recording {fmt} streams is not supported by this version") from None
    assert cls is not None
    framer: Framer = cls()
    return framer


class StreamSource(Source):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recent = RecentFrames()
        """Keys of the frames written last, to drop what a reconnect repeats."""

    def resume(self, last_file: Path | None, last_end: float | None) -> None:
        """Also learn the last frames of the previous run's file: a quick restart
        gets them again in the server's burst, and they must not be written twice."""
        super().resume(last_file, last_end)
        self.resumed_from = (last_file, last_end)
        """Kept for a URL that turns out to serve HLS (``HlsSource.of_stream``)."""
        fmt = _format_of_file(last_file.suffix) if last_file else None
        if last_file is None or last_end is None or fmt is None:
            return
        try:
            frames = file_frames(last_file, make_framer(fmt))  # "opus" is an Ogg framer
        except (OSError, SourceError) as exc:
            self.log.warning("cannot read the end of %s: %s", last_file, exc)
            return
        self.recent.add(frames)

    async def session(self) -> None:
        cfg = self.cfg
        try:
            resp = await open_stream(
                cfg.url,
                username=cfg.username or None,
                password=cfg.password or None,
                timeout=cfg.timeout_seconds,
            )
        except HlsFound as found:
            from isr.sources.hls import HlsSource  # aiohttp's client only when needed

            await HlsSource.of_stream(self, found.url).session()
            return
        try:
            await _Connection(self, resp).run()
        finally:
            resp.close()

    def choose_format(self, resp: StreamResponse, head: bytes) -> str:
        if resp.content_type in NOT_AUDIO:
            raise SourceError(
                f"the server sent {resp.content_type}, not audio: is the URL a web page?"
            )
        by_bytes = sniff(head)
        if by_bytes is None and (what := unsupported(head)) is not None:
            raise UnsupportedFormat(f"the stream is {what}: not supported")
        declared = self.cfg.format
        if declared != "auto":
            return declared
        by_type = format_from_content_type(resp.content_type)
        if by_type and by_bytes and by_type != by_bytes:
            self.log.warning(
                "Content-Type %r says %s but the bytes are %s: recording as %s",
                resp.content_type,
                by_type,
                by_bytes,
                by_bytes,
            )
            return by_bytes
        fmt = by_type or by_bytes
        if fmt is None:
            raise SourceError(
                f"cannot tell the format: Content-Type {resp.content_type!r} and "
                f"{len(head)} bytes that look like no known audio; set format ="
            )
        return fmt

    def note_title(self, title: str) -> str | None:
        """A title from the stream: status and log. Returns what the files must
        note: the new title, "" when the station cleared it, None if unchanged."""
        if not title.strip():  # the station cleared its title
            if self.status.title is None:
                return None
            self.log.info("title cleared")
            self.status.title = None
            self.board.changed()
            return ""
        if title == self.status.title:
            return None
        self.log.info("title: %s", title)
        self.status.title = title
        self.board.changed()
        return title


class _Connection:
    """One connection's state: format, framer, media clock and the held-back start."""

    def __init__(self, source: StreamSource, resp: StreamResponse) -> None:
        self.source = source
        self.resp = resp
        self.log = source.log
        self.connected = time.time()
        self.icy = IcyDemuxer(resp.metaint)
        self.clock = MediaClock()
        self.framer: Framer | None = None
        self.make_sink: SinkFactory | None = None
        self.fmt = ""
        self.head = bytearray()
        self.pending: list[Frame] = []
        self.held_titles: list[tuple[int, str]] = []
        """Titles that came while frames were held: (index in ``pending``, title;
        "" = cleared), so each lands in the sidecar where its audio is."""
        self.settled = False
        self.media = 0.0
        """Seconds of audio framed on this connection."""
        self.written = 0.0
        """Seconds of audio handed to the segmenter (or dropped as a repeat)."""
        self.last_frame_at = self.connected
        self.dropped_logged = 0
        self.drops_logged: dict[str, int] = {}
        """The framer's drops by reason when last logged: each line tells what is new."""
        self.dropped_log_at = self.connected

    async def run(self) -> None:
        resp, timeout = self.resp, self.source.cfg.timeout_seconds
        self.log.info(
            "connected to %s: %d %s, %s%s",
            redact_url(resp.url),
            resp.status,
            resp.reason,
            resp.content_type or "no Content-Type",
            f", icy-metaint {resp.metaint}" if resp.metaint else "",
        )
        stopping = False
        try:
            while True:
                chunk = await resp.read(READ_SIZE)
                now = time.time()
                if not chunk:
                    raise SourceError("the server closed the connection")
                self.take(chunk, now)
                self.log_drops(now)
                if now - self.last_frame_at > timeout:
                    framer = self.framer
                    dropped = framer.dropped_bytes if framer else len(self.head)
                    raise SourceError(
                        f"no valid {self.fmt or 'audio'} frame for {timeout:g} s "
                        f"({dropped} bytes dropped)"
                    )
        except asyncio.CancelledError:
            stopping = True
            raise
        finally:
            self.finish(stopping)

    def take(self, chunk: bytes, now: float) -> None:
        """Body bytes as received: ICY metadata out, titles noted where they fall."""
        self.source.status.last_byte = now
        audio, titles = self.icy.feed(chunk)
        pos = 0
        for offset, title in titles:
            self.on_audio(audio[pos:offset], now)
            pos = offset
            self.note_title(title)
        self.on_audio(audio[pos:] if pos else audio, now)

    def note_title(self, title: str) -> None:
        change = self.source.note_title(title)
        if change is None:
            return
        if self.settled:
            self.note_title_now(change)
        else:
            self.held_titles.append((len(self.pending), change))

    def note_title_now(self, title: str) -> None:
        if title:
            self.source.segmenter.note_title(title)
        else:
            self.source.segmenter.clear_title()

    def with_titles(self, frames: list[Frame], dropped: int) -> tuple[list[Frame], list[str]]:
        """The held frames that are written, each held title on the frame it came
        before (the first ``dropped`` were a repeat, not written), and the titles
        that came after the last of them, to note once they are written."""
        seg = self.source.segmenter
        out = list(frames)
        after: list[str] = []
        for index, title in self.held_titles:
            i = index - dropped
            if i <= 0:  # the title the first file opens with
                if title:
                    seg.note_title(title)
                else:
                    seg.clear_title()
            elif i >= len(out):
                after.append(title)
            elif title:
                out[i] = replace(out[i], title=title)
        self.held_titles.clear()
        return out, after

    def finish(self, stopping: bool) -> None:
        """The connection is over: nothing it delivered may stay behind.

        At a stop, what the socket already holds was sent before the signal and
        is read now; then the framer gives up its last frames (the MP3 frame that
        waited for the next header, FLAC's last frame, Ogg's last page) and audio
        still held to date the burst is written as it is.
        """
        try:
            now = time.time()
            if stopping:
                tail = self.resp.read_now()
                if tail:
                    self.take(tail, now)
            if self.framer is None and self.head:
                self.on_audio(b"", now, final=True)
            if self.framer is not None:
                self.on_frames(self.framer.flush(), now, final=True)
        except SourceError as exc:
            self.log.warning("at the end of the connection: %s", exc)
        except Exception:  # a bug here must not hide why the session ended
            self.log.exception("error writing the end of the connection")

    def on_audio(self, audio: bytes, now: float, final: bool = False) -> None:
        if not audio and not final:
            return
        framer = self.framer
        if framer is None:
            self.head.extend(audio)
            head = bytes(self.head)
            if not final and (
                len(head) < SNIFF_BYTES
                and now - self.connected < SNIFF_SECONDS
                and (len(head) < SNIFF_MIN_BYTES or sniff(head) is None)
            ):
                return
            self.fmt = self.source.choose_format(self.resp, head)
            framer = self.framer = make_framer(self.fmt)
            self.last_frame_at = now
            self.make_sink = _sink_factory(framer)
            self.source.status.format = self.fmt
            audio = head
            self.head.clear()
        self.on_frames(framer.feed(audio), now, final)

    def on_frames(self, frames: list[Frame], now: float, final: bool = False) -> None:
        """Time frames on the media clock; hold them until the burst is in, unless
        the connection is ending (``final``)."""
        framer = self.framer
        assert framer is not None
        if not frames and not (final and self.pending):
            return
        self.last_frame_at = now
        for f in frames:
            self.media += f.samples / f.sample_rate
        before = self.clock.anchor
        jump = self.clock.observe(self.media, now)
        if jump is not None:
            self.log.warning("stream clock re-anchored by %+.3f s", jump)
        if not self.settled:
            self.pending.extend(frames)
            # Audio that came in faster than real time moved the anchor back: the
            # burst may still be arriving, and the first file is named only once
            # it is all in, however long after the connect.
            anchor = self.clock.anchor
            moved = before is None or (anchor is not None and anchor < before - SETTLE_JITTER)
            young = now - self.connected < SETTLE_SECONDS or moved
            if young and self.media < SETTLE_MAX_MEDIA and not final:
                return
            self.settled = True
            if framer.dropped_bytes:
                self.log.info(
                    "skipped %d bytes before the first whole frame (%s)",
                    framer.dropped_bytes,
                    _drops(framer),
                )
                self.dropped_logged = framer.dropped_bytes
                self.drops_logged = dict(getattr(framer, "drops", {}))
            held, self.pending = self.pending, []
            frames = self.drop_repeat(held)
            frames, after = self.with_titles(frames, len(held) - len(frames))
            self.deliver(frames)
            for title in after:
                self.note_title_now(title)
            return
        self.deliver(frames)

    def drop_repeat(self, frames: list[Frame]) -> list[Frame]:
        """Drop the start of a reconnect that repeats what was written (the server's
        burst), when the media clock agrees it is a repeat; note gap and overlap."""
        src = self.source
        seg = src.segmenter
        if seg.last_end is None:
            return frames
        runs = src.recent.overlaps(frames)
        expected = seg.last_end - self.clock.aired(0.0)
        n, seconds = self.clock_repeat(frames, runs, expected)
        if runs and not n:
            self.log.info(
                "%d frames repeat the last ones written, but the clock puts them %.1f s "
                "apart from a repeat: kept",
                runs[-1],
                sum(f.samples / f.sample_rate for f in frames[: runs[-1]]) - expected,
            )
        if n:
            size = sum(len(f.data) for f in frames[:n])
            self.log.info("dropped %d bytes (%.3f s) the server sent again", size, seconds)
            seg.note_overlap(size, seconds)
            self.written += seconds
            frames = frames[n:]
        return frames

    @staticmethod
    def clock_repeat(frames: list[Frame], runs: list[int], expected: float) -> tuple[int, float]:
        """Of the runs that repeat by content, the one the clock agrees with: its
        length in seconds within ``OVERLAP_TOLERANCE`` of ``expected`` (the audio
        aired before the last file ended), the closest if several do (audio that
        repeats itself matches at many lengths). (0, 0.0) if none: new audio is
        never dropped further than the clock allows."""
        best, best_s = 0, 0.0
        if not runs:
            return best, best_s
        seconds = 0.0
        k = 0
        for n in runs:
            while k < n:
                seconds += frames[k].samples / frames[k].sample_rate
                k += 1
            off = abs(seconds - expected)
            if off <= OVERLAP_TOLERANCE and (best == 0 or off < abs(best_s - expected)):
                best, best_s = n, seconds
        return best, best_s

    def deliver(self, frames: list[Frame]) -> None:
        if not frames:
            return
        src = self.source
        assert self.framer is not None and self.make_sink is not None
        t0 = self.clock.aired(self.written)
        fmt = _format_of_file(self.framer.extension) or self.fmt
        src.status.format = fmt
        src.segmenter.write_frames(frames, t0, self.make_sink, fmt, self.framer.file_writer)
        size = 0
        for f in frames:
            self.written += f.samples / f.sample_rate
            size += len(f.data)
        src.recent.add(frames)
        src.count_bytes(size)
        for f in frames:
            if f.title is not None and f.title != src.status.title:
                src.status.title = f.title
                src.log.info("title: %s", f.title)
                src.board.changed()
        src.wrote_audio()

    def log_drops(self, now: float) -> None:
        framer = self.framer
        if framer is None or framer.dropped_bytes == self.dropped_logged:
            return
        if now - self.dropped_log_at < DROP_LOG_SECONDS:
            return
        self.log.warning(
            "dropped %d bytes that were not audio (%s)",
            framer.dropped_bytes - self.dropped_logged,
            _drops(framer, self.drops_logged),
        )
        self.dropped_logged = framer.dropped_bytes
        self.drops_logged = dict(getattr(framer, "drops", {}))
        self.dropped_log_at = now


FILE_HEAD_BYTES = 1 << 16
FILE_TAIL_BYTES = 1 << 20


def _format_of_file(ext: str) -> str | None:
    """The format name of a recorded stream file (``opus`` for Ogg Opus, as in the
    config); None for a file no framer reads."""
    entry = formats.of_extension(ext)
    return entry.name if entry and entry.framer else None


def file_frames(path: Path, framer: Framer) -> list[Frame]:
    """The frames at the end of a recorded file (its head first, for the headers
    an Ogg or FLAC framer needs)."""
    with open(path, "rb") as fh:
        head = fh.read(FILE_HEAD_BYTES)
        size = fh.seek(0, 2)
        fh.seek(max(len(head), size - FILE_TAIL_BYTES))
        tail = fh.read()
    frames = framer.feed(head)
    return frames + framer.feed(tail) + framer.flush()


def _sink_factory(framer: Framer) -> SinkFactory:
    """Files take the extension their writer gives (an Ogg link's codec), else the
    framer's (an Ogg stream's codec is known only after its headers)."""

    def make(directory: Path, stem: str, extension: str | None) -> Sink:
        return Sink(directory, stem, extension or framer.extension)

    return make


def _drops(framer: Framer, before: dict[str, int] | None = None) -> str:
    """The framer's drops by reason, since ``before`` when given."""
    drops = getattr(framer, "drops", None)
    if isinstance(drops, dict) and drops:
        since = {k: v - (before or {}).get(k, 0) for k, v in sorted(drops.items())}
        return ", ".join(f"{k}: {v}" for k, v in since.items() if v) or "junk"
    return "junk"
