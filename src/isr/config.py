"""The config: one table of keys, parsed into frozen, typed objects.

Every key is declared once in ``KEYS``; the parser, ``isr check``,
``config.example.ini`` and the docs test all read that table, so a key cannot be
parsed without being documented. Errors name the file, section and key
(``ConfigError``); unknown keys are warned about with the nearest known key.
"""

from __future__ import annotations

import ast
import configparser
import contextlib
import difflib
import hashlib
import logging
import math
import os
import re
import socket
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from isr import formats
from isr.errors import ConfigError

log = logging.getLogger("isr.config")

RESERVED_SECTIONS = ("general", "web", "alerts", "evidence", "archive")
SOURCE_TYPES = ("stream", "soundcard", "tone")
STREAM_FORMATS = ("auto", "mp3", "ogg", "aac", "flac", "opus", "hls")
PCM_FORMATS = ("wav", "flac")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Key:
    """One config key: where it may appear, its type, default and help."""

    name: str
    kind: str
    """``str``, ``int``, ``float``, ``choice`` or ``path``."""
    default: str
    help: str
    scope: str
    """``general`` (inherited by sources), ``stream``, ``soundcard``, ``tone``,
    ``pcm`` (soundcard and tone), ``source`` (every source), ``web``, ``alerts``,
    ``evidence``, ``archive``."""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    secret: bool = False


KEYS: tuple[Key, ...] = (
    # [general]: defaults every source inherits
    Key("output_directory", "path", "recordings", "Where recordings are written.", "general"),
    Key(
        "split_minutes",
        "float",
        "60",
        "Length of each file in minutes; files start on local wall-clock multiples of it "
        "counted from midnight. Fractions allowed (0.1 = 6 s).",
        "general",
        positive=True,
    ),
    Key(
        "filename_pattern",
        "str",
        "%Y%m%d_%H%M%S",
        "strftime pattern for file names, plus {source} for the section name; "
        "'/' makes subfolders. The extension is added by the format.",
        "general",
    ),
    Key(
        "max_retries",
        "int",
        "10",
        "Consecutive failed connections before a source gives up; 0 = retry forever "
        "(recommended for compliance logging).",
        "general",
        minimum=0,
    ),
    Key(
        "retry_delay_seconds",
        "float",
        "5",
        "Wait between retries (with up to 20 % jitter).",
        "general",
        minimum=0,
    ),
    Key("log_level", "choice", "INFO", "Logging level.", "general", choices=LOG_LEVELS),
    Key(
        "log_file",
        "str",
        "recorder.log",
        "Log file (logs also go to stdout); reopened when logrotate moves it. Empty = none.",
        "general",
    ),
    Key(
        "retention_days",
        "float",
        "0",
        "Delete recordings older than this many days; 0 = keep forever.",
        "general",
        minimum=0,
    ),
    Key(
        "min_free_mb",
        "int",
        "1024",
        "Alert when free space on the output disk falls below this many MiB.",
        "general",
        minimum=0,
    ),
    Key(
        "fsync_seconds",
        "float",
        "10",
        "Flush and fsync open files at least this often: the most a power cut loses.",
        "general",
        positive=True,
    ),
    Key(
        "metrics_port",
        "int",
        "",
        "Port for the recorder's own Prometheus metrics; empty = off.",
        "general",
        minimum=1,
        maximum=65535,
    ),
    Key(
        "shard",
        "str",
        "",
        "Record only this recorder's share of the sources: i/n records those whose name "
        "hashes to i modulo n (0 <= i < n); auto/n takes i from the host name's trailing "
        "-<number> (a Kubernetes StatefulSet's pods); empty = every source.",
        "general",
    ),
    # every source
    Key(
        "type",
        "choice",
        "",
        "Source type: stream, soundcard or tone.",
        "source",
        choices=SOURCE_TYPES,
    ),
    # type = stream
    Key(
        "url",
        "str",
        "",
        "http(s) URL of the stream; .m3u/.pls playlists resolve to their first stream; "
        "an HLS playlist (.m3u8, or a playlist Content-Type) is recorded as HLS.",
        "stream",
    ),
    Key("username", "str", "", "HTTP Basic auth user name for the stream.", "stream"),
    Key(
        "password",
        "str",
        "",
        "HTTP Basic auth password; never logged or shown.",
        "stream",
        secret=True,
    ),
    Key(
        "format",
        "choice",
        "auto",
        "Stream format: auto (Content-Type, confirmed by sniffing), mp3, aac, ogg, flac, "
        "opus, hls (an HLS playlist: its AAC or MP3 audio). For soundcard and tone: wav or flac.",
        "source",
        choices=STREAM_FORMATS + PCM_FORMATS,
    ),
    Key(
        "timeout_seconds",
        "float",
        "30",
        "No byte for this long means the connection is dead: reconnect. "
        "For HLS: no new segment for this long.",
        "stream",
        positive=True,
    ),
    Key(
        "hls_variant",
        "int",
        "",
        "HLS master playlists: the 0-based index of the variant stream to record, in "
        "playlist order; empty = the highest BANDWIDTH.",
        "stream",
        minimum=0,
    ),
    # type = soundcard / tone
    Key(
        "device",
        "str",
        "default",
        "ALSA capture device: default, monitor, part of a name or description, hw:X,Y, "
        "plughw:X,Y or any PCM name from the ALSA config.",
        "soundcard",
    ),
    Key("sample_rate", "int", "44100", "Samples per second.", "pcm", minimum=8000),
    Key("channels", "int", "2", "Number of channels.", "pcm", minimum=1),
    Key("frequency", "float", "440", "Frequency of the test tone in Hz.", "tone", positive=True),
    # [web]
    Key("host", "str", "127.0.0.1", "Address the web UI listens on.", "web"),
    Key("port", "int", "8080", "Port of the web UI.", "web", minimum=1, maximum=65535),
    Key(
        "threshold",
        "float",
        "0.05",
        "RMS level (0..1) at or above which a window counts as loud.",
        "web",
        minimum=0,
    ),
    Key("username", "str", "", "User name for HTTP Basic auth on the web UI.", "web"),
    Key(
        "password",
        "str",
        "",
        "Password for the web UI (needed with a username); never shown.",
        "web",
        secret=True,
    ),
    Key(
        "allowed_hosts",
        "str",
        "",
        "Host names the web UI answers to besides IP literals, localhost and this "
        "machine's own names (against DNS rebinding), separated by commas; * = any.",
        "web",
    ),
    Key(
        "max_clip_hours",
        "float",
        "24",
        "Longest span a clip (/api/clip, the timeline page's export) may cover, in hours.",
        "web",
        positive=True,
    ),
    # [alerts]
    Key("webhook_url", "str", "", "URL that receives a JSON POST for each alert.", "alerts"),
    Key("command", "str", "", "Command run for each alert, with the event in env.", "alerts"),
    Key(
        "silence_threshold_db",
        "float",
        "-50",
        "Level in dBFS below which PCM audio counts as dead air.",
        "alerts",
    ),
    Key(
        "silence_seconds",
        "float",
        "60",
        "Dead air for this long raises an alert.",
        "alerts",
        positive=True,
    ),
    Key(
        "min_coverage",
        "float",
        "0.999",
        "Alert (coverage_low) when a source's last 24 hours fall below this coverage, "
        "i.e. miss more than (1 - min_coverage) x 24 h (0.999: 86.4 s); coverage_ok "
        "when they recover. 0 = never.",
        "alerts",
        minimum=0,
        maximum=1,
    ),
    # [evidence]
    Key(
        "signing_key",
        "path",
        "",
        "Ed25519 private key from `isr keygen` that signs each day's chain head; empty = unsigned.",
        "evidence",
    ),
    # [archive]
    Key(
        "url",
        "str",
        "",
        "Off-site archive: s3://bucket/prefix of S3-compatible object storage; empty = off.",
        "archive",
    ),
    Key(
        "endpoint_url",
        "str",
        "",
        "The store's endpoint (MinIO, Ceph, R2, B2...); empty = AWS S3.",
        "archive",
    ),
    Key("region", "str", "", "The store's region; empty = as the environment says.", "archive"),
    Key(
        "access_key",
        "str",
        "",
        "Access key id; empty = the environment (AWS_ACCESS_KEY_ID, profiles...).",
        "archive",
        secret=True,
    ),
    Key(
        "secret_key",
        "str",
        "",
        "Secret access key; empty = the environment (AWS_SECRET_ACCESS_KEY...).",
        "archive",
        secret=True,
    ),
    Key(
        "recorder_id",
        "str",
        "",
        "This recorder's folder under the prefix; empty = the host name.",
        "archive",
    ),
    Key(
        "delete_local_after_days",
        "float",
        "0",
        "Delete local copies this many days after a file's end, once the store has "
        "confirmed them (fractions allowed); 0 = keep them as retention says.",
        "archive",
        minimum=0,
    ),
    Key(
        "max_lag_minutes",
        "float",
        "60",
        "Alert (archive_behind) when the oldest file waiting for upload is older than this.",
        "archive",
        positive=True,
    ),
)

_SOURCE_SCOPES = {
    "stream": ("general", "source", "stream"),
    "soundcard": ("general", "source", "soundcard", "pcm"),
    "tone": ("general", "source", "tone", "pcm"),
}


def keys_for(scope: str) -> list[Key]:
    """Keys valid in a section of that scope (``general``, a source type, ``web``...).

    ``[general]`` also takes every source key but ``type`` and ``url``, as a default
    for the sources it applies to.
    """
    if scope == "general":
        return [
            k
            for k in KEYS
            if k.scope in ("general", "source", "stream", "soundcard", "pcm", "tone")
            and k.name not in ("type", "url")
        ]
    scopes = _SOURCE_SCOPES.get(scope, (scope,))
    return [k for k in KEYS if k.scope in scopes]


def _convert(key: Key, raw: str, where: Callable[[str], ConfigError]) -> Any:
    value = raw.strip()
    if key.kind in ("str", "path"):
        return value
    if key.kind == "choice":
        canon = value.upper() if key.name == "log_level" else value.lower()
        if canon not in key.choices:
            raise where(f"{value!r} is not one of {', '.join(key.choices)}")
        return canon
    number: float
    try:
        number = int(value) if key.kind == "int" else float(value)
    except ValueError:
        kind = "a whole number" if key.kind == "int" else "a number"
        raise where(f"{value!r} is not {kind}") from None
    if not math.isfinite(number):
        raise where(f"{value!r} is not a finite number")
    if key.positive and number <= 0:
        raise where(f"must be greater than 0, got {value}")
    if key.minimum is not None and number < key.minimum:
        raise where(f"must be at least {key.minimum:g}, got {value}")
    if key.maximum is not None and number > key.maximum:
        raise where(f"must be at most {key.maximum:g}, got {value}")
    return number


def default_of(scope: str, name: str) -> Any:
    """The default of a key, converted as a config value would be: the dataclasses
    below and the command line take their defaults from the one key table."""
    for key in keys_for(scope):
        if key.name == name:
            if key.default == "":
                return None if key.kind in ("int", "float") else ""
            return _convert(key, key.default, ConfigError)
    raise KeyError(f"no key {name!r} in scope {scope!r}")


@dataclass(frozen=True)
class SourceConfig:
    """One source section, fully resolved with its inherited ``[general]`` keys."""

    name: str
    type: str
    output_directory: Path
    split_minutes: float
    filename_pattern: str
    max_retries: int
    retry_delay_seconds: float
    retention_days: float
    min_free_mb: int
    fsync_seconds: float
    format: str
    url: str = ""
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_seconds: float = default_of("stream", "timeout_seconds")
    hls_variant: int | None = None
    device: str = default_of("soundcard", "device")
    sample_rate: int = default_of("soundcard", "sample_rate")
    channels: int = default_of("soundcard", "channels")
    frequency: float = default_of("tone", "frequency")

    @property
    def split_seconds(self) -> float:
        return self.split_minutes * 60.0


@dataclass(frozen=True)
class WebConfig:
    host: str = default_of("web", "host")
    port: int = default_of("web", "port")
    threshold: float = default_of("web", "threshold")
    username: str = ""
    password: str = field(default="", repr=False)
    allowed_hosts: tuple[str, ...] = ()
    max_clip_hours: float = default_of("web", "max_clip_hours")


@dataclass(frozen=True)
class AlertsConfig:
    webhook_url: str = ""
    command: str = ""
    silence_threshold_db: float = default_of("alerts", "silence_threshold_db")
    silence_seconds: float = default_of("alerts", "silence_seconds")
    min_coverage: float = default_of("alerts", "min_coverage")


@dataclass(frozen=True)
class EvidenceConfig:
    signing_key: Path | None = None
    """Absolute, or relative to the config file's directory; None = unsigned."""


@dataclass(frozen=True)
class ArchiveConfig:
    """``[archive]``: uploads of closed files to S3-compatible object storage."""

    bucket: str
    prefix: str
    """Without slashes at either end; may be empty."""
    endpoint_url: str = ""
    region: str = ""
    access_key: str = field(default="", repr=False)
    secret_key: str = field(default="", repr=False)
    recorder_id: str = ""
    delete_local_after_days: float = 0.0
    max_lag_minutes: float = default_of("archive", "max_lag_minutes")

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class Shard:
    """``[general] shard = i/n``: this recorder's share of the sources, so that n
    recorders (pods of one StatefulSet) can share one config and split its sources."""

    index: int
    count: int
    host: str | None = None
    """The host name ``auto`` read the index from; None for a number."""

    def holds(self, source: str) -> bool:
        return shard_of(source, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}" + (f" (auto: {self.host})" if self.host else "")


def shard_of(source: str, count: int) -> int:
    """The shard a source's name falls in: a hash that every machine and every
    Python computes alike (``hash()`` is salted per process)."""
    digest = hashlib.sha256(source.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str, host: str | None = None) -> Shard:
    """``i/n`` or ``auto/n``; ValueError says what is wrong."""
    match = re.fullmatch(r"\s*(\d+|auto)\s*/\s*(\d+)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not i/n or auto/n (e.g. 0/2)")
    count = int(match[2])
    if not 1 <= count <= 10_000:
        raise ValueError(f"{text!r}: n must be between 1 and 10000")
    if match[1] != "auto":
        index = int(match[1])
        if index >= count:
            raise ValueError(f"{text!r}: i must be below n (shards are numbered from 0)")
        return Shard(index, count)
    name = host if host is not None else socket.gethostname()
    ordinal = re.search(r"-(\d+)$", name.split(".")[0])
    if ordinal is None:
        raise ValueError(f"auto: the host name {name!r} does not end in -<number>")
    index = int(ordinal[1])
    if index >= count:
        raise ValueError(f"auto: the host name {name!r} gives shard {index}, not below {count}")
    return Shard(index, count, host=name)


@dataclass(frozen=True)
class Config:
    """The whole config file, validated."""

    path: str
    output_directory: Path
    log_level: str
    log_file: str
    metrics_port: int | None
    sources: tuple[SourceConfig, ...]
    web: WebConfig
    alerts: AlertsConfig
    warnings: tuple[str, ...] = ()
    evidence: EvidenceConfig = EvidenceConfig()
    archive: ArchiveConfig | None = None
    """None without ``[archive] url``: nothing is uploaded."""
    shard: Shard | None = None
    """None: this recorder records every source."""
    other_shards: tuple[str, ...] = ()
    """The config's sources that other shards record (not in ``sources``)."""


DEMO_CONFIG = """\
# Embedded demo: used by `isr record` when there is no config.ini.
[general]
output_directory = recordings
split_minutes = 1

[tone]
type = tone
frequency = 440
"""


def _nearest(name: str, candidates: Iterable[str]) -> str:
    names = list(candidates)
    first = name.split()[0] if name.split() else name
    if first != name and first in {k.name for k in KEYS}:
        # "url http://..." parses as the key "url http": the '=' is missing.
        return f" (missing '=' after {first!r}?)"
    match = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def load(path: str | os.PathLike[str] | None = None, *, text: str | None = None) -> Config:
    """Read and validate a config file (or ``text``, shown under ``path``'s name)."""
    file = os.fspath(path) if path is not None else "<config>"
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00none")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        if text is None:
            with open(file, encoding="utf-8") as fh:
                parser.read_file(fh, source=file)
        else:
            parser.read_string(text, source=file)
    except FileNotFoundError:
        raise ConfigError("file not found", file=file) from None
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"line {exc.lineno}: {exc.line.strip()!r} comes before any [section]", file=file
        ) from None
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0] if exc.errors else (0, "''")
        with contextlib.suppress(ValueError, SyntaxError):
            line = ast.literal_eval(line)  # configparser keeps the line as its repr
        raise ConfigError(
            f"line {lineno}: {line.strip()!r} is not 'key = value'", file=file
        ) from None
    except (configparser.Error, UnicodeDecodeError, OSError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot parse: {first_line}", file=file) from None
    return _build(file, parser)


def _section_values(
    file: str, parser: configparser.ConfigParser, section: str, scope: str, warnings: list[str]
) -> dict[str, Any]:
    """Converted values of one section; warns about keys that do not belong there."""
    known = {k.name: k for k in keys_for(scope)}
    values: dict[str, Any] = {}
    for name, raw in parser.items(section):
        key = known.get(name)
        if key is None:
            all_names = {k.name for k in KEYS}
            if name in all_names:
                msg = f"{file}: [{section}] {name}: not used in this section; ignored"
            else:
                msg = f"{file}: [{section}] {name}: unknown key{_nearest(name, known)}; ignored"
            warnings.append(msg)
            continue

        def where(message: str, _key: str = name) -> ConfigError:
            return ConfigError(message, file=file, section=section, key=_key)

        values[name] = _convert(key, raw, where)
    return values


def _defaults(scope: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys_for(scope):
        if key.default == "":
            out[key.name] = None if key.kind in ("int", "float") else ""
            continue
        out[key.name] = _convert(key, key.default, lambda m: ConfigError(m))
    return out


def _build(file: str, parser: configparser.ConfigParser) -> Config:
    warnings: list[str] = []
    lowered = {s.lower(): s for s in parser.sections()}
    general_name = lowered.get("general")
    general = _defaults("general")
    if general_name is not None:
        general.update(_section_values(file, parser, general_name, "general", warnings))
    base_dir = Path(file).parent if file != "<config>" else Path(".")

    web_name = lowered.get("web")
    web_vals = _defaults("web")
    if web_name is not None:
        web_vals.update(_section_values(file, parser, web_name, "web", warnings))
        if web_vals["username"] and not web_vals["password"]:
            raise ConfigError(
                "missing: a username needs a password (without one anybody gets in)",
                file=file,
                section=web_name,
                key="password",
            )
    alerts_name = lowered.get("alerts")
    alerts_vals = _defaults("alerts")
    if alerts_name is not None:
        alerts_vals.update(_section_values(file, parser, alerts_name, "alerts", warnings))
    evidence_name = lowered.get("evidence")
    evidence_vals = _defaults("evidence")
    if evidence_name is not None:
        evidence_vals.update(_section_values(file, parser, evidence_name, "evidence", warnings))
    signing_key = Path(evidence_vals["signing_key"]) if evidence_vals["signing_key"] else None
    if signing_key is not None and not signing_key.is_absolute():
        signing_key = base_dir / signing_key

    archive = _build_archive(file, parser, lowered.get("archive"), warnings)

    sources: list[SourceConfig] = []
    for section in parser.sections():
        if section.lower() in RESERVED_SECTIONS:
            continue
        sources.append(_build_source(file, parser, section, general, base_dir, warnings))
    if not sources:
        raise ConfigError(
            "no source sections: add a section with type = stream, soundcard or tone",
            file=file,
        )
    _check_collisions(file, sources)
    shard = None
    others: list[str] = []
    if general["shard"]:
        try:
            shard = parse_shard(general["shard"])
        except ValueError as exc:
            raise ConfigError(
                str(exc), file=file, section=general_name or "general", key="shard"
            ) from None
        others = [s.name for s in sources if not shard.holds(s.name)]
        sources = [s for s in sources if shard.holds(s.name)]
        if not sources:
            warnings.append(
                f"[{general_name}] shard = {general['shard']}: shard {shard.index} of "
                f"{shard.count} holds none of the {len(others)} source(s): nothing is recorded"
            )

    out_dir = Path(general["output_directory"] or "recordings")
    if not out_dir.is_absolute():
        out_dir = base_dir / out_dir
    return Config(
        path=file,
        output_directory=out_dir,
        log_level=general["log_level"],
        log_file=general["log_file"],
        metrics_port=int(general["metrics_port"]) if general["metrics_port"] else None,
        sources=tuple(sources),
        web=WebConfig(
            host=web_vals["host"] or "127.0.0.1",
            port=int(web_vals["port"]),
            threshold=float(web_vals["threshold"]),
            username=web_vals["username"],
            password=web_vals["password"],
            allowed_hosts=_host_list(web_vals["allowed_hosts"]),
            max_clip_hours=float(web_vals["max_clip_hours"]),
        ),
        alerts=AlertsConfig(
            webhook_url=alerts_vals["webhook_url"],
            command=alerts_vals["command"],
            silence_threshold_db=float(alerts_vals["silence_threshold_db"]),
            silence_seconds=float(alerts_vals["silence_seconds"]),
            min_coverage=float(alerts_vals["min_coverage"]),
        ),
        warnings=tuple(warnings),
        evidence=EvidenceConfig(signing_key=signing_key),
        archive=archive,
        shard=shard,
        other_shards=tuple(others),
    )


def _build_archive(
    file: str, parser: configparser.ConfigParser, section: str | None, warnings: list[str]
) -> ArchiveConfig | None:
    if section is None:
        return None
    vals = _defaults("archive")
    vals.update(_section_values(file, parser, section, "archive", warnings))
    url = vals["url"]
    if not url:
        return None
    try:
        bucket, prefix = split_s3_url(url)
    except ValueError as exc:
        raise ConfigError(str(exc), file=file, section=section, key="url") from None
    endpoint = vals["endpoint_url"]
    if endpoint and urlsplit(endpoint).scheme.lower() not in ("http", "https"):
        raise ConfigError(
            f"{endpoint!r} is not an http(s) URL", file=file, section=section, key="endpoint_url"
        )
    if bool(vals["access_key"]) != bool(vals["secret_key"]):
        missing = "secret_key" if vals["access_key"] else "access_key"
        raise ConfigError(
            "missing: set access_key and secret_key together (or neither, for the environment)",
            file=file,
            section=section,
            key=missing,
        )
    recorder_id = vals["recorder_id"] or socket.gethostname() or "isr"
    if "/" in recorder_id or recorder_id in (".", ".."):
        raise ConfigError(
            f"{recorder_id!r} cannot name a folder", file=file, section=section, key="recorder_id"
        )
    return ArchiveConfig(
        bucket=bucket,
        prefix=prefix,
        endpoint_url=endpoint,
        region=vals["region"],
        access_key=vals["access_key"],
        secret_key=vals["secret_key"],
        recorder_id=recorder_id,
        delete_local_after_days=float(vals["delete_local_after_days"] or 0),
        max_lag_minutes=float(vals["max_lag_minutes"]),
    )


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` as ``(bucket, prefix)``; ValueError says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"{url!r} is not s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


def _host_list(text: str) -> tuple[str, ...]:
    """``allowed_hosts``: names separated by commas or spaces, kept lower-case."""
    return tuple(dict.fromkeys(p.lower() for p in text.replace(",", " ").split()))


def _build_source(
    file: str,
    parser: configparser.ConfigParser,
    section: str,
    general: dict[str, Any],
    base_dir: Path,
    warnings: list[str],
) -> SourceConfig:
    def err(key: str, message: str) -> ConfigError:
        return ConfigError(message, file=file, section=section, key=key)

    if section.startswith("."):
        raise ConfigError("a source name may not start with '.'", file=file, section=section)
    if parser.has_option(section, "shard"):
        raise err("shard", "a shard is the whole recorder's: set it in [general]")
    if not parser.has_option(section, "type"):
        near = difflib.get_close_matches(section.lower(), RESERVED_SECTIONS, n=1, cutoff=0.7)
        hint = f" (or did you mean [{near[0]}]?)" if near else ""
        raise err("type", f"missing: set type = stream, soundcard or tone{hint}")
    type_key = next(k for k in KEYS if k.name == "type")
    stype = _convert(type_key, parser.get(section, "type"), lambda m: err("type", m))
    valid = {k.name for k in keys_for(stype)}
    values = _defaults(stype)
    values.update({k: v for k, v in general.items() if k in valid})
    values.update(_section_values(file, parser, section, stype, warnings))

    fmt = values.get("format") or "auto"
    if stype == "stream":
        url = values.get("url", "")
        if not url:
            raise err("url", "missing: a stream source needs url = http(s)://...")
        _check_url(url, lambda m: err("url", m))
        if fmt not in STREAM_FORMATS:
            raise err("format", f"{fmt!r} is for soundcards; a stream takes {STREAM_FORMATS}")
    else:
        if fmt == "auto":
            fmt = "wav"
        if fmt not in PCM_FORMATS:
            raise err("format", f"{fmt!r} is not one of wav, flac for a {stype} source")
    pattern = values["filename_pattern"]
    _check_pattern(pattern, lambda m: err("filename_pattern", m))
    out_dir = Path(values["output_directory"] or "recordings")
    if not out_dir.is_absolute():
        out_dir = base_dir / out_dir
    allowed = {f.name for f in SourceConfig.__dataclass_fields__.values()}
    kwargs = {k: v for k, v in values.items() if k in allowed and v is not None}
    kwargs.update(name=section, type=stype, output_directory=out_dir, format=fmt)
    return SourceConfig(**kwargs)


def _check_url(url: str, err: Callable[[str], ConfigError]) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise err(f"must start with http:// or https://, got {parts.scheme or 'no scheme'}")
    if not parts.hostname:
        raise err("has no host name")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise err(
            "has a port that is not a number (a password with '/', '?', '#' or '@' "
            "must be percent-encoded, e.g. %2F)"
        ) from None


def _check_pattern(pattern: str, err: Callable[[str], ConfigError]) -> None:
    if not pattern.strip():
        raise err("is empty")
    if pattern.startswith("/"):
        raise err("must be relative to output_directory (no leading '/')")
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    except ValueError as exc:
        raise err(f"bad braces: {exc}") from None
    for f in fields:
        if f != "source":
            raise err(f"unknown placeholder {{{f}}}; only {{source}} is known")
    sample = render_pattern(pattern, "x", datetime(2026, 1, 2, 3, 4, 5))
    if any(part in ("", ".", "..") for part in sample.split("/")):
        raise err("makes an empty, '.' or '..' path part")
    if "%S" not in pattern and "%T" not in pattern and "%s" not in pattern:
        log.debug("filename_pattern %r has no seconds; short splits will collide", pattern)


def render_pattern(pattern: str, source: str, when: datetime) -> str:
    """File name (without extension) for a file starting at ``when``."""
    safe_source = source.replace("/", "_")
    return when.strftime(pattern.replace("{source}", safe_source.replace("%", "%%")))


def _check_collisions(file: str, sources: list[SourceConfig]) -> None:
    """Two sources writing the same paths would fight over every file name."""
    seen: dict[tuple[str, str], str] = {}
    probe = datetime(2026, 1, 2, 3, 4, 5)
    for src in sources:
        rendered = render_pattern(src.filename_pattern, src.name, probe)
        path = os.path.normpath(os.path.join(os.fspath(src.output_directory), rendered))
        ext_family = "pcm" if src.type in ("soundcard", "tone") else "stream"
        key = (path, ext_family if src.format == "auto" else src.format)
        other = seen.get((path, "any"))
        if other is None:
            other = seen.get(key)
        if other is not None:
            raise ConfigError(
                f"writes the same file names as [{other}]; put {{source}} in "
                f"filename_pattern, e.g. {{source}}/%Y%m%d_%H%M%S",
                file=file,
                section=src.name,
                key="filename_pattern",
            )
        seen[(path, "any")] = src.name


def describe(cfg: Config) -> str:
    """Human-readable resolved config for ``isr check``; secrets are masked."""
    from isr.urls import redact_url

    lines = [f"config: {cfg.path}", f"output_directory: {cfg.output_directory}"]
    lines.append(f"log_level: {cfg.log_level}  log_file: {cfg.log_file or '(none)'}")
    if cfg.shard is not None:
        lines.append(
            f"shard: {cfg.shard}: records {len(cfg.sources)} of "
            f"{len(cfg.sources) + len(cfg.other_shards)} sources; other shards record: "
            + (", ".join(cfg.other_shards) or "(none)")
        )
    for src in cfg.sources:
        lines.append(f"[{src.name}] type={src.type}")
        for key in keys_for(src.type):
            if key.name in ("type", "log_level", "log_file", "metrics_port"):
                continue
            value = getattr(src, key.name, None)
            if value is None or value == "":
                continue
            if key.secret:
                value = "********" if value else ""
            elif key.name == "url":
                value = redact_url(str(value))
            lines.append(f"    {key.name} = {value}")
        lines.append(
            f"    files: {render_pattern(src.filename_pattern, src.name, datetime.now())}"
            f"{extension_hint(src)}"
        )
    web = []
    if cfg.web.username or cfg.web.password:
        web.append("auth=on")
    if cfg.web.allowed_hosts:
        web.append("allowed_hosts=" + ",".join(cfg.web.allowed_hosts))
    if web:
        lines.append(f"[web] host={cfg.web.host} port={cfg.web.port} " + " ".join(web))
    if cfg.archive is not None:
        a = cfg.archive
        lines.append(
            f"[archive] {a.url} recorder_id={a.recorder_id}"
            + (f" endpoint_url={redact_url(a.endpoint_url)}" if a.endpoint_url else "")
            + (f" region={a.region}" if a.region else "")
            + (" credentials=config" if a.access_key else " credentials=environment")
            + f" delete_local_after_days={a.delete_local_after_days:g}"
            f" max_lag_minutes={a.max_lag_minutes:g}"
        )
    return "\n".join(lines)


def extension_hint(src: SourceConfig) -> str:
    """The files' extension, if the format alone tells it (an Ogg stream's comes
    from its first link: ``.ogg`` or ``.oga``)."""
    if src.type != "stream":
        return "." + src.format
    entry = formats.by_name(src.format)
    return entry.extensions[0] if entry and len(entry.extensions) == 1 else ".<by stream>"


_EXAMPLE_SECTIONS = (
    (
        "general",
        "general",
        "Defaults: every source section inherits these keys and may override them.",
    ),
    ("radio1", "stream", "A stream source: Icecast, SHOUTcast v1/v2, or a .m3u/.pls playlist URL."),
    ("radio2", "stream", "An HLS source: a live .m3u8 playlist, its audio as served."),
    ("studio", "soundcard", "A soundcard source (ALSA, through arecord). See `isr devices`."),
    ("tone", "tone", "A generated test tone: a demo, and a health check of disk and pipeline."),
    ("web", "web", "The web UI (`isr web`, `isr run`)."),
    ("alerts", "alerts", "Alerts on failures, low disk, dead air and coverage."),
    ("evidence", "evidence", "The hash chain's signing key (see `isr keygen`, `isr verify`)."),
    ("archive", "archive", "Off-site archive: closed files, sidecars and chains to S3 (off)."),
)
_EXAMPLE_VALUES = {
    ("general", "max_retries"): "0",
    ("general", "filename_pattern"): "{source}/%Y%m%d_%H%M%S",
    ("radio1", "url"): "http://127.0.0.1:8000/live.mp3",
    ("radio2", "url"): "https://example.org/radio2/master.m3u8",
    ("radio2", "format"): "hls",
}


def render_example() -> str:
    """``config.example.ini``, made from ``KEYS`` so it documents every key.

    Keys a section inherits from ``[general]`` are listed there only; values are
    the defaults (commented out) except where a real config must set them.
    """
    lines = [
        "# ISR example config: every key, with its default. Copy to config.ini and edit.",
        "# Generated from src/isr/config.py (KEYS); tests/test_docs.py keeps it in step.",
        "# For compliance logging set max_retries = 0 (never give up on a source).",
    ]
    for section, scope, intro in _EXAMPLE_SECTIONS:
        lines += ["", f"# {intro}", f"[{section}]"]
        for key in keys_for(scope):
            if (scope == "general") != (key.scope == "general"):
                continue
            value = _EXAMPLE_VALUES.get((section, key.name))
            if key.name == "type":
                value = scope
            if key.name == "format" and scope in ("soundcard", "tone"):
                value = None
                default = "wav"
            else:
                default = key.default
            choices = (
                f" One of: {', '.join(key.choices)}." if key.choices and key.name != "type" else ""
            )
            if key.name == "format" and scope in ("soundcard", "tone"):
                choices = " One of: wav, flac."
            elif key.name == "format":
                choices = " One of: " + ", ".join(STREAM_FORMATS) + "."
            help_text = key.help if key.name != "format" else "Output format."
            lines.append(f"# {help_text}{choices}")
            if value is not None:
                lines.append(f"{key.name} = {value}")
            else:
                lines.append(f"#{key.name} = {default}".rstrip())
    return "\n".join(lines) + "\n"
