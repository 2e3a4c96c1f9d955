"""MPEG transport stream (ISO/IEC 13818-1): the audio of one HLS segment.

Pure: one segment's bytes in, the elementary stream of its first audio program out
(ADTS AAC or MPEG audio, the bytes as carried, PES headers taken off), for the
framers to cut. The PAT names the first program's PMT, the PMT its first audio
stream; every payload byte of that PID is emitted once, in order. Packets lost
(a continuity counter that jumps), junk between packets and PES that do not parse
are counted in ``problems``, never raised: a bad segment yields less audio, and
the framer resynchronises on what follows.

Timed ID3 (``stream_type`` 0x15, HLS timed metadata) is collected as whole PES
payloads for titles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AUDIO_TYPES", "TsAudio", "demux", "looks_like_ts"]

PACKET = 188
SYNC = 0x47

AUDIO_TYPES = {0x0F: "aac", 0x03: "mp3", 0x04: "mp3"}
"""PMT stream types ISR records: ADTS AAC, MPEG-1 and MPEG-2 audio."""
OTHER_AUDIO = {0x11: "AAC in LATM", 0x81: "AC-3", 0x87: "E-AC-3", 0x06: "private data"}
ID3_TYPE = 0x15


@dataclass
class TsAudio:
    codec: str | None = None
    """``aac``, ``mp3``, or None when the segment carries no audio ISR records."""
    data: bytes = b""
    """The audio elementary stream: PES payloads, in order."""
    id3: list[bytes] = field(default_factory=list)
    """Timed ID3 tags (whole PES payloads)."""
    problems: dict[str, int] = field(default_factory=dict)
    """What went wrong, counted: ``junk`` bytes, ``lost`` packets, ``pes`` headers..."""
    other: str = ""
    """An audio stream ISR does not record (named), when there is no other."""

    def note(self, what: str, n: int = 1) -> None:
        self.problems[what] = self.problems.get(what, 0) + n


def looks_like_ts(head: bytes) -> bool:
    """Sync bytes where three packets in a row would have them."""
    return len(head) >= PACKET * 2 + 1 and all(head[i] == SYNC for i in (0, 188, 376))


def _packets(data: bytes, out: TsAudio) -> list[int]:
    """Offsets of the packets, skipping (and counting) junk between them."""
    offsets: list[int] = []
    n = len(data)
    p = 0
    while p + PACKET <= n:
        if data[p] == SYNC and (p + PACKET == n or data[p + PACKET] == SYNC or p + 2 * PACKET > n):
            offsets.append(p)
            p += PACKET
            continue
        q = data.find(bytes([SYNC]), p + 1)
        while q != -1 and q + PACKET < n and data[q + PACKET] != SYNC:
            q = data.find(bytes([SYNC]), q + 1)
        if q == -1 or q + PACKET > n:
            out.note("junk", n - p)
            return offsets
        out.note("junk", q - p)
        p = q
    if p < n:
        out.note("junk", n - p)
    return offsets


def _payload(data: bytes, p: int) -> tuple[int, int, bool, int, int] | None:
    """(pid, payload start, unit start, continuity counter, adaptation control) of the
    packet at ``p``; None for one with an error flag or a bad adaptation field."""
    b1, b2, b3 = data[p + 1], data[p + 2], data[p + 3]
    if b1 & 0x80:  # transport_error_indicator
        return None
    pid = (b1 & 0x1F) << 8 | b2
    afc = (b3 >> 4) & 3
    start = p + 4
    if afc & 2:
        start += 1 + data[p + 4]
        if start > p + PACKET:
            return None
    if not afc & 1:
        start = p + PACKET  # no payload
    return pid, start, bool(b1 & 0x40), b3 & 0x0F, afc


def _section(data: bytes, start: int, end: int) -> bytes | None:
    """A PSI section's body (after the 3-byte header, without CRC) from a packet
    that starts one; None if it does not fit in the packet."""
    if start >= end:
        return None
    start += 1 + data[start]  # pointer_field
    if start + 3 > end:
        return None
    length = (data[start + 1] & 0x0F) << 8 | data[start + 2]
    if length < 9 or start + 3 + length > end:
        return None
    return data[start + 3 : start + 3 + length - 4]


def _pmt_pid(body: bytes) -> int | None:
    """The first program's PMT PID from a PAT body."""
    for i in range(5, len(body) - 3, 4):
        program = body[i] << 8 | body[i + 1]
        if program != 0:
            return (body[i + 2] & 0x1F) << 8 | body[i + 3]
    return None


def _streams(body: bytes) -> list[tuple[int, int]]:
    """(stream_type, PID) of each elementary stream a PMT body lists."""
    if len(body) < 9:
        return []
    info = (body[7] & 0x0F) << 8 | body[8]
    i = 9 + info
    out: list[tuple[int, int]] = []
    while i + 5 <= len(body):
        stype = body[i]
        pid = (body[i + 1] & 0x1F) << 8 | body[i + 2]
        es_info = (body[i + 3] & 0x0F) << 8 | body[i + 4]
        out.append((stype, pid))
        i += 5 + es_info
    return out


def _pes_payload(pes: bytes, out: TsAudio) -> bytes:
    """A whole PES packet's payload; b"" (counted) for one that does not parse."""
    if len(pes) < 9 or pes[0] != 0 or pes[1] != 0 or pes[2] != 1:
        out.note("pes", len(pes))
        return b""
    stream_id = pes[3]
    if stream_id in (0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xF2, 0xF8, 0xFF):
        body = pes[6:]  # no optional header
    else:
        if pes[6] & 0xC0 != 0x80:
            out.note("pes", len(pes))
            return b""
        body = pes[9 + pes[8] :]
        if 9 + pes[8] > len(pes):
            out.note("pes", len(pes))
            return b""
    length = pes[4] << 8 | pes[5]
    if length:
        whole = 6 + length
        if whole < len(pes):
            out.note("pes_extra", len(pes) - whole)
            body = body[: max(0, len(body) - (len(pes) - whole))]
        elif whole > len(pes):
            out.note("pes_short", whole - len(pes))
    return body


def demux(data: bytes) -> TsAudio:
    """The first audio stream of a TS segment. Never raises."""
    out = TsAudio()
    pmt_pid: int | None = None
    audio_pid: int | None = None
    id3_pid: int | None = None
    counters: dict[int, int] = {}
    pes: dict[int, bytearray] = {}
    chunks: list[bytes] = []

    def finish(pid: int) -> None:
        buf = pes.pop(pid, None)
        if not buf:
            return
        body = _pes_payload(bytes(buf), out)
        if pid == audio_pid:
            chunks.append(body)
        elif body:
            out.id3.append(body)

    for p in _packets(data, out):
        parsed = _payload(data, p)
        if parsed is None:
            out.note("bad_packet")
            continue
        pid, start, unit_start, cc, afc = parsed
        end = p + PACKET
        if pid == 0 and unit_start and pmt_pid is None:
            body = _section(data, start, end)
            if body is not None and body[:1] != b"" and len(body) >= 5:
                pmt_pid = _pmt_pid(body)
            continue
        if pid == pmt_pid and unit_start and audio_pid is None:
            body = _section(data, start, end)
            if body is None:
                continue
            for stype, es_pid in _streams(body):
                if stype in AUDIO_TYPES and audio_pid is None:
                    audio_pid = es_pid
                    out.codec = AUDIO_TYPES[stype]
                elif stype == ID3_TYPE and id3_pid is None:
                    id3_pid = es_pid
                elif stype in OTHER_AUDIO and not out.other:
                    out.other = OTHER_AUDIO[stype]
            continue
        if pid not in (audio_pid, id3_pid) or pid is None:
            continue
        if afc & 1:
            last = counters.get(pid)
            if last is not None and cc != (last + 1) & 0x0F:
                if cc == last:
                    out.note("duplicate")  # a repeated packet: its payload is not new
                    continue
                out.note("lost")
            counters[pid] = cc
        if unit_start:
            finish(pid)
            pes[pid] = bytearray()
        elif pid not in pes:
            out.note("orphan", end - start)  # the middle of a PES whose start we lack
            continue
        pes[pid] += data[start:end]
    for pid in list(pes):
        finish(pid)
    out.data = b"".join(chunks)
    if out.codec is not None:
        out.other = ""
    return out
