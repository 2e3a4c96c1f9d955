"""Stream URLs: parsed into what a request needs, and made fit for logs, status
files and the web UI, where no credential survives.

``parse_url`` checks a URL and splits it into the connection's origin, the
``Host`` header, the request target (percent-encoded where a server would choke
on a raw space or non-ASCII byte) and the userinfo credentials, decoded.

A stream URL carries secrets in two places: the userinfo (``http://user:pw@host``)
and the query, where many services put an access token (``?token=…``, ``?key=…``,
signed URLs' ``X-Amz-Signature``). Both are masked with ``***``. Pure string
work, so config, sources and the web UI can all use it without importing each
other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus, urlsplit, urlunsplit

from isr.errors import HttpError

__all__ = ["MASK", "Target", "is_secret_name", "parse_url", "redact_url"]

MASK = "***"
PATH_SAFE = "/%:@!$&'()*+,;=-._~"
"""Left as they are in a request path: RFC 3986 sub-delims, ':', '@', '/', and '%'
so that a URL already percent-encoded is not encoded twice."""
QUERY_SAFE = PATH_SAFE + "?"

_SECRET_NAME = re.compile(r"token|key|auth|pass|pwd|secret|sig|session|cred", re.IGNORECASE)
"""A query parameter whose name holds one of these is taken for a secret: ``token``,
``access_token``, ``api_key``, ``apikey``, ``auth``, ``password``, ``passwd``,
``pwd``, ``secret``, ``sig``, ``signature``, ``sessionid``, ``X-Amz-Credential``…
Masking a harmless value by mistake costs a little information; showing a token
costs the stream."""


def is_secret_name(name: str) -> bool:
    """Whether a query parameter so named (percent-encoded or not) holds a secret."""
    return bool(_SECRET_NAME.search(unquote_plus(name)))


def _redact_params(text: str) -> str:
    """``a=1&token=x`` -> ``a=1&token=***``: only the values of secret names change,
    and every other byte stays as it was (no re-encoding)."""
    if "=" not in text:
        return text
    pieces = re.split(r"([&;])", text)
    for i, piece in enumerate(pieces):
        name, eq, value = piece.partition("=")
        if eq and value and is_secret_name(name):
            pieces[i] = f"{name}={MASK}"
    return "".join(pieces)


def _redact_tail(url: str) -> str:
    """Mask secret values in the query and the fragment of ``url``, as text."""
    head, hash_, fragment = url.partition("#")
    base, question, query = head.partition("?")
    return base + question + _redact_params(query) + hash_ + _redact_params(fragment)


def redact_url(url: str) -> str:
    """``url`` without its password and without the values of query parameters
    whose names say secret, fit for logs and status files."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        scheme, sep, rest = url.partition("://")
        if sep and "@" in rest and ":" in rest.rpartition("@")[0]:
            # A password with an unencoded '/', '?' or '#' ends the netloc early:
            # mask everything up to the last '@' rather than show it.
            return _redact_tail(f"{scheme}://{MASK}@{rest.rpartition('@')[2]}")
        return _redact_tail(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, _ = userinfo.partition(":")
    netloc = f"{user}:{MASK}@{host}" if sep else f"{user}@{host}"
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            _redact_params(parts.query),
            _redact_params(parts.fragment),
        )
    )


@dataclass(frozen=True, slots=True)
class Target:
    """Where and what to ask: a URL as a request sees it."""

    scheme: str
    """``http`` or ``https``, lower-cased."""
    host: str
    """To connect to: a name, or an IP literal without brackets."""
    port: int
    host_header: str
    """The ``Host`` header: IPv6 literals in brackets, the port only if not the default."""
    target: str
    """The request target: path and query, percent-encoded."""
    username: str | None
    password: str | None
    """From the userinfo, percent-decoded; None when absent."""

    @property
    def origin(self) -> tuple[str, str, int]:
        """What credentials are bound to: a redirect elsewhere does not get them."""
        return (self.scheme, self.host, self.port)


def parse_url(url: str) -> Target:
    """The request ``url`` describes; raises ``HttpError`` (naming the URL without
    its secrets) for a URL that cannot be requested."""
    safe = redact_url(url)
    if any(c in url for c in "\r\n\0"):
        raise HttpError(f"control characters in URL {safe!r}")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise HttpError(f"invalid URL {safe!r}: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise HttpError(f"unsupported URL scheme {scheme!r} in {safe!r}")
    host = parts.hostname
    if not host:
        raise HttpError(f"no host in URL {safe!r}")
    default_port = 443 if scheme == "https" else 80
    if port is None:
        port = default_port
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default_port else f"{shown}:{port}"
    path = quote(parts.path or "/", safe=PATH_SAFE)
    target = f"{path}?{quote(parts.query, safe=QUERY_SAFE)}" if parts.query else path
    user = unquote(parts.username) if parts.username is not None else None
    pw = unquote(parts.password) if parts.password is not None else None
    return Target(scheme, host, port, host_header, target, user, pw)
