"""A hook for stage progress lines: the CLI sets a reporter; workers and tests leave it unset.

A plain module global, not a ContextVar: Prefect runs the flow body in a context of its own.
"""

from __future__ import annotations

from collections.abc import Callable

Reporter = Callable[[str, str, float], None]
Noter = Callable[[str, str], None]
_reporter: Reporter | None = None
_noter: Noter | None = None


def set_reporter(callback: Reporter | None, noter: Noter | None = None) -> None:
    global _reporter, _noter
    _reporter, _noter = callback, noter


def note(stage: str, text: str) -> None:
    """A milestone inside a stage (a build step, the candidate becoming healthy) for humans."""
    if _noter is not None:
        _noter(stage, text)


def report(stage: str, state: str, seconds: float = 0.0) -> None:
    if _reporter is not None:
        _reporter(stage, state, seconds)
