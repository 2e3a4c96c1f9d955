"""A Docker engine, a stand-in base image and Compose projects for tests/test_docker.py.

Docker Hub does not answer here, so the Dockerfile's base is made locally: a minimal
Debian with Python from Debian's own packages (``mmdebstrap``), imported as an image
and passed as the ``BASE`` build argument. It is kept under a tag that names its
recipe, so later runs on the same machine reuse it, and it is rebuilt when missing.
When no engine answers, one is started here (as root) and stopped again at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.recorder import wait_for
from tests.support.tools import IN_CI, popen, require_tool, stop_process

ROOT = Path(__file__).resolve().parent.parent.parent
ENGINE_START_SECONDS = 60.0
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# A trimmed official python:3.11-slim: Python 3.11 as `python`, pip, CA certificates.
BASE_PACKAGES = "python3,python3-pip,python3-venv,python-is-python3,ca-certificates"
BASE_SUITE = "bookworm"
BASE_REPOSITORY = "isr-test-base"
# Marks the images the tests build, so the ones a newer build untags can be pruned.
TEST_LABEL = "isr.test-image=1"


def unavailable(reason: str) -> None:
    """Skip (fail under CI=true, where `make test` installs and starts everything)."""
    if IN_CI:
        pytest.fail(f"Docker: {reason} (CI=true: this test must run)", pytrace=False)
    pytest.skip(f"Docker: {reason}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass(frozen=True)
class Docker:
    """The `docker` client and the Compose command, talking to one answering engine."""

    client: str
    compose: tuple[str, ...]

    def run(
        self, *args: str, timeout: float = 120.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.client, *args], capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stderr}")
        return result

    def has_image(self, tag: str) -> bool:
        return self.run("image", "inspect", tag, check=False).returncode == 0

    def inspect(self, container: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.run("inspect", container).stdout)
        return found[0]


def _answers(client: str) -> bool:
    try:
        result = subprocess.run(
            [client, "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=15,
        )
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def _compose_command(client: str) -> tuple[str, ...]:
    """Debian's Compose v1 (`docker-compose`), else the v2 plugin (`docker compose`)."""
    if shutil.which("docker-compose") is None:
        plugin = subprocess.run([client, "compose", "version"], capture_output=True, timeout=30)
        if plugin.returncode == 0:
            return (client, "compose")
    return (require_tool("docker-compose"),)


@contextmanager
def docker_engine(workdir: Path) -> Iterator[Docker]:
    """An engine that answers: the one already running, or a `dockerd` started here.

    A `docker` client may be installed without any engine (a bare binary in
    /usr/local/bin), so a client alone proves nothing: the engine must answer.
    """
    client = require_tool("docker")
    compose = _compose_command(client)
    if _answers(client):
        yield Docker(client, compose)
        return
    if os.geteuid() != 0:
        unavailable("no engine answers and starting dockerd needs root")
    dockerd = require_tool("dockerd")
    log_path = workdir / "dockerd.log"
    with log_path.open("wb") as log:
        proc = popen([dockerd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        settled = wait_for(
            lambda: proc.poll() is not None or _answers(client),
            timeout=ENGINE_START_SECONDS,
            step=0.5,
        )
        if not settled or proc.poll() is not None:
            unavailable(f"dockerd did not come up:\n{_tail(log_path)}")
        yield Docker(client, compose)
    finally:
        # Stops its containerd too; it gets the time it asks for to stop containers.
        stop_process(proc, timeout=30)


def _base_recipe(output: str) -> list[str]:
    """`mmdebstrap` arguments; docs/operations.md gives the same, for users."""
    hooks = ['rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED']
    if HOST_CA_BUNDLE.exists():
        # Package traffic here passes a TLS-inspecting proxy whose CA only the host's
        # bundle holds: pip inside the build needs it.
        hooks.append(f"upload {HOST_CA_BUNDLE} {HOST_CA_BUNDLE}")
    return [
        "--variant=minbase",
        f"--include={BASE_PACKAGES}",
        *(f"--customize-hook={hook}" for hook in hooks),
        BASE_SUITE,
        output,
    ]


def _import_changes() -> list[str]:
    """`docker import --change` instructions (Docker supplies the default PATH)."""
    return [f"ENV PIP_CERT={HOST_CA_BUNDLE}"] if HOST_CA_BUNDLE.exists() else []


def stand_in_base_tag() -> str:
    """The tag names the recipe and the host's CA bundle: either changing makes a new base."""
    digest = hashlib.sha256(json.dumps([_base_recipe("-"), _import_changes()]).encode())
    if HOST_CA_BUNDLE.exists():
        digest.update(HOST_CA_BUNDLE.read_bytes())
    return f"{BASE_REPOSITORY}:{BASE_SUITE}-{digest.hexdigest()[:12]}"


def stand_in_base(docker: Docker, workdir: Path) -> str:
    """The stand-in for python:3.11-slim: reused when present, else made (~40-60 s)."""
    tag = stand_in_base_tag()
    if docker.has_image(tag):
        return tag
    mmdebstrap = require_tool("mmdebstrap")
    log_path = workdir / "mmdebstrap.log"
    with log_path.open("wb") as log:
        debootstrap = popen(
            [mmdebstrap, *_base_recipe("-")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        changes = [arg for change in _import_changes() for arg in ("--change", change)]
        try:
            imported = subprocess.run(
                [docker.client, "import", *changes, "-", tag],
                stdin=debootstrap.stdout,
                capture_output=True,
                text=True,
                timeout=600,
            )
        finally:
            assert debootstrap.stdout is not None
            debootstrap.stdout.close()
            made = debootstrap.wait(timeout=60)
    if made != 0 or imported.returncode != 0:
        if imported.returncode == 0:
            docker.run("rmi", tag, check=False)  # a truncated tarball imports fine
        raise AssertionError(
            f"stand-in base: mmdebstrap exit {made}, docker import exit "
            f"{imported.returncode}: {imported.stderr}\n{_tail(log_path)}"
        )
    # Bases of an older recipe or CA bundle would stay on the machine for good.
    listed = docker.run("images", "--format", "{{.Repository}}:{{.Tag}}", BASE_REPOSITORY)
    for old in set(listed.stdout.split()) - {tag}:
        docker.run("rmi", old, check=False)
    return tag


def build_image(docker: Docker, base: str, tag: str, workdir: Path) -> None:
    """`docker build` as docs/operations.md gives it for a machine without Docker Hub."""
    log_path = workdir / "build.log"
    with log_path.open("wb") as log:
        result = subprocess.run(
            [
                docker.client,
                "build",
                "--network",
                "host",
                "--build-arg",
                f"BASE={base}",
                "--label",
                TEST_LABEL,
                "--tag",
                tag,
                str(ROOT),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=600,
        )
    if result.returncode != 0:
        raise AssertionError(f"docker build failed:\n{_tail(log_path, 40)}")
    # The image this build untagged would pile up run after run on a CI machine.
    docker.run("image", "prune", "--force", "--filter", f"label={TEST_LABEL}", check=False)


class ComposeProject:
    """`docker-compose -p NAME -f docker-compose.yml -f OVERRIDE ...` in `directory`."""

    def __init__(
        self, docker: Docker, directory: Path, files: list[str], env: dict[str, str]
    ) -> None:
        self.docker = docker
        self.directory = directory
        # Compose v1 keeps only lower-case letters and digits of a project name.
        self.name = f"isrtest{os.getpid()}"
        self.files = files
        self.env = {**os.environ, **env}

    def __call__(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        command = [*self.docker.compose, "-p", self.name]
        for file in self.files:
            command += ["-f", file]
        result = subprocess.run(
            [*command, *args],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed:\n{result.stderr}")
        return result

    def container(self, service: str) -> str:
        ids = self("ps", "-q", service).stdout.split()
        assert len(ids) == 1, f"{service}: {ids}"
        return ids[0]

    def health(self, container: str) -> tuple[str, list[dict[str, Any]]]:
        """The health status and the log of the last checks (exit codes, output)."""
        health: dict[str, Any] = self.docker.inspect(container)["State"].get("Health") or {}
        return health.get("Status", "none"), health.get("Log") or []

    def wait_health(self, container: str, status: str, timeout: float) -> bool:
        return wait_for(lambda: self.health(container)[0] == status, timeout=timeout, step=0.5)

    def logs(self) -> str:
        try:
            return self("logs", "--no-color", "--tail", "60", timeout=60).stdout
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"
