"""ADTS AAC framer (ISO/IEC 13818-7 and 14496-3, adts_frame).

An ADTS stream is a run of self-delimiting frames: a 7-byte header (9 with CRC)
whose 13-bit ``frame_length`` covers the whole frame, carrying one to four raw
data blocks of 1024 samples each. Sync, tags and junk are handled by ``SyncFramer``.
"""

from __future__ import annotations

from isr.framing._sync import Header, SyncFramer, byte_class, sync_search

__all__ = ["AdtsFramer"]

_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


class AdtsFramer(SyncFramer):
    """Splits an ADTS AAC stream into frames; drops tags and junk."""

    format = "aac"
    extension = ".aac"
    HEADER_LEN = 7
    SEARCH = sync_search(
        b"\\xff"
        + byte_class(lambda b: b & 0xF6 == 0xF0)
        + byte_class(lambda b: (b >> 2) & 0x0F < len(_RATES))
    )

    def _parse(self, buf: bytearray, i: int) -> Header | None:
        b1 = buf[i + 1]
        # syncword 0xFFF, then layer must be 0
        if buf[i] != 0xFF or b1 & 0xF6 != 0xF0:
            return None
        b2, b3 = buf[i + 2], buf[i + 3]
        rate_index = (b2 >> 2) & 0x0F
        if rate_index >= len(_RATES):
            return None
        length = (b3 & 3) << 11 | buf[i + 4] << 3 | buf[i + 5] >> 5
        if length <= (7 if b1 & 1 else 9):
            return None
        blocks = (buf[i + 6] & 3) + 1
        # fixed header: ID, profile, sampling_frequency_index, channel_configuration
        key = (b1 & 0x08) << 9 | (b2 & 0xFD) << 2 | b3 >> 6
        return Header(length, 1024 * blocks, _RATES[rate_index], key)
