"""The hash chain of one source: ``.isr/chain/<source>.jsonl``.

One JSON object a line, in the order things happened, each naming the SHA-256 of
the line before it (``prev``), so that no line can be changed, removed, inserted
or moved without breaking a link. Every line has the keys ``seq``, ``at``,
``event``, ``file``, ``sha256``, ``bytes``, ``start``, ``end`` and ``prev``
(``null`` where an event has no such fact), in that order, then the event's own:

- ``started``, ``stopped``: the recorder (``pid``, ``host``);
- ``closed``: a file and its SHA-256 and size, once its hash is known;
- ``repaired``: a file a crash left open, hashed after its repair (``note``);
- ``deleted``: a file deleted by retention or through the web UI: ``by``
  (``retention`` or ``web``), ``why``, and for the web UI ``client`` (its address)
  and ``user`` (the Basic-auth user, or null);
- ``day``: the close of a local day (``date``): ``head`` is the chain's head, the
  SHA-256 of the line before, and ``sig`` its Ed25519 signature (``key`` names the
  public key) when ``[evidence] signing_key`` is set.

Rules, precisely:

- A line's bytes are its JSON text, UTF-8, without the line feed that ends it;
  ``prev`` is the SHA-256 (hex) of the previous line's bytes, ``null`` on the first.
  ``seq`` counts the lines from 1.
- Lines are only ever appended, each batch in one ``write(2)`` on a descriptor
  opened with ``O_APPEND``, under an exclusive ``flock`` of the chain file held
  from reading the head to the write: the recorder and the web UI (a process of its
  own) both append, and the lock keeps their lines whole and their links right.
  The writer never trusts a head it cached: it reads the file's last line under
  the lock. The recorder fsyncs after each batch, off the event loop.
- A crash can leave a torn last line (a power cut in the middle of a write). The
  next writer ends it with a line feed and goes on: its next line's ``prev`` is
  the SHA-256 of the torn bytes as they are (so the torn line cannot be changed or
  removed unseen either) and its ``seq`` follows the last whole line's.
  ``isr verify`` reports the torn line, once.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from isr.sinks.files import NOFOLLOW, open_regular, write_all

CHAIN_DIR = Path(".isr") / "chain"
SUFFIX = ".jsonl"
FIELDS = ("seq", "at", "event", "file", "sha256", "bytes", "start", "end", "prev")
EVENTS = ("started", "stopped", "closed", "repaired", "deleted", "day")

Signer = Callable[[bytes], tuple[str, str]]
"""Signs a day line's message: returns (signature, public key), both base64."""


def chain_path(root: Path, source: str) -> Path:
    """The chain file of ``source`` under the recordings directory ``root``."""
    return root / CHAIN_DIR / (quote(source, safe="") + SUFFIX)


def chain_files(root: Path) -> dict[str, Path]:
    """Every chain under ``root``, by source name."""
    directory = root / CHAIN_DIR
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return {}
    return {
        unquote(n[: -len(SUFFIX)]): directory / n
        for n in names
        if n.endswith(SUFFIX) and not n.startswith(".")
    }


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def day_message(source: str, date: str, seq: int, head: str | None) -> bytes:
    """What a ``day`` line's ``sig`` signs."""
    return f"isr-chain-day\n{source}\n{date}\n{seq}\n{head or ''}\n".encode()


def entry(event: str, **facts: Any) -> dict[str, Any]:
    """A line's facts in the fixed order, before ``seq`` and ``prev`` are known."""
    out: dict[str, Any] = {k: None for k in FIELDS}
    out["event"] = event
    out.update(facts)
    return out


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One line of a chain as it is on the disk."""

    number: int
    """1-based line number in the file."""
    raw: bytes
    """Without its line feed."""
    obj: dict[str, Any] | None
    """The parsed line; None when it is not a chain line (torn, damaged)."""
    terminated: bool
    """Whether a line feed ends it (only a torn last line has none)."""

    @property
    def hash(self) -> str:
        return line_hash(self.raw)


def parse(raw: bytes) -> dict[str, Any] | None:
    """The object of a well-formed chain line, else None."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(obj, dict) or any(k not in obj for k in FIELDS):
        return None
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or obj["event"] not in EVENTS:
        return None
    return obj


def read_lines(path: Path) -> Iterator[Line]:
    """The lines of a chain file, streamed (a year of lines is a few MB)."""
    fd = open_regular(path, os.O_RDONLY, single_link=False)
    with os.fdopen(fd, "rb") as fh:
        for number, data in enumerate(fh, 1):
            terminated = data.endswith(b"\n")
            raw = data[:-1] if terminated else data
            yield Line(number, raw, parse(raw), terminated)


# -- appending -----------------------------------------------------------------------

TAIL_BLOCK = 1 << 16


def _head(fd: int) -> tuple[int, str | None, bool]:
    """(last whole line's seq, SHA-256 of the last line, torn tail?) of the file."""
    last, last_hash, torn = _tail(fd)
    return (int(last["seq"]) if last is not None else 0), last_hash, torn


def last_day(path: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the chain's last ``day`` line, read back from its end; or None and the
    chain's first line when it has none — None too for no chain)."""
    try:
        fd = open_regular(path, os.O_RDONLY, single_link=False)
    except FileNotFoundError:
        return None, None
    try:
        first = None
        for obj in _backward(fd):
            if obj["event"] == "day":
                return obj, None
            first = obj
        return None, first
    finally:
        os.close(fd)


def _backward(fd: int) -> Iterator[dict[str, Any]]:
    """The chain's whole lines from the last to the first, read a block at a time."""
    end = os.fstat(fd).st_size
    carry = b""
    while end > 0:
        start = max(0, end - TAIL_BLOCK)
        pieces = (os.pread(fd, end - start, start) + carry).split(b"\n")
        end = start
        carry = pieces[0] if end > 0 else b""  # maybe cut: completed by the next block
        for raw in reversed(pieces[1:] if end > 0 else pieces):
            obj = parse(raw) if raw else None
            if obj is not None:
                yield obj


def _tail(fd: int) -> tuple[dict[str, Any] | None, str | None, bool]:
    """(the last whole line, SHA-256 of the last line, torn tail?) of the file."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, None, False
    end = size
    tail = b""
    last_hash: str | None = None
    torn = False
    first = True
    while end > 0:
        start = max(0, end - TAIL_BLOCK)
        tail = os.pread(fd, end - start, start) + tail
        end = start
        lines = tail.split(b"\n")
        if first:
            torn = lines[-1] != b""
            first = False
        body = lines if torn else lines[:-1]
        complete = body if end == 0 else body[1:]  # the first piece may be cut
        if last_hash is None and complete:
            last_hash = line_hash(complete[-1])
        for raw in reversed(complete):
            obj = parse(raw)
            if obj is not None:
                return obj, last_hash, torn
    return None, last_hash, torn


def _open_chain(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_APPEND
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
    except FileExistsError:
        return open_regular(path, flags)


def append(
    path: Path,
    entries: Iterable[dict[str, Any]],
    *,
    source: str,
    sign: Signer | None = None,
    sync: bool = True,
) -> list[dict[str, Any]]:
    """Append ``entries`` (made by ``entry``) to the chain at ``path``, numbered and
    linked under the file's lock, in one write; fsync unless ``sync`` is false.
    Returns the lines as written. Raises OSError (a full disk, no permission)."""
    fd = _open_chain(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        seq, prev, torn = _head(fd)
        out: list[dict[str, Any]] = []
        data = bytearray(b"\n" if torn else b"")
        for facts in entries:
            seq += 1
            line = dict(facts)
            line["seq"] = seq
            line["prev"] = prev
            if line["event"] == "day":
                line["head"] = prev
                if sign is not None:
                    line["sig"], line["key"] = sign(
                        day_message(source, str(line.get("date")), seq, prev)
                    )
            raw = encode(line)
            data += raw + b"\n"
            prev = line_hash(raw)
            out.append(line)
        if data:
            size = os.fstat(fd).st_size
            try:
                write_all(fd, bytes(data))
            except OSError:
                # Never leave half a batch: cut back to where it began.
                os.ftruncate(fd, size)
                raise
            if sync:
                os.fsync(fd)
        return out
    finally:
        os.close(fd)  # and with it the lock


def signature_ok(public_key_b64: str, message: bytes, sig_b64: str) -> bool:
    """Whether ``sig`` is ``public_key``'s Ed25519 signature of ``message``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64, validate=True))
        key.verify(base64.b64decode(sig_b64, validate=True), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
