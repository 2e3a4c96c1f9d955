"""Turns an ``.m3u`` or ``.pls`` playlist into the stream URLs it lists.

Radio stations often publish a playlist instead of the stream itself; ISR
records the first stream listed. HLS (``#EXT-X-`` tags) looks like M3U but is
segmented audio that ISR cannot record yet, so it is refused with its own
error instead of being mistaken for a list of streams. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urljoin, urlsplit

__all__ = [
    "HlsNotSupported",
    "PlaylistError",
    "PlaylistKind",
    "is_hls_url",
    "kind_from_content_type",
    "kind_from_url",
    "parse_playlist",
]

PlaylistKind = Literal["m3u", "pls", "hls"]

_CONTENT_TYPES: dict[str, PlaylistKind] = {
    "audio/x-mpegurl": "m3u",
    "audio/mpegurl": "m3u",
    "application/x-mpegurl": "m3u",
    "audio/x-mpequrl": "m3u",  # a misspelling some servers really send
    "audio/x-scpls": "pls",
    "application/pls+xml": "pls",
    "application/pls": "pls",
    "application/vnd.apple.mpegurl": "hls",
}

_PLS_FILE = re.compile(r"^\s*file(\d+)\s*=\s*(.*?)\s*$", re.IGNORECASE)
_STREAM_SCHEMES = ("http", "https")


class PlaylistError(ValueError):
    """A playlist that names no usable stream."""


class HlsNotSupported(PlaylistError):
    """The URL or body is an HLS playlist, which ISR does not record."""


def kind_from_content_type(content_type: str) -> PlaylistKind | None:
    """The playlist kind a Content-Type announces, None for anything else."""
    return _CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())


def kind_from_url(url: str) -> PlaylistKind | None:
    """The playlist kind a URL's path extension suggests, None for anything else."""
    path = urlsplit(url).path.lower()
    if path.endswith(".m3u8"):
        return "hls"
    if path.endswith(".m3u"):
        return "m3u"
    if path.endswith(".pls"):
        return "pls"
    return None


def is_hls_url(url: str) -> bool:
    """True for ``.m3u8`` URLs, which are HLS and refused before connecting."""
    return kind_from_url(url) == "hls"


def _text(body: bytes) -> str:
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    elif body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return body.decode("utf-16", errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _usable(urls: list[str], base_url: str) -> list[str]:
    out: list[str] = []
    for u in urls:
        if not u:
            continue
        resolved = urljoin(base_url, u) if base_url else u
        if urlsplit(resolved).scheme.lower() in _STREAM_SCHEMES:
            out.append(resolved)
    return out


def parse_playlist(body: bytes, base_url: str = "", kind: PlaylistKind | None = None) -> list[str]:
    """The stream URLs of an M3U or PLS body, in order; relative ones resolved.

    ``kind`` is only a hint: servers mislabel playlists, so the body decides.
    Raises ``HlsNotSupported`` for HLS and ``PlaylistError`` when no http(s)
    URL is found.
    """
    text = _text(body)
    if "#EXT-X-" in text.upper() or kind == "hls":
        raise HlsNotSupported("HLS playlists are not supported")
    lines = text.splitlines()
    is_pls = kind == "pls" or any(
        line.strip().lower() == "[playlist]" or _PLS_FILE.match(line) for line in lines
    )
    if is_pls:
        entries: list[tuple[int, str]] = []
        for line in lines:
            m = _PLS_FILE.match(line)
            if m:
                entries.append((int(m.group(1)), m.group(2)))
        entries.sort(key=lambda e: e[0])
        urls = _usable([u for _, u in entries], base_url)
    else:
        urls = _usable(
            [s for s in (line.strip() for line in lines) if s and not s.startswith("#")],
            base_url,
        )
    if not urls:
        raise PlaylistError("the playlist lists no http(s) stream URL")
    return urls
