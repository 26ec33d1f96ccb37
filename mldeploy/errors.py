"""One error taxonomy for the whole pipeline.

Adapters translate every foreign exception at their boundary into one of two roots
(the kopf contract): :class:`TransientError` — the same call may succeed later, so a retry
is worth it — or :class:`PermanentError` — retrying is useless. Unknown errors are permanent.
Each error may carry a :class:`~mldeploy.diagnosis.Diagnosis` with the evidence and a fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from mldeploy.diagnosis import Diagnosis


class MldeployError(Exception):
    """Base of every error mldeploy raises on purpose."""

    def __init__(self, message: str, *, diagnosis: Diagnosis | None = None, log: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.diagnosis = diagnosis
        self.log = log  # the full (redacted) log behind the failure, attached as its own artifact

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the diagnosis and the log when Prefect pickles the exception into a Failed state.
        return (_rebuild, (type(self), self.message, self.diagnosis, self.log))


def _rebuild(
    cls: type[MldeployError], message: str, diagnosis: Diagnosis | None, log: str | None = None
) -> MldeployError:
    return cls(message, diagnosis=diagnosis, log=log)


class PermanentError(MldeployError):
    """Retrying will not help: bad input, auth, not found, a crash on start, a failed check.

    ``rolled_back_to``: the version a target restored before giving up (a Kubernetes revision), for the
    run summary.
    """

    def __init__(
        self,
        message: str,
        *,
        diagnosis: Diagnosis | None = None,
        log: str | None = None,
        rolled_back_to: str | None = None,
    ) -> None:
        super().__init__(message, diagnosis=diagnosis, log=log)
        self.rolled_back_to = rolled_back_to

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_permanent, (type(self), self.message, self.diagnosis, self.log, self.rolled_back_to))


def _rebuild_permanent(
    cls: type[PermanentError], message: str, diagnosis: Diagnosis | None, log: str | None, rolled_back_to: str | None
) -> PermanentError:
    return cls(message, diagnosis=diagnosis, log=log, rolled_back_to=rolled_back_to)


class TransientError(MldeployError):
    """The same call may succeed later: daemon or registry unavailable, 429/5xx, timeouts, resets.

    ``delay``: how long the other side asked us to wait (HTTP ``Retry-After``); the retry policy
    waits at least that long before the next attempt.
    """

    def __init__(
        self,
        message: str,
        *,
        diagnosis: Diagnosis | None = None,
        log: str | None = None,
        delay: float | None = None,
    ) -> None:
        super().__init__(message, diagnosis=diagnosis, log=log)
        self.delay = delay

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_transient, (type(self), self.message, self.diagnosis, self.log, self.delay))


def _rebuild_transient(
    cls: type[TransientError], message: str, diagnosis: Diagnosis | None, log: str | None, delay: float | None
) -> TransientError:
    return cls(message, diagnosis=diagnosis, log=log, delay=delay)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """HTTP ``Retry-After``: seconds, or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import time

    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class SpecError(PermanentError):
    """The service spec is invalid. Carries every problem found, not just the first."""

    def __init__(self, spec_path: str, problems: list[SpecProblem]) -> None:
        self.spec_path = spec_path
        self.problems = problems
        lines = [f"{spec_path}: {len(problems)} problem(s) in the service spec"]
        lines += [f"  - {p}" for p in problems]
        from mldeploy.diagnosis import spec_invalid

        super().__init__("\n".join(lines), diagnosis=spec_invalid(spec_path, [str(p) for p in problems]))

    def __reduce__(self) -> tuple[object, ...]:
        return (SpecError, (self.spec_path, self.problems))


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec: where (file and field), what, and how to fix it."""

    file: str
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message} (fix: {self.fix})"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "field": self.field, "message": self.message, "fix": self.fix}


def is_transient(exc: BaseException) -> bool:
    """The one retry predicate: only errors classified transient at a boundary are retried."""
    return isinstance(exc, TransientError)


E = TypeVar("E")


def most_specific(exc: BaseException, table: Mapping[type[BaseException], E]) -> E | None:
    """The table entry for the most specific class of ``exc`` (httpx's mapping rule), or None."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None
