"""What the Ogg framer needs to know about the codecs it carries: Vorbis, Opus, FLAC.

For each codec: how to recognise its identification header, how many header
packets a link has, which fields make two links interchangeable (so a chain can
be followed in one file), the title its comment header carries, and how many
PCM samples each audio packet decodes to — computed from the packet itself, so
a page has a sample count even without a previous page to measure it from.

- Vorbis I specification, sections 4.2 (headers) and 4.3 (audio packet decode):
  a packet decodes to ``prev_blocksize/4 + blocksize/4`` samples, the first
  packet of a stream to none.
- RFC 7845 (Ogg Opus): ``OpusHead``/``OpusTags``; RFC 6716 section 3.1 (TOC byte).
- FLAC-in-Ogg mapping (xiph.org/flac/ogg_mapping.html): a ``0x7F FLAC`` packet
  holding STREAMINFO and the count of metadata packets that follow; frame headers
  per the FLAC format (RFC 9639 section 9.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Codec", "codec_for", "opus_samples", "unsupported_codec", "vorbis_modes"]

STREAMINFO_AT = 17
"""Offset of STREAMINFO in the Ogg FLAC mapping header packet."""


def _comments(packet: bytes, at: int) -> dict[str, str]:
    """A Vorbis comment block (also OpusTags, FLAC VORBIS_COMMENT) starting at ``at``."""
    out: dict[str, str] = {}
    try:
        n = int.from_bytes(packet[at : at + 4], "little")
        p = at + 4 + n
        count = int.from_bytes(packet[p : p + 4], "little")
        p += 4
        for _ in range(min(count, 1024)):
            size = int.from_bytes(packet[p : p + 4], "little")
            text = packet[p + 4 : p + 4 + size].decode("utf-8", "replace")
            p += 4 + size
            key, sep, value = text.partition("=")
            if sep and key.upper() not in out:
                out[key.upper()] = value
            if p > len(packet):
                break
    except (IndexError, ValueError):
        pass
    return out


def title_of(comments: dict[str, str]) -> str | None:
    """``ARTIST - TITLE``, or whichever of them is there."""
    artist = comments.get("ARTIST", "").strip()
    title = comments.get("TITLE", "").strip()
    if artist and title:
        return f"{artist} - {title}"
    return title or artist or None


@dataclass
class Codec:
    """One link's codec setup, built up from its header packets."""

    name: str
    """``vorbis``, ``opus`` or ``flac``."""
    extension: str
    sample_rate: int
    headers_needed: int
    """Header packets in this link as its first header says (FLAC: the mapping
    header's count, 0 = unannounced; not trusted: see ``add_header``)."""
    key: bytes
    """What must be equal for two links to share one logical stream."""
    blocksizes: tuple[int, int] = (0, 0)
    modes: list[int] = field(default_factory=list)
    """Vorbis: blockflag of each mode."""
    title: str | None = None
    headers_done: bool = False
    header_packets: list[bytes] = field(default_factory=list)
    _sizes: list[int] | None = field(default=None, repr=False, compare=False)
    _kinds: bytes | None = field(default=None, repr=False, compare=False)

    def vorbis_sizes(self) -> list[int]:
        """Vorbis: the blocksize of an audio packet by its first byte (0: not audio).

        A packet's mode is in its first byte, so one table lookup per packet stands
        for ``packet_samples`` on the hot path (a live page holds a dozen packets).
        """
        if self._sizes is None:
            self._sizes = [
                0 if b & 1 else self.packet_samples(bytes((b,)), 0)[1] for b in range(256)
            ]
        return self._sizes

    def vorbis_kinds(self) -> bytes:
        """Vorbis: ``vorbis_sizes`` as a ``bytes.translate`` table: 0 not audio, 1 the
        short blocksize, 2 the long one; a page's packets are then classed, and
        counted by class, in C."""
        if self._kinds is None:
            short = self.blocksizes[0]
            sizes = self.vorbis_sizes()
            self._kinds = bytes(0 if s == 0 else 1 if s == short else 2 for s in sizes)
        return self._kinds

    def add_header(self, packet: bytes) -> bool:
        """Take the next header packet; True when the headers are complete."""
        self.header_packets.append(packet)
        n = len(self.header_packets)
        if self.name == "vorbis":
            if n == 2 and packet.startswith(b"\x03vorbis"):
                self.title = title_of(_comments(packet, 7))
            elif n == 3:
                self.modes = vorbis_modes(packet) or [0]
                self.key += packet
        elif self.name == "opus":
            if n == 2 and packet.startswith(b"OpusTags"):
                self.title = title_of(_comments(packet, 8))
        elif self.name == "flac":
            # The metadata blocks end with the one flagged last, whatever the mapping
            # header's count says (liquidsoap announces two and sends one).
            if n >= 2 and packet and packet[0] & 0x7F == 4:
                self.title = title_of(_comments(packet, 4))
            self.headers_done = n >= 2 and bool(packet) and bool(packet[0] & 0x80)
            return self.headers_done
        if n >= self.headers_needed:
            self.headers_done = True
        return self.headers_done

    def packet_samples(self, packet: bytes, prev: int) -> tuple[int, int]:
        """(samples, blocksize) of an audio packet; ``prev`` is the previous packet's
        blocksize (0 at a decoder start: a Vorbis packet then decodes to nothing)."""
        if self.name == "opus":
            return opus_samples(packet), 0
        if self.name == "flac":
            return flac_block_size(packet), 0
        if not packet or packet[0] & 1:
            return 0, prev  # not an audio packet: no output, no change
        modes = self.modes
        bits = max(len(modes) - 1, 0).bit_length()
        mode = (packet[0] >> 1) & ((1 << bits) - 1)
        size = self.blocksizes[modes[mode] if mode < len(modes) else 0]
        return ((prev + size) // 4 if prev else 0), size


UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"Speex   ", "Speex"),
    (b"CELT    ", "CELT"),
    (b"PCM     ", "PCM"),
    (b"fLaC", "FLAC of the pre-1.1.1 mapping"),
    (b"\x80theora", "Theora (video)"),
)
"""Identification headers of Ogg codecs ISR knows and cannot record, by name."""


def unsupported_codec(packet: bytes) -> str | None:
    """The name of the codec whose identification header ``packet`` is, if it is
    one ISR cannot record: a stream of it is refused by name, not taken for junk."""
    for magic, name in UNSUPPORTED:
        if packet.startswith(magic):
            return name
    return None


def codec_for(packet: bytes) -> Codec | None:
    """The codec whose identification header ``packet`` is, or None."""
    if packet.startswith(b"\x01vorbis") and len(packet) >= 30:
        rate = int.from_bytes(packet[12:16], "little")
        b = packet[28]
        bs = (1 << (b & 0x0F), 1 << (b >> 4))
        if rate == 0 or packet[11] == 0:
            return None
        # channels, rate, blocksizes; the setup header is appended when it arrives.
        key = b"vorbis" + packet[11:16] + packet[28:29]
        return Codec("vorbis", ".ogg", rate, 3, key, blocksizes=bs)
    if packet.startswith(b"OpusHead") and len(packet) >= 19:
        # channel count, output gain, mapping family and table; pre-skip may differ.
        key = b"opus" + packet[9:10] + packet[16:]
        return Codec("opus", ".opus", 48000, 2, key)
    if packet.startswith(b"\x7fFLAC") and len(packet) >= STREAMINFO_AT + 34:
        info = packet[STREAMINFO_AT : STREAMINFO_AT + 34]
        rate = int.from_bytes(info[10:13], "big") >> 4
        if rate == 0:
            return None
        count = int.from_bytes(packet[7:9], "big")
        # block sizes, rate, channels, bits per sample
        key = b"flac" + info[0:4] + info[10:13] + bytes([info[13] & 0xF0])
        return Codec("flac", ".oga", rate, 1 + count if count else 0, key)
    return None


# -- Opus (RFC 6716 section 3.1) ------------------------------------------------------

_OPUS_FRAME = tuple(
    (480, 960, 1920, 2880)[c % 4] if c < 12 else
    (480, 960)[c % 2] if c < 16 else
    (120, 240, 480, 960)[c % 4]
    for c in range(32)
)  # fmt: skip
"""Samples at 48 kHz per frame by TOC configuration number."""


def opus_samples(packet: bytes) -> int:
    """Samples at 48 kHz an Opus packet decodes to (0 for a malformed one)."""
    if not packet:
        return 0
    toc = packet[0]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code < 3:
        frames = 2
    elif len(packet) < 2:
        return 0
    else:
        frames = packet[1] & 0x3F
    n = frames * _OPUS_FRAME[toc >> 3]
    return n if n <= 5760 else 0


# -- FLAC frame headers ----------------------------------------------------------------


def flac_block_size(packet: bytes) -> int:
    """Block size of the FLAC frame ``packet`` starts with (0 if not a frame)."""
    if len(packet) < 5 or packet[0] != 0xFF or packet[1] & 0xFE != 0xF8:
        return 0
    code = packet[2] >> 4
    if code == 1:
        return 192
    if 2 <= code <= 5:
        return 576 << (code - 2)
    if code >= 8:
        return 256 << (code - 8)
    if code not in (6, 7):
        return 0
    # Block size stored after the UTF-8-like coded frame or sample number.
    lead = packet[4]
    extra = 0
    while extra < 7 and lead & (0x80 >> extra):
        extra += 1
    p = 4 + (extra if extra > 1 else 1)
    if code == 6:
        return packet[p] + 1 if len(packet) > p else 0
    return int.from_bytes(packet[p : p + 2], "big") + 1 if len(packet) > p + 1 else 0


# -- Vorbis setup header ---------------------------------------------------------------


def vorbis_modes(setup: bytes) -> list[int] | None:
    """Blockflags of the modes at the end of a Vorbis setup header, or None.

    The mode list is the last thing in the header (Vorbis I, 4.2.4), after
    codebooks, floors and residues that would take a full decoder to walk; so, as
    ffmpeg's vorbis_parser does, read it backwards from the framing bit: each mode
    is 41 bits (blockflag, windowtype 0, transformtype 0, mapping), preceded by a
    6-bit count. The longest consistent reading wins.
    """
    if not setup.startswith(b"\x05vorbis"):
        return None
    n = int.from_bytes(setup, "little")  # bit k of the packet is bit k of n
    framing = n.bit_length() - 1
    low = 7 * 8 + 8  # after the packet type, "vorbis" and a codebook count
    best: list[int] | None = None
    count = 0
    while count < 64:
        start = framing - 41 * (count + 1)
        if start - 6 < low:
            break
        window = (n >> (start + 1)) & 0xFFFF
        transform = (n >> (start + 17)) & 0xFFFF
        mapping = (n >> (start + 33)) & 0xFF
        if window or transform or mapping > 63:
            break
        count += 1
        if (n >> (start - 6)) & 0x3F == count - 1:
            best = [(n >> (framing - 41 * (count - i))) & 1 for i in range(count)]
    return best
