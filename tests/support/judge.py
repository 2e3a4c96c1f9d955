"""Judge recorded files with tools no one here wrote: ffmpeg, ffprobe, mp3val, ogginfo,
opusinfo, flac and mutagen. A file is good when *they* say so, not when our own parser does.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tests.support.tools import require_tool

_TIMEOUT = 60


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, errors="replace", timeout=_TIMEOUT, check=False
    )


def ffmpeg_errors(path: Path) -> str:
    """Everything `ffmpeg -v error` says while decoding the whole file; "" when clean."""
    ffmpeg = require_tool("ffmpeg")
    result = _run([ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"])
    text = result.stderr.strip()
    if result.returncode != 0 and not text:
        text = f"ffmpeg exited with status {result.returncode}"
    return text


def ffprobe_info(path: Path) -> dict[str, Any]:
    """ffprobe's format and first audio stream, as JSON."""
    ffprobe = require_tool("ffprobe")
    result = _run(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "format=duration,start_time,format_name,bit_rate:"
            "stream=codec_name,sample_rate,channels,duration,start_time",
            "-of",
            "json",
            str(path),
        ]
    )
    if result.returncode != 0:
        raise AssertionError(f"ffprobe cannot read {path}: {result.stderr.strip()}")
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def _format_float(path: Path, key: str) -> float:
    value = ffprobe_info(path).get("format", {}).get(key)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise AssertionError(f"ffprobe gives no {key} for {path} (got {value!r})") from None


def ffprobe_duration(path: Path) -> float:
    """Container duration in seconds as ffprobe reports it (beware stale Xing/granules)."""
    return _format_float(path, "duration")


def ffprobe_start_time(path: Path) -> float:
    """Container start time; 0.0 where the format has none (WAV, ADTS)."""
    value = ffprobe_info(path).get("format", {}).get("start_time")
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _problem_lines(text: str, prefixes: tuple[str, ...]) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefixes)]


MP3VAL_NOTICES = ("No supported tags in the file",)
"""mp3val words these as WARNING, but a file copied from a stream has no tags by design."""

MP3VAL_FEW_FRAMES = "Too few MPEG frames (it's unlikely that this is a MPEG audio file)"
MP3VAL_MIN_FRAMES = 10
"""mp3val says `MP3VAL_FEW_FRAMES` of any file of fewer frames than this (its Xing/Info
frame counted): a doubt whether the file is MPEG at all, not a fault in it. A stream's
file that a stop, a SIGKILL or a fault ended just after its split boundary legitimately
holds only a few frames, wherever that boundary happened to fall."""

_MP3VAL_COUNT = re.compile(r"INFO: .*?(\d+) MPEG frames")


def mp3val_problems(path: Path) -> list[str]:
    """mp3val's WARNING and ERROR lines (its INFO lines, banner and notices are not problems).

    Its doubt about a short file (`MP3VAL_MIN_FRAMES`) is no problem when the file is
    short and whole: mp3val found no other fault and counted every frame that ffprobe
    reads (plus the Xing/Info frame, which ffprobe takes as a header). Every other
    warning still counts, for a short file as for a long one.
    """
    mp3val = require_tool("mp3val")
    result = _run([mp3val, str(path)])
    text = result.stdout + result.stderr
    lines = _problem_lines(text, ("WARNING", "ERROR"))
    problems = [line for line in lines if not line.endswith(MP3VAL_NOTICES)]
    few = [line for line in problems if line.endswith(MP3VAL_FEW_FRAMES)]
    if few and len(few) == len(problems):
        counted = _MP3VAL_COUNT.search(text)
        frames = int(counted.group(1)) if counted else None
        if frames is not None and frames < MP3VAL_MIN_FRAMES:
            whole = _short_mp3_is_whole(path, frames)
            if whole is None:
                return []
            return [f"{line} ({whole})" for line in problems]
    return problems


def _short_mp3_is_whole(path: Path, mp3val_frames: int) -> str | None:
    """None when ffprobe reads as many audio frames as mp3val counted (less the leading
    Xing/Info frame); else what disagrees."""
    ffprobe = require_tool("ffprobe")
    result = _run(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            str(path),
        ]
    )
    try:
        packets = int(result.stdout.strip())
    except ValueError:
        return f"and ffprobe cannot count its frames: {result.stderr.strip()}"
    with path.open("rb") as f:
        head = f.read(64)
    tag = 1 if b"Xing" in head or b"Info" in head else 0
    if packets + tag != mp3val_frames:
        return f"mp3val counted {mp3val_frames} frames, ffprobe {packets} (+{tag} Xing/Info)"
    return None


def _xiph_info(tool: str, path: Path) -> list[str]:
    result = _run([require_tool(tool), str(path)])
    problems = _problem_lines(result.stdout + result.stderr, ("WARNING", "ERROR"))
    if result.returncode != 0 and not problems:
        problems.append(f"{tool} exited with status {result.returncode}")
    return problems


def ogginfo_warnings(path: Path) -> list[str]:
    """ogginfo's WARNING/ERROR lines for Ogg Vorbis or Ogg FLAC: missing EOS, gaps, granules."""
    return _xiph_info("ogginfo", path)


def opusinfo_warnings(path: Path) -> list[str]:
    """opusinfo's WARNING/ERROR lines for Ogg Opus."""
    return _xiph_info("opusinfo", path)


FLAC_NOTICES = ("cannot check MD5 signature since it was unset in the STREAMINFO",)
"""MD5 0 means "unknown" in the FLAC spec: a file cut from a stream has no MD5 of its own."""


def flac_test(path: Path) -> str:
    """What `flac -t` complains about (native or Ogg FLAC); "" when the file decodes cleanly."""
    flac = require_tool("flac")
    args = [flac, "-t", "-s"]
    with path.open("rb") as f:
        if f.read(4) == b"OggS":
            args.append("--ogg")
    result = _run([*args, str(path)])
    lines = [ln for ln in result.stderr.strip().splitlines() if not ln.endswith(FLAC_NOTICES)]
    text = "\n".join(lines).strip()
    if result.returncode != 0 and not text:
        text = f"flac -t exited with status {result.returncode}"
    return text


def mutagen_duration(path: Path) -> float:
    """Duration as mutagen computes it: a second opinion that shares no code with ffmpeg."""
    import mutagen

    parsed = mutagen.File(str(path))
    if parsed is None:
        raise AssertionError(f"mutagen does not recognise {path}")
    return float(parsed.info.length)


def decode_pcm(
    path: Path, *, sample_rate: int | None = None, channels: int = 2
) -> npt.NDArray[np.int16]:
    """Decode to signed 16-bit PCM, shape (frames, channels), via ffmpeg's s16le pipe.

    `sample_rate` resamples (Opus decodes at 48 kHz); `channels` up- or down-mixes.
    Decoder priming (Opus pre-skip, MP3 encoder delay) is removed by ffmpeg itself.
    """
    ffmpeg = require_tool("ffmpeg")
    args = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-vn", "-ac", str(channels)]
    if sample_rate is not None:
        args += ["-ar", str(sample_rate)]
    result = subprocess.run(
        [*args, "-f", "s16le", "-acodec", "pcm_s16le", "-"],
        capture_output=True,
        timeout=_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise AssertionError(f"ffmpeg cannot decode {path}: {stderr}")
    usable = len(result.stdout) - len(result.stdout) % (2 * channels)
    return np.frombuffer(result.stdout[:usable], dtype="<i2").reshape(-1, channels)


def decoded_duration(path: Path) -> float:
    """Seconds of audio a decoder actually produces: immune to wrong container headers."""
    stream = (ffprobe_info(path).get("streams") or [{}])[0]
    rate = int(stream.get("sample_rate", 0))
    if rate <= 0:
        raise AssertionError(f"ffprobe gives no sample rate for {path}")
    return len(decode_pcm(path, channels=1)) / rate


def rms_windows(pcm: npt.NDArray[np.int16], sample_rate: int, window_s: float = 0.1) -> list[float]:
    """RMS of all channels per window, full-scale square wave = 1 (the web API's scale)."""
    frames = max(1, round(sample_rate * window_s))
    data = pcm.astype(np.float64) / 32768.0
    out: list[float] = []
    for start in range(0, len(data), frames):
        chunk = data[start : start + frames]
        out.append(float(np.sqrt(np.mean(chunk * chunk))))
    return out


def sidecar_of(path: Path) -> dict[str, Any]:
    """The recorder's sidecar of an audio file (`<file name>.json`)."""
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".json").read_text())
    return data


def sessions(files: list[Path]) -> list[list[Path]]:
    """One source's files (in time order) grouped by connection: one list per recording
    session, however many split boundaries it happened to cross.

    DESIGN.md: a reconnect (and a restart) always starts a new file whose sidecar notes
    the gap, at ``at: 0.0``, even a gap of 0 s; a file opened at a split notes none. So
    a test counts connections exactly, wherever a boundary fell in them.
    """
    out: list[list[Path]] = []
    for path in files:
        if not out or sidecar_of(path).get("gaps"):
            out.append([path])
        else:
            out[-1].append(path)
    return out
