"""Analysis jobs: a bounded queue in front of worker processes that ISR starts and kills.

It replaces a ``ProcessPoolExecutor(max_workers=1, max_tasks_per_child=20)`` that met a
CPython bug (when its worker retired with tasks queued, no replacement started, and
every later analysis waited forever). Here each worker is a plain child process
(``python -m isr.web.jobs``) spoken to over its stdin and stdout, and everything about
its life is decided in this module:

- at most ``max_waiting`` jobs wait; one more is refused at once (:class:`QueueFull`,
  with a guess of when to retry) rather than queued without end;
- one job per key (a file and its size) at a time: later requests for it join it;
- a job that runs longer than ``timeout`` seconds is stopped by killing its worker;
- a job whose every requester went away (cancelled) is dropped if it waits, and its
  worker killed if it runs;
- a worker retires after ``jobs_per_worker`` jobs, between two jobs; the next job
  starts a fresh one.

Workers run at a lower priority (``nice``): on a small machine the recorder's event loop
should win the CPU over a waveform.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import struct
import sys
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from isr.web import analyse

log = logging.getLogger("isr.web.jobs")

WORKER_NICE = 10
_LEN = struct.Struct("<Q")
_OK, _NOT_DECODED, _NOT_AUDIO = 0, 1, 2


class JobError(analyse.AnalysisError):
    """The job did not finish (stopped, timed out, its worker died): the message is
    safe to show, it names no path."""


class QueueFull(Exception):
    """Too many analyses wait already; ``retry_after`` seconds is a fair guess."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"analysis queue full; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class Stats:
    """Counters for tests, benchmarks and the log."""

    started_workers: int = 0
    killed_workers: int = 0
    jobs_run: int = 0
    refused: int = 0
    abandoned: int = 0
    timed_out: int = 0
    seconds: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=20))


@dataclass(eq=False)
class _Job:
    key: Hashable
    path: str
    future: asyncio.Future[bytes]
    waiters: int = 0
    running: bool = False
    worker: _Worker | None = None


@dataclass(eq=False)
class _Worker:
    proc: asyncio.subprocess.Process
    stats: Stats
    jobs: int = 0
    killed: bool = False

    async def ask(self, path: str) -> bytes:
        """Send one path, read one answer; raises on anything but a whole answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = os.fsencode(path)
        self.proc.stdin.write(_LEN.pack(len(data)) + data)
        await self.proc.stdin.drain()
        status = (await self.proc.stdout.readexactly(1))[0]
        (size,) = _LEN.unpack(await self.proc.stdout.readexactly(_LEN.size))
        payload = await self.proc.stdout.readexactly(size)
        self.jobs += 1
        if status == _OK:
            return payload
        message = payload.decode("utf-8", "replace")
        if status == _NOT_AUDIO:
            raise analyse.NotAudio(message)
        raise analyse.AnalysisError(message)

    def kill(self) -> None:
        if not self.killed and self.proc.returncode is None:
            self.stats.killed_workers += 1
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    async def stop(self, grace: float = 2.0) -> None:
        """Ask it to exit (end of input); kill it if it does not."""
        if self.proc.returncode is None and self.proc.stdin is not None and not self.killed:
            self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.proc.wait()
        if self.proc.returncode is None:
            self.kill()
        await self.proc.wait()


class AnalysisJobs:
    """See the module docstring. Create it on the loop that serves; ``close()`` it."""

    def __init__(
        self,
        *,
        workers: int = 1,
        max_waiting: int = 8,
        timeout: float = 300.0,
        jobs_per_worker: int = 20,
    ) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self.timeout = timeout
        self.jobs_per_worker = jobs_per_worker
        self.stats = Stats()
        self._jobs: dict[Hashable, _Job] = {}
        self._waiting: collections.deque[_Job] = collections.deque()
        self._wake: asyncio.Condition | None = None
        self._slots: list[asyncio.Task[None]] = []
        self._live: set[_Worker] = set()
        self._closed = False

    # -- asking -------------------------------------------------------------------------

    async def run(self, key: Hashable, path: str) -> bytes:
        """The :func:`analyse.encode` bytes of ``path``; joins a job of the same key.

        Raises QueueFull, JobError or AnalysisError. Cancelling the caller withdraws its
        interest: the last one out stops the job.
        """
        if self._closed:
            raise JobError("the server is stopping")
        job = self._jobs.get(key)
        if job is None:
            if len(self._waiting) >= self.max_waiting:
                self.stats.refused += 1
                raise QueueFull(self.retry_after())
            job = _Job(key, path, asyncio.get_running_loop().create_future())
            self._jobs[key] = job
            self._waiting.append(job)
            self._start_slots()
            assert self._wake is not None
            async with self._wake:
                self._wake.notify()
        job.waiters += 1
        try:
            return await asyncio.shield(job.future)
        finally:
            job.waiters -= 1
            if job.waiters == 0 and not job.future.done():
                self._abandon(job)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return sum(1 for job in self._jobs.values() if job.running)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: recent job times, jobs ahead, workers."""
        recent = self.stats.seconds
        mean = sum(recent) / len(recent) if recent else 5.0
        ahead = len(self._waiting) + self.workers
        return max(1, min(60, math.ceil(mean * ahead / self.workers)))

    def _abandon(self, job: _Job) -> None:
        self.stats.abandoned += 1
        if self._jobs.get(job.key) is job:
            del self._jobs[job.key]
        if job.running and job.worker is not None:
            log.info("analysis of %s no longer wanted: stopping its worker", job.path)
            job.worker.kill()
        else:
            with contextlib.suppress(ValueError):
                self._waiting.remove(job)
        job.future.cancel()

    # -- running ------------------------------------------------------------------------

    def _start_slots(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Condition()
        self._slots = [t for t in self._slots if not t.done()]
        while len(self._slots) < self.workers:
            self._slots.append(asyncio.create_task(self._slot()))

    async def _slot(self) -> None:
        worker: _Worker | None = None
        assert self._wake is not None
        try:
            while True:
                async with self._wake:
                    await self._wake.wait_for(lambda: bool(self._waiting))
                    job = self._waiting.popleft()
                if worker is None or worker.proc.returncode is not None:
                    worker = await self._spawn()
                if job.future.done():  # given up while a worker started
                    continue
                await self._run_one(job, worker)
                if worker.killed or worker.jobs >= self.jobs_per_worker:
                    self._live.discard(worker)
                    await worker.stop()
                    worker = None
        finally:
            if worker is not None:
                self._live.discard(worker)
                worker.kill()
                with contextlib.suppress(ProcessLookupError):
                    await worker.proc.wait()

    async def _run_one(self, job: _Job, worker: _Worker) -> None:
        job.running, job.worker = True, worker
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                result = await worker.ask(job.path)
        except TimeoutError:
            worker.kill()
            self.stats.timed_out += 1
            log.warning("analysis of %s took over %g s: stopped", job.path, self.timeout)
            self._settle(job, exc=JobError(f"the analysis took over {self.timeout:g} s"))
        except analyse.AnalysisError as exc:
            self._settle(job, exc=exc)
        except (OSError, EOFError, asyncio.IncompleteReadError, struct.error):
            worker.kill()
            if not job.future.done():  # killed because nobody waits any more: no news
                log.warning("the analysis worker died on %s; a new one starts", job.path)
            self._settle(job, exc=JobError("the analysis worker stopped; try again"))
        else:
            self._settle(job, result=result)
        finally:
            self.stats.jobs_run += 1
            self.stats.seconds.append(time.monotonic() - t0)
            job.running, job.worker = False, None

    def _settle(
        self, job: _Job, *, result: bytes | None = None, exc: BaseException | None = None
    ) -> None:
        if self._jobs.get(job.key) is job:
            del self._jobs[job.key]
        if job.future.done():
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            assert result is not None
            job.future.set_result(result)

    async def _spawn(self) -> _Worker:
        src = str(Path(analyse.__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "isr.web.jobs",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=2**20,
        )
        worker = _Worker(proc, self.stats)
        self._live.add(worker)
        self.stats.started_workers += 1
        return worker

    async def close(self) -> None:
        """Stop every job and worker (the server is stopping)."""
        self._closed = True
        for job in list(self._jobs.values()):
            if not job.future.done():
                job.future.set_exception(JobError("the server is stopping"))
        self._jobs.clear()
        self._waiting.clear()
        for worker in list(self._live):
            worker.kill()
        for task in self._slots:
            task.cancel()
        for task in self._slots:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in list(self._live):
            await worker.proc.wait()
        self._live.clear()


def _serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The worker's loop: one path in, one answer out, until the input ends."""
    while True:
        head = requests.read(_LEN.size)
        if len(head) < _LEN.size:
            return
        (size,) = _LEN.unpack(head)
        path = os.fsdecode(requests.read(size))
        try:
            status, payload = _OK, analyse.analyse_bytes(path)
        except analyse.NotAudio as exc:
            status, payload = _NOT_AUDIO, str(exc).encode()
        except analyse.AnalysisError as exc:
            status, payload = _NOT_DECODED, str(exc).encode()
        except MemoryError:
            status, payload = _NOT_DECODED, f"{path}: out of memory".encode()
        answers.write(bytes([status]) + _LEN.pack(len(payload)) + payload)
        answers.flush()


def main() -> None:
    """``python -m isr.web.jobs``: a worker. Its stdout carries answers only: anything
    else that prints (a decoder's library) is sent to stderr instead."""
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with contextlib.suppress(OSError):
        os.nice(WORKER_NICE)
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        _serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
