"""The one retry policy, as a pure decision (Prefect applies it; tests call it directly).

Only errors an adapter classified as transient are retried, a bounded number of times and
only while the stage's time budget lasts (stamina's rule: bound attempts *and* time). When the
other side said how long to wait (``Retry-After`` on a 429/503), the next attempt waits at
least that long.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mldeploy.errors import TransientError, is_transient

RETRY_ATTEMPTS = 3
RETRY_BUDGET_SECONDS = 300.0  # no retry starts after this long since the stage's first attempt
# Delays grow 2 s, 4 s, 8 s (± jitter); tests shorten them with MLDEPLOY_RETRY_BACKOFF_SECONDS.
RETRY_BACKOFF_SECONDS = float(os.environ.get("MLDEPLOY_RETRY_BACKOFF_SECONDS", "2"))


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    wait_first: float  # seconds to wait on top of the backoff (what Retry-After asks beyond it)
    reason: str


def decide(exc: BaseException, elapsed_seconds: float, *, budget: float = RETRY_BUDGET_SECONDS) -> RetryDecision:
    """Whether a failed attempt is retried, and how long the server asked us to wait first."""
    if not is_transient(exc):
        return RetryDecision(False, 0.0, "permanent error: retrying will not help")
    delay = exc.delay if isinstance(exc, TransientError) and exc.delay else 0.0
    if elapsed_seconds + delay > budget:
        return RetryDecision(False, 0.0, f"the stage has used its {budget:.0f} s retry budget")
    if delay:
        return RetryDecision(True, delay, f"transient; the server asked to wait {delay:g} s (Retry-After)")
    return RetryDecision(True, 0.0, "transient")
