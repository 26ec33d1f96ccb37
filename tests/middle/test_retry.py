"""The one retry policy: only transient errors, bounded attempts and time, Retry-After honoured."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from mldeploy import retry
from mldeploy.errors import PermanentError, TransientError, retry_after_seconds


def test_permanent_errors_are_never_retried() -> None:
    decision = retry.decide(PermanentError("bad credentials"), elapsed_seconds=0)
    assert not decision.retry


def test_unknown_errors_are_permanent() -> None:
    assert not retry.decide(RuntimeError("who knows"), elapsed_seconds=0).retry


def test_transient_errors_are_retried_within_the_budget() -> None:
    assert retry.decide(TransientError("503"), elapsed_seconds=10).retry
    assert not retry.decide(TransientError("503"), elapsed_seconds=retry.RETRY_BUDGET_SECONDS + 1).retry


def test_a_delay_the_server_asked_for_is_waited_first() -> None:
    decision = retry.decide(TransientError("429", delay=12), elapsed_seconds=0)
    assert decision.retry and decision.wait_first == 12 and "Retry-After" in decision.reason


def test_a_delay_beyond_the_budget_is_not_waited_out() -> None:
    decision = retry.decide(TransientError("429", delay=400), elapsed_seconds=0)
    assert not decision.retry


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (None, None), ("", None), ("soon", None), ("Wed, 30 Nov 2026 10:00:30 GMT", 30.0)],
)
def test_retry_after_is_read_as_seconds_or_a_date(header, seconds) -> None:
    now = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC).timestamp()
    assert retry_after_seconds(header, now=now) == seconds


def test_the_delay_survives_pickling_through_prefect_states() -> None:
    import pickle

    restored = pickle.loads(pickle.dumps(TransientError("429", delay=3.5)))
    assert isinstance(restored, TransientError) and restored.delay == 3.5


def test_the_prefect_hook_waits_for_retry_after(monkeypatch) -> None:
    from prefect.client.schemas.objects import TaskRun
    from prefect.states import Failed

    from mldeploy.orchestration import retry_if_transient

    slept: list[float] = []
    monkeypatch.setattr("mldeploy.orchestration.time.sleep", slept.append)
    run = TaskRun(task_key="t", dynamic_key="0", start_time=datetime.now(UTC) - timedelta(seconds=5))
    assert retry_if_transient(None, run, Failed(data=TransientError("429", delay=2.5)))  # type: ignore[arg-type]
    assert slept == [2.5]
    assert not retry_if_transient(None, run, Failed(data=PermanentError("401")))  # type: ignore[arg-type]
    old = TaskRun(task_key="t", dynamic_key="0", start_time=datetime.now(UTC) - timedelta(seconds=1000))
    assert not retry_if_transient(None, old, Failed(data=TransientError("503")))  # type: ignore[arg-type]


def test_a_stage_task_really_retries_after_the_delay() -> None:
    """The options every stage task uses, on a real Prefect run (the test harness)."""
    from prefect import flow, task
    from prefect.testing.utilities import prefect_test_harness

    from mldeploy.orchestration import STAGE_TASK_OPTIONS

    attempts: list[float] = []

    @task(**{**STAGE_TASK_OPTIONS, "retry_delay_seconds": 0, "retry_jitter_factor": None})
    def flaky() -> str:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise TransientError("registry answered 429", delay=1.0)
        return "ok"

    @task(**{**STAGE_TASK_OPTIONS, "retry_delay_seconds": 0, "retry_jitter_factor": None})
    def denied() -> str:
        attempts.append(time.monotonic())
        raise PermanentError("registry answered 401")

    @flow
    def run_both() -> tuple[str, str]:
        first = flaky()
        state = denied(return_state=True)
        return first, state.type.value

    with prefect_test_harness():
        result, denied_state = run_both()
    assert result == "ok" and denied_state == "FAILED"
    assert len(attempts) == 3, "flaky twice, denied once (a permanent error is not retried)"
    assert attempts[1] - attempts[0] >= 1.0, "the retry waited for Retry-After"
