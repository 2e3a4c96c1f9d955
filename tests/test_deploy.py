"""The deployment files, checked without a Docker engine: the compose file against
what the recorder needs, the Dockerfile by hadolint, the systemd unit's promises,
and the image's own commands run outside Docker. tests/test_docker.py builds the
image and runs the compose file in a real engine."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from isr.healthcheck import recorder_healthy
from tests.support.recorder import wait_for
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parent.parent


def dockerfile_instruction(name: str) -> str:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln for ln in text.splitlines() if ln.startswith(name + " ")]
    assert lines, name
    return lines[-1][len(name) + 1 :].strip()


def test_compose_shares_recordings_and_stops_gracefully() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert set(services) == {"recorder", "web"}
    for svc in services.values():
        assert svc["stop_grace_period"] == "30s"
        assert any(v.startswith("./recordings:") for v in svc["volumes"])
    assert services["recorder"]["command"][0] == "record"
    assert services["web"]["command"][0] == "web"
    # The soundcard lines are there, commented, as the README explains.
    assert re.search(r"^\s*#\s*- /dev/snd:/dev/snd", text, re.M)
    assert re.search(r"^\s*#\s*- \./asound\.conf:/etc/asound\.conf", text, re.M)
    # Ports only on loopback by default.
    assert all(p.startswith("127.0.0.1:") for p in services["web"]["ports"])


def test_the_pair_compose_file_is_two_recorders_one_store_and_a_web_ui_over_it(
    tmp_path: Path,
) -> None:
    """deploy/pair: MinIO is not installable here, so the file is checked as written
    and as docker-compose itself reads it (``config`` resolves and validates it)."""
    path = ROOT / "deploy" / "pair" / "docker-compose.yml"
    compose = yaml.safe_load(path.read_text())
    services = compose["services"]
    assert set(services) == {"minio", "bucket", "rec1", "rec2", "web"}
    recorders = [services["rec1"], services["rec2"]]
    # Two recorder ids (from the host names), one config, one store, own disks.
    assert [r["hostname"] for r in recorders] == ["rec1", "rec2"]
    assert [r["command"] for r in recorders] == [["record", "-c", "/data/config.ini"]] * 2
    assert recorders[0]["environment"] == recorders[1]["environment"]
    assert recorders[0]["environment"]["AWS_ENDPOINT_URL"] == "http://minio:9000"
    disks = [next(v for v in r["volumes"] if v.endswith(":/data/recordings")) for r in recorders]
    assert disks[0] != disks[1]
    web = services["web"]
    assert web["command"][:4] == ["web", "-c", "/data/config.ini", "--archive"]
    assert all(p.startswith("127.0.0.1:") for s in services.values() for p in s.get("ports", []))
    compose_tool = shutil.which("docker-compose")
    if compose_tool is None:
        compose_tool = require_tool("docker-compose")
    env = {"PATH": "/usr/bin:/bin", "MINIO_ROOT_PASSWORD": "secret"}
    result = subprocess.run(
        [compose_tool, "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert resolved["rec2"]["environment"]["AWS_SECRET_ACCESS_KEY"] == "secret"
    # Without a password it refuses to start rather than run an open store.
    env.pop("MINIO_ROOT_PASSWORD")
    result = subprocess.run(
        [compose_tool, "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode != 0 and "set MINIO_ROOT_PASSWORD" in result.stderr


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        hadolint = require_tool("hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert dockerfile_instruction("USER") == "isr"
    assert "alsa-utils" in (ROOT / "Dockerfile").read_text()


def test_systemd_unit_restarts_and_stops_with_sigterm() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "isr.service")
    svc = unit["Service"]
    assert svc["Restart"] == "always"
    assert svc["KillSignal"] == "SIGTERM"
    assert svc["TimeoutStopSec"] == "30"
    assert svc["ExecStart"].split()[1:3] == ["record", "-c"]


def test_image_commands_run_outside_docker(tmp_path: Path) -> None:
    """The image's CMD and HEALTHCHECK, run as they are written, in a /data-like dir."""
    entry = json.loads(dockerfile_instruction("ENTRYPOINT"))
    cmd = json.loads(dockerfile_instruction("CMD"))
    assert entry == ["isr"] and cmd[:2] == ["record", "-c"]
    health = dockerfile_instruction("HEALTHCHECK")
    health_cmd = json.loads(health[health.index("CMD") + 3 :].strip())
    data = tmp_path / "data"
    data.mkdir()
    config_text = "[general]\noutput_directory = recordings\nlog_file =\n[tone]\ntype = tone\n"
    (data / "config.ini").write_text(config_text)
    args = [c.replace("/data", str(data)) for c in cmd]
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / entry[0]), *args],
        cwd=data,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status = data / "recordings" / ".isr" / "status.json"
        assert wait_for(status.exists, timeout=20)
        check = [sys.executable if c == "python" else c for c in health_cmd]
        check = [c.replace("/data", str(data)) for c in check]
        assert wait_for(lambda: subprocess.run(check, capture_output=True).returncode == 0)
        assert wait_for(lambda: list((data / "recordings").glob("*.wav")))
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert list((data / "recordings").glob("*.wav"))
    ok, why = recorder_healthy(data / "recordings", now=time.time() + 60)
    assert not ok and "the recorder is gone" in why
