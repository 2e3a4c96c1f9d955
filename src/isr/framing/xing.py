"""ISR's own Xing/Info frame at the start of every MP3 file, so that each tool
reports its true duration.

Without one, players estimate a VBR file's duration from its first frame's
bitrate and the file size, which can be wrong by half. The frame follows the
Xing VBR header as LAME writes it: a silent layer III frame of the stream's
version, sample rate and channel mode whose side information is zero, then at
the side-information offset (MPEG-1: 32 bytes, mono 17; MPEG-2/2.5: 17, mono 9)
the tag ``Xing`` (VBR) or ``Info`` (CBR), big-endian flags (1 frames, 2 bytes,
4 TOC), the number of audio frames (the tag frame itself excluded), the number
of bytes (the tag frame included) and a 100-entry seek table: entry i is the
byte position, in 256ths of the audio, of the frame at i % of the duration.
No LAME extension is written: the encoder delay of a stream joined mid-way is
not known, and a wrong one would trim real audio.

The counts, the TOC and the choice of ``Xing`` or ``Info`` (``Info`` when every
audio frame has the same bitrate, as LAME marks CBR) are patched at close; until
then the flags are 0 (no field valid), so that the file of a killed recorder has
its duration estimated by players rather than read as zero frames.
"""

from __future__ import annotations

from collections.abc import Sequence

from isr.framing.base import Frame

__all__ = ["TAG_SIZE", "XingWriter", "leading_tag_length", "retag_patches", "tag_offset"]

_L3_KBPS = {
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
"""Layer III bitrates in kbps by index, for MPEG-1 (True) and MPEG-2/2.5."""
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}

TAG_SIZE = 4 + 4 + 4 + 4 + 100
"""Tag id, flags, frames, bytes, TOC."""
_FLAGS = 0x1 | 0x2 | 0x4
_MAX_MARKS = 1024
"""Byte positions kept for the TOC: every ``stride``-th frame, halved when full."""


def tag_offset(b1: int, b3: int) -> int:
    """Offset of the tag in a frame without CRC: header plus side information."""
    mono = b3 >> 6 == 3
    mpeg1 = (b1 >> 3) & 3 == 3
    return 4 + ((17 if mono else 32) if mpeg1 else (9 if mono else 17))


def _frame_length(b1: int, bitrate_index: int, rate_index: int) -> int:
    version = (b1 >> 3) & 3
    mpeg1 = version == 3
    kbps = _L3_KBPS[mpeg1][bitrate_index]
    rate = _RATES[version][rate_index]
    return (144 if mpeg1 else 72) * kbps * 1000 // rate


def leading_tag_length(data: bytes) -> int:
    """Length of a Xing/Info frame at the start of ``data`` (0 if there is none)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE6 != 0xE2 or (data[1] >> 3) & 3 == 1:
        return 0
    bitrate_index, rate_index = data[2] >> 4, (data[2] >> 2) & 3
    if bitrate_index in (0, 15) or rate_index == 3:
        return 0
    o = tag_offset(data[1], data[3]) + (0 if data[1] & 1 else 2)
    if data[o : o + 4] not in (b"Xing", b"Info"):
        return 0
    return _frame_length(data[1], bitrate_index, rate_index) + ((data[2] >> 1) & 1)


class XingWriter:
    """Writes one MP3 file: a Xing/Info frame, then the audio frames as received.

    Streams that are not layer III (MP2) get no tag: the frames are written as
    they are.
    """

    extension: str | None = None

    def __init__(self) -> None:
        self.tag_at = 0
        """Offset of the tag in the file; 0 = no tag."""
        self.tag_length = 0
        """Length of the tag frame."""
        self.frames = 0
        self.audio_bytes = 0
        self._bitrate = -1
        """The bitrate index all audio frames share so far; -2 once they differ."""
        self._marks: list[int] = []
        self._stride = 1

    def begin(self, first: Frame) -> bytes:
        d = first.data
        if len(d) < 4 or (d[1] >> 1) & 3 != 1:
            return b""
        b1, b3 = d[1] | 1, d[3] & 0xCF  # no CRC; mode extension 0
        rate_index = (d[2] >> 2) & 3
        offset = tag_offset(b1, b3)
        index = d[2] >> 4
        while index < 14 and _frame_length(b1, index, rate_index) < offset + TAG_SIZE:
            index += 1
        length = _frame_length(b1, index, rate_index)
        if length < offset + TAG_SIZE:
            return b""
        self.tag_at, self.tag_length = offset, length
        frame = bytearray(length)
        frame[0:4] = bytes((0xFF, b1, index << 4 | rate_index << 2, b3))
        frame[offset : offset + 4] = b"Xing"  # flags 0 until close: a killed
        return bytes(frame)  # recorder's file gets its duration estimated, not 0

    def write(self, frames: Sequence[Frame]) -> bytes:
        for f in frames:
            if self.frames % self._stride == 0:
                self._marks.append(self.audio_bytes)
                if len(self._marks) > _MAX_MARKS:
                    self._marks = self._marks[::2]
                    self._stride *= 2
            index = f.data[2] >> 4 if len(f.data) > 2 else -2
            if self._bitrate == -1:
                self._bitrate = index
            elif index != self._bitrate:
                self._bitrate = -2
            self.frames += 1
            self.audio_bytes += len(f.data)
        return b"".join(f.data for f in frames)

    def end(self) -> bytes:
        return b""

    def patches(self) -> list[tuple[int, bytes]]:
        if not self.tag_at:
            return []
        return [(self.tag_at, self._tag())]

    def _toc(self) -> bytes:
        """Entry i: where the frame at i % of the frames starts, in 256ths of the
        audio bytes (interpolated between the kept positions)."""
        n, total = self.frames, self.audio_bytes
        if n == 0 or total == 0:
            return bytes(range(0, 200, 2))
        points = [(j * self._stride, pos) for j, pos in enumerate(self._marks)]
        points.append((n, total))
        toc = bytearray()
        k = 0
        for i in range(100):
            x = i * n / 100
            while points[k + 1][0] <= x:
                k += 1
            (f0, p0), (f1, p1) = points[k], points[k + 1]
            pos = p0 + (p1 - p0) * (x - f0) / (f1 - f0)
            toc.append(min(255, int(pos * 256 / total)))
        return bytes(toc)

    def _tag(self) -> bytes:
        kind = b"Info" if self._bitrate >= 0 else b"Xing"
        return (
            kind
            + _FLAGS.to_bytes(4, "big")
            + self.frames.to_bytes(4, "big")
            + (self.tag_length + self.audio_bytes).to_bytes(4, "big")
            + self._toc()
        )


def retag_patches(first: Frame, audio: Sequence[Frame]) -> list[tuple[int, bytes]]:
    """The close-time patches for a file that was never closed (a killed
    recorder), from its audio frames (``first`` of them gives the tag frame's
    layout, as ``begin`` did): the same as ``XingWriter`` would have made."""
    writer = XingWriter()
    writer.begin(first)
    writer.write(audio)
    return writer.patches()
