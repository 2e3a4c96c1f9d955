"""M3U and PLS bodies give their stream URLs; HLS is told apart."""

from __future__ import annotations

import pytest

from isr.sources.playlist import (
    HlsNotSupported,
    PlaylistError,
    is_hls_url,
    kind_from_content_type,
    kind_from_url,
    parse_playlist,
)

BASE = "http://radio.example/lists/station.m3u"


def test_plain_m3u() -> None:
    body = b"http://a.example:8000/live\nhttp://b.example/backup\n"
    assert parse_playlist(body, BASE) == ["http://a.example:8000/live", "http://b.example/backup"]


def test_extended_m3u_with_bom_crlf_comments_and_blank_lines() -> None:
    body = (
        b"\xef\xbb\xbf#EXTM3U\r\n\r\n#EXTINF:-1,Radio One\r\n"
        b"  https://s.example/one.mp3?type=.mp3  \r\n# a comment\r\n"
    )
    assert parse_playlist(body, BASE, "m3u") == ["https://s.example/one.mp3?type=.mp3"]


def test_m3u_relative_urls_resolve_against_playlist() -> None:
    body = b"#EXTM3U\nstream.mp3\n/abs/path\n../up\n"
    assert parse_playlist(body, BASE) == [
        "http://radio.example/lists/stream.mp3",
        "http://radio.example/abs/path",
        "http://radio.example/up",
    ]


def test_m3u_skips_non_http_entries() -> None:
    body = b"rtsp://x.example/a\nmms://y/b\nhttp://ok.example/\n"
    assert parse_playlist(body, "") == ["http://ok.example/"]


def test_pls_keys_in_any_order_and_any_case() -> None:
    body = (
        b"[playlist]\r\nNumberOfEntries=3\r\nFile3=http://c.example/\r\n"
        b"Title1=One\r\nfile1 = http://a.example/;stream.mp3\r\nFILE2=http://b.example/\r\n"
        b"Version=2\r\n"
    )
    assert parse_playlist(body, "http://x/", "pls") == [
        "http://a.example/;stream.mp3",
        "http://b.example/",
        "http://c.example/",
    ]


def test_pls_detected_from_body_and_relative() -> None:
    body = "\ufeff[Playlist]\nFile1=live\n".encode()
    assert parse_playlist(body, "http://h.example/dir/x.pls") == ["http://h.example/dir/live"]


def test_latin1_body_does_not_fail() -> None:
    body = "#EXTINF:-1,Rádio\nhttp://r.example/\n".encode("latin-1")
    assert parse_playlist(body, BASE) == ["http://r.example/"]


def test_hls_body_is_refused() -> None:
    body = b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\nseg1.ts\n"
    with pytest.raises(HlsNotSupported):
        parse_playlist(body, BASE)
    with pytest.raises(HlsNotSupported):
        parse_playlist(b"http://x/", BASE, "hls")
    assert issubclass(HlsNotSupported, ValueError)


def test_empty_playlist_is_an_error() -> None:
    with pytest.raises(PlaylistError, match="no http"):
        parse_playlist(b"#EXTM3U\n# nothing\n", BASE)
    with pytest.raises(PlaylistError):
        parse_playlist(b"[playlist]\nNumberOfEntries=0\n", BASE)


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("audio/x-mpegurl", "m3u"),
        ("Audio/MPEGURL", "m3u"),
        ("application/x-mpegurl; charset=utf-8", "m3u"),
        ("audio/x-scpls", "pls"),
        ("application/pls+xml", "pls"),
        ("application/vnd.apple.mpegurl", "hls"),
        ("audio/mpeg", None),
        ("", None),
    ],
)
def test_kind_from_content_type(content_type: str, kind: str | None) -> None:
    assert kind_from_content_type(content_type) == kind


def test_kind_from_url() -> None:
    assert kind_from_url("http://x/a.M3U?x=1") == "m3u"
    assert kind_from_url("http://x/a.pls") == "pls"
    assert kind_from_url("http://x/live.m3u8") == "hls"
    assert kind_from_url("http://x/live?f=a.m3u") is None
    assert is_hls_url("https://x/index.m3u8")
    assert not is_hls_url("https://x/index.m3u")
