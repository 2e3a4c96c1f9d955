"""What a request must pass before any route sees it: host, credentials, origin.

Pure rules (:func:`host_allowed`, :func:`cross_origin_refused`, :func:`credentials_ok`)
and the small state that slows a password guesser (:class:`AuthFailures`). The
middleware in ``app.py`` applies them in that order and decides the statuses.

- **Host** (against DNS rebinding, Jupyter's rule): a page on ``evil.example`` whose
  name later resolves to 127.0.0.1 talks to this server with ``Host: evil.example``.
  Only IP literals, ``localhost``, this machine's own names and ``[web] allowed_hosts``
  are answered.
- **Cross-origin** (Go's ``net/http`` ``CrossOriginProtection``): a state-changing
  request is refused when ``Sec-Fetch-Site`` is anything but ``same-origin`` or
  ``none``; without that header, when ``Origin`` names another host than the
  request's own; with neither header it comes from no browser and is allowed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import ipaddress
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANY_HOST = "*"


def split_host(host: str) -> str:
    """The name or address of a ``Host`` header, without port or brackets, lower-case."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8080
        end = host.find("]")
        return host[1:end] if end > 0 else host
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.split("%", 1)[0])  # fe80::1%eth0
    except ValueError:
        return False
    return True


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """True when a ``Host`` header names this server in a way no rebinding can fake.

    ``allowed`` holds this machine's names and ``[web] allowed_hosts`` (lower-case, any
    of them ``*`` for every name). No ``Host`` at all (HTTP/1.0) is no browser: allowed.
    """
    if host is None:
        return True
    name = split_host(host)
    if not name:
        return False
    allowed = frozenset(allowed)
    return (
        ANY_HOST in allowed
        or is_ip_literal(name)
        or name == "localhost"
        or name.endswith(".localhost")  # RFC 6761: always loopback
        or name in allowed
    )


def own_host_names() -> frozenset[str]:
    """This machine's names (host name, short name, FQDN), lower-case; may ask the
    resolver (``getfqdn``), so call it off the event loop."""
    names: set[str] = set()
    try:
        hostname = socket.gethostname()
    except OSError:
        return frozenset()
    names.update({hostname, hostname.split(".", 1)[0]})
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn(hostname))
    return frozenset(n.lower().rstrip(".") for n in names if n)


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """``[web] allowed_hosts``: names separated by commas or spaces, ``*`` = any."""
    parts = text.replace(",", " ").split()
    return tuple(dict.fromkeys(split_host(p) if p != ANY_HOST else p for p in parts))


def cross_origin_refused(
    method: str, sec_fetch_site: str | None, origin: str | None, host: str | None
) -> bool:
    """True when a browser sent a state-changing request from another origin.

    Follows Go's ``CrossOriginProtection.Check``: ``Sec-Fetch-Site`` decides when the
    browser sent it; otherwise ``Origin`` is compared with the request's ``Host``
    (the scheme may differ: a TLS proxy in front); neither header = not a browser.
    """
    if method.upper() in SAFE_METHODS:
        return False
    if sec_fetch_site:
        return sec_fetch_site.strip().lower() not in ("same-origin", "none")
    if not origin:
        return False
    try:
        parts = urlsplit(origin.strip())
        origin_host = parts.netloc.lower()
    except ValueError:
        return True
    return not origin_host or origin_host != (host or "").strip().lower()


def credentials_ok(header: str | None, username: str, password: str) -> bool:
    """Constant-time check of a Basic ``Authorization`` header (pure)."""
    user, pw = b"", b""
    if header and header[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        user, _, pw = decoded.partition(b":")
    ok_user = hmac.compare_digest(user, username.encode("utf-8"))
    ok_pw = hmac.compare_digest(pw, password.encode("utf-8"))
    return ok_user and ok_pw


@dataclass
class _Record:
    failures: int
    last: float


class AuthFailures:
    """Failed logins per client address, to slow a guesser down.

    After ``n`` failures within ``window`` seconds, the next attempt from that address
    that carries credentials waits ``delay(n)`` before it is checked, and attempts from
    one address wait in turn: guesses from one address come at most one per delay,
    however many connections it opens. A success forgets the address. At most
    ``max_addresses`` are remembered (the oldest are dropped).
    """

    def __init__(
        self,
        *,
        window: float = 300.0,
        base_delay: float = 0.25,
        max_delay: float = 4.0,
        max_addresses: int = 10_000,
    ) -> None:
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_addresses = max_addresses
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._next_slot: dict[str, float] = {}

    def failures(self, address: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        rec = self._records.get(address)
        if rec is None or now - rec.last > self.window:
            return 0
        return rec.failures

    def delay(self, failures: int) -> float:
        """Seconds an attempt waits after ``failures`` recent failures (pure)."""
        if failures <= 0:
            return 0.0
        return float(min(self.max_delay, self.base_delay * 2.0 ** (failures - 1)))

    def wait_for(self, address: str, now: float | None = None) -> float:
        """Seconds this attempt must wait before it is checked; reserves its turn."""
        now = time.monotonic() if now is None else now
        d = self.delay(self.failures(address, now))
        if d == 0.0:
            return 0.0
        start = max(now, self._next_slot.get(address, now)) + d
        self._next_slot[address] = start
        return start - now

    def failed(self, address: str, now: float | None = None) -> int:
        """Count a failure; returns the recent failures of that address."""
        now = time.monotonic() if now is None else now
        n = self.failures(address, now) + 1
        self._records.pop(address, None)
        self._records[address] = _Record(n, now)
        while len(self._records) > self.max_addresses:
            old, _ = self._records.popitem(last=False)
            self._next_slot.pop(old, None)
        return n

    def succeeded(self, address: str) -> None:
        self._records.pop(address, None)
        self._next_slot.pop(address, None)


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, minus tracebacks for requests that are not HTTP.

    aiohttp logs a malformed request line or header with ``logger.exception``: a
    traceback for what is the client's fault. Those become one warning line; any
    other exception keeps its traceback.
    """

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            kwargs.pop("exc_info")
            reason = " ".join(exc.message.split())[:300] or type(exc).__name__
            text = str(msg) % args if args else str(msg)
            self.warning("%s: %d %s", text, exc.code, reason)
            return
        super().exception(msg, *args, **kwargs)
