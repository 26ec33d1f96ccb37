"""One error taxonomy for the whole pipeline.

Adapters translate every foreign exception at their boundary into one of two roots
(the kopf contract): :class:`TransientError` — the same call may succeed later, so a retry
is worth it — or :class:`PermanentError` — retrying is useless. Unknown errors are permanent.
Each error may carry a :class:`~mldeploy.diagnosis.Diagnosis` with the evidence and a fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

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
    """Retrying will not help: bad input, auth, not found, a crash on start, a failed check."""


class TransientError(MldeployError):
    """The same call may succeed later: daemon or registry unavailable, 429/5xx, timeouts, resets."""


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
