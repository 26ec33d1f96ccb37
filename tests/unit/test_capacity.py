"""Replica math with measured latency: the numbers a plan shows and the warning it gives."""

from __future__ import annotations

from typing import Any

from mldeploy.capacity import capacity, capacity_markdown, capacity_notice
from mldeploy.spec import KubernetesTarget


def section(**keys: Any) -> KubernetesTarget:
    return KubernetesTarget.model_validate({"kind": "kubernetes", **keys})


def test_no_declared_rate_means_no_capacity_check() -> None:
    assert capacity(section(), 0.05) is None


def test_the_guides_formula_with_the_autoscalers_utilization() -> None:
    found = capacity(section(expected_rps=100, autoscale={"min_replicas": 2, "target_utilization": 70}), 0.1)
    assert found is not None
    assert (found.fewest, found.utilization, found.concurrency, found.needed) == (2, 0.7, 1, 15)
    assert found.short
    notice = capacity_notice(found)
    assert notice is not None and notice.startswith("WARNING target.autoscale.min_replicas is 2")
    assert "needs 15" in notice and "100 ms" in notice and "503" in notice


def test_fixed_replicas_and_concurrency() -> None:
    found = capacity(section(expected_rps=40, replicas=3, max_concurrent_requests_per_replica=2), 0.1)
    assert found is not None and found.needed == 2 and not found.short
    assert capacity_notice(found) is None
    low = capacity(section(expected_rps=40, replicas=1, max_concurrent_requests_per_replica=2), 0.1)
    assert low is not None and (capacity_notice(low) or "").startswith("WARNING target.replicas is 1")


def test_nothing_measured_yet_says_so_instead_of_guessing() -> None:
    found = capacity(section(expected_rps=50), None)
    assert found is not None and found.needed is None and not found.short
    assert "no request time was measured yet" in (capacity_notice(found) or "")
    assert "- replicas needed: no request time measured yet" in capacity_markdown(found)
