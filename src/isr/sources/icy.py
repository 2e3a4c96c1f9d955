"""Strips SHOUTcast/Icecast in-band metadata from a stream.

A server asked for ``Icy-MetaData: 1`` answers with ``icy-metaint: N`` and then
sends N audio bytes, one length byte L, L × 16 bytes of metadata
(``StreamTitle='...';StreamUrl='...';`` padded with NULs), N audio bytes, and so
on. The framers must see the audio alone, byte for byte, so this demuxer is
exact across any chunking the network produces, including a chunk boundary
that falls on the length byte itself. Pure: no I/O.
"""

from __future__ import annotations

import re

__all__ = ["IcyDemuxer", "parse_stream_title"]

_TITLE_KEY = re.compile(rb"StreamTitle\s*=\s*'", re.IGNORECASE)
# The title may itself hold "'" and ";", so its end is the last "';" before the
# next key (a ";" followed by a StreamXxx= name) or before the end of the block.
_NEXT_KEY = re.compile(rb";\s*Stream[A-Za-z_]*\s*=", re.IGNORECASE)


def _decode(raw: bytes) -> str:
    """Servers send UTF-8 or, older ones, Windows-1252: try them in that order."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_stream_title(block: bytes) -> str | None:
    """The ``StreamTitle`` of one metadata block, or None when the block has none.

    An empty title (``StreamTitle='';``) is returned as ``""``: the station
    cleared it, which is a change the sidecar should show.
    """
    block = block.rstrip(b"\0")
    m = _TITLE_KEY.search(block)
    if m is None:
        return None
    rest = block[m.end() :]
    nxt = _NEXT_KEY.search(rest)
    # Keep the ";" that starts the next key so "...';StreamUrl=" still ends in "';".
    segment = rest[: nxt.start() + 1] if nxt is not None else rest
    end = segment.rfind(b"';")
    if end >= 0:
        value = segment[:end]
    else:
        value = segment.rstrip(b"; \t\r\n")
        if value.endswith(b"'"):
            value = value[:-1]
    return _decode(value.replace(b"\0", b"")).strip()


class IcyDemuxer:
    """Splits a received byte stream into audio and title changes.

    ``feed`` returns the audio bytes with every metadata byte removed and the
    titles that changed, each with the offset in that returned chunk where it
    takes effect. A block repeating the current title and an empty block both
    report nothing. Pass ``title`` to carry the last known title over a
    reconnect so an unchanged title is not reported again.
    """

    __slots__ = (
        "_audio_left",
        "_meta_buf",
        "_meta_left",
        "audio_bytes",
        "blocks",
        "metadata_bytes",
        "metaint",
        "title",
    )

    def __init__(self, metaint: int | None, *, title: str | None = None) -> None:
        self.metaint = metaint if metaint and metaint > 0 else 0
        self.title = title
        """The title in force, None until the first block names one."""
        self.audio_bytes = 0
        """Audio bytes returned so far."""
        self.metadata_bytes = 0
        """Bytes stripped so far: length bytes plus metadata blocks."""
        self.blocks = 0
        """Non-empty metadata blocks seen."""
        self._audio_left = self.metaint
        # -1: the next byte is a length byte; > 0: metadata bytes still to come.
        self._meta_left = 0
        self._meta_buf = bytearray()

    def feed(self, data: bytes) -> tuple[bytes, list[tuple[int, str]]]:
        """Strip metadata from ``data``; return (audio, [(offset, title), ...])."""
        metaint = self.metaint
        n = len(data)
        if not metaint:
            self.audio_bytes += n
            return data, []
        # Fast path: the whole chunk is audio before the next length byte.
        if self._meta_left == 0 and n <= self._audio_left:
            self._audio_left -= n
            if self._audio_left == 0:
                self._meta_left = -1
            self.audio_bytes += n
            return data, []

        mv = memoryview(data)
        parts: list[memoryview] = []
        out_len = 0
        titles: list[tuple[int, str]] = []
        pos = 0
        while pos < n:
            if self._meta_left == 0:
                take = self._audio_left
                if take > n - pos:
                    take = n - pos
                parts.append(mv[pos : pos + take])
                out_len += take
                pos += take
                self._audio_left -= take
                if self._audio_left == 0:
                    self._meta_left = -1
            elif self._meta_left < 0:
                length = data[pos] * 16
                pos += 1
                self.metadata_bytes += 1
                if length:
                    self._meta_left = length
                else:
                    self._meta_left = 0
                    self._audio_left = metaint
            else:
                take = self._meta_left
                if take > n - pos:
                    take = n - pos
                self._meta_buf += mv[pos : pos + take]
                pos += take
                self._meta_left -= take
                self.metadata_bytes += take
                if self._meta_left == 0:
                    self._audio_left = metaint
                    self.blocks += 1
                    title = parse_stream_title(bytes(self._meta_buf))
                    self._meta_buf.clear()
                    if title is not None and title != self.title:
                        self.title = title
                        titles.append((out_len, title))
        self.audio_bytes += out_len
        if len(parts) == 1 and out_len == n:
            return data, titles
        return b"".join(parts), titles
