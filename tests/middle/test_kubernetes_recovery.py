"""The Kubernetes target's decisions without a cluster: what a run killed at any point leaves, and what the
next run does about it (recover), and which Secrets a commit may drop. A fake API records the calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mldeploy.manifests import STATE_COMMITTED, state_name
from mldeploy.rollout import FINGERPRINT_ANNOTATION
from mldeploy.spec import KubernetesTarget as Section
from mldeploy.targets.kubernetes import KubernetesTarget


def deployment(revision: int, fingerprint: str = "new") -> dict[str, Any]:
    annotations = {"deployment.kubernetes.io/revision": str(revision)}
    return {
        "metadata": {"name": "svc", "generation": revision, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"annotations": {FINGERPRINT_ANNOTATION: fingerprint}},
                "spec": {"containers": [{"image": "r/svc@sha256:1"}]},
            },
        },
        "status": {"observedGeneration": revision, "updatedReplicas": 1, "replicas": 1, "availableReplicas": 1},
    }


def replica_set(revision: int, fingerprint: str, secret: str = "") -> dict[str, Any]:
    env = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": secret, "key": "K"}}}] if secret else []
    return {
        "metadata": {"annotations": {"deployment.kubernetes.io/revision": str(revision)}},
        "spec": {
            "template": {
                "metadata": {
                    "labels": {"mldeploy.dev/service": "svc", "pod-template-hash": f"h{revision}"},
                    "annotations": {FINGERPRINT_ANNOTATION: fingerprint},
                },
                "spec": {"containers": [{"name": "scoring", "env": env}]},
            }
        },
    }


class FakeApi:
    server = "https://fake:6443"

    def __init__(
        self,
        deployment: dict[str, Any] | None,
        replica_sets: list[dict[str, Any]],
        secrets: tuple[str, ...] = (),
        committed: int | None = None,
    ) -> None:
        self.state: dict[str, str] = {STATE_COMMITTED: str(committed)} if committed is not None else {}
        self.current = deployment
        self.sets = replica_sets
        self.secret_names = list(secrets)
        self.calls: list[tuple[Any, ...]] = []

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.current

    def replica_sets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.sets

    def delete_labeled(self, namespace: str, selector: str) -> list[str]:
        self.calls.append(("delete_labeled", selector))
        self.current = None
        return ["Deployment/svc"]

    def replace_template(
        self, namespace: str, name: str, template: dict[str, Any], annotations: dict[str, str]
    ) -> None:
        self.calls.append(("replace_template", template, annotations))
        revision = int(self.current["metadata"]["annotations"]["deployment.kubernetes.io/revision"]) + 1  # type: ignore[index]
        self.current = deployment(revision, annotations[FINGERPRINT_ANNOTATION])

    def config_map_data(self, namespace: str, name: str) -> dict[str, str]:
        assert name == state_name("svc")
        return dict(self.state)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        assert obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == state_name("svc")
        self.calls.append(("state", obj["data"]))
        self.state = dict(obj["data"])
        return obj

    def secrets(self, namespace: str, selector: str) -> list[str]:
        return list(self.secret_names)

    def delete_secret(self, namespace: str, name: str) -> None:
        self.calls.append(("delete_secret", name))
        self.secret_names.remove(name)


def target(api: FakeApi) -> KubernetesTarget:
    return KubernetesTarget(api, Section(kind="kubernetes", namespace="ns"), sleep=lambda s: None)  # type: ignore[arg-type]


def test_a_service_whose_last_rollout_passed_is_left_alone() -> None:
    api = FakeApi(deployment(2), [replica_set(1, "old"), replica_set(2, "new")], committed=2)
    lines: list[str] = []
    target(api).recover("svc", lines.append)
    assert api.calls == [] and lines == []


def test_a_rollout_a_killed_run_left_unjudged_goes_back_to_the_committed_revision() -> None:
    api = FakeApi(deployment(3), [replica_set(2, "good"), replica_set(3, "unjudged")], committed=2)
    lines: list[str] = []
    target(api).recover("svc", lines.append)
    kind, template, annotations = api.calls[0]
    assert kind == "replace_template"
    assert annotations == {FINGERPRINT_ANNOTATION: "good"}
    assert "pod-template-hash" not in template["metadata"]["labels"]  # kubectl rollout undo's rule
    assert api.calls[-1] == ("state", {STATE_COMMITTED: "4"})  # the restored template is revision 4
    assert "revision 3 never passed its smoke test" in lines[0]


def test_a_first_deploy_that_never_passed_is_removed() -> None:
    api = FakeApi(deployment(1), [replica_set(1, "unjudged")])
    lines: list[str] = []
    target(api).recover("svc", lines.append)
    assert api.calls == [("delete_labeled", "mldeploy.dev/service=svc")]
    assert api.current is None and "first deploy never passed" in lines[0]


def test_nothing_deployed_is_nothing_to_recover() -> None:
    api = FakeApi(None, [])
    target(api).recover("svc", lambda line: None)
    assert api.calls == []


def test_a_commit_drops_only_secrets_no_revision_refers_to() -> None:
    sets = [replica_set(1, "a", secret="svc-secrets-aaaa"), replica_set(2, "b", secret="svc-secrets-bbbb")]
    api = FakeApi(deployment(2), sets, secrets=("svc-secrets-aaaa", "svc-secrets-bbbb", "svc-secrets-old"), committed=1)
    from mldeploy.targets.base import DeployOutcome

    outcome = DeployOutcome(service="svc", endpoint="k8s-pod://ns/svc-1", instance="2", previous="1")
    t = target(api)
    t._init_seconds = lambda outcome: 1.5  # type: ignore[method-assign]  # no pod to ask here
    t.commit(outcome, request_seconds=0.02)
    assert ("delete_secret", "svc-secrets-old") in api.calls
    assert api.secret_names == ["svc-secrets-aaaa", "svc-secrets-bbbb"]  # revision 1 may still be rolled back to
    committed_at = datetime.fromisoformat(api.state.pop("committed-at"))  # when it went live (status shows it)
    assert abs((datetime.now(UTC) - committed_at).total_seconds()) < 60
    assert api.state == {
        STATE_COMMITTED: "2",
        "image": "r/svc@sha256:1",
        "init-seconds": "1.50",
        "request-seconds": "0.0200",
    }
    # run data is not kept on the Deployment: an annotation there bumps metadata.generation
    assert api.current["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "2"}  # type: ignore[index]
