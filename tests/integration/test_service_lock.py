"""One deploy at a time per service, on a real Prefect server's concurrency limits."""

from __future__ import annotations

import contextvars
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from mldeploy import orchestration

pytestmark = [pytest.mark.server, pytest.mark.slow]

TRIALS = int(os.environ.get("MLDEPLOY_LOCK_TRIALS", "100"))


class Window:
    """Counts holders inside a critical section and remembers the most seen at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0
        self.entries = 0

    def __enter__(self) -> None:
        with self.lock:
            self.inside += 1
            self.entries += 1
            self.most = max(self.most, self.inside)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.inside -= 1


def _in_context(target, *args) -> threading.Thread:
    """A thread that sees this test's Prefect settings (they live in context variables)."""
    context = contextvars.copy_context()
    return threading.Thread(target=context.run, args=(target, *args))


def _contend(service: str, window: Window, barrier: threading.Barrier, errors: list[BaseException]) -> None:
    try:
        barrier.wait()
        with orchestration.service_lock(service), window:
            time.sleep(0.02)
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_same_service_holders_never_overlap_in_a_race(prefect_server):
    """TRIALS races of two contenders for one service's slot, ten services racing at a time."""
    windows: list[Window] = []
    errors: list[BaseException] = []
    for batch in range(0, TRIALS, 10):
        threads = []
        for _ in range(min(10, TRIALS - batch)):
            service, window, barrier = f"race-{uuid.uuid4().hex[:8]}", Window(), threading.Barrier(2)
            windows.append(window)
            threads += [_in_context(_contend, service, window, barrier, errors) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert errors == []
    assert len(windows) == TRIALS
    assert all(w.entries == 2 for w in windows), "every contender got its slot in the end"
    assert max(w.most for w in windows) == 1, "two holders of one service's slot at once"


def test_different_services_hold_their_slots_at_the_same_time(prefect_server):
    """Each holder, once inside, waits for the other to be inside too: only possible when both slots are held at
    once (serialised slots would leave the first waiting until its deadline). No fixed sleep to race against a
    slow server."""
    window, errors = Window(), []
    inside = [threading.Event(), threading.Event()]

    def hold(me: int, service: str) -> None:
        try:
            with orchestration.service_lock(service), window:
                inside[me].set()
                if not inside[1 - me].wait(timeout=60):
                    raise AssertionError(f"{service} held its slot alone for 60 s: the other service never got in")
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [_in_context(hold, me, f"par-{uuid.uuid4().hex[:8]}") for me in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and window.most == 2


def test_a_missing_limit_fails_instead_of_running_unguarded(prefect_server, monkeypatch):
    monkeypatch.setattr(orchestration, "ensure_service_limit", orchestration.service_lock_name)
    service = f"nolimit-{uuid.uuid4().hex[:8]}"
    # Prefect's strict mode raises its ConcurrencySlotAcquisitionError (from a private module)
    with (
        pytest.raises(Exception, match="must be created before acquiring slots") as caught,
        orchestration.service_lock(service),
    ):
        pytest.fail("ran without holding the slot")
    assert orchestration.service_lock_name(service) in str(caught.value)


HOLDER = """
import sys, time
from mldeploy import orchestration
with orchestration.service_lock(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_crashed_holder_frees_the_slot_within_its_lease(prefect_server, monkeypatch):
    lease = orchestration.LOCK_LEASE_SECONDS  # 60 s: the shortest lease Prefect accepts
    service = f"crash-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, service],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        start_new_session=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    killed_at = time.monotonic()
    with orchestration.service_lock(service):
        waited = time.monotonic() - killed_at
    # the server revokes expired leases on its own schedule (a few seconds); allow for it
    assert waited <= lease + 30, f"the slot of a dead holder stayed taken for {waited:.0f} s"
