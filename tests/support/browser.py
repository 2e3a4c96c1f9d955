"""Real headless Chromium (Debian's) through Playwright, and `isr web` as a child process.

Never `playwright install`: it downloads a browser, which fails here. The launch flags
are the ones TESTING.md found to work in this sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.net import free_port
from tests.support.recorder import wait_for
from tests.support.tools import IN_CI, popen, require_tool, stop_process

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
]


def axe_source() -> str:
    """axe-core from node_modules (`npm install --no-save axe-core`); skip/fail if absent."""
    if not AXE.exists():
        import pytest

        message = f"{AXE} is missing: run `npm install --no-save axe-core` in {REPO}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return AXE.read_text(encoding="utf-8")


def axe_violations(page: Any, *, serious_only: bool = False) -> list[dict[str, Any]]:
    """axe-core's violations on ``page`` as it is now (``serious_only``: of impact
    serious or critical)."""
    page.evaluate(axe_source())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    violations: list[dict[str, Any]] = result["violations"]
    if serious_only:
        return [v for v in violations if v["impact"] in ("serious", "critical")]
    return violations


@contextmanager
def web_process(cwd: Path, directory: Path, *extra: str) -> Iterator[str]:
    """`isr web` on a free port; yields its base URL and stops it with SIGTERM."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ISR_CONFIG"}
    log = open(cwd / "web.log", "wb")  # noqa: SIM115 - closed below
    proc = popen(
        [sys.executable, "-m", "isr", "web", "--dir", str(directory), "--port", str(port), *extra],
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                return bool(r.status == 200)

        if not wait_for(up, timeout=20):
            raise RuntimeError("isr web did not start:\n" + (cwd / "web.log").read_text())
        yield url
    finally:
        code = stop_process(proc)
        log.close()
        assert code == 0, (cwd / "web.log").read_text()


@contextmanager
def chromium(**options: Any) -> Iterator[Any]:
    """A Playwright Browser on /usr/bin/chromium with a fresh profile; ``options`` go to
    ``launch_persistent_context`` (``locale``, ``timezone_id``, ``viewport``, …)."""
    exe = require_tool("chromium")
    from playwright.sync_api import sync_playwright

    env: dict[str, str | float | bool] = dict(os.environ)
    if "locale" in options:
        # Chromium 156 draws <input type=time> in its own UI locale, not the page's
        # (Playwright's ``locale`` sets only the latter): without this, en-US's
        # 12-hour field, where typing 233720 gives 14:33:07. The UI locale comes
        # from LANGUAGE, and needs Debian's chromium-l10n.
        env["LANGUAGE"] = str(options["locale"]).replace("-", "_")
    with tempfile.TemporaryDirectory(prefix="isr-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=exe, args=CHROMIUM_ARGS, headless=True, env=env, **options
        )
        try:
            yield context
        finally:
            context.close()
