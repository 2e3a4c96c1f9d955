"""``type = stream``: an Icecast/SHOUTcast stream, byte-copied into framed files.

Per connection: open (``http.open_stream``), strip ICY metadata (``icy``), pick the
format (config, else Content-Type confirmed by sniffing), frame it, time the
frames on the media clock and hand them to the segmenter. Every (re)connect
starts a new file; the first one is named after the moment its first audio was
aired, which is why the first second after a connect is held back: the server's
burst of older audio must arrive before we can tell how old it is.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from isr.clock import MediaClock
from isr.errors import SourceError
from isr.framing.base import Frame, Framer
from isr.framing.sniff import format_from_content_type, sniff
from isr.segment import SinkFactory
from isr.sinks.base import Sink
from isr.sources.base import Source
from isr.sources.http import StreamResponse, open_stream, redact_url
from isr.sources.icy import IcyDemuxer

READ_SIZE = 65536
SNIFF_BYTES = 32768
SNIFF_SECONDS = 2.0
SETTLE_SECONDS = 1.0
"""Hold frames this long after a connect, until the burst has arrived."""
SETTLE_MAX_MEDIA = 60.0
DROP_LOG_SECONDS = 10.0

FRAMERS: dict[str, str] = {
    "mp3": "isr.framing.mp3:Mp3Framer",
    "aac": "isr.framing.adts:AdtsFramer",
    "ogg": "isr.framing.ogg:OggFramer",
    "opus": "isr.framing.ogg:OggFramer",
    "flac": "isr.framing.flac:FlacFramer",
}
"""Format -> framer class, imported when a stream first needs it."""


def make_framer(fmt: str) -> Framer:
    where = FRAMERS.get(fmt)
    if where is None:
        raise SourceError(f"no framer for format {fmt!r}")
    module, _, name = where.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise SourceError(f"recording {fmt} streams is not supported by this version") from None
    framer: Framer = cls()
    return framer


class StreamSource(Source):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_end: float | None = None
        """Aired time just after the last frame written, for the gap in the next ledger."""

    @staticmethod
    def _raw_sink(framer: Framer) -> SinkFactory:
        """Files take the extension the framer knows when they open (an Ogg
        stream's codec is known only after its headers)."""

        def make(directory: Path, stem: str) -> Sink:
            return Sink(directory, stem, framer.extension)

        return make

    async def session(self) -> None:
        cfg = self.cfg
        resp = await open_stream(
            cfg.url,
            username=cfg.username or None,
            password=cfg.password or None,
            timeout=cfg.timeout_seconds,
        )
        try:
            await self._record(resp)
        finally:
            resp.close()

    def _choose_format(self, resp: StreamResponse, head: bytes) -> str:
        declared = self.cfg.format
        if declared != "auto":
            return declared
        by_type = format_from_content_type(resp.content_type)
        by_bytes = sniff(head)
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

    async def _record(self, resp: StreamResponse) -> None:
        cfg = self.cfg
        connected = time.time()
        self.log.info(
            "connected to %s: %d %s, %s%s",
            redact_url(resp.url),
            resp.status,
            resp.reason,
            resp.content_type or "no Content-Type",
            f", icy-metaint {resp.metaint}" if resp.metaint else "",
        )
        icy = IcyDemuxer(resp.metaint)
        clock = MediaClock()
        framer: Framer | None = None
        fmt = ""
        head = bytearray()
        pending: list[Frame] = []
        settled = False
        media = 0.0  # seconds of audio framed in this session
        written = 0.0  # seconds of audio handed to the segmenter
        last_frame_at = connected
        dropped_logged = 0
        dropped_log_at = connected
        make_sink: SinkFactory | None = None
        first_file = True

        def deliver(frames: list[Frame]) -> None:
            nonlocal written, first_file
            if not frames:
                return
            t0 = clock.aired(written)
            if first_file:
                first_file = False
                if self.last_end is not None:
                    self.segmenter.pending_gap = {
                        "at": 0.0,
                        "seconds": round(max(0.0, t0 - self.last_end), 3),
                        "cause": self.status.last_error or "reconnect",
                    }
            assert framer is not None and make_sink is not None
            self.segmenter.write_frames(frames, t0, make_sink, fmt, framer.file_writer)
            size = 0
            for f in frames:
                written += f.samples / f.sample_rate
                size += len(f.data)
            self.last_end = clock.aired(written)
            self.count_bytes(size)
            if not self.delivered:
                self.delivered = True
                self.set_state("recording")

        def handle_audio(audio: bytes, now: float) -> None:
            nonlocal framer, fmt, media, settled, last_frame_at, make_sink
            if not audio:
                return
            if framer is None:
                head.extend(audio)
                if len(head) < SNIFF_BYTES and now - connected < SNIFF_SECONDS:
                    return
                fmt = self._choose_format(resp, bytes(head))
                framer = make_framer(fmt)
                make_sink = self._raw_sink(framer)
                self.status.format = fmt
                audio = bytes(head)
                head.clear()
            frames = framer.feed(audio)
            if not frames:
                return
            last_frame_at = now
            for f in frames:
                media += f.samples / f.sample_rate
            jump = clock.observe(media, now)
            if jump is not None:
                self.log.warning("stream clock re-anchored by %+.3f s", jump)
            if not settled:
                pending.extend(frames)
                if now - connected < SETTLE_SECONDS and media < SETTLE_MAX_MEDIA:
                    return
                settled = True
                frames = pending[:]
                pending.clear()
            deliver(frames)

        while True:
            chunk = await resp.read(READ_SIZE)
            now = time.time()
            if not chunk:
                raise SourceError("the server closed the connection")
            self.status.last_byte = now
            audio, titles = icy.feed(chunk)
            pos = 0
            for offset, title in titles:
                handle_audio(audio[pos:offset], now)
                pos = offset
                self._title(title)
            handle_audio(audio[pos:] if pos else audio, now)
            if framer is not None and (
                framer.dropped_bytes != dropped_logged and now - dropped_log_at > DROP_LOG_SECONDS
            ):
                self.log.warning(
                    "dropped %d bytes that were not audio (%s)",
                    framer.dropped_bytes - dropped_logged,
                    _drops(framer),
                )
                dropped_logged = framer.dropped_bytes
                dropped_log_at = now
            if now - last_frame_at > cfg.timeout_seconds:
                dropped = framer.dropped_bytes if framer else len(head)
                raise SourceError(
                    f"no valid {fmt or 'audio'} frame for {cfg.timeout_seconds:g} s "
                    f"({dropped} bytes dropped)"
                )

    def _title(self, title: str) -> None:
        if title == self.status.title:
            return
        self.log.info("title: %s", title)
        self.status.title = title
        self.segmenter.note_title(title)
        self.board.changed()


def _drops(framer: Framer) -> str:
    drops = getattr(framer, "drops", None)
    if isinstance(drops, dict) and drops:
        return ", ".join(f"{k}: {v}" for k, v in sorted(drops.items()))
    return "junk"
