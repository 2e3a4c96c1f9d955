"""HLS playlists: master and media, dates, keys, and anything else refused cleanly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isr.hls.playlist import (
    MasterPlaylist,
    MediaPlaylist,
    PlaylistError,
    parse,
    parse_date,
)

BASE = "http://127.0.0.1:8000/radio/live.m3u8"

MEDIA = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:41
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T13:00:00.000+0000
#EXTINF:2.000000,
live41.ts
#EXTINF:1.980000,
live42.ts
#EXT-X-DISCONTINUITY
#EXTINF:2.0,
/other/live43.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-24T14:00:00Z
#EXTINF:2.0,
http://cdn.example/live44.ts
"""


def test_media_playlist() -> None:
    pl = parse(MEDIA, BASE)
    assert isinstance(pl, MediaPlaylist)
    assert pl.target_duration == 2 and pl.media_sequence == 41 and not pl.ended
    assert [s.sequence for s in pl.segments] == [41, 42, 43, 44]
    assert [s.uri for s in pl.segments] == [
        "http://127.0.0.1:8000/radio/live41.ts",
        "http://127.0.0.1:8000/radio/live42.ts",
        "http://127.0.0.1:8000/other/live43.ts",
        "http://cdn.example/live44.ts",
    ]
    a, b, c, d = pl.segments
    t = parse_date("2026-11-24T13:00:00+00:00")
    assert a.date == t and a.dated
    assert b.date == t + 2.0 and not b.dated  # counted on from the last date
    assert c.discontinuity and c.date is None  # not across a discontinuity
    assert d.date == t + 3600 and d.dated
    assert pl.segments[1].duration == pytest.approx(1.98)


def test_endlist_key_map_byterange_gap() -> None:
    text = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-MAP:URI="init.mp4"
#EXT-X-KEY:METHOD=AES-128,URI="key.bin",IV=0x000102030405060708090a0b0c0d0e0f
#EXTINF:4,
a.m4s
#EXT-X-KEY:METHOD=AES-128,URI="https://keys/k2"
#EXT-X-BYTERANGE:1000@0
#EXTINF:4,
all.m4s
#EXT-X-BYTERANGE:500
#EXT-X-GAP
#EXTINF:4,
all.m4s
#EXT-X-KEY:METHOD=NONE
#EXTINF:4,
c.m4s
#EXT-X-ENDLIST
"""
    pl = parse(text.encode(), BASE)
    assert isinstance(pl, MediaPlaylist)
    assert pl.ended and pl.media_sequence == 0
    a, b, c, d = pl.segments
    assert a.init == "http://127.0.0.1:8000/radio/init.mp4"
    assert a.key is not None and a.key.iv == bytes(range(16)) and not a.key.drm
    assert b.key is not None and b.key.uri == "https://keys/k2" and b.key.iv is None
    assert b.byterange == (1000, 0) and c.byterange == (500, 1000) and c.gap
    assert d.key is None and not d.gap


@pytest.mark.parametrize(
    "line",
    [
        '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://x"',
        '#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="x"',
        '#EXT-X-KEY:METHOD=AES-128,URI="x",KEYFORMAT="com.apple.streamingkeydelivery"',
    ],
)
def test_drm_is_told(line: str) -> None:
    pl = parse(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n{line}\n#EXTINF:2,\na.ts\n", BASE)
    assert isinstance(pl, MediaPlaylist)
    key = pl.segments[0].key
    assert key is not None and key.drm


MASTER = """#EXTM3U
#EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS="mp4a.40.5"
low/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=320000,CODECS="mp4a.40.2"
high/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=128000,CODECS="mp4a.40.2"
mid/index.m3u8
"""


def test_master_highest_bandwidth_or_index() -> None:
    pl = parse(MASTER, BASE)
    assert isinstance(pl, MasterPlaylist)
    assert [v.bandwidth for v in pl.variants] == [64000, 320000, 128000]
    assert pl.choose(None).uri == "http://127.0.0.1:8000/radio/high/index.m3u8"
    assert pl.choose(0).uri.endswith("/low/index.m3u8")
    assert pl.choose(2).uri.endswith("/mid/index.m3u8")
    with pytest.raises(PlaylistError, match=r"hls_variant = 3.*0 to 2"):
        pl.choose(3)


def test_master_audio_rendition() -> None:
    text = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="English",DEFAULT=NO,URI="en.m3u8"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Main",DEFAULT=YES,URI="main.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,AUDIO="aud"
video.m3u8
"""
    pl = parse(text, BASE)
    assert isinstance(pl, MasterPlaylist)
    assert pl.audio_uri(pl.choose(None)).endswith("/radio/main.m3u8")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<html><body>Not found</body></html>", "#EXTM3U"),
        ("", "#EXTM3U"),
        ("#EXTM3U\n#EXTINF:2,\na.ts\n", "TARGETDURATION"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:abc\n", "not a number"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:x,\na.ts\n", "not a number"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\na.ts\n", "without #EXTINF"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:yesterday\n", "date"),
        ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", "no variant"),
    ],
)
def test_refused(text: str, match: str) -> None:
    with pytest.raises(PlaylistError, match=match):
        parse(text, BASE)


def test_dates() -> None:
    z = parse_date("2026-11-24T13:00:00Z")
    assert parse_date("2026-11-24T13:00:00+00:00") == z
    assert parse_date("2026-11-24T13:00:00.000+0000") == z
    assert parse_date("2026-11-24T14:00:00+01:00") == z
    assert parse_date("2026-11-24T13:00:00") == z


TAGS = st.sampled_from(
    [
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:7",
        "#EXTINF:2.0,",
        "#EXTINF:-1,",
        "#EXT-X-DISCONTINUITY",
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-24T13:00:00Z",
        '#EXT-X-KEY:METHOD=AES-128,URI="k"',
        "#EXT-X-KEY:METHOD=AES-128",
        "#EXT-X-BYTERANGE:10@5",
        '#EXT-X-MAP:URI="i.mp4"',
        "#EXT-X-STREAM-INF:BANDWIDTH=5",
        "#EXT-X-ENDLIST",
        "seg.ts",
        "",
    ]
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.one_of(TAGS, st.text(max_size=30)), max_size=30))
def test_fuzz_parse_raises_only_playlist_error(lines: list[str]) -> None:
    try:
        pl = parse("\n".join(["#EXTM3U", *lines]), BASE)
    except PlaylistError:
        return
    if isinstance(pl, MediaPlaylist):
        seqs = [s.sequence for s in pl.segments]
        assert seqs == list(range(pl.media_sequence, pl.media_sequence + len(seqs)))
