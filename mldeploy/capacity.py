"""Replica math, measured: how many replicas a declared request rate needs, from latency the smoke stage measured.

The guide's formula, replicas = ceil(rps × request seconds / target utilization / concurrent requests per
replica), with the request time taken from the last smoke test of the service (recorded on the target), never
guessed. Pure: the plan and smoke stages turn a ``Capacity`` into a notice, a plan section and a diagnosis.
"""

from __future__ import annotations

from dataclasses import dataclass

from mldeploy.diagnosis import replicas_needed
from mldeploy.spec import Autoscale, KubernetesTarget


@dataclass(frozen=True)
class Capacity:
    expected_rps: float
    request_seconds: float | None  # None: nothing measured yet
    utilization: float  # 0..1
    concurrency: int  # requests one replica scores at once
    fewest: int  # replicas that serve at the least (fixed count, or the autoscaler's minimum)

    @property
    def needed(self) -> int | None:
        if self.request_seconds is None:
            return None
        return replicas_needed(self.expected_rps, self.request_seconds, self.utilization, self.concurrency)

    @property
    def formula(self) -> str:
        if self.request_seconds is None:
            return "no request time measured yet"
        return (
            f"ceil({self.expected_rps:g} req/s × {self.request_seconds:.3f} s / {self.utilization:g} / "
            f"{self.concurrency}) = {self.needed}"
        )

    @property
    def short(self) -> bool:
        return self.needed is not None and self.fewest < self.needed


def capacity(section: KubernetesTarget, request_seconds: float | None) -> Capacity | None:
    """The numbers for a Kubernetes target that declares ``expected_rps`` (None when it does not)."""
    if section.expected_rps is None:
        return None
    scaling = section.scaling
    fewest = scaling if isinstance(scaling, int) else scaling.min_replicas
    utilization = scaling.target_utilization / 100 if isinstance(scaling, Autoscale) else 1.0
    return Capacity(
        section.expected_rps, request_seconds, utilization, section.max_concurrent_requests_per_replica, fewest
    )


def capacity_notice(found: Capacity) -> str | None:
    """A warning when the fewest replicas invite 503s at the declared rate; a note when nothing was measured."""
    if found.request_seconds is None:
        return (
            f"target.expected_rps is {found.expected_rps:g} req/s, but no request time was measured yet: the smoke "
            "test of this deploy measures it, and the next plan checks the replica count against it"
        )
    if found.short:
        which = "target.replicas" if found.utilization == 1.0 else "target.autoscale.min_replicas"
        return (
            f"WARNING {which} is {found.fewest}, but {found.expected_rps:g} req/s at the measured "
            f"{found.request_seconds * 1000:.0f} ms per request needs {found.needed} ({found.formula}): "
            "expect HTTP 503 under that load"
        )
    return None


def capacity_markdown(found: Capacity) -> list[str]:
    measured = (
        f"{found.request_seconds * 1000:.0f} ms (the last smoke test)"
        if found.request_seconds is not None
        else "not measured yet"
    )
    return [
        "",
        "Capacity:",
        f"- expected: {found.expected_rps:g} req/s; fewest replicas: {found.fewest}",
        f"- request time: {measured}",
        f"- replicas needed: {found.formula}",
    ]
