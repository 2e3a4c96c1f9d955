"""The ``isr`` command line. The only place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from isr import __version__
from isr.config import DEMO_CONFIG, Config, describe, load
from isr.errors import ConfigError, IsrError
from isr.log import setup_logging

EXIT_CONFIG = 2
log = logging.getLogger("isr")


def _add_config(p: argparse.ArgumentParser) -> None:
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
    check = sub.add_parser("check", help="validate the config and print every source as resolved")
    _add_config(check)
    return parser


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


def cmd_check(args: argparse.Namespace) -> int:
    cfg = resolve_config(args.config, allow_demo=False)
    for warning in cfg.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(describe(cfg))
    print("config OK")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from isr.recorder import record  # imported late: `isr check` stays light

    setup_logging("INFO")
    cfg = resolve_config(args.config, allow_demo=True)
    setup_logging(cfg.log_level, cfg.log_file or None)
    asyncio.run(record(cfg))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"record": cmd_record, "check": cmd_check}[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"isr: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except IsrError as exc:
        print(f"isr: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
