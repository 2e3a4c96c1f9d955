"""``isr clip SOURCE FROM TO [-o FILE]``: a clip and its manifest written to files.

The clip goes to FILE (default: its download name, ``<source>_<start>-<end>.<ext>``,
in the current directory) and its manifest to ``FILE.json`` beside it. Neither is
ever overwritten: both are created with ``O_EXCL`` before a byte is written, and a
clip that cannot be written whole is removed with its manifest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from isr.config import Config, WebConfig
from isr.errors import OutputError

if TYPE_CHECKING:  # imported when a clip is made: the command line stays light
    from isr.clips.clip import Clipper

__all__ = ["add_command", "cmd_clip", "write_clip"]

ConfigLoader = Callable[[str | None], Config]


def add_command(sub: Any, add_config: Callable[[Any], None]) -> None:
    c = sub.add_parser(
        "clip",
        help="write the audio of SOURCE from FROM to TO, across files, as one file",
        description="Writes what SOURCE aired from FROM to TO as one playable file in "
        "the recorded format, across as many recordings as that takes (MP3, AAC and "
        "native FLAC cut between whole frames; PCM at the exact sample), and its "
        "manifest (the files, byte or sample ranges and gaps it holds) beside it as "
        "FILE.json. Times as for `isr timeline`. Never overwrites a file; the span is "
        "at most [web] max_clip_hours long.",
    )
    where = c.add_mutually_exclusive_group()
    add_config(where)
    where.add_argument("--dir", default=None, help="recordings directory (default: the config's)")
    c.add_argument("source", metavar="SOURCE", help="the source (config section) name")
    c.add_argument("start", metavar="FROM", help="from, e.g. 2026-11-24T14:23")
    c.add_argument("end", metavar="TO", help="to, e.g. '2026-11-24 14:37:30'")
    c.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="the clip's file (default: <source>_<YYYYmmdd_HHMMSS>-<HHMMSS>.<ext> here)",
    )


def cmd_clip(args: argparse.Namespace, load: ConfigLoader) -> int:
    from isr.clips.clip import Clipper
    from isr.clock import local_zone
    from isr.errors import QueryError
    from isr.timeline.index import TimelineIndex
    from isr.timeline.times import parse_time

    named = args.config or os.environ.get("ISR_CONFIG")
    cfg = load(args.config) if not args.dir and (named or Path("config.ini").exists()) else None
    root = Path(args.dir) if args.dir else cfg.output_directory if cfg else Path("recordings")
    web = cfg.web if cfg is not None else WebConfig()
    tz = local_zone()
    t0, t1 = parse_time(args.start, tz), parse_time(args.end, tz)
    if not root.is_dir():
        raise QueryError(f"no recordings directory {str(root)!r}")
    clipper = Clipper(root, tz, TimelineIndex(root, tz), max_hours=web.max_clip_hours)
    try:
        audio, manifest = write_clip(
            clipper, args.source, t0, t1, Path(args.output) if args.output else None
        )
    finally:
        clipper.index.close()
        clipper.close()
    m = json.loads(manifest.read_text())
    print(f"{audio} ({audio.stat().st_size} bytes) from {m['start']} to {m['end']}")
    for gap in m["gaps"]:
        print(f"  gap {gap['start']} to {gap['end']} ({gap['seconds']} s): {gap['cause']}")
    print(f"{manifest}: its manifest", file=sys.stdout)
    return 0


def _create(path: Path) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise OutputError(f"{path} exists: isr clip never overwrites a file") from None
    except OSError as exc:
        raise OutputError(f"cannot create {path}: {exc.strerror}") from None


def write_clip(
    clipper: Clipper, source: str, t0: float, t1: float, output: Path | None
) -> tuple[Path, Path]:
    """The clip in ``output`` (default: its download name here) and its manifest in
    ``output.json``; returns both paths."""
    clip = clipper.make(source, t0, t1)
    assert clip.body is not None
    audio = output if output is not None else Path(clip.filename)
    manifest = audio.with_name(audio.name + ".json")
    made: list[Path] = []
    fds: list[int] = []
    try:
        for path in (manifest, audio):  # both claimed before a byte is written
            fds.append(_create(path))
            made.append(path)
        m_fd, a_fd = fds
        for chunk in clip.body.read():
            view = memoryview(chunk)
            while view:
                view = view[os.write(a_fd, view) :]
        os.write(m_fd, (json.dumps(clip.manifest, indent=2) + "\n").encode())
        os.fsync(a_fd)
        os.fsync(m_fd)
    except BaseException:
        for path in made:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    finally:
        for fd in fds:
            os.close(fd)
    return audio, manifest
