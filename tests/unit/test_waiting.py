"""The wait loop with an injected clock: ready at once, fail fast, time out at the deadline."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from mldeploy.waiting import Phase, Status, container_status, wait_until

READY = Status(Phase.READY)
PENDING = Status(Phase.PENDING, "container running, waiting for HTTP 200 on /")
FAILED = Status(Phase.FAILED, "the container is exited (restarts: 0)")


class FakeClock:
    """A monotonic clock that only moves when the loop sleeps."""

    def __init__(self) -> None:
        self.now = 100.0  # any origin: the loop must measure from its own start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def _observer(statuses: Iterable[Status]) -> tuple[Callable[[], Status], list[int]]:
    queue = list(statuses)
    calls = [0]

    def observe() -> Status:
        calls[0] += 1
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return observe, calls


def test_ready_immediately() -> None:
    clock = FakeClock()
    observe, calls = _observer([READY])
    result = wait_until(observe, 60, interval=1, clock=clock, sleep=clock.sleep)
    assert result.status.phase is Phase.READY
    assert (result.timed_out, result.polls, result.seconds) == (False, 1, 0)
    assert clock.sleeps == []
    assert calls[0] == 1


def test_failed_immediately_does_not_wait_out_the_deadline() -> None:
    clock = FakeClock()
    observe, _ = _observer([FAILED])
    result = wait_until(observe, 600, interval=1, clock=clock, sleep=clock.sleep)
    assert result.status == FAILED
    assert result.timed_out is False
    assert result.polls == 1
    assert clock.sleeps == []


def test_ready_after_some_polls() -> None:
    clock = FakeClock()
    observe, _ = _observer([PENDING, PENDING, PENDING, READY])
    result = wait_until(observe, 60, interval=2, clock=clock, sleep=clock.sleep)
    assert result.status.phase is Phase.READY
    assert result.polls == 4
    assert clock.sleeps == [2, 2, 2]
    assert result.seconds == 6


def test_fails_as_soon_as_a_failure_is_seen() -> None:
    clock = FakeClock()
    observe, _ = _observer([PENDING, FAILED, READY])
    result = wait_until(observe, 60, interval=1, clock=clock, sleep=clock.sleep)
    assert result.status == FAILED
    assert result.polls == 2


def test_timeout_at_the_deadline() -> None:
    clock = FakeClock()
    observe, _ = _observer([PENDING])
    result = wait_until(observe, 10, interval=2, clock=clock, sleep=clock.sleep)
    assert result.timed_out is True
    assert result.status == PENDING  # the last observation explains what it was waiting for
    assert result.seconds == 10
    assert result.polls == 6  # at 0, 2, 4, 6, 8 and at the deadline, 10
    assert sum(clock.sleeps) == 10


def test_the_last_sleep_is_cut_to_the_deadline() -> None:
    clock = FakeClock()
    observe, _ = _observer([PENDING])
    result = wait_until(observe, 5, interval=2, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [2, 2, 1]  # never sleeps past the deadline
    assert result.seconds == 5
    assert result.polls == 4


def test_a_slow_observation_counts_against_the_deadline() -> None:
    clock = FakeClock()

    def slow_observe() -> Status:
        clock.now += 4  # e.g. an HTTP probe that hangs for 4 s
        return PENDING

    result = wait_until(slow_observe, 10, interval=1, clock=clock, sleep=clock.sleep)
    assert result.timed_out is True
    assert result.polls == 3  # 0→4, sleep 1, 5→9, sleep 1, 10→14: past the deadline, give up
    assert result.seconds == 14


def test_zero_timeout_polls_once() -> None:
    clock = FakeClock()
    observe, _ = _observer([PENDING])
    result = wait_until(observe, 0, interval=1, clock=clock, sleep=clock.sleep)
    assert (result.timed_out, result.polls) == (True, 1)
    assert clock.sleeps == []


# --- one look at a local container ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "restarts", "http_ok", "phase"),
    [
        ("running", 0, True, Phase.READY),
        ("running", 0, False, Phase.PENDING),
        ("created", 0, False, Phase.PENDING),
        ("exited", 0, False, Phase.FAILED),
        ("dead", 0, False, Phase.FAILED),
        ("restarting", 1, False, Phase.FAILED),
        ("running", 2, True, Phase.FAILED),  # it crashed and came back: init() is unreliable
        (None, 0, False, Phase.FAILED),
    ],
)
def test_container_status(status: str | None, restarts: int, http_ok: bool, phase: Phase) -> None:
    observed = container_status(status=status, restart_count=restarts, http_ok=http_ok)
    assert observed.phase is phase
    if phase is not Phase.READY:
        assert observed.reason
