"""Every audio format ISR knows, each in one entry: the one place a new format is added.

An entry holds a format's name (as in the config), the file extensions it is
recorded under with the Content-Type each is served with, the Content-Types a
server announces it by, its framer, its crash repair, its sniffing score and the
cutter of its clips.
Code is named by ``"module:attribute"`` strings and imported on first use, so
importing this module costs nothing and cannot make an import cycle (the web UI
and retention need the extensions, not the framers).

Details the entries carry: ``ogg`` and ``opus`` share the Ogg framer, and an Ogg
stream's file extension is known only from its first link (``.ogg`` Vorbis,
``.opus``, ``.oga`` FLAC), so ``.oga`` files are ``ogg`` and ``.opus`` files
``opus``; servers announce Opus as Ogg, and sniffing says ``ogg`` for both. WAV
comes only from soundcard and tone sources: no framer, no score, and its repair is
recovery's (``sinks/wav.py``). FLAC from PCM and native FLAC streams share
``.flac`` and one repair, which reads either.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isr.clips.cutter import Cutter
    from isr.framing.base import Framer

__all__ = [
    "AUDIO_EXTENSIONS",
    "FORMATS",
    "Format",
    "by_name",
    "of_content_type",
    "of_extension",
    "served_type",
]


@functools.cache
def _load(where: str) -> Any:
    """The object ``"module:attr.attr"`` names, imported on first use."""
    module, _, attrs = where.partition(":")
    obj: Any = importlib.import_module(module)
    for attr in attrs.split("."):
        obj = getattr(obj, attr)
    return obj


@dataclass(frozen=True)
class Format:
    name: str
    """As in the config's ``format =`` and in sniffing's answers."""
    files: tuple[tuple[str, str], ...]
    """``(extension, Content-Type it is served with)`` for each extension recorded."""
    content_types: tuple[str, ...] = ()
    """What servers announce the format by (lower case, no parameters)."""
    framer: str | None = None
    """``"module:Class"`` of the framer a stream of this format is cut with."""
    repairer: str | None = None
    """``"module:function"`` that finishes a file a crash or failed write cut."""
    scorer: str | None = None
    """``"module:attr"`` of the format's ``score(head)``; None: sniffing never says it."""
    cutter: str | None = None
    """``"module:attr"`` of the object that cuts clips of its recordings
    (``isr.clips.cutter.Cutter``); None: its recordings cannot be clipped yet."""

    @property
    def extensions(self) -> tuple[str, ...]:
        return tuple(ext for ext, _ in self.files)

    def framer_class(self) -> type[Framer] | None:
        """The framer class, imported now; None when the format has none."""
        cls: type[Framer] | None = _load(self.framer) if self.framer else None
        return cls

    def repair(self) -> Callable[[Path], str | None] | None:
        fn: Callable[[Path], str | None] | None = _load(self.repairer) if self.repairer else None
        return fn

    def clip_cutter(self) -> Cutter | None:
        """The cutter of clips, imported now; None when the format has none."""
        cutter: Cutter | None = _load(self.cutter) if self.cutter else None
        return cutter

    def score(self, head: bytes) -> float:
        """Confidence in [0, 1] that ``head`` starts a stream of this format."""
        if self.scorer is None:
            return 0.0
        value: float = _load(self.scorer)(head)
        return value


FORMATS: tuple[Format, ...] = (
    Format(
        "mp3",
        ((".mp3", "audio/mpeg"),),
        (
            "audio/mpeg",
            "audio/mp3",
            "audio/mpeg3",
            "audio/x-mpeg",
            "audio/x-mp3",
            "audio/mpg",
        ),
        framer="isr.framing.mp3:Mp3Framer",
        repairer="isr.framing.repair:repair_mp3",
        scorer="isr.framing.mp3:Mp3Framer.score",
        cutter="isr.clips.mp3:CUTTER",
    ),
    Format(
        "aac",
        ((".aac", "audio/aac"),),
        ("audio/aac", "audio/aacp", "audio/x-aac", "audio/x-aacp", "audio/vnd.dlna.adts"),
        framer="isr.framing.adts:AdtsFramer",
        repairer="isr.framing.repair:repair_aac",
        scorer="isr.framing.adts:AdtsFramer.score",
        cutter="isr.clips.adts:CUTTER",
    ),
    Format(
        "ogg",
        ((".ogg", "audio/ogg"), (".oga", "audio/ogg")),
        (
            "application/ogg",
            "application/x-ogg",
            "audio/ogg",
            "audio/x-ogg",
            "audio/vorbis",
            "audio/opus",
        ),
        framer="isr.framing.ogg:OggFramer",
        repairer="isr.framing.repair:repair_ogg",
        scorer="isr.framing.sniff:ogg_score",
        cutter="isr.clips.ogg:CUTTER",
    ),
    Format(
        "opus",
        ((".opus", "audio/ogg; codecs=opus"),),
        framer="isr.framing.ogg:OggFramer",
        repairer="isr.framing.repair:repair_ogg",
        cutter="isr.clips.ogg:CUTTER",
    ),
    Format(
        "flac",
        ((".flac", "audio/flac"),),
        ("audio/flac", "audio/x-flac"),
        framer="isr.framing.flac:FlacFramer",
        repairer="isr.framing.repair:repair_flac",
        scorer="isr.framing.sniff:flac_score",
        cutter="isr.clips.flac:CUTTER",
    ),
    Format("wav", ((".wav", "audio/wav"),), cutter="isr.clips.wav:CUTTER"),
)
"""In sniffing's order: on equal scores the earlier format is named."""

_BY_NAME = {f.name: f for f in FORMATS}
_BY_EXTENSION = {ext: f for f in FORMATS for ext in f.extensions}
_BY_CONTENT_TYPE = {ct: f for f in FORMATS for ct in f.content_types}
_SERVED = {ext: ct for f in FORMATS for ext, ct in f.files}

AUDIO_EXTENSIONS = frozenset(_BY_EXTENSION)
"""Lower-case extensions of the files that are recordings (listed, served, kept)."""


def by_name(name: str) -> Format | None:
    return _BY_NAME.get(name)


def of_extension(ext: str) -> Format | None:
    """The format of a file by its extension (``".oga"`` or ``".OGA"``), else None."""
    return _BY_EXTENSION.get(ext.lower())


def of_content_type(ct: str) -> Format | None:
    """The format a Content-Type header announces (parameters ignored), else None."""
    return _BY_CONTENT_TYPE.get(ct.split(";", 1)[0].strip().lower())


def served_type(ext: str) -> str | None:
    """The Content-Type a recording with this extension is served with."""
    return _SERVED.get(ext.lower())
