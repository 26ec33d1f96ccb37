"""Golden-file comparison with a readable diff.

``assert_golden(text, "name.ext")`` compares ``text`` with ``tests/golden/name.ext``. On a mismatch
the assertion message is a unified diff (golden → actual). To accept a deliberate change, rerun with
``UPDATE_GOLDEN=1`` (e.g. ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_dockerfile.py``), which
rewrites the golden files instead of comparing, and review the result with ``git diff tests/golden``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"


def updating() -> bool:
    return os.environ.get("UPDATE_GOLDEN", "").strip().lower() in {"1", "true", "yes"}


def assert_golden(actual: str, name: str) -> None:
    path = GOLDEN_DIR / name
    if updating():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    if not path.is_file():
        raise AssertionError(f"golden file {path} does not exist; create it with UPDATE_GOLDEN=1")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"golden/{name}",
                tofile="rendered",
            )
        )
        raise AssertionError(f"{name} differs from the golden file (rerun with UPDATE_GOLDEN=1 to accept):\n{diff}")
