"""Turning a name from a URL into a file inside the recordings directory, or refusing.

A name is a path relative to the recordings directory, ``/``-separated, each segment
percent-encoded. The check runs twice: :func:`split_name` is pure and rejects what is
malformed on its face (``..``, empty segments, ``%2F``, backslashes, NUL, ``.isr``);
:func:`resolve` then follows symlinks and checks the real path is still inside the
real root (``commonpath``, as Starlette's StaticFiles does), so a symlink pointing out
is refused too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, unquote

from markupsafe import Markup, escape

from isr.formats import AUDIO_EXTENSIONS

STATE_DIR = ".isr"


class BadName(ValueError):
    """The name can never name a recording (the web layer answers 404)."""


def split_name(raw: str) -> tuple[str, ...]:
    """Decode a raw (still percent-encoded) name into its segments, or raise BadName."""
    if not raw or raw.startswith("/"):
        raise BadName("empty or absolute name")
    segments: list[str] = []
    for part in raw.split("/"):
        try:
            seg = unquote(part, errors="strict")
        except UnicodeDecodeError as exc:
            raise BadName("segment is not UTF-8") from exc
        if seg in ("", ".", ".."):
            raise BadName("empty, '.' or '..' segment")
        if "/" in seg or "\\" in seg or "\x00" in seg:
            raise BadName("separator or NUL inside a segment")
        segments.append(seg)
    if segments[0] == STATE_DIR:
        raise BadName("the state directory is not served")
    return tuple(segments)


def is_audio(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def encode_name(name: str) -> str:
    """The URL form of a ``/``-separated name: each segment percent-encoded."""
    return "/".join(quote(seg, safe="") for seg in name.split("/"))


_BREAK_AFTER = re.compile(r"([/_\-])")


def breakable(name: str) -> Markup:
    """``name`` as HTML that a narrow screen may wrap after each ``/``, ``_`` or ``-``
    (a ``<wbr>``, which copying the name does not copy) rather than inside a word."""
    return Markup(_BREAK_AFTER.sub(r"\1<wbr>", str(escape(name))))


def resolve(root: Path, raw: str, *, audio_only: bool = True) -> tuple[str, Path]:
    """``(name, path)`` for a raw name inside ``root``; raises BadName otherwise.

    The returned path is the lexical one (so a delete removes the entry the listing
    showed), and it exists; its real path lies inside the real root.
    """
    segments = split_name(raw)
    name = "/".join(segments)
    if audio_only and not is_audio(name):
        raise BadName("not an audio file")
    real_root = os.path.realpath(root)
    path = Path(real_root, *segments)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        raise BadName("outside the recordings directory")
    rel = os.path.relpath(real, real_root)
    if rel.split(os.sep)[0] == STATE_DIR:
        raise BadName("inside the state directory")
    if not os.path.isfile(real):
        raise BadName("no such file")
    return name, path
