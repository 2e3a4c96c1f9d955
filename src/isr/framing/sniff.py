"""Which container a stream really is: from its Content-Type, confirmed by its bytes.

Servers mislabel streams (``audio/mpeg`` for AAC is common), so ``format = auto``
takes the Content-Type and then checks the first bytes; when they clearly say
something else, the bytes win and the caller logs the disagreement.
"""

from __future__ import annotations

from isr import formats
from isr.framing._sync import id3v2_size
from isr.framing.flac import frame_header
from isr.framing.mp3 import Mp3Framer
from isr.framing.oggpage import page_length

__all__ = [
    "flac_score",
    "format_from_content_type",
    "ogg_score",
    "sniff",
    "sniff_scores",
    "unsupported",
]

MIN_SCORE = 0.5
"""Below this a sniffed format is not believed."""


def format_from_content_type(ct: str) -> str | None:
    """``mp3``, ``aac``, ``ogg`` or ``flac`` for a Content-Type header, else None."""
    fmt = formats.of_content_type(ct)
    return fmt.name if fmt else None


def ogg_score(head: bytes) -> float:
    """The Ogg entry's score: a page header, believed more when a second page follows."""
    i = head.find(b"OggS")
    while i >= 0:
        # A capture pattern that ends the head is no page to score.
        length = page_length(head, i) if i + 4 < len(head) else 0
        if length:
            if length < 0 or i + length >= len(head):
                return 1.0 if i == 0 else 0.7
            nxt = i + length
            if head.startswith(b"OggS\x00", nxt):
                return 1.0
            return 0.9 if i == 0 else 0.6
        i = head.find(b"OggS", i + 1)
    return 0.0


def flac_score(head: bytes) -> float:
    """The FLAC entry's score: ``fLaC``, or two frame headers whose CRC-8 holds."""
    if head.startswith(b"fLaC"):
        return 1.0
    found = 0
    i = head.find(b"\xff")
    while i >= 0 and found < 2:
        if head[i + 1 : i + 2] in (b"\xf8", b"\xf9") and frame_header(head, i) is not None:
            found += 1
        i = head.find(b"\xff", i + 1)
    return 0.8 if found >= 2 else 0.0


def sniff_scores(head: bytes) -> dict[str, float]:
    """Confidence in [0, 1] for each format that sniffing can name (each registry
    entry's ``score``, in the registry's order), from the first bytes of a stream."""
    return {f.name: f.score(head) for f in formats.FORMATS if f.scorer}


def sniff(head: bytes) -> str | None:
    """The format the bytes show (a few KiB are enough), or None if unsure.

    MP3 and AAC need three chained frames, Ogg a page header, FLAC ``fLaC`` or two
    frame headers whose CRC-8 holds.
    """
    scores = sniff_scores(head)
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] >= MIN_SCORE else None


_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")


def _free_format_mp3(head: bytes) -> bool:
    """Free-format MPEG audio (bitrate index 0): the frame length is in no header,
    so ISR cannot cut it. Believed only for four such headers alike at a steady
    spacing (give or take the padding byte), which junk does not make."""
    where: dict[tuple[int, int], list[int]] = {}
    i = head.find(b"\xff")
    while i >= 0 and i + 4 <= len(head):
        b1, b2 = head[i + 1], head[i + 2]
        free = b1 >= 0xE0 and (b1 >> 3) & 3 != 1 and (b1 >> 1) & 3 and b2 >> 4 == 0
        if free and (b2 >> 2) & 3 != 3:
            where.setdefault((b1, b2 & 0xFD), []).append(i)
        i = head.find(b"\xff", i + 1)
    for spots in where.values():
        at = set(spots)
        for n, p in enumerate(spots):
            for q in spots[n + 1 : n + 8]:
                d = q - p
                if d >= 16 and all(any(p + k * d + e in at for e in (-1, 0, 1)) for k in (2, 3)):
                    return True
    return False


def unsupported(head: bytes) -> str | None:
    """The name of audio ISR recognises but cannot record, for a clear refusal:
    a stream that no framer takes is otherwise only "bytes that were not audio"."""
    body = head[id3v2_size(head, 0) :] if head.startswith(b"ID3") and len(head) >= 10 else head
    if body.startswith(b"ADIF"):
        return "ADIF AAC (only ADTS AAC streams can be recorded)"
    if body[4:8] == b"ftyp":
        return "MP4/M4A (AAC in MP4 is not a live stream format; use the ADTS stream)"
    if body.startswith(_ASF_GUID):
        return "WMA/ASF"
    if Mp3Framer.score(body) == 0 and _free_format_mp3(body[:8192]):
        return "free-format MP3 (no bitrate in its frame headers)"
    return None
