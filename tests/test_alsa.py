"""Capture device listing and ``device =`` resolution: pure parsers on captured
``arecord -L``/``-l`` output, then the real arecord against a test asound.conf."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from isr.errors import ConfigError
from isr.sources.alsa import (
    CaptureDevice,
    format_device_table,
    list_capture_devices,
    merge_devices,
    parse_hardware_list,
    parse_pcm_list,
    resolve_configured_device,
    resolve_device,
)
from tests.support.alsa import (
    DESC_LOOP,
    DESC_SHARED,
    DESC_TEST,
    PCM_LOOP,
    PCM_SHARED,
    PCM_TEST,
    TestCard,
)
from tests.support.tools import require_tool

# Captured on a desktop with an onboard HDA codec, a USB microphone and snd-aloop,
# plus a dsnoop PCM from /etc/asound.conf.
ARECORD_L = """\
null
    Discard all samples (playback) or generate zero samples (capture)
shared_mic
    Studio microphone, shared through dsnoop
hw:CARD=PCH,DEV=0
    HDA Intel PCH, ALC892 Analog
    Direct hardware device without any conversions
hw:CARD=PCH,DEV=2
    HDA Intel PCH, ALC892 Alt Analog
    Direct hardware device without any conversions
plughw:CARD=PCH,DEV=0
    HDA Intel PCH, ALC892 Analog
    Hardware device with all software conversions
plughw:CARD=PCH,DEV=2
    HDA Intel PCH, ALC892 Alt Analog
    Hardware device with all software conversions
sysdefault:CARD=PCH
    HDA Intel PCH, ALC892 Analog
    Default Audio Device
front:CARD=PCH,DEV=0
    HDA Intel PCH, ALC892 Analog
    Front output / input
dsnoop:CARD=PCH,DEV=0
    HDA Intel PCH, ALC892 Analog
    Direct sample snooping device
hw:CARD=Device,DEV=0
    USB PnP Sound Device, USB Audio
    Direct hardware device without any conversions
plughw:CARD=Device,DEV=0
    USB PnP Sound Device, USB Audio
    Hardware device with all software conversions
sysdefault:CARD=Device
    USB PnP Sound Device, USB Audio
    Default Audio Device
dsnoop:CARD=Device,DEV=0
    USB PnP Sound Device, USB Audio
    Direct sample snooping device
hw:CARD=Loopback,DEV=1
    Loopback, Loopback PCM
    Direct hardware device without any conversions
plughw:CARD=Loopback,DEV=1
    Loopback, Loopback PCM
    Hardware device with all software conversions
"""

ARECORD_SMALL_L = """\
**** List of CAPTURE Hardware Devices ****
card 0: PCH [HDA Intel PCH], device 0: ALC892 Analog [ALC892 Analog]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
card 0: PCH [HDA Intel PCH], device 2: ALC892 Alt Analog [ALC892 Alt Analog]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
card 1: Device [USB PnP Sound Device], device 0: USB Audio [USB Audio]
  Subdevices: 1/1
  Subdevice #0: subdevice #0
card 2: Loopback [Loopback], device 0: Loopback PCM [Loopback PCM]
  Subdevices: 8/8
  Subdevice #0: subdevice #0
card 2: Loopback [Loopback], device 1: Loopback PCM [Loopback PCM]
  Subdevices: 8/8
  Subdevice #0: subdevice #0
"""


@pytest.fixture
def devices() -> list[CaptureDevice]:
    return merge_devices(parse_pcm_list(ARECORD_L), parse_hardware_list(ARECORD_SMALL_L))


def test_parse_pcm_list_joins_description_lines() -> None:
    pcms = parse_pcm_list(ARECORD_L)
    assert pcms[0] == (
        "null",
        "Discard all samples (playback) or generate zero samples (capture)",
    )
    direct = "HDA Intel PCH, ALC892 Analog / Direct hardware device without any conversions"
    assert ("hw:CARD=PCH,DEV=0", direct) in pcms
    assert len(pcms) == 15


def test_parse_hardware_list() -> None:
    hw = parse_hardware_list(ARECORD_SMALL_L)
    assert [(h.card, h.card_id, h.device) for h in hw] == [
        (0, "PCH", 0),
        (0, "PCH", 2),
        (1, "Device", 0),
        (2, "Loopback", 0),
        (2, "Loopback", 1),
    ]
    assert hw[2].card_name == "USB PnP Sound Device" and hw[2].device_name == "USB Audio"
    assert parse_hardware_list("arecord: device_list:274: no soundcards found...\n") == []


def test_merge_gives_numbers_names_and_unlisted_hardware(devices: list[CaptureDevice]) -> None:
    by_pcm = {d.pcm: d for d in devices}
    usb = by_pcm["plughw:CARD=Device,DEV=0"]
    assert (usb.card, usb.device, usb.name) == (1, 0, "USB PnP Sound Device: USB Audio")
    assert by_pcm["sysdefault:CARD=PCH"].card == 0
    assert by_pcm["sysdefault:CARD=PCH"].device is None
    assert by_pcm["shared_mic"].card is None
    # Loopback device 0 is not in arecord -L here: it is added as hw:2,0.
    assert by_pcm["hw:2,0"].name == "Loopback: Loopback PCM"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("default", "default"),
        ("", "default"),
        ("shared_mic", "shared_mic"),
        ("SHARED_MIC", "shared_mic"),
        ("hw:CARD=PCH,DEV=2", "hw:CARD=PCH,DEV=2"),
        ("hw:0,2", "hw:0,2"),
        ("plughw:1,0", "plughw:1,0"),
        ("plughw:Device", "plughw:Device"),
        ("dsnoop:CARD=Device,DEV=0", "dsnoop:CARD=Device,DEV=0"),
        # A part of a name: all PCMs of the USB device are one match, plughw preferred.
        ("usb", "plughw:CARD=Device,DEV=0"),
        ("pnp sound", "plughw:CARD=Device,DEV=0"),
        ("alt analog", "plughw:CARD=PCH,DEV=2"),
        ("studio", "shared_mic"),
        # monitor: the first PCM that says loopback (or monitor).
        ("monitor", "plughw:CARD=Loopback,DEV=1"),
    ],
)
def test_resolve_device(devices: list[CaptureDevice], value: str, expected: str) -> None:
    assert resolve_device(value, devices) == expected


def test_unmatched_device_is_a_config_error_listing_candidates(
    devices: list[CaptureDevice],
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device("behringer", devices, file="studio.ini", section="mic")
    err = info.value
    assert (err.file, err.section, err.key) == ("studio.ini", "mic", "device")
    text = str(err)
    assert text.startswith("studio.ini: [mic]: device: 'behringer' matches no capture device")
    assert "plughw:CARD=Device,DEV=0 (USB PnP Sound Device" in text and "shared_mic" in text
    assert "null" not in text.split("candidates:")[1].split(";")[0]


def test_ambiguous_device_lists_each_device_once(devices: list[CaptureDevice]) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device("HDA Intel", devices)
    text = str(info.value)
    assert "ambiguous: it matches 2 devices" in text
    assert "plughw:CARD=PCH,DEV=0" in text and "plughw:CARD=PCH,DEV=2" in text
    assert "dsnoop:CARD=PCH" not in text


def test_missing_hardware_is_an_error(devices: list[CaptureDevice]) -> None:
    with pytest.raises(ConfigError, match="no capture device 0 on card 7"):
        resolve_device("hw:7,0", devices)
    with pytest.raises(ConfigError, match="not a capture PCM"):
        resolve_device("dsnoop:CARD=Gone,DEV=0", devices)


def test_monitor_without_any_is_an_error() -> None:
    only = [CaptureDevice("shared_mic", "a microphone")]
    with pytest.raises(ConfigError, match="says monitor or loopback"):
        resolve_device("monitor", only)


def test_device_table(devices: list[CaptureDevice]) -> None:
    table = format_device_table(devices).splitlines()
    assert table[0].split() == ["device", "=", "card", "dev", "name", "description"]
    usb = next(line for line in table if line.startswith("plughw:CARD=Device,DEV=0 "))
    assert usb.split()[1:3] == ["1", "0"] and "USB PnP Sound Device: USB Audio" in usb
    assert "no ALSA capture devices" in format_device_table([])


# -- the real arecord against a test asound.conf -------------------------------------


@pytest.fixture
def card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestCard:
    require_tool("arecord")
    card = TestCard(tmp_path / "card", seconds=1)
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(card.conf))
    return card


def test_real_arecord_lists_the_test_pcms(card: TestCard) -> None:
    devices = {d.pcm: d for d in list_capture_devices()}
    assert devices[PCM_TEST].description == DESC_TEST
    assert devices[PCM_SHARED].description == DESC_SHARED
    assert devices[PCM_LOOP].description == DESC_LOOP
    assert "isr_file" not in devices  # hint { show off }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("monitor", PCM_LOOP),
        ("shared_mic", PCM_SHARED),
        ("known signal", PCM_TEST),
        ("DSNOOP-style", PCM_SHARED),
        ("default", "default"),
    ],
)
def test_real_resolution(card: TestCard, value: str, expected: str) -> None:
    assert resolve_device(value, list_capture_devices()) == expected


def test_real_unmatched_device_names_file_and_section(card: TestCard) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_configured_device("no such mixer", file="config.ini", section="studio")
    text = str(info.value)
    assert text.startswith("config.ini: [studio]: device: 'no such mixer' matches no capture")
    assert PCM_TEST in text and PCM_SHARED in text and PCM_LOOP in text
    with pytest.raises(ConfigError, match="ambiguous"):
        resolve_configured_device("isr test card", file="config.ini", section="studio")


def test_isr_devices_prints_the_table(card: TestCard) -> None:
    env = dict(os.environ, ALSA_CONFIG_PATH=str(card.conf))
    for args in (["devices"], ["record", "--list-devices"]):
        out = subprocess.run(
            [sys.executable, "-m", "isr", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=True,
        ).stdout
        lines = out.splitlines()
        assert lines[0].startswith("device =")
        assert any(line.startswith(PCM_SHARED) and DESC_SHARED in line for line in lines), out
