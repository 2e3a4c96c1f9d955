"""Deterministic test audio made by ffmpeg's lavfi at test time (no binary media shipped).

Every kind the recorder must handle can be generated: a steady tone, or silence with a
loud tone at a known place so analysis and playback tests know where the sound is.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

from tests.support.tools import require_tool

#: kind -> file extension, matching the recorder's own extensions (DESIGN.md "Files").
EXTENSIONS: dict[str, str] = {
    "mp3": ".mp3",
    "mp3-vbr": ".mp3",
    "aac": ".aac",
    "vorbis": ".ogg",
    "opus": ".opus",
    "oggflac": ".oga",
    "flac": ".flac",
    "wav": ".wav",
}

#: kind -> (ffmpeg -f for an Icecast source, Content-Type) for feeding a mount.
FEED_FORMATS: dict[str, tuple[str, str]] = {
    "mp3": ("mp3", "audio/mpeg"),
    "mp3-vbr": ("mp3", "audio/mpeg"),
    "aac": ("adts", "audio/aac"),
    "vorbis": ("ogg", "audio/ogg"),
    "opus": ("opus", "audio/ogg"),
    "oggflac": ("ogg", "audio/ogg"),
}

PATTERNS = ("tone", "silence-tone-silence", "silence", "noise")


class MediaFactory(Protocol):
    """The `media` fixture: make_media's keywords, cached per session."""

    def __call__(self, kind: str, seconds: float, **params: object) -> Path: ...


_ENCODE: dict[str, list[str]] = {
    "mp3": ["-c:a", "libmp3lame", "-f", "mp3"],
    "mp3-vbr": ["-c:a", "libmp3lame", "-q:a", "4", "-f", "mp3"],
    "aac": ["-c:a", "aac", "-f", "adts"],
    "vorbis": ["-c:a", "libvorbis", "-f", "ogg"],
    "opus": ["-c:a", "libopus", "-f", "opus"],
    "flac": ["-c:a", "flac", "-f", "flac"],
    "wav": ["-c:a", "pcm_s16le", "-f", "wav"],
}
_CBR_KINDS = ("mp3", "aac", "vorbis", "opus")


def _expression(
    pattern: str,
    frequency: float,
    amplitude: float,
    tone_start: float | None,
    tone_end: float | None,
) -> str:
    """An aevalsrc expression for one channel."""
    tone = f"{amplitude}*sin(2*PI*{frequency}*t)"
    if pattern == "tone":
        return tone
    if pattern == "silence":
        return "0"
    if pattern == "noise":  # no two frames alike: what a content match needs
        return f"{amplitude}*(2*random(0)-1)"
    if pattern == "silence-tone-silence":
        if tone_start is None or tone_end is None or not 0 <= tone_start < tone_end:
            raise ValueError("silence-tone-silence needs 0 <= tone_start < tone_end")
        # gte/lt (not between) so the tone covers exactly [tone_start, tone_end).
        return f"if(gte(t,{tone_start})*lt(t,{tone_end}),{tone},0)"
    raise ValueError(f"unknown pattern {pattern!r}; expected one of {PATTERNS}")


def make_media(
    path: Path,
    kind: str,
    seconds: float,
    *,
    frequency: float = 440,
    sample_rate: int = 44100,
    channels: int = 2,
    bitrate: str = "128k",
    pattern: str = "tone",
    tone_start: float | None = None,
    tone_end: float | None = None,
    amplitude: float = 0.5,
) -> Path:
    """Write `seconds` of audio of `kind` to `path` and return it.

    `pattern` is "tone" (steady sine), "silence", "noise" (white), or
    "silence-tone-silence" (sine only in [tone_start, tone_end)). Opus is always
    encoded at 48 kHz, its only full-band rate. The file appears atomically, so a
    cache never sees half of one.
    """
    if kind not in EXTENSIONS:
        raise ValueError(f"unknown media kind {kind!r}; expected one of {sorted(EXTENSIONS)}")
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=EXTENSIONS[kind], dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if kind == "oggflac":
            _make_oggflac(
                tmp,
                seconds,
                frequency,
                sample_rate,
                channels,
                pattern,
                tone_start,
                tone_end,
                amplitude,
            )
        else:
            expr = _expression(pattern, frequency, amplitude, tone_start, tone_end)
            exprs = "|".join([expr] * channels)
            source = f"aevalsrc='{exprs}':s={sample_rate}:d={seconds}"
            args = [
                require_tool("ffmpeg"),
                "-nostdin",
                "-hide_banner",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                source,
                "-t",
                str(seconds),
                "-ac",
                str(channels),
                "-ar",
                "48000" if kind == "opus" else str(sample_rate),
                *_ENCODE[kind],
            ]
            if kind in _CBR_KINDS:
                args[-2:-2] = ["-b:a", bitrate]
            _run([*args, str(tmp)])
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _make_oggflac(
    path: Path,
    seconds: float,
    frequency: float,
    sample_rate: int,
    channels: int,
    pattern: str,
    tone_start: float | None,
    tone_end: float | None,
    amplitude: float,
) -> None:
    """Ogg FLAC via the reference `flac --ogg`: ffmpeg's own Ogg FLAC makes ogginfo warn."""
    flac = require_tool("flac")
    with tempfile.TemporaryDirectory(dir=path.parent) as tmpdir:
        wav = make_media(
            Path(tmpdir) / "in.wav",
            "wav",
            seconds,
            frequency=frequency,
            sample_rate=sample_rate,
            channels=channels,
            pattern=pattern,
            tone_start=tone_start,
            tone_end=tone_end,
            amplitude=amplitude,
        )
        _run([flac, "--ogg", "--silent", "--force", "-o", str(path), str(wav)])


def make_tone_with_burst(
    path: Path,
    kind: str,
    seconds: float,
    tone_start: float,
    tone_end: float,
    **kwargs: object,
) -> Path:
    """Silence, a loud tone in [tone_start, tone_end), silence: a known place to find sound."""
    return make_media(
        path,
        kind,
        seconds,
        pattern="silence-tone-silence",
        tone_start=tone_start,
        tone_end=tone_end,
        **kwargs,  # type: ignore[arg-type]
    )


def media_name(kind: str, seconds: float, **params: object) -> str:
    """A readable, unique file name for one set of parameters (the cache key)."""
    parts = [kind, f"{seconds:g}s"]
    for key in sorted(params):
        value = params[key]
        if value is not None:
            parts.append(f"{key}-{value}")
    stem = "_".join(parts).replace("/", "-").replace(" ", "")
    return stem + EXTENSIONS.get(kind, "")


def _run(args: list[str]) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
