"""Judging a Kubernetes rollout from what the API server reports: pure functions over plain objects.

``rollout_status`` is kubectl's ``rollout status`` algorithm for a Deployment (generation observed, new
replicas updated, old ones gone, updated ones available, the progress deadline), plus one check of ours:
the Deployment still carries the fingerprint this run applied, so a later apply by someone else is not
mistaken for our rollout. ``pod_evidence`` looks at the pods of the new ReplicaSet on every poll and
returns the first proof that waiting is pointless: a container that exited or was OOM-killed, an image
that cannot be pulled, a pod the scheduler cannot place, a container whose configuration cannot be made.
The target turns that evidence and the container's log into a diagnosis (``mldeploy.diagnosis``).

Objects are the API's JSON (camelCase keys), as ``ApiClient.sanitize_for_serialization`` returns them and
as the fixtures in ``tests/fixtures/kubernetes`` record them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mldeploy.waiting import Phase, Status

FINGERPRINT_ANNOTATION = "mldeploy.dev/fingerprint"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"

Obj = Mapping[str, Any]


def _get(obj: Obj | None, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return default
        obj = obj[key]
    return obj if obj is not None else default


def condition(obj: Obj, kind: str) -> Obj | None:
    return next((c for c in _get(obj, "status", "conditions", default=[]) if c.get("type") == kind), None)


def rollout_status(deployment: Obj, fingerprint: str = "") -> Status:
    """One look at a Deployment: rolled out, still rolling (and on what), or failed (kubectl's rules)."""
    name = _get(deployment, "metadata", "name", default="?")
    applied = _get(deployment, "spec", "template", "metadata", "annotations", FINGERPRINT_ANNOTATION, default="")
    if fingerprint and applied != fingerprint:
        return Status(Phase.FAILED, f"deployment {name} was changed by someone else during the rollout")
    generation = _get(deployment, "metadata", "generation", default=0)
    observed = _get(deployment, "status", "observedGeneration", default=0)
    if generation > observed:
        return Status(Phase.PENDING, "waiting for the deployment controller to observe the new spec")
    progressing = condition(deployment, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return Status(Phase.FAILED, f"deployment {name} exceeded its progress deadline")
    wanted = _get(deployment, "spec", "replicas")
    status = _get(deployment, "status", default={})
    updated = status.get("updatedReplicas", 0) or 0
    replicas = status.get("replicas", 0) or 0
    available = status.get("availableReplicas", 0) or 0
    if wanted is not None and updated < wanted:
        return Status(Phase.PENDING, f"{updated} of {wanted} new replicas updated")
    if replicas > updated:
        return Status(Phase.PENDING, f"{replicas - updated} old replicas pending termination")
    if available < updated:
        return Status(Phase.PENDING, f"{available} of {updated} updated replicas available")
    return Status(Phase.READY, f"deployment {name} successfully rolled out")


class EvidenceKind(StrEnum):
    CRASHED = "crashed"  # the container exited (init() raised, the script did not import, a kill)
    OUT_OF_MEMORY = "out_of_memory"
    IMAGE_PULL = "image_pull"
    UNSCHEDULABLE = "unschedulable"
    CONFIG_ERROR = "config_error"  # CreateContainerConfigError: a missing Secret or key


@dataclass(frozen=True)
class Evidence:
    """Proof, found in a pod's status, that the rollout will not become ready by waiting."""

    kind: EvidenceKind
    pod: str
    container: str
    message: str
    exit_code: int | None = None
    previous_log: bool = False  # the log to read is the previous (crashed) instance's


_IMAGE_PULL = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
_CONFIG = ("CreateContainerConfigError", "CreateContainerError")


def _terminated(status: Obj) -> tuple[Obj, bool] | None:
    """The container's termination: now (state) or just before its restart (lastState, previous log)."""
    now = _get(status, "state", "terminated")
    if now:
        return now, False
    last = _get(status, "lastState", "terminated")
    if last and (status.get("restartCount", 0) or 0) > 0:
        return last, True
    return None


def container_evidence(pod: Obj) -> Evidence | None:
    """A container of the pod that will not serve: OOM-killed, exited, or stuck before it could start."""
    name = _get(pod, "metadata", "name", default="?")
    for status in _get(pod, "status", "containerStatuses", default=[]):
        container = status.get("name", "?")
        waiting = _get(status, "state", "waiting") or {}
        reason = waiting.get("reason", "")
        if reason in _IMAGE_PULL:
            return Evidence(EvidenceKind.IMAGE_PULL, name, container, waiting.get("message") or reason)
        if reason in _CONFIG:
            return Evidence(EvidenceKind.CONFIG_ERROR, name, container, waiting.get("message") or reason)
        ended = _terminated(status)
        if ended is None:
            continue
        term, previous = ended
        code = term.get("exitCode")
        if term.get("reason") == "OOMKilled":
            return Evidence(EvidenceKind.OUT_OF_MEMORY, name, container, "OOMKilled", code, previous)
        if code not in (None, 0) or reason == "CrashLoopBackOff":
            what = f"exited with code {code}" + (f" ({term['reason']})" if term.get("reason") else "")
            return Evidence(EvidenceKind.CRASHED, name, container, what, code, previous)
    return None


def scheduling_evidence(pod: Obj) -> Evidence | None:
    scheduled = condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        name = _get(pod, "metadata", "name", default="?")
        return Evidence(EvidenceKind.UNSCHEDULABLE, name, "", scheduled.get("message") or "Unschedulable")
    return None


POD_CHECKS = (container_evidence, scheduling_evidence)


def pod_evidence(pods: Sequence[Obj]) -> Evidence | None:
    """The first evidence among the new ReplicaSet's pods (oldest pod first, so it is stable across polls)."""
    for pod in sorted(pods, key=lambda p: _get(p, "metadata", "creationTimestamp", default="") or ""):
        if _get(pod, "metadata", "deletionTimestamp"):
            continue
        for check in POD_CHECKS:
            found = check(pod)
            if found is not None:
                return found
    return None


def revision_of(obj: Obj) -> int:
    """The rollout revision a Deployment or ReplicaSet carries (0 when none yet)."""
    try:
        return int(_get(obj, "metadata", "annotations", REVISION_ANNOTATION, default="0"))
    except ValueError:
        return 0


def replica_set_of_revision(replica_sets: Sequence[Obj], revision: int) -> Obj | None:
    return next((rs for rs in replica_sets if revision_of(rs) == revision), None)


def template_for_rollback(replica_set: Obj) -> dict[str, Any]:
    """A ReplicaSet's pod template as a Deployment template again (``kubectl rollout undo``): without the
    pod-template-hash label the Deployment controller adds."""
    template = dict(_get(replica_set, "spec", "template", default={}))
    metadata = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != "pod-template-hash"}
    metadata["labels"] = labels
    template["metadata"] = metadata
    return template
