"""The Kubernetes objects of a version: golden files, the pinned version's strict schemas, and the checks the
schemas cannot make (the selector matches the pod labels, quantities parse, references resolve)."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest

from mldeploy.manifests import (
    ELIDED,
    LABEL_SERVICE,
    KubeInputs,
    pull_secret_name,
    render,
    secret_name,
    startup_failure_threshold,
    to_yaml,
)
from mldeploy.registry_auth import BasicAuth
from mldeploy.spec import KubernetesTarget
from tests.unit.golden import assert_golden

KUBERNETES_VERSION = "1.35.0"  # tools/kubernetes/go.mod pins v1.35.4
FINGERPRINT = "3f" * 32
IMAGE = "myacr.azurecr.io/diabetes@sha256:" + "ab" * 32


def section(**keys: Any) -> KubernetesTarget:
    return KubernetesTarget.model_validate({"kind": "kubernetes", **keys})


def inputs(**keys: Any) -> KubeInputs:
    base: dict[str, Any] = {
        "service": "diabetes",
        "section": section(namespace="scoring"),
        "image": IMAGE,
        "fingerprint": FINGERPRINT,
        "model_label": "sklearn_regression_model:3",
    }
    return KubeInputs(**{**base, **keys})


FULL = inputs(
    section=section(
        namespace="scoring",
        autoscale={"min_replicas": 2, "max_replicas": 6, "target_utilization": 60},
        cpu_cores=0.5,
        memory_gb=1.5,
        cpu_cores_limit=1,
        memory_gb_limit=2,
        ingress={"host": "diabetes.example.com", "class_name": "nginx", "path": "/diabetes"},
        node_selector={"agentpool": "cpu"},
        tolerations=[{"key": "sku", "operator": "Equal", "value": "cpu", "effect": "NoSchedule"}],
        labels={"team": "health"},
        annotations={"prometheus.io/scrape": "true"},
    ),
    environment={"LOG_LEVEL": "debug"},
    secret_environment={"DB_PASSWORD": "s3cr3t-db-value"},
    auth_keys={"MLDEPLOY_AUTH_PRIMARY_KEY": "primary-key-0123456789"},
    secrets_digest="d1" * 16,
    registry_auth=BasicAuth("pusher", "registry-password-9"),
    startup_seconds=240,
)
CASES = {
    "minimal": inputs(),
    "fixed-replicas": inputs(section=section(namespace="scoring", replicas=3)),
    "full": FULL,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_objects_match_their_golden_file(case: str) -> None:
    assert_golden(to_yaml(render(CASES[case])), f"kubernetes/{case}.yaml")


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_passes_the_pinned_versions_strict_schema(case: str) -> None:
    for obj in render(CASES[case]):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


QUANTITY = re.compile(r"^\d+(m|Mi|Gi)?$")


@pytest.mark.parametrize("case", sorted(CASES))
def test_what_the_schemas_cannot_check(case: str) -> None:
    objects = {obj["kind"]: obj for obj in render(CASES[case]) if obj["kind"] != "Secret"}
    secrets = {obj["metadata"]["name"]: obj for obj in render(CASES[case]) if obj["kind"] == "Secret"}
    deployment = objects["Deployment"]
    template = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    assert objects["Service"]["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    for value in template["metadata"]["labels"].values():
        assert re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?", value), value
    container = template["spec"]["containers"][0]
    for kind in ("requests", "limits"):
        for value in container["resources"][kind].values():
            assert QUANTITY.fullmatch(value), value
    # every Secret the pod refers to is rendered with it (or named by the user), with the key it asks for
    for env in container["env"]:
        ref = env.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert env["name"] in secrets[ref["name"]]["data"]
    for volume in template["spec"]["volumes"]:
        if "secret" in volume:
            assert {item["key"] for item in volume["secret"]["items"]} <= secrets[volume["secret"]["secretName"]][
                "data"
            ].keys()
    for pull in template["spec"].get("imagePullSecrets", []):
        assert pull["name"] in secrets
    if "HorizontalPodAutoscaler" in objects:
        assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
        assert objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    if "PodDisruptionBudget" in objects:
        assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    probes = [container[p]["httpGet"]["port"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert set(probes) == {container["ports"][0]["name"]}


def test_no_secret_value_is_in_the_deployment_or_the_printed_yaml() -> None:
    objects = render(FULL)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    printed = to_yaml(objects)
    for value in ("s3cr3t-db-value", "primary-key-0123456789", "registry-password-9"):
        assert value not in str(deployment)
        assert value not in printed
    assert printed.count(ELIDED) == 3  # DB_PASSWORD, the key, .dockerconfigjson


def test_secrets_are_named_after_their_digest_so_each_revision_keeps_its_own() -> None:
    assert secret_name(FULL) != secret_name(inputs(secret_environment={"DB_PASSWORD": "x"}, secrets_digest="00" * 16))
    assert secret_name(FULL) == secret_name(FULL)
    rotated = KubeInputs(**{**FULL.__dict__, "registry_auth": BasicAuth("pusher", "rotated-password")})
    assert pull_secret_name(rotated) != pull_secret_name(FULL)


def test_the_startup_budget_becomes_probe_failures() -> None:
    assert startup_failure_threshold(240) == 120
    assert startup_failure_threshold(1) == 1
    startup = next(o for o in render(FULL) if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "startupProbe"
    ]
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 240


def test_objects_carry_the_service_label_delete_selects_on() -> None:
    for obj in render(FULL):
        assert obj["metadata"]["labels"][LABEL_SERVICE] == "diabetes"
        assert obj["metadata"]["namespace"] == "scoring"


def test_the_strict_schema_check_can_fail() -> None:
    deployment = next(o for o in render(FULL) if o["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}  # a misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
