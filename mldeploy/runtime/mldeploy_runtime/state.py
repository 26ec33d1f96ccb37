"""Where a worker is in its life (loading → ready, or failed), shared between the loader thread and the event loop.

The port opens before the script is loaded, so the loop answers probes while ``init()`` runs in the loader thread.
With several workers, each one's phase is also written to a small shared memory block created by the supervisor
before it forks, so that any worker can answer readiness for the whole process group ("ready" = every worker
finished ``init()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import time
from collections.abc import Callable
from typing import Any

LOADING = "loading"
READY = "ready"
FAILED = "failed"

_CODES = {LOADING: 0, READY: 1, FAILED: 2}


class WorkerState:
    def __init__(self, worker: int = 0, workers: int = 1, shared: mmap.mmap | None = None) -> None:
        self.worker = worker
        self.workers = workers
        self.shared = shared
        self.phase = LOADING
        self.started = time.monotonic()
        self.load_seconds: float | None = None
        self.init_seconds: float | None = None
        self.exit_code = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: Any = None  # the uvicorn.Server, for should_exit
        self.script: Any = None  # the loaded UserScript, set by the loader before mark_ready()
        self.swagger: Any = None  # its SwaggerDocs
        self.on_started: Callable[[], None] | None = None  # called in the loop once it runs (starts the loader)
        self._event: asyncio.Event | None = None
        self._on_ready: list[Callable[[], None]] = []

    # -- event loop side ---------------------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._event = asyncio.Event()
        if self.phase != LOADING:
            self._event.set()

    def on_ready(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs in the event loop thread once the script is loaded, before waiters are released."""
        self._on_ready.append(callback)

    @property
    def stopping(self) -> bool:
        return bool(self.server is not None and self.server.should_exit)

    async def wait(self, timeout: float | None) -> bool:
        """Wait until this worker is ready (True), or failed, stopping or ``timeout`` seconds passed (False)."""
        if self.phase == READY:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.phase == LOADING and not self.stopping:
            tick = 0.5
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                tick = min(tick, remaining)
            assert self._event is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), tick)
        return self.phase == READY

    def ready_workers(self) -> tuple[int, int, int]:
        """(ready, failed, total) over all workers."""
        if self.shared is None:
            return int(self.phase == READY), int(self.phase == FAILED), 1
        codes = self.shared[: self.workers]
        return codes.count(1), codes.count(2), self.workers

    def loading_seconds(self) -> float:
        return time.monotonic() - self.started

    # -- loader thread side ------------------------------------------------------------------------------------

    def _publish(self, phase: str) -> None:
        self.phase = phase
        if self.shared is not None:
            self.shared[self.worker] = _CODES[phase]

    def mark_ready(self, load_seconds: float, init_seconds: float) -> None:
        self.load_seconds, self.init_seconds = load_seconds, init_seconds
        if self.loop is None:  # no loop (tests): no callbacks to run on it
            for callback in self._on_ready:
                callback()
            self._publish(READY)
            return
        self.loop.call_soon_threadsafe(self._finish_ready)

    def _finish_ready(self) -> None:
        for callback in self._on_ready:
            callback()
        self._publish(READY)
        if self._event is not None:
            self._event.set()

    def mark_failed(self, exit_code: int) -> None:
        self.exit_code = exit_code
        if self.loop is None:
            self._publish(FAILED)
            return
        self.loop.call_soon_threadsafe(self._finish_failed)

    def _finish_failed(self) -> None:
        self._publish(FAILED)
        if self._event is not None:
            self._event.set()
        if self.server is not None:
            self.server.should_exit = True
