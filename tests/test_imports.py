"""Every module imports on its own, in a fresh interpreter (aiohttp's
``tests/test_circular_imports.py``): a circular import that the usual import order
happens to hide fails here by name, before a user's first ``isr`` command meets it.

One interpreter imports the third-party packages ISR uses, then forks a child per
module: each child starts with no ``isr`` module loaded, as a fresh interpreter
would, without paying numpy's and aiohttp's import a hundred times over (45 s of the
suite when each module had an interpreter of its own)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def _modules() -> list[str]:
    names = []
    for path in sorted((SRC / "isr").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__main__":
            continue  # runs the command; ``isr.cli`` is imported on its own below
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def _third_party() -> list[str]:
    """The top-level packages outside the standard library that ``src/isr`` imports."""
    found: set[str] = set()
    for path in (SRC / "isr").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return sorted(found - set(sys.stdlib_module_names) - {"isr", "__future__"})


MODULES = _modules()

# Runs in its own interpreter with warnings as errors; prints {module: error or ""}.
HARNESS = """
import json, os, sys, traceback, warnings
jobs, preload = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for package in preload:
    try:
        __import__(package)
    except ImportError:
        pass  # a child that needs it fails by itself
assert not [m for m in sys.modules if m == "isr" or m.startswith("isr.")]
warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
results = {}
for name, code in jobs.items():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            exec(code, {})
            message, code = b"", 0
        except BaseException:
            message, code = traceback.format_exc().encode() or b"?", 1
        view = memoryview(message)
        while view:
            view = view[os.write(write, view):]
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read()
    _, status = os.waitpid(pid, 0)
    ok = os.waitstatus_to_exitcode(status) == 0
    results[name] = "" if ok else message.decode(errors="replace") or f"status {status}"
print(json.dumps(results))
"""


def run_each(jobs: dict[str, str], preload: bool = True) -> dict[str, str]:
    """Run each job's code in a fresh child: its error, or "" when it ran."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    packages = _third_party() if preload else []
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", HARNESS, json.dumps(jobs), json.dumps(packages)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, str] = json.loads(result.stdout)
    return answer


@pytest.fixture(scope="module")
def imported() -> dict[str, str]:
    return run_each({name: f"import {name}" for name in MODULES})


def test_modules_are_found() -> None:
    assert {"isr", "isr.cli", "isr.sources.http", "isr.urls", "isr.framing.oggpage"} <= set(MODULES)
    assert {"aiohttp", "numpy"} <= set(_third_party())


def test_a_cycle_fails_by_name(tmp_path: Path) -> None:
    """The harness can fail: two modules that import each other's names do, and a
    module that pulls in what it must not is caught."""
    (tmp_path / "cyc").mkdir()
    (tmp_path / "cyc" / "__init__.py").write_text("")
    (tmp_path / "cyc" / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (tmp_path / "cyc" / "b.py").write_text("from cyc.a import A\nB = 2\n")
    path = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
    jobs = {name: path + f"import {name}" for name in ("cyc.a", "cyc")}
    (tmp_path / "cyc" / "c.py").write_text("import cyc.d\n")
    (tmp_path / "cyc" / "d.py").write_text("")
    jobs["apart"] = path + "import cyc.c\nassert 'cyc.d' not in sys.modules\n"
    result = run_each(jobs, preload=False)
    assert "ImportError" in result["cyc.a"], result
    assert "AssertionError" in result["apart"], result
    assert result["cyc"] == ""


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_on_its_own(imported: dict[str, str], module: str) -> None:
    assert imported[module] == "", imported[module]


# Imports that must not pull in another part of the package.
APART = [
    # The tone and the card share PCM code in ``pcm``; the tone needs no ALSA.
    ("isr.sources.tone", "isr.sources.soundcard"),
    # Config parses URLs with ``isr.urls``, not with a source module.
    ("isr.config", "isr.sources"),
    ("isr.urls", "isr.sources"),
    # The Ogg framer imports its writer and the page module, never the reverse.
    ("isr.framing.oggwriter", "isr.framing.ogg"),
    ("isr.framing.oggpage", "isr.framing.ogg"),
    ("isr.framing.oggpage", "isr.framing.oggwriter"),
]


@pytest.fixture(scope="module")
def kept_apart() -> dict[str, str]:
    jobs = {
        f"{module} {not_loaded}": (
            f"import sys, {module}\n"
            f"loaded = sorted(m for m in sys.modules if m == {not_loaded!r} "
            f"or m.startswith({not_loaded + '.'!r}))\n"
            "assert not loaded, loaded\n"
        )
        for module, not_loaded in APART
    }
    return run_each(jobs)


@pytest.mark.parametrize(("module", "not_loaded"), APART)
def test_module_does_not_pull_in(kept_apart: dict[str, str], module: str, not_loaded: str) -> None:
    assert kept_apart[f"{module} {not_loaded}"] == ""
