"""The segmenter: cuts one source's audio into clock-aligned files.

It decides where files begin and end and what they are called; the sources decide
what time each piece of audio has (the media clock for streams, the sample count
for PCM), and the sinks write bytes. Splits fall only before whole units: a frame
or page for streams, a sample for PCM.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime, tzinfo
from pathlib import Path

from isr.clock import current_boundary, next_boundary
from isr.config import render_pattern
from isr.framing.base import FileWriter, Frame
from isr.framing.repair import repairer_for
from isr.sidecar import Gap, Ledger, Overlap, Title, sidecar_path, write_sidecar
from isr.sinks.base import Sink

MIN_FIRST_FILE = 1.0
"""Seconds: a first file that would end sooner runs on to the next boundary."""

MIN_UNITS = 3
MIN_SECONDS = 0.5
"""A file started at a boundary gets at least this many frames (pages) or seconds,
or none: a stop just after a boundary ends the last file instead."""

SESSION_YOUNG = 60.0
"""Seconds from a session's first audio during which a media clock that moves back
moves the session's earlier files too (the anchor's estimate settling)."""

REDATE_SECONDS = 1.0
"""Closed files that a moving media clock redated get their sidecars rewritten at
most this often (and at the next close): a young connection's clock settles in many
small steps, and each rewrite of every file of the session cost a sixth of the CPU
of a stream that rolls its files often."""

CLOCK_SLACK = 0.001
"""Seconds a frame's time may fall short of the last one's end (float residue)."""

JUMP_SLACK = 1.5
"""Seconds a frame's time may run past the last one's end before the audio between
counts as lost. A stream clock re-anchors by just over a second when the sender's
clock runs slow (isr.clock.MediaClock): nothing is lost, the file's span grows by it
as the clock says it aired. A sender that stalls and never catches up moves it by
as long as the stall: that much air time has no audio."""

SinkFactory = Callable[[Path, str, str | None], Sink]
"""Makes a sink from (directory, stem, the writer's extension or None)."""


class Segmenter:
    """Opens, splits and closes the files of one source."""

    def __init__(
        self,
        *,
        source: str,
        directory: Path,
        base_dir: Path,
        pattern: str,
        split_seconds: float,
        tz: tzinfo,
        log: logging.Logger,
        on_open: Callable[[Sink, Ledger], None] | None = None,
        on_close: Callable[[Sink, Ledger, bool], None] | None = None,
    ) -> None:
        self.source = source
        self.directory = directory
        self.base_dir = base_dir
        self.pattern = pattern
        self.split_seconds = split_seconds
        self.tz = tz
        self.log = log
        self.on_open = on_open
        self.on_close = on_close
        self.sink: Sink | None = None
        self.writer: FileWriter | None = None
        self.ledger: Ledger | None = None
        self.boundary = math.inf
        """When the current file must end."""
        self.end_time = 0.0
        """Time just after the last unit written to the current file."""
        self.title: str | None = None
        self._overlap: Overlap | None = None
        """Repeated audio dropped before the next file opened."""
        self.has_audio = False
        """Whether audio reached the current file (else it is removed at close)."""
        self.last_end: float | None = None
        """When the audio of the last file closed ended: the next session's first file
        records the gap from there."""
        self.gap_cause = "the recorder was not running"
        """Why the next gap happened, as the sources learn it."""
        self.failed = False
        """A write to the current file failed: finish it by repair, not by its writer."""
        self.unfinished: list[tuple[Path, Ledger]] = []
        """Closed files whose sidecar could not be written yet."""
        self._redated: dict[Path, Ledger] = {}
        """Closed files the media clock moved whose sidecars are yet to be rewritten."""
        self._redated_at = 0.0
        self.held: list[Frame] = []
        """Frames past a boundary, too few yet to start the next file with."""
        self._session: list[tuple[Path, Ledger]] = []
        """Files the session closed while young, which a clock moved back moves too."""
        self._session_start = math.inf
        """When the session's first audio was aired."""
        self._session_first: Ledger | None = None
        self._jumped: tuple[list[tuple[Path, Ledger]], Ledger | None] = ([], None)
        """A young session that a clock jump ended: its files and its first ledger,
        which a later move back of the clock past the jump's gap moves too."""
        self._before_jump: tuple[list[tuple[Path, Ledger]], Ledger | None] = ([], None)
        """The same, for the session now open when a jump started it."""

    # -- files -----------------------------------------------------------------------

    def open(
        self,
        at: float,
        make_sink: SinkFactory,
        fmt: str,
        *,
        named: float | None = None,
        writer: FileWriter | None = None,
        first: Frame | None = None,
    ) -> Sink:
        """Start a file whose first audio has time ``at``. Without ``named`` it is a
        session's first file: named after ``at``, it notes the gap since the last
        file, and runs on to the next boundary but one if it would be a sliver.
        With ``named`` it continues the session (a split, a new link)."""
        self.close()
        sink = self._create(self._stem(at if named is None else named), make_sink, writer, first)
        self.sink = sink
        self.has_audio = False
        self._retry_sidecars()
        self.boundary = self._first_boundary(at, named)
        self.end_time = at
        self._start_ledger(sink, at, fmt, session_start=named is None)
        return sink

    def _stem(self, when: float) -> str:
        return render_pattern(self.pattern, self.source, datetime.fromtimestamp(when, self.tz))

    def _create(
        self, stem: str, make_sink: SinkFactory, writer: FileWriter | None, first: Frame | None
    ) -> Sink:
        """The new file, created exclusively, with the headers its writer begins with."""
        header = writer.begin(first) if writer is not None and first is not None else b""
        sink = make_sink(self.directory, stem, writer.extension if writer is not None else None)
        try:
            if header:
                # What a writer begins a file with is all that its close may patch
                # (an MP3's Xing frame, FLAC's STREAMINFO, an Ogg FLAC first page):
                # kept in memory for the file's hash (isr.evidence.digest).
                sink.digest.set_reserve(len(header))
                sink.write(header)
        except BaseException:
            sink.discard()
            raise
        self.writer = writer
        return sink

    def _first_boundary(self, at: float, named: float | None) -> float:
        boundary = next_boundary(
            at if named is None else max(at, named), self.split_seconds, self.tz
        )
        sliver = boundary - at < min(MIN_FIRST_FILE, self.split_seconds / 2)
        if named is None and sliver:
            # A sliver of a file before the first boundary (one MP3 frame, one Ogg
            # page) is not worth a file, and some decoders refuse it: join the next.
            boundary = next_boundary(boundary, self.split_seconds, self.tz)
        return boundary

    def _start_ledger(self, sink: Sink, at: float, fmt: str, *, session_start: bool) -> None:
        ledger = self.ledger = Ledger(
            source=self.source, file=self.relative(sink.path), format=fmt, start=at
        )
        if session_start:
            self._before_jump, self._jumped = self._jumped, ([], None)
            self._session = []
            self._session_start = at
            self._session_first = ledger
        if session_start and self.last_end is not None:
            # The one place a gap is reckoned: from the end of the last file's audio.
            ledger.gaps.append(Gap(0.0, max(0.0, at - self.last_end), self.gap_cause))
        if self._overlap is not None:
            ledger.overlaps_removed.append(self._overlap)
            self._overlap = None
        if self.title is not None:
            ledger.titles.append(Title(0.0, sink.bytes_written, self.title))
        try:
            write_sidecar(sink.path, ledger, self.tz)
        except OSError as exc:  # written again at close
            self.log.error("cannot write the sidecar of %s: %s", ledger.file, exc)
        self.log.info("opened %s", ledger.file)
        if self.on_open is not None:
            self.on_open(sink, ledger)

    def close(self) -> None:
        """Close the current file (if any) with its ledger; safe to call twice."""
        if self._redated:
            self._write_redated()
        sink, ledger, writer = self.sink, self.ledger, self.writer
        if sink is None or ledger is None:
            return
        if self.held:
            # The stream ended a few frames past a boundary: they end this file
            # rather than make one no tool would open.
            held, self.held = self.held, []
            try:
                self._write_frames(held, self.end_time + _seconds(held))
            except OSError as exc:
                self.log.error("cannot write the last frames of %s: %s", ledger.file, exc)
        self.sink = None
        self.ledger = None
        self.writer = None
        self.boundary = math.inf
        ledger.end = self.end_time
        # A writer that drops some frames (an Ogg link's header or empty last page)
        # says whether any audio reached the file; the others write every frame.
        if not self.has_audio or not getattr(writer, "wrote_audio", True):
            # Nothing but headers reached the file (the first write failed): no file.
            sink.discard()
            with contextlib.suppress(OSError):
                sidecar_path(sink.path).unlink()
            self.log.info("removed %s: no audio was written to it", ledger.file)
            if self.on_close is not None:
                self.on_close(sink, ledger, False)
            return
        self.last_end = self.end_time
        failed, self.failed = self.failed, False
        if failed:
            # Finished by repair below, not by its writer: its hash is read after
            # the repair, by its check (isr.evidence), not taken from the write path.
            sink.digest.broken = True
        try:
            if writer is not None and not failed:
                sink.write(writer.end())
                for offset, data in writer.patches():
                    sink.pwrite(data, offset)
        finally:
            self._finish(sink, ledger)
        if failed:
            self._repair(sink.path)

    def _repair(self, path: Path) -> None:
        """A write failed in this file: its header totals and last page are those of
        audio that never reached the disk. Finish it as crash recovery would."""
        fix = repairer_for(path)
        if fix is None:
            return
        try:
            what = fix(path)
        except OSError as exc:
            self.log.error("cannot finish %s after a failed write: %s", path.name, exc)
        else:
            if what:
                self.log.info("finished %s after a failed write: %s", path.name, what)

    def _finish(self, sink: Sink, ledger: Ledger) -> None:
        try:
            sink.close()
        finally:
            written = sink.digest.result()
            ledger.bytes = written.size
            ledger.sha256 = written.sha256  # None until the check, for a patched head
            try:
                write_sidecar(sink.path, ledger, self.tz)
            except OSError as exc:
                # A full disk: written again as soon as a new file can be written.
                self.log.error("cannot write the sidecar of %s: %s", ledger.file, exc)
                self.unfinished.append((sink.path, ledger))
            self.log.info(
                "closed %s (%d bytes, %.3f s)",
                ledger.file,
                sink.bytes_written,
                self.end_time - ledger.start,
            )
            if self.on_close is not None:
                self.on_close(sink, ledger, True)
            if ledger.start < self._session_start + SESSION_YOUNG:
                self._session.append((sink.path, ledger))

    def _retry_sidecars(self) -> None:
        """Sidecars that a full disk kept from being written at close: the disk takes
        a new file again, so try them now."""
        while self.unfinished:
            path, ledger = self.unfinished[0]
            try:
                write_sidecar(path, ledger, self.tz)
            except OSError:
                return
            self.unfinished.pop(0)
            self.log.info("wrote the sidecar of %s after all", ledger.file)

    def relative(self, path: Path) -> str:
        """Relative to the output directory; absolute for a file outside it."""
        try:
            rel = Path(os.path.relpath(path, self.base_dir))
        except ValueError:
            return path.absolute().as_posix()
        return path.absolute().as_posix() if rel.parts[:1] == ("..",) else rel.as_posix()

    def _roll(
        self,
        at: float,
        make_sink: SinkFactory,
        fmt: str,
        writer: FileWriter | None = None,
        first: Frame | None = None,
    ) -> None:
        """Close the current file and open the next one, named after its boundary."""
        # ``at`` may sit a float hair before the boundary that it reached.
        named = current_boundary(max(at, self.boundary), self.split_seconds, self.tz)
        self.open(at, make_sink, fmt, named=named, writer=writer, first=first)

    # -- facts for the ledger --------------------------------------------------------

    def note_title(self, title: str) -> None:
        """A new title starts with the next audio written."""
        self.title = title
        if self.sink is not None and self.ledger is not None:
            entry = Title(
                round(self.end_time - self.ledger.start, 3), self.sink.bytes_written, title
            )
            titles = self.ledger.titles
            if titles and titles[-1].title == title:
                return  # the title in force already (an Ogg link's own, a file's first)
            if titles and titles[-1].byte == entry.byte:
                titles[-1] = entry  # no audio aired under the one it replaces
            else:
                titles.append(entry)
            if self._redated:  # the closed files' new times go first (see _write_redated)
                self._write_redated()
            try:
                write_sidecar(self.sink.path, self.ledger, self.tz)
            except OSError as exc:  # written again at close
                self.log.error("cannot write the sidecar of %s: %s", self.ledger.file, exc)

    def clear_title(self) -> None:
        """The station cleared its title: the next file opens with none."""
        self.title = None

    def note_overlap(self, nbytes: int, seconds: float) -> None:
        """Audio the server sent again was dropped before the next file's start."""
        self._overlap = Overlap(0.0, nbytes, seconds)

    def note_cause(self, cause: str) -> None:
        """Why the session ended: the cause of the gap before the next one's file."""
        self.gap_cause = cause

    def resume_after(self, last_end: float | None) -> None:
        """The previous run's last audio ended then: the first file notes the gap."""
        self.last_end = last_end

    # -- audio -----------------------------------------------------------------------

    def write_frames(
        self,
        frames: Sequence[Frame],
        t0: float,
        make_sink: SinkFactory,
        fmt: str,
        new_writer: Callable[[], FileWriter],
    ) -> None:
        """Write whole frames; the first was aired at ``t0``. A file ends before the
        first frame that may start one (``cut``) whose time reaches the boundary, or
        before a frame that starts a new link; never inside a frame."""
        if not frames:
            return
        if self._redated and time.monotonic() - self._redated_at >= REDATE_SECONDS:
            self._write_redated()
        if self.held:
            # Frames past a boundary, held so the next file starts with enough of
            # them to be a file: their time goes on from the last one written.
            held, self.held = self.held, []
            expect = self.end_time + _seconds(held)
            if t0 > expect + JUMP_SLACK:
                self._write_titled(held, self.end_time)  # they end this file, as at a close
            else:
                if t0 < expect - CLOCK_SLACK:
                    self._clock_moved_back(expect - t0)
                frames, t0 = [*held, *frames], self.end_time
        if self.sink is not None and t0 > self.end_time + JUMP_SLACK:
            frames, t0 = self._clock_jumped(frames, t0)
            if not frames:
                return
        opened = self.sink is None
        if opened:
            self.open(t0, make_sink, fmt, writer=new_writer(), first=frames[0])
        elif self.ledger is not None and t0 < self.end_time - CLOCK_SLACK:
            # The media clock moved back (audio came faster than real time after a
            # stall: it was aired earlier than thought). The file's audio is one
            # run, so its start moves with the clock: its span stays its audio's.
            self._clock_moved_back(self.end_time - t0)
        t = t0
        start = 0
        for i, frame in enumerate(frames):
            if (frame.new_link and not (opened and i == 0)) or (t >= self.boundary and frame.cut):
                if i > start:
                    self._write_frames(frames[start:i], t)
                    start = i
                if frame.title is not None:
                    self.title = frame.title  # the new file starts with the new title
                if frame.new_link and t < self.boundary:
                    # A change of stream setup ends its own file: the boundary holds,
                    # and the new file goes on where the last one ended (no gap).
                    self.open(t, make_sink, fmt, named=t, writer=new_writer(), first=frame)
                elif len(frames) - i < MIN_UNITS and _seconds(frames[i:]) < MIN_SECONDS:
                    # Too little yet to make a file that every tool opens (ffmpeg
                    # needs two MP3 or three ADTS frames in a row): hold it. Should
                    # the stream end first, it ends the last file instead.
                    self.held = list(frames[i:])
                    return
                else:
                    self._roll(t, make_sink, fmt, new_writer(), frame)
            elif frame.title is not None:
                if i > start:
                    self._write_frames(frames[start:i], t)
                    start = i
                self.note_title(frame.title)
            t += frame.samples / frame.sample_rate
        self._write_frames(frames[start:], t)

    def _write_titled(self, frames: Sequence[Frame], t: float) -> None:
        """Write frames that go on in the current file, the first aired at ``t``,
        noting the titles they carry where they start."""
        start = 0
        for i, frame in enumerate(frames):
            if frame.title is not None:
                if i > start:
                    self._write_frames(frames[start:i], t)
                    start = i
                self.note_title(frame.title)
            t += frame.samples / frame.sample_rate
        self._write_frames(frames[start:], t)

    def _clock_jumped(self, frames: Sequence[Frame], t0: float) -> tuple[Sequence[Frame], float]:
        """The clock puts these frames more than ``JUMP_SLACK`` later than the file's
        audio ends: what aired between was lost (a sender that stalled, segments the
        program dates skip). A file holds one run of audio and no gap inside it, so
        the file ends, and the frames start a session's file whose gap says how much
        is missing. Frames that no file may start with (the rest of a packet) end the
        old file first, on its own clock. Returns the frames left and when the first
        of them aired."""
        assert self.ledger is not None
        ahead = t0 - self.end_time
        i = next((k for k, f in enumerate(frames) if f.cut or f.new_link), len(frames))
        if i:
            self._write_titled(frames[:i], self.end_time)
        if i == len(frames):
            return [], t0  # the next cut comes later: the clock stays ahead till then
        self.log.warning(
            "the clock jumped %+.3f s in %s: the audio between was lost; a new file",
            ahead,
            self.ledger.file,
        )
        young = self.end_time < self._session_start + SESSION_YOUNG
        self.close()
        if young:  # the files closed since, this one with them (see _clock_moved_back)
            self._jumped = (self._session, self._session_first)
        self.note_cause(f"the audio's clock jumped {ahead:+.3f} s: none came for that long")
        return frames[i:], t0 + _seconds(frames[:i])

    def _clock_moved_back(self, moved: float) -> None:
        """The media clock moved back: audio came faster than real time (after a
        stall, or as a young connection's estimate of when its audio was aired
        improves), so it was aired earlier than thought. The file's audio is one
        run, so its start moves with the clock and its span stays its audio's; a
        young session's earlier files, all on the same clock, move with it, so its
        files still abut. Later (a sender whose clock runs fast) only the open file
        moves: what was closed was dated right when it was."""
        assert self.ledger is not None
        if self.ledger.dated is None:
            self.ledger.dated = self.ledger.start
        self.ledger.start -= moved
        self.end_time -= moved
        young = self._session if self.end_time < self._session_start + SESSION_YOUNG else []
        self._session_start -= moved
        first = self._session_first
        past = 0.0
        if first is not None and first.gaps and (first is self.ledger or young):
            gap = first.gaps[0]  # the session's gap ended earlier too
            first.gaps[0] = Gap(0.0, max(0.0, gap.seconds - moved), gap.cause)
            past = moved - gap.seconds
        self._move_files(young, moved)
        earlier, earlier_first = self._before_jump
        if past > 0 and earlier:
            # A clock jump started this session, and the audio after it was aired
            # earlier than the jump's end: it was late, not lost, and the files
            # before the jump, on the same clock, were dated late by the rest.
            self._move_files(earlier, past)
            if earlier_first is not None and earlier_first.gaps:
                gap = earlier_first.gaps[0]
                earlier_first.gaps[0] = Gap(0.0, max(0.0, gap.seconds - past), gap.cause)
            young = young or earlier
        if young and self.sink is not None:
            # With them, or a SIGKILL before the close leaves the open file's sidecar
            # on the old clock beside theirs on the new: a hole no gap explains.
            self._redated[self.sink.path] = self.ledger
        if moved >= 0.1:  # not every millisecond of network jitter
            self.log.info("media clock moved back %.3f s in %s", moved, self.ledger.file)

    def _move_files(self, files: list[tuple[Path, Ledger]], moved: float) -> None:
        """Closed files whose times move back with the clock; their sidecars are
        rewritten soon (``_write_redated``)."""
        for path, ledger in files:
            if ledger.dated is None:
                ledger.dated = ledger.start
            ledger.start -= moved
            if ledger.end is not None:
                ledger.end -= moved
            self._redated[path] = ledger

    def flush_redated(self) -> None:
        """Write now the sidecars the media clock moved since they were last written.
        Called when something else wrote one of those ledgers (a closed file's check):
        its new times must not wait beside the open file's old ones for the next
        throttled rewrite, or a SIGKILL meanwhile leaves a hole between them that no gap
        explains."""
        if self._redated:
            self._write_redated()

    def _write_redated(self) -> None:
        """The sidecars of closed files whose times the media clock moved."""
        self._redated_at = time.monotonic()
        redated, self._redated = self._redated, {}
        for path, ledger in redated.items():
            try:
                write_sidecar(path, ledger, self.tz)
            except OSError as exc:
                self.log.error("cannot write the sidecar of %s: %s", ledger.file, exc)

    def _write_frames(self, frames: Sequence[Frame], end_time: float) -> None:
        assert self.writer is not None
        self._write(self.writer.write(frames), end_time)
        if frames:
            # Even if the writer holds the page back for now: it is written at
            # close, and the file's end is the end of its audio.
            self.has_audio = True
            self.end_time = end_time

    def write_pcm(
        self,
        data: bytes,
        first_index: int,
        origin: float,
        sample_rate: int,
        frame_bytes: int,
        make_sink: SinkFactory,
        fmt: str,
    ) -> None:
        """Write PCM whose first frame is number ``first_index`` counted from
        ``origin``; a file ends exactly before the first frame whose time is at or
        after the boundary."""
        view = memoryview(data)
        index = first_index
        while len(view) >= frame_bytes:
            t = origin + index / sample_rate
            if self.sink is None:
                self.open(t, make_sink, fmt)
            cut = math.ceil((self.boundary - origin) * sample_rate - 1e-6)
            if index >= cut:
                self._roll(t, make_sink, fmt)
                continue
            take = min(len(view) // frame_bytes, cut - index)
            index += take
            self._write(view[: take * frame_bytes], origin + index / sample_rate)
            view = view[take * frame_bytes :]

    def _write(self, data: bytes | memoryview, end_time: float) -> None:
        if not data:
            return
        assert self.sink is not None
        try:
            self.sink.write(data)
        except OSError:
            self.failed = True  # the writer counted what never reached the disk
            raise
        self.has_audio = True
        self.end_time = end_time


def _seconds(frames: Sequence[Frame]) -> float:
    return sum(f.samples / f.sample_rate for f in frames)
