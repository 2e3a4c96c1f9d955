"""``isr.urls.parse_url``: what a request makes of a stream URL (pure, no network)."""

from __future__ import annotations

import pytest

from isr.errors import HttpError
from isr.urls import Target, parse_url


def test_plain_url_with_defaults() -> None:
    assert parse_url("http://radio.example/live") == Target(
        "http", "radio.example", 80, "radio.example", "/live", None, None
    )
    t = parse_url(" HTTPS://radio.example ")
    assert (t.scheme, t.port, t.host_header, t.target) == ("https", 443, "radio.example", "/")


def test_port_appears_in_host_only_when_not_the_default() -> None:
    assert parse_url("http://h:8000/a").host_header == "h:8000"
    assert parse_url("https://h:443/a").host_header == "h"
    assert parse_url("https://h:80/a").host_header == "h:80"


def test_ipv6_literal_is_bracketed_in_host_not_in_connect() -> None:
    t = parse_url("http://[::1]:8000/x")
    assert (t.host, t.port, t.host_header) == ("::1", 8000, "[::1]:8000")


def test_target_is_percent_encoded_once() -> None:
    t = parse_url("http://h/a b/ü%20c?x=a b&y=é?z")
    assert t.target == "/a%20b/%C3%BC%20c?x=a%20b&y=%C3%A9?z"
    assert parse_url("http://h/;p@x:1!$'()*+,=-._~").target == "/;p@x:1!$'()*+,=-._~"


def test_credentials_are_decoded_and_bound_to_the_origin() -> None:
    t = parse_url("http://al%20ice:p%40ss%3Aword@h:8000/")
    assert (t.username, t.password) == ("al ice", "p@ss:word")
    assert t.origin == ("http", "h", 8000)
    assert parse_url("http://bob@h/").password is None
    assert parse_url("http://h/").origin != parse_url("https://h/").origin


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://h/x", "unsupported URL scheme 'ftp'"),
        ("http:///x", "no host"),
        ("http://h:99999/x", "Port out of range"),
        ("http://h:port/x", "invalid URL"),
        ("http://h/x\r\nHost: evil", "control characters"),
    ],
)
def test_unusable_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(HttpError, match=message):
        parse_url(url)


def test_a_refusal_never_shows_the_password() -> None:
    with pytest.raises(HttpError) as err:
        parse_url("ftp://u:s3cret@h/x?token=t0k")
    assert "s3cret" not in str(err.value) and "t0k" not in str(err.value)
