"""What every source shares: the retry loop, status and the segmenter.

A source's ``session()`` records until its connection or process ends; ``run()``
calls it again after ``retry_delay_seconds`` (with jitter) until ``max_retries``
consecutive sessions failed without delivering audio. Whatever goes wrong inside a
source is logged and retried here, never raised to the recorder, so one bad
source never takes the others down.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from isr.alerts import Alerter
from isr.config import SourceConfig
from isr.errors import SourceError, UnsupportedFormat
from isr.segment import Segmenter
from isr.sidecar import Ledger
from isr.silence import SilenceWatch, level_dbfs
from isr.sinks.base import Sink
from isr.status import StatusBoard

if TYPE_CHECKING:
    from isr.evidence.service import Evidence


class Source:
    """Base class of stream, soundcard and tone sources."""

    def __init__(
        self,
        cfg: SourceConfig,
        board: StatusBoard,
        tz: tzinfo,
        sinks: set[Sink],
        retired: list[int],
    ) -> None:
        self.cfg = cfg
        self.board = board
        self.tz = tz
        self.log = logging.getLogger(f"isr.source.{cfg.name}")
        self.status = board.add(cfg.name, cfg.type, cfg.format)
        self._open_sinks = sinks
        self._retired_fds = retired
        self.delivered = False
        """Set by a session once it wrote audio: resets the failure count."""
        self.alerter: Alerter | None = None
        """Set by the recorder."""
        self.evidence: Evidence | None = None
        """Set by the recorder: hears of every file closed, for its chain and check."""
        self._alerted = False
        self.silence: SilenceWatch | None = None
        self.segmenter = Segmenter(
            source=cfg.name,
            directory=cfg.output_directory,
            base_dir=board.directory,
            pattern=cfg.filename_pattern,
            split_seconds=cfg.split_seconds,
            tz=tz,
            log=self.log,
            on_open=self._on_open,
            on_close=self._on_close,
        )

    # -- status ----------------------------------------------------------------------

    def set_state(self, state: str, error: str | None = None) -> None:
        if state != self.status.state:
            self.log.info(
                "state %s -> %s%s", self.status.state, state, f": {error}" if error else ""
            )
            if state == "failed":
                self.alert("source_failed", error or "")
            elif state == "recording" and self._alerted and self.alerter is not None:
                self._alerted = False
                self.alerter.clear("source_failed", self.cfg.name)
                self.alerter.clear("dead_air", self.cfg.name)
                self.alerter.fire("source_recovered", self.cfg.name, "recording again")
        self.status.state = state
        if error is not None:
            self.status.last_error = error
        elif state == "recording":
            self.status.last_error = None
        self.board.changed()

    def watch_level(self, pcm: bytes, seconds: float) -> None:
        """PCM sources call this per chunk: dead air raises an alert, its end a recovery."""
        if self.silence is None:
            if self.alerter is None:
                return
            cfg = self.alerter.cfg
            self.silence = SilenceWatch(cfg.silence_threshold_db, cfg.silence_seconds)
        event = self.silence.feed(level_dbfs(pcm), seconds)
        if event == "silent":
            self.log.warning("dead air: below %g dBFS", self.silence.threshold_db)
            self.alert(
                "dead_air",
                f"below {self.silence.threshold_db:g} dBFS for {self.silence.seconds:g} s",
            )
        elif event == "back" and self._alerted and self.alerter is not None:
            self._alerted = False
            self.alerter.clear("dead_air", self.cfg.name)
            self.alerter.fire("source_recovered", self.cfg.name, "sound again")

    def alert(self, event: str, message: str) -> None:
        if self.alerter is not None and self.alerter.fire(event, self.cfg.name, message):
            self._alerted = True

    def _on_open(self, sink: Sink, ledger: Ledger) -> None:
        self._open_sinks.add(sink)
        self.status.file = ledger.file
        self.status.sink = sink
        self.status.since = ledger.start
        self.board.changed()

    def _on_close(self, sink: Sink, ledger: Ledger, kept: bool) -> None:
        self._open_sinks.discard(sink)
        if kept:
            self.status.last_file = ledger.file
            self.status.last_end = ledger.end
            if self.evidence is not None:
                self.evidence.closed(
                    self.cfg.name,
                    sink.path,
                    ledger,
                    sink.digest.result(),
                    then=self.segmenter.flush_redated,
                )
        if sink.sync_fd is not None:
            self._retired_fds.append(sink.sync_fd)
            sink.sync_fd = None
        self.status.file = None
        self.status.sink = None
        self.board.changed()

    def wrote_audio(self) -> None:
        """A session calls this once audio reached a file: only then is it recording
        (and the failure count starts again)."""
        if not self.delivered:
            self.delivered = True
            self.status.failures = 0
            self.set_state("recording")

    def count_bytes(self, n: int) -> None:
        self.status.bytes_total += n
        self.status.last_byte = time.time()

    # -- lifecycle -------------------------------------------------------------------

    def resume(self, last_file: Path | None, last_end: float | None) -> None:
        """Before the first session: what the previous run of this source wrote last,
        so the first file notes the gap (and a stream drops what repeats it).
        Blocking I/O is allowed here: the recorder calls it in a thread."""
        self.segmenter.resume_after(last_end)
        self.status.last_end = last_end
        if last_file is not None:
            self.status.last_file = self.segmenter.relative(last_file)

    async def session(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        failures = 0
        try:
            while True:
                self.delivered = False
                self.set_state("connecting")
                error: str
                try:
                    await self.session()
                    error = "ended"
                except asyncio.CancelledError:
                    raise
                except UnsupportedFormat as exc:
                    self.log.error("%s", exc)
                    self.set_state("failed", str(exc))
                    return
                except (SourceError, OSError, TimeoutError) as exc:
                    error = describe_error(exc)
                    if isinstance(exc, TimeoutError):
                        self.alert("dead_air", error)
                except Exception as exc:  # a bug must not stop the other sources
                    self.log.exception("unexpected error")
                    error = describe_error(exc)
                finally:
                    self._close_file()
                if self.delivered:
                    # What broke a working recording is the cause of the gap that
                    # follows, whatever the retries then meet.
                    failures = 0
                    self.segmenter.note_cause(error)
                    self.status.reconnects += 1
                else:
                    failures += 1
                self.status.failures = failures
                self.log.warning("session ended: %s", error)
                self.status.last_error = error
                limit = self.cfg.max_retries
                if limit and failures >= limit:
                    self.set_state("failed", f"gave up after {failures} failures: {error}")
                    return
                self.set_state("retrying", error)
                delay = self.cfg.retry_delay_seconds * (1 + 0.2 * random.random())
                await asyncio.sleep(delay)
        finally:
            self._close_file()
            if self.status.state != "failed":
                self.status.state = "stopped"
            self.board.changed()

    def _close_file(self) -> None:
        try:
            self.segmenter.close()
        except OSError as exc:
            self.log.error("error closing %s: %s", self.status.file, exc)
        except Exception:  # a writer bug must not stop the other sources
            self.log.exception("error closing %s", self.status.file)


def describe_error(exc: BaseException) -> str:
    """One line for logs and the status file: the OS's words where there are any."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    text = str(exc)
    if isinstance(exc, TimeoutError) and not text:
        return "timed out"
    return text or type(exc).__name__
