"""The ``isr`` command line. The only place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from isr import __version__
from isr.clips.export import add_command as add_clip_command
from isr.config import (
    DEMO_CONFIG,
    ArchiveConfig,
    Config,
    WebConfig,
    describe,
    load,
    split_s3_url,
)
from isr.errors import ConfigError, IsrError, QueryError
from isr.evidence.commands import add_commands as add_evidence_commands
from isr.evidence.commands import cmd_keygen as _keygen
from isr.evidence.commands import cmd_verify as _verify
from isr.evidence.report import add_command as add_report_command
from isr.evidence.report import cmd_report as _report
from isr.log import setup_logging

EXIT_CONFIG = 2
EXIT_USAGE = 2
"""A question the archive cannot answer: a bad time or span, an unknown source."""
log = logging.getLogger("isr")


def _add_config(p: argparse.ArgumentParser | argparse._MutuallyExclusiveGroup) -> None:
    p.add_argument(
        "-c",
        "--config",
        metavar="CONFIG",
        default=None,
        help="config file (default: $ISR_CONFIG or config.ini; "
        "`isr record` uses a built-in tone demo when neither exists)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isr",
        description="Records Icecast/SHOUTcast streams and soundcards into clock-aligned files.",
    )
    parser.add_argument("--version", action="version", version=f"isr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    rec = sub.add_parser("record", help="record every source in the config until SIGINT/SIGTERM")
    _add_config(rec)
    rec.add_argument(
        "--list-devices", action="store_true", help="list ALSA capture devices and exit"
    )
    check = sub.add_parser("check", help="validate the config and print every source as resolved")
    _add_config(check)
    check.add_argument(
        "--probe",
        action="store_true",
        help="also fetch each stream source's URL: an HLS master playlist's variants",
    )
    sub.add_parser("devices", help="list ALSA capture devices: the id to put in device =")
    web = sub.add_parser("web", help="serve the web UI over a recordings directory")
    _add_config(web)
    _add_web_options(web)
    web.add_argument("--dir", default=None, help="recordings directory (default: the config's)")
    web.add_argument(
        "--archive",
        nargs="?",
        const="",
        default=None,
        metavar="s3://BUCKET/PREFIX",
        help="serve the recordings in the store, from every recorder (default URL: the "
        "config's [archive] url; endpoint and credentials from [archive] or the environment)",
    )
    web.add_argument(
        "--cache",
        default=None,
        help="with --archive: where the store's sidecars and fetched files are kept "
        "(default: .isr/store/<bucket>/<prefix> in the recordings directory)",
    )
    web.add_argument(
        "--cache-mb",
        type=float,
        default=4096,
        help="with --archive: the files fetched whole (for analyses and clips) kept at "
        "most, in MB, beyond those used in the last 3 hours (default 4096)",
    )
    web.add_argument(
        "--threshold",
        type=float,
        default=None,
        help=f"loudness threshold 0..1 (default {WebConfig().threshold:g})",
    )
    run = sub.add_parser("run", help="recorder and web UI together")
    _add_config(run)
    _add_web_options(run)
    tl = sub.add_parser(
        "timeline",
        help="what was recorded of a source in a span: files, gaps, titles, coverage",
        description="Prints what was recorded of SOURCE from --from to --to: its files, "
        "the gaps with their causes and lengths, the titles and the coverage. Times are "
        "ISO 8601 with an offset, or local (2026-11-24T14:23, '2026-11-24 14:23:05'); a "
        "day (2026-11-24) is its local midnight. A local time the clock showed twice "
        "(DST ends) is its first occurrence; one it skipped (DST starts) is the moment "
        "it went forward.",
    )
    where = tl.add_mutually_exclusive_group()
    _add_config(where)
    where.add_argument("--dir", default=None, help="recordings directory (default: the config's)")
    tl.add_argument("source", metavar="SOURCE", help="the source (config section) name")
    tl.add_argument("--from", dest="start", metavar="T", help="from (default: today 00:00)")
    tl.add_argument("--to", dest="end", metavar="T", help="to (default: now)")
    add_evidence_commands(sub, _add_config)
    add_report_command(sub, _add_config)
    add_clip_command(sub, _add_config)
    return parser


def _add_web_options(p: argparse.ArgumentParser) -> None:
    web = WebConfig()
    p.add_argument("--host", default=None, help=f"address to listen on (default {web.host})")
    p.add_argument("--port", type=_port, default=None, help=f"port (default {web.port})")


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def resolve_config(arg: str | None, *, allow_demo: bool) -> Config:
    """The config named on the command line, by ``ISR_CONFIG``, or ``config.ini``;
    the embedded demo only when none was named and ``config.ini`` is absent."""
    named = arg or os.environ.get("ISR_CONFIG")
    if named:
        return load(named)
    if Path("config.ini").exists() or not allow_demo:
        return load("config.ini")
    log.info("no config.ini here: recording the built-in tone demo")
    return load("<built-in demo config>", text=DEMO_CONFIG)


def _load_named(arg: str | None) -> Config:
    return resolve_config(arg, allow_demo=False)


def cmd_verify(args: argparse.Namespace) -> int:
    return _verify(args, _load_named)


def cmd_keygen(args: argparse.Namespace) -> int:
    return _keygen(args, _load_named)


def cmd_report(args: argparse.Namespace) -> int:
    return _report(args, _load_named)


def log_warnings(cfg: Config) -> None:
    for warning in cfg.warnings:
        log.warning("%s", warning)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = resolve_config(args.config, allow_demo=False)
    check_devices(cfg)
    for warning in cfg.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(describe(cfg))
    if args.probe:
        probe_sources(cfg)
    print("config OK")
    return 0


def probe_sources(cfg: Config) -> None:
    """``isr check --probe``: what each stream source's URL serves now, if HLS (a
    master playlist's variants, ``*`` the one recorded). A URL that fails is said,
    not an error: the recorder retries it."""
    from isr.errors import SourceError
    from isr.sources.hls import probe  # aiohttp only when asked

    for src in cfg.sources:
        if src.type != "stream":
            continue
        try:
            lines = asyncio.run(
                probe(src.url, src.format, src.username, src.password, hls_variant=src.hls_variant)
            )
        except SourceError as exc:
            lines = [f"cannot probe: {exc}"]
        for line in lines:
            print(f"[{src.name}] {line}")


def check_devices(cfg: Config) -> None:
    """Resolve every soundcard's ``device =`` now, so a name that matches nothing is
    a config error (exit 2) rather than a retry loop."""
    if not any(src.type == "soundcard" for src in cfg.sources):
        return
    from isr.sources.alsa import resolve_configured_device

    for src in cfg.sources:
        if src.type == "soundcard":
            resolve_configured_device(src.device, file=cfg.path, section=src.name)


def cmd_devices(args: argparse.Namespace) -> int:
    from isr.sources.alsa import format_device_table, list_capture_devices

    print(format_device_table(list_capture_devices()))
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from isr.recorder import record  # imported late: `isr check` stays light

    if args.list_devices:
        return cmd_devices(args)
    setup_logging("INFO")
    cfg = resolve_config(args.config, allow_demo=True)
    check_devices(cfg)
    setup_logging(cfg.log_level, cfg.log_file or None)
    log_warnings(cfg)
    asyncio.run(record(cfg))
    return 0


def _web_settings(args: argparse.Namespace, cfg: Config | None) -> dict[str, object]:
    """Flags win over [web] keys, which win over defaults."""
    web = cfg.web if cfg is not None else WebConfig()
    threshold = getattr(args, "threshold", None)
    return {
        "host": args.host or web.host,
        "port": args.port or web.port,
        "threshold": threshold if threshold is not None else web.threshold,
        "username": web.username,
        "password": web.password,
        "allowed_hosts": web.allowed_hosts,
        "max_clip_hours": web.max_clip_hours,
    }


def cmd_web(args: argparse.Namespace) -> int:
    from isr.web.app import run_web

    named = args.config or os.environ.get("ISR_CONFIG")
    cfg: Config | None = None
    if named or Path("config.ini").exists() or args.dir is None:
        cfg = resolve_config(args.config, allow_demo=True)
    directory = (
        Path(args.dir) if args.dir else (cfg.output_directory if cfg else Path("recordings"))
    )
    setup_logging(cfg.log_level if cfg else "INFO", None)
    known: dict[str, object] = {}  # for coverage: the config's sources and min_coverage
    if cfg is not None:
        known["min_coverage"] = cfg.alerts.min_coverage
        if not args.dir:
            known["sources"] = [s.name for s in cfg.sources]
    if args.archive is not None:
        known["mirror"] = _store_mirror(args, cfg, directory)
    run_web(directory, **_web_settings(args, cfg), **known)  # type: ignore[arg-type]
    return 0


def _store_mirror(args: argparse.Namespace, cfg: Config | None, directory: Path) -> object:
    """``isr web --archive``: the store named by the flag or the config, its endpoint
    and credentials from ``[archive]`` or (left empty) the environment, as boto3 reads
    it (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...)."""
    from isr.archive.mirror import StoreMirror
    from isr.archive.store import Store

    base = cfg.archive if cfg is not None else None
    if args.archive:
        try:
            bucket, prefix = split_s3_url(args.archive)
        except ValueError as exc:
            raise ConfigError(f"--archive: {exc}") from None
        archive = (
            dataclasses.replace(base, bucket=bucket, prefix=prefix)
            if base is not None
            else ArchiveConfig(bucket=bucket, prefix=prefix)
        )
    elif base is not None:
        archive = base
    else:
        raise ConfigError("--archive: no URL given and the config has no [archive] url")
    cache = (
        Path(args.cache)
        if args.cache
        else directory / ".isr" / "store" / archive.bucket / (archive.prefix or "_")
    )
    if args.cache_mb <= 0:
        raise ConfigError(f"--cache-mb: {args.cache_mb:g} is not a size in MB")
    return StoreMirror(
        Store(archive, every_recorder=True), cache, cache_bytes=int(args.cache_mb * 1e6)
    )


def cmd_run(args: argparse.Namespace) -> int:
    from isr.recorder import record_and_serve

    setup_logging("INFO")
    cfg = resolve_config(args.config, allow_demo=True)
    check_devices(cfg)
    setup_logging(cfg.log_level, cfg.log_file or None)
    log_warnings(cfg)
    asyncio.run(record_and_serve(cfg, **_web_settings(args, cfg)))  # type: ignore[arg-type]
    return 0


def _recordings_dir(args: argparse.Namespace) -> Path:
    """``--dir``, else the config's output directory (``isr web``'s rule)."""
    if args.dir:
        return Path(args.dir)
    named = args.config or os.environ.get("ISR_CONFIG")
    if named or Path("config.ini").exists():
        return resolve_config(args.config, allow_demo=False).output_directory
    return Path("recordings")


def cmd_timeline(args: argparse.Namespace) -> int:
    import time

    from isr.clock import local_zone
    from isr.timeline.index import TimelineIndex
    from isr.timeline.text import render
    from isr.timeline.times import resolve_span

    root = _recordings_dir(args)
    tz = local_zone()
    t0, t1 = resolve_span(args.start, args.end, tz, time.time())
    if not root.is_dir():
        raise QueryError(f"no recordings directory {str(root)!r}")
    index = TimelineIndex(root, tz)
    try:
        timeline = index.timeline(args.source, t0, t1)
    finally:
        index.close()
    zone = getattr(tz, "key", "")
    sys.stdout.write(render(timeline, tz, zone_name=zone if zone != "localtime" else ""))
    return 0


def cmd_clip(args: argparse.Namespace) -> int:
    from isr.clips.export import cmd_clip as clip

    return clip(args, lambda arg: resolve_config(arg, allow_demo=False))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "record": cmd_record,
        "check": cmd_check,
        "devices": cmd_devices,
        "web": cmd_web,
        "run": cmd_run,
        "timeline": cmd_timeline,
        "clip": cmd_clip,
        "verify": cmd_verify,
        "keygen": cmd_keygen,
        "report": cmd_report,
    }[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"isr: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except QueryError as exc:
        print(f"isr: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except sqlite3.Error as exc:  # the index by time (a disk error, a lock held too long)
        print(f"isr: the timeline index failed: {exc}", file=sys.stderr)
        return 1
    except IsrError as exc:
        print(f"isr: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the web port is taken
        print(f"isr: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
