"""Waiting as a pure status function plus a deadline loop (kubectl's rollout_status shape).

A status function turns one observation into ``Ready``, ``Pending`` or ``Failed``; the loop
polls it until ready, fails at once on ``Failed`` (no waiting out the deadline for a container
that already exited), and gives up at a monotonic deadline. Clock and sleep are injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class Status:
    phase: Phase
    reason: str = ""


def container_status(*, status: str | None, restart_count: int, http_ok: bool) -> Status:
    """One look at a local container: gone, exited or restarting is a failure; serving 200 is ready."""
    if status is None:
        return Status(Phase.FAILED, "the container disappeared")
    if status in ("exited", "dead") or status == "restarting" or restart_count > 0:
        return Status(Phase.FAILED, f"the container is {status} (restarts: {restart_count})")
    if status == "running" and http_ok:
        return Status(Phase.READY)
    return Status(Phase.PENDING, f"container {status}, waiting for HTTP 200 on /")


@dataclass(frozen=True)
class WaitResult:
    status: Status
    timed_out: bool
    seconds: float
    polls: int


def wait_until(
    observe: Callable[[], Status],
    timeout: float,
    *,
    interval: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    start = clock()
    deadline = start + timeout
    polls = 0
    while True:
        polls += 1
        status = observe()
        now = clock()
        if status.phase is not Phase.PENDING:
            return WaitResult(status, False, now - start, polls)
        if now >= deadline:
            return WaitResult(status, True, now - start, polls)
        sleep(min(interval, max(0.0, deadline - now)))
