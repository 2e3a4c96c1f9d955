"""URLs made fit for logs, status files and the web UI: no credential survives.

A stream URL carries secrets in two places: the userinfo (``http://user:pw@host``)
and the query, where many services put an access token (``?token=…``, ``?key=…``,
signed URLs' ``X-Amz-Signature``). Both are masked with ``***``. Pure string
work, so config, sources and the web UI can all use it without importing each
other.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = ["MASK", "is_secret_name", "redact_url"]

MASK = "***"

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
