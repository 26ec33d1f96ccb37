"""kubectl's rollout-status rules as a pure function, and the pod evidence that ends a wait early, judged on
statuses recorded from the test cluster's real node (tests/fixtures/kubernetes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mldeploy.rollout import (
    FINGERPRINT_ANNOTATION,
    EvidenceKind,
    pod_evidence,
    replica_set_of_revision,
    rollout_status,
    template_for_rollback,
)
from mldeploy.waiting import Phase

PODS = Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes" / "pods"


def pod(name: str) -> dict[str, Any]:
    return dict(json.loads((PODS / f"{name}.json").read_text()))


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int | None = 2,
    updated: int = 2,
    total: int = 2,
    available: int = 2,
    progressing: str = "NewReplicaSetAvailable",
    fingerprint: str = "fp",
) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"metadata": {"annotations": {FINGERPRINT_ANNOTATION: fingerprint}}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "metadata": {"name": "diabetes", "generation": generation},
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "replicas": total,
            "availableReplicas": available,
            "conditions": [{"type": "Progressing", "status": "True", "reason": progressing}],
        },
    }


# one row per branch of kubectl's DeploymentStatusViewer (and our fingerprint check)
ROLLOUT = [
    ("spec not observed yet", deployment(generation=3, observed=2), Phase.PENDING, "observe the new spec"),
    ("progress deadline", deployment(progressing="ProgressDeadlineExceeded"), Phase.FAILED, "progress deadline"),
    ("new replicas not all updated", deployment(updated=1), Phase.PENDING, "1 of 2 new replicas updated"),
    ("old replicas still there", deployment(total=3), Phase.PENDING, "1 old replicas pending termination"),
    ("updated not yet available", deployment(available=1), Phase.PENDING, "1 of 2 updated replicas available"),
    ("complete", deployment(), Phase.READY, "successfully rolled out"),
    ("autoscaled (no spec.replicas)", deployment(replicas=None, updated=3, total=3, available=3), Phase.READY, ""),
    ("someone else applied", deployment(fingerprint="theirs"), Phase.FAILED, "changed by someone else"),
]


@pytest.mark.parametrize(("case", "obj", "phase", "said"), ROLLOUT, ids=[row[0] for row in ROLLOUT])
def test_rollout_status_follows_kubectl(case: str, obj: dict[str, Any], phase: Phase, said: str) -> None:
    status = rollout_status(obj, "fp")
    assert status.phase is phase, case
    assert said in status.reason


def test_a_status_without_fields_is_waiting_not_an_error() -> None:
    bare = {"metadata": {"name": "d", "generation": 1}, "spec": {"replicas": 1}, "status": {}}
    assert rollout_status(bare).phase is Phase.PENDING


# the real node's own statuses, each with the evidence it must yield
EVIDENCE = [
    ("crash", EvidenceKind.CRASHED, 3, False, "exited with code 3 (Error)"),
    ("crashloop", EvidenceKind.CRASHED, 3, True, "exited with code 3 (Error)"),
    ("oom", EvidenceKind.OUT_OF_MEMORY, 137, False, "OOMKilled"),
    ("pull", EvidenceKind.IMAGE_PULL, None, False, "not found"),
    ("unschedulable", EvidenceKind.UNSCHEDULABLE, None, False, "Insufficient cpu"),
    ("config", EvidenceKind.CONFIG_ERROR, None, False, 'secret "missing-secret" not found'),
]


@pytest.mark.parametrize(("name", "kind", "code", "previous", "said"), EVIDENCE, ids=[row[0] for row in EVIDENCE])
def test_each_recorded_failure_is_evidence(
    name: str, kind: EvidenceKind, code: int | None, previous: bool, said: str
) -> None:
    found = pod_evidence([pod(name)])
    assert found is not None
    assert (found.kind, found.exit_code, found.previous_log) == (kind, code, previous)
    assert said in found.message
    assert found.pod.startswith("diabetes-")


def test_a_ready_pod_and_a_starting_one_are_no_evidence() -> None:
    starting = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "scoring", "state": {"waiting": {"reason": "ContainerCreating"}}, "restartCount": 0}
            ],
        },
    }
    assert pod_evidence([pod("ready"), starting]) is None


def test_a_pod_being_deleted_is_not_judged() -> None:
    leaving = pod("crash")
    leaving["metadata"]["deletionTimestamp"] = "2026-11-30T12:31:00Z"
    assert pod_evidence([leaving]) is None


def test_a_clean_exit_that_was_restarted_is_still_a_crash_loop() -> None:
    status = {
        "name": "scoring",
        "restartCount": 2,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 0, "reason": "Completed"}},
    }
    found = pod_evidence([{"metadata": {"name": "p"}, "status": {"containerStatuses": [status]}}])
    assert found is not None and found.kind is EvidenceKind.CRASHED and found.previous_log


def test_rollback_takes_the_revisions_template_without_the_controllers_hash() -> None:
    sets = [
        {
            "metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"template": {"metadata": {"labels": {"app": "d", "pod-template-hash": "abc"}}, "spec": {"x": 1}}},
        },
        {"metadata": {"annotations": {"deployment.kubernetes.io/revision": "2"}}, "spec": {"template": {}}},
    ]
    first = replica_set_of_revision(sets, 1)
    assert first is not None and replica_set_of_revision(sets, 7) is None
    template = template_for_rollback(first)
    assert template["metadata"]["labels"] == {"app": "d"} and template["spec"] == {"x": 1}
    assert "pod-template-hash" in sets[0]["spec"]["template"]["metadata"]["labels"]  # the input is untouched


def _waiting_message(name: str) -> str:
    return str(pod(name)["status"]["containerStatuses"][0]["state"]["waiting"]["message"])


def test_image_pull_messages_are_told_apart() -> None:
    from mldeploy.diagnosis import Code, image_pull_failed

    missing = image_pull_failed("127.0.0.1:5000/nope@sha256:00", _waiting_message("pull"), "p")
    assert missing.code is Code.IMAGE_NOT_FOUND and "--from-stage push" in missing.hint
    denied = image_pull_failed(
        "myacr.azurecr.io/d@sha256:00",
        'failed to pull and unpack image "myacr.azurecr.io/d@sha256:00": failed to resolve reference: '
        "failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized",
        "p",
    )
    assert denied.code is Code.REGISTRY_AUTH_DENIED and "image_pull_secret" in denied.hint
    unreachable = image_pull_failed(
        "registry.internal:5000/d@sha256:00",
        'failed to do request: Head "https://registry.internal:5000/v2/d/manifests/sha256:00": dial tcp: '
        "lookup registry.internal: no such host",
        "p",
    )
    assert unreachable.code is Code.REGISTRY_UNAVAILABLE and "nodes" in unreachable.hint


def test_the_schedulers_words_name_what_is_short() -> None:
    from mldeploy.diagnosis import Code, unschedulable

    message = next(c for c in pod("unschedulable")["status"]["conditions"] if c["type"] == "PodScheduled")["message"]
    found = unschedulable(message, "p", "500", "512Mi")
    assert found.code is Code.UNSCHEDULABLE and "cpu" in found.summary
    assert "target.cpu_cores" in found.hint and message in found.detail


def test_a_missing_secret_is_named() -> None:
    from mldeploy.diagnosis import Code, container_config_error

    found = container_config_error(_waiting_message("config"), "p")
    assert found.code is Code.CONTAINER_CONFIG_ERROR and "missing-secret" in found.hint
