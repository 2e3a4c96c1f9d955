"""The image built and docker-compose.yml run by a real Docker engine, as
docs/operations.md tells users: the recorder writes as the image's non-root user, the
web UI answers on loopback, both health checks turn healthy and, when their process
stops answering, unhealthy, and `down` leaves every file closed.

Docker Hub does not answer here: the base image is a local stand-in
(tests/support/docker.py). Without an engine the tests skip; under CI=true they fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.docker import (
    ROOT,
    ComposeProject,
    Docker,
    build_image,
    docker_engine,
    stand_in_base,
)
from tests.support.icecast import free_port
from tests.support.recorder import wait_for

# Cold (no images) the first test also makes the base and builds the image.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

IMAGE = "isr:test"
ISR_UID = 10001  # the Dockerfile's `isr` user
STOP_GRACE_SECONDS = 30  # stop_grace_period in docker-compose.yml
CONFIG = """\
[general]
output_directory = recordings
split_minutes = 0.1
log_file =

[tone]
type = tone
"""
# The compose file's checks every second instead of every 30 s; test and retries stay.
FAST_HEALTHCHECK = {"interval": "1s", "timeout": "10s", "retries": 2}


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    """Module-scoped: an engine started here stops before the rest of the suite runs."""
    with docker_engine(tmp_path_factory.mktemp("docker")) as engine:
        yield engine


@pytest.fixture(scope="module")
def image(docker: Docker, tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("image")
    build_image(docker, stand_in_base(docker, work), IMAGE, work)
    return IMAGE


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def deployment(directory: Path, image: str) -> Path:
    """The users' layout: the compose file with config.ini and recordings/ beside it,
    recordings/ owned by the image's user as docs/operations.md says."""
    shutil.copy(ROOT / "docker-compose.yml", directory / "docker-compose.yml")
    (directory / "config.ini").write_text(CONFIG)
    recordings = directory / "recordings"
    recordings.mkdir()
    shutil.chown(recordings, user=ISR_UID)
    override = {
        "services": {
            name: {"image": image, "healthcheck": FAST_HEALTHCHECK} for name in ("recorder", "web")
        }
    }
    (directory / "test-override.yml").write_text(yaml.safe_dump(override))
    return recordings


def test_compose_records_serves_and_stops_cleanly(
    docker: Docker, image: str, tmp_path: Path, require: Callable[[str], str]
) -> None:
    ffmpeg = require("ffmpeg")
    recordings = deployment(tmp_path, image)
    port = free_port()
    compose = ComposeProject(
        docker,
        tmp_path,
        ["docker-compose.yml", "test-override.yml"],
        {"ISR_PORT": str(port)},
    )
    base = f"http://127.0.0.1:{port}"
    up = False
    try:
        compose("up", "-d")
        up = True
        recorder, web = compose.container("recorder"), compose.container("web")
        assert docker.inspect(recorder)["Config"]["User"] == "isr"
        bindings = docker.inspect(web)["HostConfig"]["PortBindings"]["8080/tcp"]
        assert bindings == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]

        # Both turn healthy; the web UI serves what the recorder writes.
        assert compose.wait_health(recorder, "healthy", timeout=90), compose.health(recorder)
        assert compose.wait_health(web, "healthy", timeout=90), compose.health(web)
        assert get_json(f"{base}/api/status")["recorder_alive"] is True
        assert wait_for(
            lambda: any(f["name"].endswith(".wav") for f in get_json(f"{base}/api/files")["files"]),
            timeout=30,
        )
        with urllib.request.urlopen(f"{base}/", timeout=10) as resp:
            assert resp.status == 200

        # A frozen process (SIGSTOP) still has a running container: the checks must say.
        docker.run("kill", "--signal", "STOP", recorder, web)
        assert compose.wait_health(recorder, "unhealthy", timeout=90), compose.health(recorder)
        assert compose.wait_health(web, "unhealthy", timeout=90), compose.health(web)
        # Exit 1: the check ran and judged (a check docker failed to run is -1).
        for container in (recorder, web):
            last_check = compose.health(container)[1][-1]
            assert last_check["ExitCode"] == 1 and last_check["Output"].strip(), last_check
        docker.run("kill", "--signal", "CONT", recorder, web)
        assert compose.wait_health(recorder, "healthy", timeout=60), compose.health(recorder)
        assert compose.wait_health(web, "healthy", timeout=60), compose.health(web)

        # `down` stops the recorder with SIGTERM: it must exit by itself, 0, in time.
        since = docker.inspect(recorder)["State"]["StartedAt"]
        started = time.monotonic()
        compose("down", timeout=STOP_GRACE_SECONDS + 60)
        down_seconds = time.monotonic() - started
        up = False
    finally:
        if up:
            print(compose.logs())
            compose("down", "--timeout", "5", timeout=90)
    # The container is gone: its end is in the engine's event log.
    deaths = docker.run(
        "events",
        *("--since", since, "--until", str(int(time.time()) + 1)),
        *("--filter", f"container={recorder}", "--filter", "event=die"),
        *("--format", "{{.Actor.Attributes.exitCode}}"),
    ).stdout.split()
    assert deaths == ["0"], deaths  # 137 = killed at the end of the grace period
    assert down_seconds < STOP_GRACE_SECONDS

    wavs = sorted(recordings.rglob("*.wav"))
    assert len(wavs) >= 3, wavs  # 6 s files over the 15 s and more it took to look gone
    for wav in wavs:
        sidecar = wav.with_name(wav.name + ".json")
        for path in (wav, sidecar):
            assert path.stat().st_uid == ISR_UID, path
        assert json.loads(sidecar.read_text())["end"], sidecar
        check = subprocess.run(
            [ffmpeg, "-v", "error", "-i", str(wav), "-f", "null", "-"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0 and not check.stderr, (wav, check.stderr)


def test_unwritable_recordings_directory_is_refused_clearly(
    docker: Docker, image: str, tmp_path: Path
) -> None:
    """A ./recordings left to Docker to create is root's: the non-root recorder must
    say so and stop, not loop silently (docs/operations.md says to chown it)."""
    (tmp_path / "config.ini").write_text(CONFIG)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    result = docker.run(
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        f"{tmp_path / 'config.ini'}:/data/config.ini:ro",
        "--volume",
        f"{recordings}:/data/recordings",
        image,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1, result
    assert "cannot record into /data/recordings: Permission denied" in result.stderr
    assert not any(recordings.iterdir())
