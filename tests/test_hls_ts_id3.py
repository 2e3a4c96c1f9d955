"""Timed ID3 in MPEG-TS segments (HLS timed metadata, stream type 0x15): no tool
installed here writes it into live segments, so the segment is built here, packet by
packet as ISO/IEC 13818-1 lays them out, around real ADTS audio (ffmpeg's). The
demuxer must give the audio untouched and the tag whole, and the tag its title."""

from __future__ import annotations

from isr.framing.adts import AdtsFramer
from isr.hls import ts
from isr.hls.packed import read_id3
from tests.support.media import MediaFactory

AUDIO_PID, ID3_PID, PMT_PID = 0x100, 0x101, 0x1000


def packets(pid: int, payload: bytes) -> list[bytes]:
    """``payload`` (a PSI section with its pointer field, or a PES) in 188-byte TS
    packets; the last is padded with an adaptation field."""
    out = []
    cc = 0
    first = True
    while first or payload:
        chunk, payload = payload[:184], payload[184:]
        head = bytes((0x47, (0x40 if first else 0) | pid >> 8, pid & 0xFF))
        if len(chunk) == 184:
            out.append(head + bytes((0x10 | cc,)) + chunk)
        else:
            stuff = 184 - len(chunk)  # the adaptation field's bytes, its length byte too
            field = bytes((stuff - 1,)) + (b"\x00" + b"\xff" * (stuff - 2) if stuff > 1 else b"")
            out.append(head + bytes((0x30 | cc,)) + field + chunk)
        cc = (cc + 1) & 0x0F
        first = False
    return out


def section(table_id: int, body: bytes) -> bytes:
    length = len(body) + 4  # and a CRC (not checked by the demuxer: zeros here)
    return bytes((0, table_id, 0xB0 | length >> 8, length & 0xFF)) + body + bytes(4)


def pes(stream_id: int, data: bytes) -> bytes:
    pts = bytes((0x21, 0, 1, 0, 1))  # PTS 0
    length = 3 + len(pts) + len(data)
    return b"\0\0\1" + bytes((stream_id, length >> 8, length & 0xFF, 0x80, 0x80, 5)) + pts + data


def id3_tag(title: str, artist: str) -> bytes:
    def frame(fid: bytes, text: str) -> bytes:
        body = b"\x03" + text.encode()
        n = len(body)
        return (
            fid + bytes((n >> 21 & 0x7F, n >> 14 & 0x7F, n >> 7 & 0x7F, n & 0x7F)) + b"\0\0" + body
        )

    frames = frame(b"TIT2", title) + frame(b"TPE1", artist)
    n = len(frames)
    return (
        b"ID3\x04\0\0" + bytes((n >> 21 & 0x7F, n >> 14 & 0x7F, n >> 7 & 0x7F, n & 0x7F)) + frames
    )


def test_timed_id3_in_a_ts_segment_gives_its_title_and_leaves_the_audio(
    media: MediaFactory,
) -> None:
    framer = AdtsFramer()
    data = media("aac", 1).read_bytes()
    adts = b"".join(f.data for f in framer.feed(data) + framer.flush())
    assert 5_000 < len(adts) < 60_000
    pat = section(0x00, b"\0\1\xc1\0\0" + b"\0\1" + bytes((0xE0 | PMT_PID >> 8, PMT_PID & 0xFF)))
    streams = bytes((0x0F, 0xE0 | AUDIO_PID >> 8, AUDIO_PID & 0xFF, 0xF0, 0x00))
    streams += bytes((0x15, 0xE0 | ID3_PID >> 8, ID3_PID & 0xFF, 0xF0, 0x00))
    pmt = section(0x02, b"\0\1\xc1\0\0" + bytes((0xE1, 0x00, 0xF0, 0x00)) + streams)
    tag = id3_tag("Morning Show", "Ann")
    segment = b"".join(
        packets(0, pat)
        + packets(PMT_PID, pmt)
        + packets(ID3_PID, pes(0xBD, tag))
        + packets(AUDIO_PID, pes(0xC0, adts))
    )
    assert len(segment) % 188 == 0
    got = ts.demux(segment)
    assert got.codec == "aac"
    assert got.data == adts
    assert got.id3 == [tag]
    assert read_id3(got.id3[0]).display == "Ann - Morning Show"
    assert got.problems == {}
