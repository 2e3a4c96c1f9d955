"""MPEG audio framer: MPEG-1, 2 and 2.5, layers I, II and III (ISO/IEC 11172-3, 13818-3).

An Icecast listener starts at an arbitrary byte, and stream sources splice files
with their ID3 tags and Xing/Info frames into the stream; the framer drops all of
that (see ``SyncFramer``) and emits only audio frames, byte for byte. Each file
then starts with ISR's own Xing/Info frame (``xing``) with the file's true counts.
"""

from __future__ import annotations

from isr.framing._sync import Header, SyncFramer, byte_class, sync_search
from isr.framing.base import FileWriter
from isr.framing.xing import XingWriter

__all__ = ["Mp3Framer"]

_KBPS = {
    # (MPEG-1?, layer): kbps by bitrate index 0..14 (0 = free format, not supported)
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
"""Sample rates by version bits (3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5)."""


def _header_for(b1: int, b2: int) -> Header | None:
    version = (b1 >> 3) & 3
    layer = 4 - ((b1 >> 1) & 3)  # bits 3, 2, 1 = layer I, II, III
    bitrate_index = b2 >> 4
    rate_index = (b2 >> 2) & 3
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _KBPS[mpeg1, layer][bitrate_index] * 1000
    rate = _RATES[version][rate_index]
    padding = (b2 >> 1) & 1
    if layer == 1:
        length, samples = (12 * bitrate // rate + padding) * 4, 384
    elif layer == 2 or mpeg1:
        length, samples = 144 * bitrate // rate + padding, 1152
    else:
        length, samples = 72 * bitrate // rate + padding, 576
    key = ((b1 >> 1) & 0x0F) << 2 | rate_index  # version, layer, sample rate
    return Header(length, samples, rate, key)


_TABLE: tuple[Header | None, ...] = tuple(
    _header_for(0xE0 | (i >> 8), i & 0xFF) for i in range(32 * 256)
)
"""Headers by the low 5 bits of byte 1 and all of byte 2, so parsing is one lookup."""


class Mp3Framer(SyncFramer):
    """Splits an MPEG audio stream into frames; drops tags, junk and Xing/VBRI frames."""

    format = "mp3"
    extension = ".mp3"
    HEADER_LEN = 4
    SEARCH = sync_search(
        b"\\xff"
        + byte_class(lambda b: b >= 0xE0 and (b >> 3) & 3 != 1 and (b >> 1) & 3 != 0)
        + byte_class(lambda b: b >> 4 not in (0, 15) and (b >> 2) & 3 != 3)
        + byte_class(lambda b: b & 3 != 2)
    )

    def _parse(self, buf: bytearray, i: int) -> Header | None:
        b1 = buf[i + 1]
        if buf[i] != 0xFF or b1 < 0xE0 or buf[i + 3] & 3 == 2:  # emphasis 2 is reserved
            return None
        return _TABLE[(b1 & 0x1F) << 8 | buf[i + 2]]

    def _silent(self, buf: bytearray, i: int, h: Header) -> bool:
        """Xing/Info (after the side info) and VBRI frames describe a file, not audio."""
        b1 = buf[i + 1]
        if (b1 >> 1) & 3 != 1:  # layer III only
            return False
        mono = buf[i + 3] >> 6 == 3
        mpeg1 = (b1 >> 3) & 3 == 3
        side = (17 if mono else 32) if mpeg1 else (9 if mono else 17)
        o = i + 4 + side + (0 if b1 & 1 else 2)
        # startswith with an offset: no slice copied for every frame of every stream
        if h.length >= o - i + 4 and buf.startswith((b"Xing", b"Info"), o):
            return True
        return h.length >= 40 and buf.startswith(b"VBRI", i + 36)

    def file_writer(self) -> FileWriter:
        """Each file starts with ISR's own Xing/Info frame, so that its duration is right."""
        return XingWriter()
