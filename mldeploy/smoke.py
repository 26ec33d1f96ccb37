"""Judge smoke-test replies against the spec's expectations: pure."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from mldeploy.spec import SmokeCase

REL_TOL = 1e-6
ABS_TOL = 1e-9


@dataclass(frozen=True)
class CaseResult:
    name: str
    status: int | None
    expected_status: int
    latency_ms: float
    passed: bool
    problems: tuple[str, ...]
    response_excerpt: str
    error: str = ""  # why there was no answer (connection refused, timeout)
    sent: str = ""  # what was sent, for the table

    def row(self) -> dict[str, str]:
        return {
            "request": self.name,
            "sent": self.sent,
            "status": str(self.status) if self.status is not None else "no answer",
            "expected": str(self.expected_status),
            "latency ms": f"{self.latency_ms:.1f}",
            "result": "pass" if self.passed else "FAIL: " + "; ".join(self.problems),
            "response": self.response_excerpt,
        }


def differences(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """Where ``actual`` differs from ``expected`` (numbers compared with a small tolerance)."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return [] if expected is actual else [f"{where}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        if math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            return []
        return [f"{where}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in expected:
            if key not in actual:
                found.append(f"{where}.{key}: missing")
            else:
                found += differences(expected[key], actual[key], f"{where}.{key}")
        found += [f"{where}.{key}: unexpected" for key in actual if key not in expected]
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: expected {len(expected)} items, got {len(actual)}"]
        found = []
        for index, (exp, act) in enumerate(zip(expected, actual, strict=True)):
            found += differences(exp, act, f"{where}[{index}]")
        return found
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def judge(case: SmokeCase, status: int | None, body: str, seconds: float, error: str = "") -> CaseResult:
    problems: list[str] = []
    if status is None:
        problems.append(f"no answer ({error})")
    elif status != case.expect_status:
        problems.append(f"status {status}, expected {case.expect_status}")
    if status is not None and case.has_expect:
        try:
            actual: Any = json.loads(body)
        except ValueError:
            actual = body
        problems += differences(case.expect, actual)
    if status is not None and case.expect_text is not None and body != case.expect_text:
        shown = body if len(body) <= 80 else body[:80] + "…"
        problems.append(f"expected the text {case.expect_text[:80]!r}, got {shown!r}")
    latency_ms = seconds * 1000
    if case.max_latency_ms is not None and latency_ms > case.max_latency_ms:
        problems.append(f"took {latency_ms:.0f} ms, limit {case.max_latency_ms:g} ms")
    excerpt = body if len(body) <= 200 else body[:200] + "…"
    return CaseResult(
        case.name,
        status,
        case.expect_status,
        latency_ms,
        not problems,
        tuple(problems),
        excerpt,
        error,
        case.description(),
    )
