"""``isr verify`` and ``isr keygen``: their options and what they run.

``cli.py`` registers them (``add_commands``) and maps errors to exit codes; a
verification's own answer is its exit status: 0 intact, 1 problems found (or, for
``--clip``, a part that cannot be proven yet), 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from isr.config import Config
from isr.errors import BadTime, ConfigError

ConfigLoader = Callable[[str | None], Config]


def add_commands(sub: Any, add_config: Callable[[Any], None]) -> None:
    v = sub.add_parser(
        "verify",
        help="re-hash the archive against its hash chains; exit 0 intact, 1 problems",
        description="Checks every chain under .isr/chain/ (each line's prev, each signed "
        "day), re-hashes every file the chains list and not deleted, and lists audio "
        "files no chain lists. Prints one line per problem and a summary; exits 0 when "
        "all is intact, 1 otherwise. Reads only: it runs while the recorder records "
        "(the file being recorded and a check still owed are not problems) and on a "
        "copy of the directory (--dir). With --clip FILE it verifies a clip instead: "
        "its manifest (FILE.json) against the archived files and their chain lines, "
        "and FILE against a re-cut of the manifest's ranges, byte for byte.",
    )
    where = v.add_mutually_exclusive_group()
    add_config(where)
    where.add_argument("--dir", default=None, help="recordings directory (default: the config's)")
    v.add_argument("--source", action="append", metavar="S", help="only this source (repeatable)")
    v.add_argument("--from", dest="first", metavar="D", help="first local day, YYYY-MM-DD")
    v.add_argument("--to", dest="last", metavar="D", help="last local day, YYYY-MM-DD")
    v.add_argument(
        "--key",
        metavar="PUBLIC",
        help="the public key (base64, or a .pub file) every day line must be signed with "
        "(default with a config: [evidence] signing_key + .pub, if there)",
    )
    v.add_argument(
        "--clip",
        metavar="FILE",
        help="verify the clip FILE (`isr clip`, /api/clip) against its manifest FILE.json, "
        "the archived files and the chain",
    )
    k = sub.add_parser(
        "keygen",
        help="make the Ed25519 key pair that signs each day's chain head",
        description="Writes a new Ed25519 key pair at [evidence] signing_key (the private "
        "key, mode 0600) and signing_key.pub, and prints the public key. Never "
        "overwrites a key.",
    )
    add_config(k)


def _day(text: str | None, flag: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadTime(f"{flag} {text!r}: not a day (YYYY-MM-DD)") from None


def cmd_verify(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    from isr.evidence.keys import public_path, read_public
    from isr.evidence.verify import verify

    if getattr(args, "clip", None):
        return _verify_clip(args, load_config)
    first, last = _day(args.first, "--from"), _day(args.last, "--to")
    public = read_public(args.key) if args.key else None
    extra: list[Path] = []
    if args.dir:
        root = Path(args.dir)
    else:
        cfg = load_config(args.config)
        root = cfg.output_directory
        extra = sorted({s.output_directory for s in cfg.sources} - {root})
        key = cfg.evidence.signing_key
        if public is None and key is not None and public_path(key).exists():
            public = read_public(str(public_path(key)))
    if not root.is_dir():
        raise BadTime(f"no recordings directory {str(root)!r}")
    report = verify(
        root, sources=args.source, first=first, last=last, public_key=public, extra_roots=extra
    )
    for line in report.problems:
        print(line)
    print(report.summary())
    sys.stdout.flush()
    return 0 if report.ok else 1


def _verify_clip(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    from isr.errors import QueryError
    from isr.evidence.clipverify import verify_clip
    from isr.evidence.keys import public_path, read_public

    if args.source or args.first or args.last:
        raise QueryError("--clip verifies one clip: it takes no --source, --from or --to")
    public = read_public(args.key) if args.key else None
    if args.dir:
        root = Path(args.dir)
    else:
        cfg = load_config(args.config)
        root = cfg.output_directory
        key = cfg.evidence.signing_key
        if public is None and key is not None and public_path(key).exists():
            public = read_public(str(public_path(key)))
    if not root.is_dir():
        raise QueryError(f"no recordings directory {str(root)!r}")
    report = verify_clip(Path(args.clip), root, public_key=public)
    for line in report.lines():
        print(line)
    print(report.summary())
    sys.stdout.flush()
    return 0 if report.ok else 1


def cmd_keygen(args: argparse.Namespace, load_config: ConfigLoader) -> int:
    from isr.evidence.keys import generate, public_path

    cfg = load_config(args.config)
    key = cfg.evidence.signing_key
    if key is None:
        raise ConfigError(
            "not set: name the private key's path first (e.g. signing_key = isr-signing.key)",
            file=cfg.path,
            section="evidence",
            key="signing_key",
        )
    public = generate(key)
    print(public)
    print(f"private key: {key} (mode 0600); public key: {public_path(key)}", file=sys.stderr)
    return 0
