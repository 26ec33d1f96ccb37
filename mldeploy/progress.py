"""A hook for stage progress lines: the CLI sets a reporter; workers and tests leave it unset.

A plain module global, not a ContextVar: Prefect runs the flow body in a context of its own.
"""

from __future__ import annotations

from collections.abc import Callable

Reporter = Callable[[str, str, float], None]
_reporter: Reporter | None = None


def set_reporter(callback: Reporter | None) -> None:
    global _reporter
    _reporter = callback


def report(stage: str, state: str, seconds: float = 0.0) -> None:
    if _reporter is not None:
        _reporter(stage, state, seconds)
