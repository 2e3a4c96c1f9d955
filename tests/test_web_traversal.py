"""Names that try to leave the recordings directory: none may read or delete outside.

Requests go out as raw bytes on a socket, so no client library normalises ``..`` or
re-encodes anything on the way.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from isr.web.app import create_app

SECRET = b"TOP-SECRET-OUTSIDE"

ATTEMPTS = [
    "../outside/secret.mp3",
    "..%2Foutside%2Fsecret.mp3",
    "%2e%2e/outside/secret.mp3",
    "%2E%2E%2Foutside%2Fsecret.mp3",
    "%252e%252e/outside/secret.mp3",
    "%252e%252e%252foutside%252fsecret.mp3",
    "..%5Coutside%5Csecret.mp3",
    "..\\outside\\secret.mp3",
    "%5C..%5Coutside%5Csecret.mp3",
    "/OUTSIDE_ABS",
    "%2FOUTSIDE_ABS",
    "//OUTSIDE_ABS",
    "link-out/secret.mp3",
    "file-link.mp3",
    ".isr/status.mp3",
    "%2eisr/status.mp3",
    "./.isr/status.mp3",
    "a/../../outside/secret.mp3",
    "a/%2e%2e/%2e%2e/outside/secret.mp3",
    "inside.mp3%00.txt",
    "inside.mp3/..",
    "radio1%2Finside.mp3",
]


async def _raw(port: int, method: str, target: str, origin: bool) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    if origin:
        head += f"Origin: http://127.0.0.1:{port}\r\n"
    writer.write((head + "\r\n").encode("latin-1"))
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    status = int(data.split(b" ", 2)[1])
    return status, data


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "recordings"
    outside = tmp_path / "outside"
    (root / "radio1").mkdir(parents=True)
    (root / "a").mkdir()
    (root / ".isr").mkdir()
    outside.mkdir()
    (outside / "secret.mp3").write_bytes(SECRET)
    (root / ".isr" / "status.mp3").write_bytes(SECRET)
    (root / "radio1" / "inside.mp3").write_bytes(b"inside")
    (root / "inside.mp3").write_bytes(b"inside")
    os.symlink(outside, root / "link-out")
    os.symlink(outside / "secret.mp3", root / "file-link.mp3")
    return root, outside


def test_traversal_table_never_leaks_or_deletes(tree: tuple[Path, Path]) -> None:
    root, outside = tree
    abs_target = outside / "secret.mp3"

    async def main() -> list[str]:
        app = create_app(root)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        failures: list[str] = []
        try:
            port = server.port
            assert port is not None
            for attempt in ATTEMPTS:
                name = attempt.replace("OUTSIDE_ABS", str(abs_target).lstrip("/"))
                for prefix in ("/stream/", "/download/", "/api/analyse/"):
                    status, data = await _raw(port, "GET", prefix + name, origin=False)
                    if SECRET in data or status not in (400, 403, 404):
                        failures.append(f"GET {prefix}{name} -> {status}")
                status, data = await _raw(port, "DELETE", "/api/files/" + name, origin=True)
                if status not in (400, 403, 404):
                    failures.append(f"DELETE {name} -> {status}")
            # the control: a legitimate name works through the same raw client
            status, data = await _raw(port, "GET", "/stream/radio1/inside.mp3", origin=False)
            assert status == 200 and data.endswith(b"inside")
        finally:
            await server.close()
        return failures

    failures = asyncio.run(main())
    assert failures == []
    assert (outside / "secret.mp3").read_bytes() == SECRET
    assert (root / ".isr" / "status.mp3").read_bytes() == SECRET
    assert (root / "radio1" / "inside.mp3").exists() and (root / "inside.mp3").exists()
    assert os.path.islink(root / "file-link.mp3")


def test_listing_shows_no_symlink_and_nothing_under_state_dir(tree: tuple[Path, Path]) -> None:
    root, _ = tree

    async def main() -> list[str]:
        server = TestServer(create_app(root), host="127.0.0.1")
        await server.start_server()
        try:
            port = server.port
            assert port is not None
            status, data = await _raw(port, "GET", "/api/files", origin=False)
            assert status == 200
            import json

            body = data.split(b"\r\n\r\n", 1)[1]
            return [f["name"] for f in json.loads(body)["files"]]
        finally:
            await server.close()

    names = asyncio.run(main())
    assert sorted(names) == ["inside.mp3", "radio1/inside.mp3"]
