"""A deletion through the web UI, told to the source's hash chain.

The web UI is a process of its own (or shares the recorder's loop under
``isr run``); it appends its ``deleted`` line itself, under the chain file's lock
(``isr.evidence.chain``), so the recorder's lines and its own stay linked.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from pathlib import Path

from isr.clock import local_zone
from isr.evidence import chain
from isr.sidecar import iso, sidecar_path
from isr.sinks.files import read_regular

log = logging.getLogger("isr.evidence")


def source_of(audio: Path) -> str | None:
    """The source a recording's sidecar names (read before the sidecar goes)."""
    try:
        data = json.loads(read_regular(sidecar_path(audio)))
    except (OSError, ValueError):
        return None
    source = data.get("source") if isinstance(data, dict) else None
    return source if isinstance(source, str) and source else None


def basic_user(authorization: str | None) -> str | None:
    """The user name of an HTTP Basic ``Authorization`` header, if any."""
    if not authorization or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded.partition(b":")[0].decode("utf-8", "replace") or None


def web_deleted(
    root: Path,
    name: str,
    size: int,
    source: str | None,
    *,
    client: str | None,
    user: str | None,
    why: str = "deleted in the web UI",
) -> bool:
    """Append the ``deleted`` line (blocking: call it in a thread). A recording
    without a source (no sidecar) is no chain's; returns whether a line went in."""
    if source is None:
        return False
    line = chain.entry(
        "deleted",
        at=iso(time.time(), local_zone()),
        file=name,
        bytes=size,
        by="web",
        why=why,
        client=client,
        user=user,
    )
    try:
        chain.append(chain.chain_path(root, source), [line], source=source)
    except OSError as exc:
        log.error("deleted %s but cannot append that to the chain of %s: %s", name, source, exc)
        return False
    return True
