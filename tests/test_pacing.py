"""``PacedReader`` on real loopback sockets: bytes leave it complete and in order
whether they were buffered, still in the socket, or read on the ticker's grid."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from isr.sources.pacing import PacedReader

PAYLOAD = random.Random(5).randbytes(300_000)

Serve = Callable[[asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def connected(
    serve: Serve, **kw: float
) -> AsyncIterator[tuple[PacedReader, asyncio.Transport]]:
    """A reader connected to a server on 127.0.0.1 that runs ``serve``, then holds
    the connection open until the test is done."""
    done = asyncio.Event()

    async def handle(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve(writer)
        await done.wait()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    limit = int(kw.pop("limit", 64 * 1024))
    transport, reader = await loop.create_connection(
        lambda: PacedReader(limit=limit, timeout=kw.pop("timeout", 30.0), where="test"),
        "127.0.0.1",
        port,
    )
    reader.linger = kw.pop("linger", reader.linger)
    reader.start()
    try:
        yield reader, transport
    finally:
        done.set()
        reader.close()
        await reader.wait_closed()
        server.close()
        await server.wait_closed()


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.01)


def test_read_now_takes_the_buffer_then_the_socket_in_order() -> None:
    """Unpaced: the protocol's buffer holds what the transport read before it
    paused (at twice the limit); the rest waits in the socket. A stop takes both."""

    async def go() -> None:
        paused = asyncio.Event()

        async def serve(writer: asyncio.StreamWriter) -> None:
            writer.write(PAYLOAD[:20_000])
            await paused.wait()
            writer.write(PAYLOAD[20_000:100_000])  # into the socket: nobody reads it
            await writer.drain()

        async with connected(serve, limit=8192) as (reader, transport):
            await until(lambda: not transport.is_reading())  # over 2 x limit buffered
            paused.set()
            got = bytearray()
            async with asyncio.timeout(10):
                while len(got) < 100_000:
                    got += reader.read_now()  # takes what is there, never waits
                    await asyncio.sleep(0.01)
            assert got == PAYLOAD[:100_000]
            assert reader.fileno == -1  # never paced

    asyncio.run(go())


def test_flow_control_pauses_the_transport_and_loses_nothing() -> None:
    async def go() -> None:
        async def serve(writer: asyncio.StreamWriter) -> None:
            writer.write(PAYLOAD)
            await writer.drain()

        async with connected(serve, limit=4096) as (reader, transport):
            await until(lambda: not transport.is_reading())  # over 2 x limit buffered
            got = bytearray()
            while len(got) < len(PAYLOAD):
                got += await reader.read(4096)
            assert got == PAYLOAD
            assert transport.is_reading()  # resumed once the buffer drained

    asyncio.run(go())


@asynccontextmanager
async def paced_read_waiting() -> AsyncIterator[tuple[PacedReader, asyncio.Task[bytes]]]:
    """A reader gone paced (its first read came back small) with a read waiting on
    it, and 700 more bytes sent by the peer since. The ticker's grid is 1,000 s: the
    next tick is, almost always, far away."""
    more = asyncio.Event()

    async def serve(writer: asyncio.StreamWriter) -> None:
        writer.write(PAYLOAD[:1000])
        await writer.drain()
        await more.wait()
        writer.write(PAYLOAD[1000:1700])
        await writer.drain()

    async with connected(serve, linger=1000.0, timeout=10_000.0) as (reader, _):
        assert await reader.read(65536) == PAYLOAD[:1000]  # small: pace from now on
        task = asyncio.create_task(reader.read(65536))
        await until(lambda: reader.fileno >= 0)
        more.set()
        await asyncio.sleep(0.3)  # the bytes are in the socket
        yield reader, task


def test_a_paced_read_and_a_stop_between_ticks_lose_nothing() -> None:
    """Once a read comes back small the socket is read on the ticker's grid; bytes
    that came since the last tick are taken by ``read_now`` at a stop."""

    async def go() -> None:
        async with paced_read_waiting() as (reader, task):
            got = task.result() if task.done() else b""
            task.cancel()
            got += reader.read_now()
            assert got == PAYLOAD[1000:1700]

    asyncio.run(go())


def test_bytes_a_tick_handed_to_a_reader_stopped_at_once_are_kept() -> None:
    """A stop that cancels the reader after a tick served it but before it ran:
    the bytes were already out of the socket, and ``read_now`` must still give
    them (they were lost once in ten clean-clone runs of test_record_stop)."""

    async def go() -> None:
        async with paced_read_waiting() as (reader, task):
            assert not task.done()  # no tick for 1,000 s
            ticker = reader._ticker
            assert ticker is not None
            ticker._tick()  # serves the reader: its future has the bytes ...
            task.cancel()  # ... and the stop comes before the reader runs
            await asyncio.gather(task, return_exceptions=True)
            assert task.cancelled()
            assert reader.read_now() == PAYLOAD[1000:1700]

    asyncio.run(go())


def test_a_paced_reader_sees_the_peer_hang_up_without_a_tick() -> None:
    async def go() -> None:
        async def serve(writer: asyncio.StreamWriter) -> None:
            writer.write(PAYLOAD[:500])
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(PAYLOAD[500:800])
            writer.close()

        async with connected(serve, linger=1000.0, timeout=10_000.0) as (reader, _):
            got = await reader.read(65536)  # small: paced from the next read on
            task = asyncio.create_task(reader.read(65536))
            await until(lambda: reader.fileno >= 0)
            async with asyncio.timeout(10):  # the next tick is ~1,000 s away
                got += await task
                while data := await reader.read(65536):
                    got += data
            assert got == PAYLOAD[:800]

    asyncio.run(go())
