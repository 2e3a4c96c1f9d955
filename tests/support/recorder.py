"""Runs the real `isr record` as a child process, the way users run it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if predicate():
                return True
        except (OSError, ValueError, KeyError):
            pass  # a file not written yet, or half-replaced
        time.sleep(step)
    return False


class RecorderProcess:
    """``isr record -c CONFIG`` in ``cwd``; ``stop()`` sends SIGTERM like systemd does."""

    def __init__(
        self,
        cwd: Path,
        config_text: str | None,
        *,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], object] | None = None,
    ):
        """``preexec_fn`` runs in the child before exec (e.g. to set a resource limit
        or enter another mount namespace); None keeps the plain start."""
        self.cwd = cwd
        self.config: Path | None = None
        if config_text is not None:
            self.config = cwd / "config.ini"
            self.config.write_text(config_text)
        args = [sys.executable, "-m", "isr", "record"]
        if self.config is not None:
            args += ["-c", str(self.config)]
        full_env = {k: v for k, v in os.environ.items() if k != "ISR_CONFIG"}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            preexec_fn=preexec_fn,
        )
        self.output = ""
        self.stop_seconds = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def status(self, directory: str = "recordings") -> dict[str, Any]:
        path = self.cwd / directory / ".isr" / "status.json"
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def wait_recording(self, source: str = "radio", timeout: float = 20.0) -> None:
        """Until the status file says ``source`` records (its output if it never does)."""

        def recording() -> bool:
            state: str = self.status()["sources"][source]["state"]
            return state == "recording"

        if not wait_for(recording, timeout=timeout):
            self.stop()
            raise AssertionError(f"{source} never recorded:\n{self.output}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the recorder (if still running) and collect its output."""
        if self.proc.poll() is None:
            t = time.monotonic()
            self.proc.send_signal(sig)
            self.output, _ = self.proc.communicate(timeout=30)
            self.stop_seconds = time.monotonic() - t
        elif self.proc.stdout is not None and not self.proc.stdout.closed:
            self.output, _ = self.proc.communicate(timeout=30)
        return self.proc.returncode

    def __enter__(self) -> RecorderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            # Also when it exited by itself: an unread pipe is a ResourceWarning
            # whenever the collector gets to it, which fails a later test.
            self.output += self.proc.communicate(timeout=30)[0]
