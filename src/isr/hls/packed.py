"""Packed audio (RFC 8216 3.4) and timed ID3: what the ID3 tags of HLS say.

A packed-audio segment is raw ADTS or MPEG audio that starts with an ID3v2 tag
holding a ``PRIV`` frame ``com.apple.streaming.transportStreamTimestamp`` (the
33-bit MPEG-2 timestamp of its first sample). Timed ID3 (in a TS stream of its
own, or a packed segment's tags) may carry ``TIT2``/``TPE1``: titles. Pure, and
``None``/empty for anything that does not parse.
"""

from __future__ import annotations

from dataclasses import dataclass

from isr.framing._sync import id3v2_size

__all__ = ["Id3Info", "leading_id3", "read_id3"]

TIMESTAMP_OWNER = b"com.apple.streaming.transportStreamTimestamp"


@dataclass(frozen=True)
class Id3Info:
    timestamp: int | None = None
    """The PRIV transport stream timestamp, in 90 kHz units."""
    title: str | None = None
    artist: str | None = None

    @property
    def display(self) -> str | None:
        """``Artist - Title`` as ICY titles read, or whichever there is."""
        parts = [p for p in (self.artist, self.title) if p]
        return " - ".join(parts) if parts else None


def leading_id3(data: bytes) -> int:
    """Size of the ID3v2 tags at the start of ``data`` (0 if none)."""
    pos = 0
    while len(data) - pos >= 10 and data.startswith(b"ID3", pos):
        size = id3v2_size(data, pos)
        if not size or pos + size > len(data):
            break
        pos += size
    return pos


def _unsync_size(b: bytes) -> int:
    return b[0] << 21 | b[1] << 14 | b[2] << 7 | b[3]


def _text(body: bytes) -> str | None:
    if not body:
        return None
    enc, raw = body[0], body[1:]
    codec = {0: "latin-1", 1: "utf-16", 2: "utf-16-be", 3: "utf-8"}.get(enc)
    if codec is None:
        return None
    text = raw.decode(codec, "replace").split("\0")[0].strip()
    return text or None


def read_id3(tag: bytes) -> Id3Info:
    """The facts of one ID3v2.3/2.4 tag (10-byte header included)."""
    if len(tag) < 10 or not tag.startswith(b"ID3"):
        return Id3Info()
    major = tag[3]
    size = id3v2_size(tag, 0)
    if major not in (3, 4) or not size:
        return Id3Info()
    end = min(len(tag), size)
    p = 10
    if tag[5] & 0x40 and p + 4 <= end:  # extended header
        ext = _unsync_size(tag[p : p + 4]) if major == 4 else int.from_bytes(tag[p : p + 4]) + 4
        p += ext
    found: dict[str, object] = {}
    while p + 10 <= end:
        fid = tag[p : p + 4]
        if not fid.strip(b"\0"):
            break
        raw_size = tag[p + 4 : p + 8]
        n = _unsync_size(raw_size) if major == 4 else int.from_bytes(raw_size)
        body = tag[p + 10 : p + 10 + n]
        p += 10 + n
        if fid == b"PRIV" and body.startswith(TIMESTAMP_OWNER + b"\0"):
            stamp = body[len(TIMESTAMP_OWNER) + 1 :]
            if len(stamp) == 8:
                found["ts"] = int.from_bytes(stamp, "big") & ((1 << 33) - 1)
        elif fid == b"TIT2":
            found["title"] = _text(body)
        elif fid == b"TPE1":
            found["artist"] = _text(body)
    ts = found.get("ts")
    title = found.get("title")
    artist = found.get("artist")
    return Id3Info(
        ts if isinstance(ts, int) else None,
        title if isinstance(title, str) else None,
        artist if isinstance(artist, str) else None,
    )
