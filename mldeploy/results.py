"""What one stage hands the next: plain frozen values, shared by the tasks and the flow.

``reused`` says the stage found its output already made by an earlier run with the same
inputs (same model bytes, an image with the same fingerprint, the same manifest in the
registry) and did not make it again: the summary shows such a stage as ``cached``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mldeploy.plan import BuildPlan
from mldeploy.targets.base import LiveService


@dataclass(frozen=True)
class PlanResult:
    plan: BuildPlan
    live: LiveService | None
    noop: bool
    drift: tuple[str, ...]  # why the live service differs from the plan (empty: it does not)


@dataclass(frozen=True)
class BuiltImage:
    image_id: str
    ref: str  # the local reference repository:tag
    steps: int = 0
    cached_steps: int = 0
    rebuilt: tuple[str, ...] = ()
    wheels: int = 0
    log_file: str = ""
    seconds: float = 0.0
    reused: bool = False


@dataclass(frozen=True)
class PushedImage:
    ref: str  # what deploys use: name@digest, or the local image id when not pushed
    digest: str | None
    pushed: bool
    layers_uploaded: int = 0
    reused: bool = False
