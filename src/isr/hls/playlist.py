"""HLS playlists (RFC 8216): master and media playlists, parsed into values.

Pure: text in, frozen dataclasses out, ``PlaylistError`` for anything that is not
a playlist ISR can follow (an HTML page, a missing ``#EXTM3U``, a bad number).
URIs are resolved against the playlist's own URL, so callers see absolute URLs.

Written by hand rather than with the ``m3u8`` package (6.0): that package has no
type hints, takes an HTML page for an empty playlist without a word, raises bare
``ValueError``/``KeyError`` from deep inside on a bad number, and dates only the
segments that carry their own ``EXT-X-PROGRAM-DATE-TIME`` (RFC 8216 4.3.2.6 dates
the ones after it too, which is what names files here). The subset a recorder
follows fits in this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin

__all__ = [
    "Key",
    "MasterPlaylist",
    "MediaPlaylist",
    "PlaylistError",
    "Rendition",
    "Segment",
    "Variant",
    "parse",
    "parse_date",
]

MAX_LINES = 200_000
"""A playlist longer than this is not one (a live window is a few dozen lines)."""


class PlaylistError(ValueError):
    """Text that is not an HLS playlist ISR can follow."""


@dataclass(frozen=True, slots=True)
class Key:
    """An ``EXT-X-KEY``: how the segments after it are encrypted."""

    method: str
    """``NONE``, ``AES-128``, ``SAMPLE-AES``, ``SAMPLE-AES-CTR``..."""
    uri: str | None
    iv: bytes | None
    """16 bytes, or None: the segment's media sequence number is its IV."""
    keyformat: str = "identity"

    @property
    def drm(self) -> bool:
        """Encryption ISR cannot (and must not try to) undo."""
        return self.method not in ("NONE", "AES-128") or self.keyformat != "identity"


@dataclass(frozen=True, slots=True)
class Segment:
    uri: str
    duration: float
    sequence: int
    """Media sequence number."""
    discontinuity: bool = False
    """An ``EXT-X-DISCONTINUITY`` stands before this segment."""
    date: float | None = None
    """Its first sample's aired time (Unix seconds), from ``EXT-X-PROGRAM-DATE-TIME``
    on it or on an earlier segment of the same run (no discontinuity between)."""
    dated: bool = False
    """The date is the segment's own tag (not counted on from an earlier one)."""
    key: Key | None = None
    init: str | None = None
    """URI of the ``EXT-X-MAP`` initialisation section (fMP4)."""
    init_range: tuple[int, int] | None = None
    byterange: tuple[int, int] | None = None
    """(length, offset) of ``EXT-X-BYTERANGE``."""
    gap: bool = False
    """``EXT-X-GAP``: the server says this segment is missing."""


@dataclass(frozen=True, slots=True)
class MediaPlaylist:
    target_duration: float
    media_sequence: int
    segments: tuple[Segment, ...]
    ended: bool = False
    """``EXT-X-ENDLIST``: no segment will be added."""
    playlist_type: str = ""


@dataclass(frozen=True, slots=True)
class Rendition:
    """An ``EXT-X-MEDIA`` of ``TYPE=AUDIO``."""

    group: str
    name: str
    uri: str | None
    default: bool = False


@dataclass(frozen=True, slots=True)
class Variant:
    """An ``EXT-X-STREAM-INF`` and the URI after it."""

    uri: str
    bandwidth: int
    codecs: str = ""
    audio: str = ""
    """Its ``AUDIO`` group id, if any."""
    resolution: str = ""


@dataclass(frozen=True, slots=True)
class MasterPlaylist:
    variants: tuple[Variant, ...]
    audio: tuple[Rendition, ...] = ()
    session_keys: tuple[Key, ...] = ()

    def audio_uri(self, variant: Variant) -> str:
        """The URL that carries ``variant``'s audio: its audio group's rendition with a
        URI (the default one first) where it names one, else its own."""
        group = [r for r in self.audio if r.group == variant.audio and r.uri]
        group.sort(key=lambda r: not r.default)
        return group[0].uri if group and group[0].uri else variant.uri

    def choose(self, index: int | None) -> Variant:
        """The variant at ``index`` (playlist order), else the highest ``BANDWIDTH``
        (the first of equals)."""
        if not self.variants:
            raise PlaylistError("the master playlist lists no variant stream")
        if index is not None:
            if not 0 <= index < len(self.variants):
                raise PlaylistError(
                    f"hls_variant = {index}, but the master playlist lists "
                    f"{len(self.variants)} variant streams (0 to {len(self.variants) - 1})"
                )
            return self.variants[index]
        best = self.variants[0]
        for v in self.variants[1:]:
            if v.bandwidth > best.bandwidth:
                best = v
        return best


_ATTR = re.compile(r'\s*([A-Z0-9-]+)\s*=\s*("[^"]*"|[^,]*)\s*(?:,|$)')


def attributes(text: str) -> dict[str, str]:
    """An attribute list (RFC 8216 4.2), quotes taken off quoted strings."""
    out: dict[str, str] = {}
    for m in _ATTR.finditer(text):
        value = m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        out[m.group(1)] = value
    return out


def parse_date(text: str) -> float:
    """``EXT-X-PROGRAM-DATE-TIME`` as Unix seconds: offsets as ``+00:00``, ``+0000``,
    ``+00`` or ``Z``; a date without an offset is taken as UTC."""
    value = text.strip()
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise PlaylistError(f"not a date: {value[:40]!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.timestamp()
    except (OverflowError, ValueError):
        raise PlaylistError(f"not a date: {value[:40]!r}") from None


def _number(text: str, what: str, kind: type[int] | type[float] = int) -> float:
    try:
        value = kind(text.strip())
    except ValueError:
        raise PlaylistError(f"{what}: not a number: {text.strip()[:40]!r}") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise PlaylistError(f"{what}: out of range: {text.strip()[:40]!r}")
    return value


def _int(text: str, what: str) -> int:
    return int(_number(text, what, int))


def _byterange(text: str, what: str, after: int) -> tuple[int, int]:
    length, _, offset = text.partition("@")
    n = _int(length, what)
    return n, (_int(offset, what) if offset else after)


def _key(attrs: dict[str, str], base: str) -> Key:
    method = attrs.get("METHOD", "").upper()
    if not method:
        raise PlaylistError("EXT-X-KEY without METHOD")
    iv: bytes | None = None
    if "IV" in attrs:
        raw = attrs["IV"]
        hexa = raw[2:] if raw[:2].lower() == "0x" else raw
        try:
            iv = bytes.fromhex(hexa.rjust(32, "0"))
        except ValueError:
            raise PlaylistError(f"EXT-X-KEY: IV is not hexadecimal: {raw[:40]!r}") from None
        if len(iv) != 16:
            raise PlaylistError(f"EXT-X-KEY: IV is not 128 bits: {raw[:40]!r}")
    uri = urljoin(base, attrs["URI"]) if "URI" in attrs else None
    if method == "AES-128" and uri is None:
        raise PlaylistError("EXT-X-KEY: AES-128 without URI")
    return Key(method, uri, iv, attrs.get("KEYFORMAT", "identity"))


def parse(text: str | bytes, base: str) -> MasterPlaylist | MediaPlaylist:
    """A playlist's text (as served from ``base``) as a master or media playlist."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PlaylistError("not UTF-8 text") from None
    lines = text.splitlines()
    if not lines or lines[0].strip() != "#EXTM3U":
        first = lines[0].strip()[:40] if lines else ""
        raise PlaylistError(f"does not start with #EXTM3U (starts with {first!r})")
    if len(lines) > MAX_LINES:
        raise PlaylistError(f"more than {MAX_LINES} lines")
    if any(line.startswith("#EXT-X-STREAM-INF") for line in lines):
        return _master(lines, base)
    return _media(lines, base)


def _master(lines: list[str], base: str) -> MasterPlaylist:
    variants: list[Variant] = []
    audio: list[Rendition] = []
    keys: list[Key] = []
    pending: dict[str, str] | None = None
    for raw in lines[1:]:
        line = raw.strip()
        if not line:
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-STREAM-INF":
            pending = attributes(value)
        elif tag == "#EXT-X-MEDIA":
            a = attributes(value)
            if a.get("TYPE", "").upper() == "AUDIO":
                uri = urljoin(base, a["URI"]) if a.get("URI") else None
                audio.append(
                    Rendition(
                        a.get("GROUP-ID", ""),
                        a.get("NAME", ""),
                        uri,
                        a.get("DEFAULT", "").upper() == "YES",
                    )
                )
        elif tag == "#EXT-X-SESSION-KEY":
            keys.append(_key(attributes(value), base))
        elif not line.startswith("#") and pending is not None:
            bw = pending.get("BANDWIDTH", "0")
            variants.append(
                Variant(
                    urljoin(base, line),
                    _int(bw or "0", "BANDWIDTH"),
                    pending.get("CODECS", ""),
                    pending.get("AUDIO", ""),
                    pending.get("RESOLUTION", ""),
                )
            )
            pending = None
    if not variants:
        raise PlaylistError("the master playlist lists no variant stream")
    return MasterPlaylist(tuple(variants), tuple(audio), tuple(keys))


def _media(lines: list[str], base: str) -> MediaPlaylist:
    target: float | None = None
    first_seq = 0
    ended = False
    ptype = ""
    segments: list[Segment] = []
    key: Key | None = None
    init: str | None = None
    init_range: tuple[int, int] | None = None
    duration: float | None = None
    discontinuity = False
    date: float | None = None
    byterange: tuple[int, int] | None = None
    next_offset = 0
    gap = False
    run_date: float | None = None
    """Where the next undated segment starts, counted on from the last date."""
    for raw in lines[1:]:
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("#"):
            if duration is None:
                raise PlaylistError(f"segment without #EXTINF: {line[:60]!r}")
            seq = first_seq + len(segments)
            dated = date is not None
            when = date if dated else (None if discontinuity else run_date)
            segments.append(
                Segment(
                    urljoin(base, line),
                    duration,
                    seq,
                    discontinuity,
                    when,
                    dated,
                    key,
                    init,
                    init_range,
                    byterange,
                    gap,
                )
            )
            run_date = None if when is None else when + duration
            if byterange is not None:
                next_offset = byterange[0] + byterange[1]
            duration, discontinuity, date, byterange, gap = None, False, None, None, False
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXTINF":
            duration = float(_number(value.split(",", 1)[0], "EXTINF", float))
        elif tag == "#EXT-X-TARGETDURATION":
            target = float(_number(value, "EXT-X-TARGETDURATION", float))
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            if segments:
                raise PlaylistError("EXT-X-MEDIA-SEQUENCE after the first segment")
            first_seq = _int(value, "EXT-X-MEDIA-SEQUENCE")
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            date = parse_date(value)
        elif tag == "#EXT-X-KEY":
            k = _key(attributes(value), base)
            key = None if k.method == "NONE" else k
        elif tag == "#EXT-X-MAP":
            a = attributes(value)
            if "URI" not in a:
                raise PlaylistError("EXT-X-MAP without URI")
            init = urljoin(base, a["URI"])
            init_range = _byterange(a["BYTERANGE"], "EXT-X-MAP", 0) if "BYTERANGE" in a else None
        elif tag == "#EXT-X-BYTERANGE":
            byterange = _byterange(value, "EXT-X-BYTERANGE", next_offset)
        elif tag == "#EXT-X-GAP":
            gap = True
        elif tag == "#EXT-X-ENDLIST":
            ended = True
        elif tag == "#EXT-X-PLAYLIST-TYPE":
            ptype = value.strip().upper()
    if target is None:
        raise PlaylistError("a media playlist without EXT-X-TARGETDURATION")
    return MediaPlaylist(target, first_seq, tuple(segments), ended, ptype)
