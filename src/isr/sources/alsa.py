"""ALSA capture devices: listing them and resolving ``device =`` to a PCM name.

Both lists come from the real ``arecord`` (alsa-utils): ``arecord -L`` names every
capture PCM the ALSA config defines with a hint (cards, ``dsnoop``/``plug``
devices of ``/etc/asound.conf``, the ``pulse`` plugin), ``arecord -l`` gives the
hardware: card and device numbers and names. The parsers and the resolver are
pure functions; only ``list_capture_devices`` runs anything.

``device =`` resolves, in this order:

- ``default`` is ALSA's default PCM;
- an exact PCM name (``shared_mic``, ``hw:CARD=PCH,DEV=0``), case-sensitive, then
  case-insensitive;
- ``hw:X,Y``/``plughw:X,Y`` (X a card number or id) when that card and device exist;
- ``monitor``: the first capture PCM whose name or description says monitor or
  loopback;
- otherwise a case-insensitive part of a name or description. The PCMs of one
  card device count as one match (``plughw`` is preferred: it converts format and
  rate); matches on different devices are ambiguous.

Anything unmatched or ambiguous is a ``ConfigError`` on ``device`` that lists the
candidates.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from isr.errors import ConfigError, DeviceError

ARECORD_TIMEOUT = 10.0
HIDDEN = frozenset({"null"})
"""Listed by ``arecord -L`` but never what a part of a name means."""
PREFERENCE = ("plughw", "sysdefault", "default", "hw", "dsnoop")
"""Which PCM of one card device a partial name picks, best first."""
MONITOR_WORDS = ("monitor", "loopback")

_CARD_LINE = re.compile(r"^card (\d+): (\S+) \[(.*)\], device (\d+): (.*) \[(.*)\]\s*$")
_HW_SHORT = re.compile(r"^(hw|plughw):([^,=:\s]+)(?:,(\d+))?(?:,(\d+))?$")


@dataclass(frozen=True)
class HardwareDevice:
    """One capture device of ``arecord -l``."""

    card: int
    card_id: str
    card_name: str
    device: int
    device_name: str


@dataclass(frozen=True)
class CaptureDevice:
    """One capture PCM: ``pcm`` is what to put in ``device =``."""

    pcm: str
    description: str = ""
    card: int | None = None
    device: int | None = None
    name: str = ""
    """The card (and device) name from ``arecord -l``, for hardware PCMs."""


def parse_pcm_list(text: str) -> list[tuple[str, str]]:
    """``arecord -L`` output -> ``(pcm name, description)``; description lines are
    joined with " / "."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():
            if out:
                out[-1][1].append(line.strip())
        else:
            out.append((line.strip(), []))
    return [(name, " / ".join(desc)) for name, desc in out]


def parse_hardware_list(text: str) -> list[HardwareDevice]:
    """``arecord -l`` output -> its card devices (the Subdevice lines are ignored)."""
    found = []
    for line in text.splitlines():
        m = _CARD_LINE.match(line)
        if m:
            found.append(
                HardwareDevice(
                    card=int(m[1]),
                    card_id=m[2],
                    card_name=m[3],
                    device=int(m[4]),
                    device_name=m[6] or m[5],
                )
            )
    return found


def _pcm_args(pcm: str) -> dict[str, str]:
    """``hw:CARD=PCH,DEV=0`` -> ``{"CARD": "PCH", "DEV": "0"}``."""
    _, _, args = pcm.partition(":")
    pairs = (a.split("=", 1) for a in args.split(",") if "=" in a)
    return {k.strip().upper(): v.strip() for k, v in pairs}


def _find_card(hardware: Sequence[HardwareDevice], card: str) -> list[HardwareDevice]:
    return [h for h in hardware if str(h.card) == card or h.card_id == card]


def merge_devices(
    pcms: Sequence[tuple[str, str]], hardware: Sequence[HardwareDevice]
) -> list[CaptureDevice]:
    """Join both lists: card numbers and names for card PCMs, and a ``hw:X,Y`` entry
    for any hardware device that ``arecord -L`` did not show."""
    devices = []
    seen_hw: set[tuple[int, int]] = set()
    for pcm, description in pcms:
        args = _pcm_args(pcm)
        card = _find_card(hardware, args["CARD"]) if "CARD" in args else []
        card_no = card[0].card if card else None
        dev_no: int | None = None
        name = card[0].card_name if card else ""
        if card and "DEV" in args and args["DEV"].isdigit():
            dev_no = int(args["DEV"])
            hw = next((h for h in card if h.device == dev_no), None)
            if hw is not None:
                name = f"{hw.card_name}: {hw.device_name}"
                seen_hw.add((hw.card, hw.device))
        devices.append(CaptureDevice(pcm, description, card_no, dev_no, name))
    for hw in hardware:
        if (hw.card, hw.device) not in seen_hw:
            devices.append(
                CaptureDevice(
                    f"hw:{hw.card},{hw.device}",
                    f"{hw.card_name}, {hw.device_name} / Direct hardware device",
                    hw.card,
                    hw.device,
                    f"{hw.card_name}: {hw.device_name}",
                )
            )
    return devices


def _run_arecord(arg: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("arecord")
    if exe is None:
        raise DeviceError("arecord not found: install alsa-utils (apt install alsa-utils)")
    try:
        return subprocess.run(
            [exe, arg],
            capture_output=True,
            text=True,
            timeout=ARECORD_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise DeviceError(f"arecord {arg} did not answer within {ARECORD_TIMEOUT:.0f} s") from None


def list_capture_devices() -> list[CaptureDevice]:
    """Every capture PCM and device, from the real ``arecord -L`` and ``arecord -l``.

    ``arecord -l`` fails when there is no sound card at all; that is an empty
    hardware list, not an error (PCMs from the ALSA config still exist).
    """
    pcms = parse_pcm_list(_run_arecord("-L").stdout)
    hardware = parse_hardware_list(_run_arecord("-l").stdout)
    return merge_devices(pcms, hardware)


def format_device_table(devices: Sequence[CaptureDevice]) -> str:
    """The table of ``isr devices``: the value for ``device =`` first."""
    if not devices:
        return "no ALSA capture devices found (is a sound card present? see `arecord -l`)"
    rows = [("device =", "card", "dev", "name", "description")]
    for d in devices:
        rows.append(
            (
                d.pcm,
                "" if d.card is None else str(d.card),
                "" if d.device is None else str(d.device),
                d.name,
                d.description,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


# -- resolving device = --------------------------------------------------------------


def _group_key(d: CaptureDevice) -> tuple[object, ...]:
    """PCMs that open the same card device (or the same named PCM) are one match."""
    if d.card is None:
        return ("pcm", d.pcm)
    return ("card", d.card, d.device)


def _rank(d: CaptureDevice) -> int:
    prefix = d.pcm.partition(":")[0]
    return PREFERENCE.index(prefix) if prefix in PREFERENCE else len(PREFERENCE)


def _groups(matches: Sequence[CaptureDevice]) -> list[list[CaptureDevice]]:
    """Group matches by device; card-level PCMs (no DEV=) join their card's only device."""
    groups: dict[tuple[object, ...], list[CaptureDevice]] = {}
    for d in matches:
        if d.card is not None and d.device is None:
            continue
        groups.setdefault(_group_key(d), []).append(d)
    for d in matches:
        if d.card is not None and d.device is None:
            same_card = [k for k in groups if k[0] == "card" and k[1] == d.card]
            key = same_card[0] if len(same_card) == 1 else ("card", d.card, None)
            if len(same_card) > 1:
                continue  # says nothing about which device of the card
            groups.setdefault(key, []).append(d)
    return list(groups.values())


def _best(group: Sequence[CaptureDevice]) -> str:
    return min(group, key=_rank).pcm


def _listing(devices: Sequence[CaptureDevice]) -> str:
    shown = [
        f"{d.pcm} ({d.description})" if d.description else d.pcm
        for d in devices
        if d.pcm not in HIDDEN
    ]
    return "; ".join(shown) if shown else "none (no capture device found)"


def resolve_device(
    name: str, devices: Sequence[CaptureDevice], *, file: str = "", section: str = ""
) -> str:
    """The PCM name to give ``arecord -D`` for ``device = name``.

    Raises ``ConfigError`` (key ``device``) naming the candidates when nothing or
    more than one device matches.
    """

    def fail(message: str, candidates: Sequence[CaptureDevice]) -> ConfigError:
        return ConfigError(
            f"{message}; candidates: {_listing(candidates)} (see `isr devices`)",
            file=file,
            section=section,
            key="device",
        )

    text = name.strip()
    if text in ("", "default"):
        return "default"
    for d in devices:
        if d.pcm == text:
            return d.pcm
    for d in devices:
        if d.pcm.lower() == text.lower():
            return d.pcm
    hardware = [d for d in devices if d.card is not None and d.device is not None]
    short = _HW_SHORT.match(text)
    if short is not None:
        card, dev = short[2], int(short[3] or 0)
        if any(
            (str(d.card) == card or _pcm_args(d.pcm).get("CARD") == card) and d.device == dev
            for d in hardware
        ):
            return text
        raise fail(f"{text!r}: there is no capture device {dev} on card {card}", hardware)
    if ":" in text:
        card_arg = _pcm_args(text).get("CARD")
        if card_arg is not None and any(
            d.card is not None and _pcm_args(d.pcm).get("CARD") == card_arg for d in devices
        ):
            return text  # another plugin on a card that exists (dsnoop:CARD=..., front:...)
        raise fail(f"{text!r} is not a capture PCM that `arecord -L` lists", devices)
    visible = [d for d in devices if d.pcm not in HIDDEN]
    if text.lower() == "monitor":
        matches = [
            d
            for d in visible
            if any(w in f"{d.pcm} {d.description} {d.name}".lower() for w in MONITOR_WORDS)
        ]
        if not matches:
            raise fail(
                "no capture device whose name or description says monitor or loopback", visible
            )
        return _best(_groups(matches)[0])
    needle = text.lower()
    matches = [d for d in visible if needle in f"{d.pcm}\n{d.description}\n{d.name}".lower()]
    if not matches:
        raise fail(f"{text!r} matches no capture device", visible)
    groups = _groups(matches)
    if len(groups) > 1:
        raise fail(
            f"{text!r} is ambiguous: it matches {len(groups)} devices; "
            "write more of the name or use one of these",
            [min(g, key=_rank) for g in groups],
        )
    return _best(groups[0])


def resolve_configured_device(name: str, *, file: str = "", section: str = "") -> str:
    """``resolve_device`` against the devices present now; for ``isr check``.

    A missing ``arecord`` is a ``ConfigError`` too: the source could never record.
    """
    try:
        devices = list_capture_devices()
    except DeviceError as exc:
        raise ConfigError(str(exc), file=file, section=section, key="device") from None
    return resolve_device(name, devices, file=file, section=section)
