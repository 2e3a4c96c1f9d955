"""The fake stream server's own behaviour (tests/support/fake_server.py), which the
client and recorder tests lean on: a mount is one stream that a new connection
resumes (less the replayed burst), garbage mounts serve their seeded bytes, and a
pause drops the connections it had."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import TypeVar

import pytest

from isr.errors import SourceError
from isr.sources.http import open_stream
from tests.support.fake_server import FakeStreamServer, Mount
from tests.test_http import read_n, run

T = TypeVar("T")
PAYLOAD = random.Random(1).randbytes(200_000)


@pytest.fixture
def srv() -> Iterator[FakeStreamServer]:
    mounts = [
        Mount("/http10", payload=PAYLOAD, status_line="HTTP/1.0 200 OK", line_ending="\n"),
        Mount("/replay", payload=PAYLOAD, replay_bytes=4000),
    ]
    with FakeStreamServer(*mounts) as s:
        yield s


def test_replay_bytes_resends_the_tail(srv: FakeStreamServer) -> None:
    async def go() -> tuple[bytes, bytes]:
        async with await open_stream(srv.url("/replay"), timeout=5) as resp:
            first = await read_n(resp, 10_000)
        srv.wait_for(lambda: srv.connections_to("/replay")[0].ended != "")
        async with await open_stream(srv.url("/replay"), timeout=5) as resp:
            second = await read_n(resp, 10_000)
        return first, second

    first, second = run(go())
    c1, c2 = srv.connections_to("/replay")
    assert c2.start == c1.start + len(c1.audio) - 4000
    assert first == bytes(c1.audio[:10_000])
    assert second == srv.stream_bytes("/replay", c2.start, 10_000)


def test_garbage_mount_serves_its_random_bytes(srv: FakeStreamServer) -> None:
    srv.add(Mount("/garbage", garbage=True, seed=3))

    async def go() -> bytes:
        async with await open_stream(srv.url("/garbage"), timeout=5) as resp:
            return await read_n(resp, 70_000)

    data = run(go())
    assert data == srv.stream_bytes("/garbage", 0, 70_000)
    assert len(set(data)) > 200  # random, and looped past its 64 KiB


def test_pause_drops_open_connections(srv: FakeStreamServer) -> None:
    async def go() -> None:
        async with await open_stream(srv.url("/http10"), timeout=5) as resp:
            await read_n(resp, 1000)
            await asyncio.to_thread(srv.pause)
            with pytest.raises(SourceError):  # EOF or reset, depending on timing
                while await resp.read():
                    pass
                raise SourceError("eof")

    run(go())
    srv.resume()
