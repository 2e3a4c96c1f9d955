"""The ICY demuxer strips metadata exactly, whatever the chunking."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from isr.sources.icy import IcyDemuxer, parse_stream_title
from tests.support.fake_server import encode_metadata

AUDIO = random.Random(7).randbytes(5000)
TITLES: list[str | bytes] = [
    "Artist - Song",
    "Guns N' Roses - Sweet Child O' Mine",
    "A; B';C - it's ';' tricky",
    "Björk – Jóga ♪",
    "Beyoncé - Déjà vu".encode("cp1252"),
]


def interleave(
    audio: bytes, metaint: int, titles: list[str | bytes], every: int = 3
) -> tuple[bytes, list[tuple[int, str]]]:
    """A wire stream and the title changes a client should see in it.

    Every ``every``-th block names the next title; others are empty, or repeat
    the current title, which must not count as a change.
    """
    wire = bytearray()
    expected: list[tuple[int, str]] = []
    current: str | None = None
    k = 0
    for block_no, off in enumerate(range(0, len(audio), metaint)):
        wire += audio[off : off + metaint]
        if off + metaint > len(audio):
            break
        if block_no % every == 0 and titles:
            raw = titles[k % len(titles)]
            k += 1
            title = raw if isinstance(raw, str) else raw.decode("cp1252")
            wire += encode_metadata(raw)
            if title != current:
                expected.append((off + metaint, title))
                current = title
        elif block_no % every == 1 and current is not None:
            wire += encode_metadata(current)  # a repeat: no change
        else:
            wire += b"\0"
    return bytes(wire), expected


def run(demux: IcyDemuxer, chunks: list[bytes]) -> tuple[bytes, list[tuple[int, str]]]:
    out = bytearray()
    titles: list[tuple[int, str]] = []
    for c in chunks:
        audio, found = demux.feed(c)
        titles += [(len(out) + off, t) for off, t in found]
        out += audio
    return bytes(out), titles


def test_parse_plain_title() -> None:
    assert parse_stream_title(b"StreamTitle='Artist - Song';StreamUrl='';\0\0\0") == (
        "Artist - Song"
    )


def test_parse_title_with_quotes_and_semicolons() -> None:
    block = b"StreamTitle='It's ';' here; really';StreamUrl='http://x/?a=1;b';"
    assert parse_stream_title(block) == "It's ';' here; really"


def test_parse_title_without_url_or_closing_semicolon() -> None:
    assert parse_stream_title(b"StreamTitle='Only';") == "Only"
    assert parse_stream_title(b"StreamTitle='Unterminated") == "Unterminated"
    assert parse_stream_title(b"StreamTitle='Quoted'") == "Quoted"


def test_parse_decodings() -> None:
    assert parse_stream_title("StreamTitle='Sigur Rós';".encode()) == "Sigur Rós"
    cp = "StreamTitle='Café – “live”';".encode("cp1252")
    assert parse_stream_title(cp) == "Café – “live”"
    # 0x81 is undefined in cp1252: latin-1 is the last resort.
    assert parse_stream_title(b"StreamTitle='a\x81b';") == "a\x81b"


def test_parse_whitespace_empty_and_missing() -> None:
    assert parse_stream_title(b"StreamTitle='  padded  ';\0\0") == "padded"
    assert parse_stream_title(b"StreamTitle='';StreamUrl='x';") == ""
    assert parse_stream_title(b"StreamUrl='http://x';") is None
    assert parse_stream_title(b"\0" * 32) is None


def test_no_metaint_passes_through_same_object() -> None:
    for metaint in (None, 0):
        d = IcyDemuxer(metaint)
        audio, titles = d.feed(AUDIO)
        assert audio is AUDIO and titles == []
        assert d.audio_bytes == len(AUDIO) and d.metadata_bytes == 0


def test_whole_stream_in_one_chunk() -> None:
    wire, expected = interleave(AUDIO, 100, TITLES)
    d = IcyDemuxer(100)
    audio, titles = d.feed(wire)
    assert audio == AUDIO
    assert titles == expected
    assert {t for _, t in titles} >= {"Beyoncé - Déjà vu", "A; B';C - it's ';' tricky"}
    assert d.audio_bytes == len(AUDIO)
    assert d.metadata_bytes == len(wire) - len(AUDIO)


def test_split_at_every_offset() -> None:
    """Two chunks, cut at every byte: through length bytes and metadata alike."""
    wire, expected = interleave(AUDIO[:700], 64, TITLES, every=2)
    assert len(expected) >= 3
    for cut in range(len(wire) + 1):
        out, titles = run(IcyDemuxer(64), [wire[:cut], wire[cut:]])
        assert out == AUDIO[:700], cut
        assert titles == expected, cut


def test_one_byte_at_a_time() -> None:
    wire, expected = interleave(AUDIO[:2000], 37, TITLES)
    out, titles = run(IcyDemuxer(37), [wire[i : i + 1] for i in range(len(wire))])
    assert out == AUDIO[:2000]
    assert titles == expected


def test_repeated_title_reports_nothing_and_carried_title() -> None:
    block = encode_metadata("Same")
    wire = b"a" * 8 + block + b"b" * 8 + block + b"c" * 8 + b"\0" + b"d" * 8 + block
    d = IcyDemuxer(8)
    audio, titles = d.feed(wire)
    assert audio == b"a" * 8 + b"b" * 8 + b"c" * 8 + b"d" * 8
    assert titles == [(8, "Same")]
    assert d.title == "Same"
    assert d.blocks == 3
    # After a reconnect the carried title is not reported again.
    assert IcyDemuxer(8, title="Same").feed(b"x" * 8 + block)[1] == []


@settings(max_examples=150, deadline=None)
@given(
    metaint=st.integers(min_value=1, max_value=300),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
    n_audio=st.integers(min_value=0, max_value=3000),
)
def test_random_chunkings(metaint: int, cuts: list[int], n_audio: int) -> None:
    wire, expected = interleave(AUDIO[:n_audio], metaint, TITLES)
    points = sorted({min(c, len(wire)) for c in cuts})
    chunks = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    out, titles = run(IcyDemuxer(metaint), chunks)
    assert out == AUDIO[:n_audio]
    assert titles == expected


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=3000), metaint=st.integers(min_value=1, max_value=64))
def test_garbage_never_raises(data: bytes, metaint: int) -> None:
    d = IcyDemuxer(metaint)
    out, titles = run(d, [data[:1000], data[1000:]])
    assert d.audio_bytes == len(out)
    assert d.audio_bytes + d.metadata_bytes == len(data)
    assert all(isinstance(t, str) for _, t in titles)


@given(st.binary(max_size=600))
def test_parse_garbage_never_raises(block: bytes) -> None:
    title = parse_stream_title(b"StreamTitle='" + block)
    assert isinstance(title, str)
    assert parse_stream_title(block) is None or isinstance(parse_stream_title(block), str)
