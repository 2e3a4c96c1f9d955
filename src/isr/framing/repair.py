"""Cutting a stream file killed mid-write back to its last whole frame or page.

Only the tail of the file is read: the framer resynchronises on it and tells where
the last whole unit ends; what follows is a partial write of the crash.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from isr import formats
from isr.framing.base import Framer
from isr.sinks.files import open_regular  # no symlink, FIFO or hard link (crash recovery)

TAIL_BYTES = 1 << 20
"""How much of the end of a file is examined (many frames or pages of any format)."""

CHUNK = 1 << 20
HEAD_BYTES = 42
"""``fLaC`` and the STREAMINFO block ISR writes at the start of every FLAC file."""

Repairer = Callable[[Path], str | None]


def last_unit_end(tail: bytes, framer: Framer) -> int | None:
    """Offset in ``tail`` just after the last whole frame the framer finds."""
    frames = framer.feed(tail) + framer.flush()
    if not frames:
        return None
    last = frames[-1].data
    at = tail.rfind(last)
    return None if at < 0 else at + len(last)


def truncate_to_frames(path: Path, make_framer: Callable[[], Framer]) -> str | None:
    """Cut ``path`` after its last whole frame; returns what was done, or None."""
    size = path.stat().st_size
    start = max(0, size - TAIL_BYTES)
    with open(path, "rb", opener=open_regular) as fh:
        fh.seek(start)
        tail = fh.read()
    end = last_unit_end(tail, make_framer())
    if end is None or start + end >= size:
        return None
    cut = size - (start + end)
    with open(path, "r+b", opener=open_regular) as fh:
        fh.truncate(start + end)
        os.fsync(fh.fileno())
    return f"cut {cut} bytes of a partial frame at the end"


def _patch(path: Path, patches: list[tuple[int, bytes]]) -> None:
    with open(path, "r+b", opener=open_regular) as fh:
        for offset, data in patches:
            fh.seek(offset)
            fh.write(data)
        os.fsync(fh.fileno())


def repair_mp3(path: Path) -> str | None:
    """Cut a partial last frame, then fill in the counts of ISR's Xing/Info frame,
    which a killed recorder never patched."""
    from isr.framing.mp3 import Mp3Framer
    from isr.framing.xing import XingWriter, leading_tag_length

    done = [truncate_to_frames(path, Mp3Framer)]
    with open(path, "rb", opener=open_regular) as fh:
        if not leading_tag_length(fh.read(4096)):
            return done[0]
        fh.seek(0)
        framer, writer, started = Mp3Framer(), XingWriter(), False
        while chunk := fh.read(CHUNK):
            frames = framer.feed(chunk)
            if frames and not started:
                writer.begin(frames[0])
                started = True
            writer.write(frames)
        if not started:
            return done[0]
        writer.write(framer.flush())
    _patch(path, writer.patches())
    done.append("Xing/Info counts patched")
    return "; ".join(d for d in done if d)


def _last_metadata(head: bytes) -> bytes:
    """A FLAC head whose first metadata block is marked the last one."""
    return head[:4] + bytes([head[4] | 0x80]) + head[5:] if len(head) > 4 else head


def repair_flac(path: Path) -> str | None:
    """Cut a partial last frame and patch STREAMINFO's total samples, which a killed
    recorder left at 0 (unknown)."""
    from isr.framing.flac import FlacFramer, streaminfo_patch

    size = path.stat().st_size
    with open(path, "rb", opener=open_regular) as fh:
        head = fh.read(HEAD_BYTES)
        start = max(HEAD_BYTES, size - TAIL_BYTES)
        fh.seek(start)
        tail = fh.read()
    # The head's STREAMINFO lets the framer read frames that refer to it. Marked as
    # the last metadata block (libsndfile writes more after it), so the framer takes
    # the tail for frames, not for more metadata.
    data = _last_metadata(head) + tail
    framer = FlacFramer()
    # flush(): the file's end is the stream's end, so a last frame whose CRC-16
    # holds there is whole (feed alone waits for a next header that never comes).
    frames = framer.feed(data) + framer.flush()
    if not frames:
        return None
    last = frames[-1].data
    at = data.rfind(last)
    if at < len(head):
        return None
    end = start + (at - len(head)) + len(last)
    done = []
    if end < size:
        with open(path, "r+b", opener=open_regular) as fh:
            fh.truncate(end)
        done.append(f"cut {size - end} bytes of a partial frame at the end")
    patches = streaminfo_patch(head, last)
    if patches:
        _patch(path, patches)
        done.append("total samples patched")
    return "; ".join(done) or None


def repair_ogg(path: Path) -> str | None:
    """Cut back to the last whole page and give it the end-of-stream flag, which
    the writer holds back until close (a killed or failed file never got it)."""
    from isr.framing.oggpage import EOS, OggPage, page_crc_ok, page_length

    size = path.stat().st_size
    start = max(0, size - TAIL_BYTES)
    with open(path, "rb", opener=open_regular) as fh:
        fh.seek(start)
        tail = fh.read()
    last = None
    at = tail.find(b"OggS")
    while at >= 0:
        length = page_length(tail, at)
        if length > 0 and at + length <= len(tail):
            page = tail[at : at + length]
            if page_crc_ok(page):
                last = (at, page)
                at = tail.find(b"OggS", at + length)
                continue
        at = tail.find(b"OggS", at + 1)
    if last is None:
        return None
    offset, page = last
    end = start + offset + len(page)
    done = []
    if end < size:
        with open(path, "r+b", opener=open_regular) as fh:
            fh.truncate(end)
        done.append(f"cut {size - end} bytes of a partial page at the end")
    parsed = OggPage.parse(page)
    if not parsed.eos:
        parsed.header_type |= EOS
        _patch(path, [(start + offset, parsed.with_crc().header())])
        done.append("end-of-stream flag set on the last page")
    return "; ".join(done) or None


def repair_aac(path: Path) -> str | None:
    """Cut a partial last ADTS frame (AAC files carry no totals to patch)."""
    from isr.framing.adts import AdtsFramer

    return truncate_to_frames(path, AdtsFramer)


def repairer_for(path: Path) -> Repairer | None:
    """The repair for a stream file, by its extension (the format registry's entry);
    None if it needs none."""
    fmt = formats.of_extension(path.suffix)
    return fmt.repair() if fmt else None


def holds_audio(path: Path) -> bool:
    """Whether a stream file holds at least one whole frame or audio page (a file a
    crash cut right after it opened may hold only its headers)."""
    with open(path, "rb", opener=open_regular) as fh:
        head = fh.read(1 << 18)
    fmt = formats.of_extension(path.suffix)
    cls = fmt.framer_class() if fmt else None
    if fmt is None or cls is None:
        return True
    if fmt.name == "flac":  # libsndfile's STREAMINFO is not the last block: skip the rest
        head = _last_metadata(head)
    framer = cls()
    frames = framer.feed(head) + framer.flush()
    return any(f.samples > 0 for f in frames)
