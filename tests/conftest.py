"""Shared fixtures: real Icecast servers, cached test media, and a stray-process guard."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from tests.support.icecast import Icecast
from tests.support.media import MediaFactory, make_media, media_name
from tests.support.s3 import S3Server
from tests.support.tools import descendants, require_tool

STRAY_GRACE_SECONDS = 3.0


SLOW_MODULES = frozenset(
    {
        "test_alsa",
        "test_browser",
        "test_browser_coverage",
        "test_browser_timeline",
        "test_docker",
        "test_fd_leak",
        "test_http",
        "test_liveness",
        "test_ogg_fuzz",
        "test_recovery",
        "test_soak",
        "test_soundcard",
        "test_source_clients",
        "test_support_icecast",
        "test_symlinks",
        "test_urls",
        "test_web_guard",
        "test_web_jobs",
        "test_xing",
    }
)
"""Modules whose tests run real time (recorders, servers, browsers, containers), with
every ``test_record_*``: ``make check`` leaves them out (``-m "not slow"``)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_stray_processes: the test may leave child processes running "
        "(e.g. one a wider-scoped fixture starts lazily)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
        if module in SLOW_MODULES or module.startswith("test_record_"):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report so fixtures can dump server logs for failed tests."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


@pytest.fixture
def require() -> Callable[[str], str]:
    """`require("arecord")` -> path; skips outside CI, fails under CI=true."""
    return require_tool


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for all generated media of the session."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def media(media_dir: Path) -> MediaFactory:
    """`media("mp3", 10, frequency=880)` -> a generated file, made once per session.

    Treat the returned file as read-only: other tests get the same path.
    """
    cache: dict[str, Path] = {}

    def factory(kind: str, seconds: float, **params: object) -> Path:
        name = media_name(kind, seconds, **params)
        if name not in cache:
            cache[name] = make_media(media_dir / name, kind, seconds, **params)  # type: ignore[arg-type]
        return cache[name]

    return factory


@pytest.fixture
def icecast(request: pytest.FixtureRequest) -> Iterator[Icecast]:
    """A fresh Icecast for this test (burst 65535); its log is printed if the test fails."""
    server = Icecast()
    try:
        server.start()
        yield server
    finally:
        if _failed(request):
            print(server.log_tail(60))
            for feeder in server.feeders:
                print(feeder.log_tail())
        server.close()


@pytest.fixture(scope="module")
def icecast_server() -> Iterator[Icecast]:
    """One Icecast shared by a module's tests: cheaper, but mounts are shared too."""
    with Icecast() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_stray_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves child processes running, and kill them so later tests
    start clean. Processes that wider-scoped fixtures already held are exempt."""
    if request.node.get_closest_marker("allow_stray_processes"):
        yield
        return
    before = {p.pid for p in descendants()}
    yield
    deadline = time.monotonic() + STRAY_GRACE_SECONDS
    while True:
        stray = [
            p for p in descendants() if p.pid not in before and "multiprocessing" not in p.cmdline
        ]
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if stray:
        for p in stray:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        listing = "\n".join(f"  pid {p.pid}: {p.cmdline}" for p in stray)
        pytest.fail(f"test left child processes running (now killed):\n{listing}", pytrace=False)


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    """A real S3 HTTP server (moto's) on 127.0.0.1 with an empty bucket."""
    server = S3Server(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
