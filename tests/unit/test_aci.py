"""Azure Container Instances as data: the container group body, the elided render, and what a group's state
says — judged on Microsoft's documented responses (../shared/reference/aci-rest-examples) and on states
written in the same shape."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mldeploy import aci
from mldeploy.aci import AciEvidenceKind, GroupInputs, RegistryCredential
from mldeploy.azure_cloud import CLOUDS, aci_fqdn, acr_login_server, cloud_of
from mldeploy.spec import AciTarget
from mldeploy.waiting import Phase
from tests.unit.golden import assert_golden

EXAMPLE = Path(__file__).resolve().parents[2] / "deployments" / "examples" / "diabetes"
EXAMPLES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "aci"
SECRET = "canary-9f1c2d-secret-value"
PASSWORD = "canary-acr-password-77"


def example(name: str) -> dict[str, Any]:
    document = json.loads((EXAMPLES / f"{name}.json").read_text())
    return dict(document["responses"]["200"]["body"])


def inputs(**changes: Any) -> GroupInputs:
    section = AciTarget.model_validate({"kind": "aci", "resource_group": "ml-prod", "location": "westeurope"})
    base: dict[str, Any] = {
        "service": "diabetes",
        "group": "diabetes-1a2b3c",
        "dns_label": "diabetes-1a2b3c",
        "location": "westeurope",
        "section": section,
        "image": "myacr.azurecr.io/diabetes@sha256:" + "a" * 64,
        "fingerprint": "f" * 64,
        "environment": {"AZUREML_MODEL_DIR": "azureml-models/diabetes/1"},
        "secret_environment": {"DB_PASSWORD": SECRET},
        "auth_keys": {"MLDEPLOY_AUTH_PRIMARY_KEY": SECRET + "-primary"},
        "registry": RegistryCredential("myacr.azurecr.io", "00000000-0000-0000-0000-000000000000", PASSWORD),
    }
    return GroupInputs(**{**base, **changes})


def test_the_rendered_body_matches_its_golden_file_with_every_secret_elided() -> None:
    rendered = aci.to_json(aci.container_group(inputs()))
    assert_golden(rendered, "aci/container_group.json")
    assert SECRET not in rendered and PASSWORD not in rendered


def test_render_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from mldeploy.cli import main

    folder = tmp_path / "svc"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("model"))
    (folder / "model").mkdir()
    (folder / "model" / "sklearn_regression_model.pkl").write_bytes(b"model")
    spec = yaml.safe_load((folder / "service.yaml").read_text())
    spec["target"] = {"kind": "aci", "resource_group": "ml-prod", "auth_enabled": True, "memory_gb": 1.5}
    spec["registry"] = {"url": "myacr.azurecr.io/team", "username": "puller", "password_env": "ACR_PASSWORD"}
    spec["secrets"] = {"DB_PASSWORD": "DB_PASSWORD"}
    (folder / "service.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("DB_PASSWORD", SECRET)
    monkeypatch.setenv("ACR_PASSWORD", PASSWORD)
    assert main(["render", str(folder / "service.yaml")]) == 0
    out = capsys.readouterr().out
    body = json.loads(out)
    container = body["properties"]["containers"][0]["properties"]
    assert container["image"] == "myacr.azurecr.io/team/diabetes@sha256:<digest at deploy>"
    assert container["resources"]["requests"] == {"cpu": 0.1, "memoryInGB": 1.5}
    secure = {v["name"] for v in container["environmentVariables"] if "secureValue" in v}
    assert {"DB_PASSWORD", "MLDEPLOY_AUTH_PRIMARY_KEY", "MLDEPLOY_AUTH_SECONDARY_KEY"} <= secure
    assert body["properties"]["imageRegistryCredentials"][0]["server"] == "myacr.azurecr.io"
    assert SECRET not in out and PASSWORD not in out


def test_secrets_travel_only_as_secure_values() -> None:
    body = aci.container_group(inputs())
    variables = body["properties"]["containers"][0]["properties"]["environmentVariables"]
    carrying = [v for v in variables if SECRET in json.dumps(v)]
    assert carrying and all(set(v) == {"name", "secureValue"} for v in carrying)
    assert body["properties"]["imageRegistryCredentials"] == [
        {"server": "myacr.azurecr.io", "username": "00000000-0000-0000-0000-000000000000", "password": PASSWORD}
    ]
    assert aci.elide(body) != body and SECRET in json.dumps(body)  # elide copies; the body sent keeps them


def test_a_managed_identity_pulls_without_a_password() -> None:
    identity = "/subscriptions/s/resourceGroups/ml/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pull"
    body = aci.container_group(inputs(registry=RegistryCredential("myacr.azurecr.io", identity=identity)))
    assert body["properties"]["imageRegistryCredentials"] == [{"server": "myacr.azurecr.io", "identity": identity}]
    assert body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}  # ACI needs both
    from azure.mgmt.containerinstance.models import ContainerGroup

    model = ContainerGroup.deserialize(body)  # the SDK's own model reads both back
    assert model.identity.type == "UserAssigned" and identity in model.identity.user_assigned_identities
    assert model.image_registry_credentials[0].identity == identity
    assert "identity" not in aci.container_group(inputs())  # no identity unless one pulls


def test_the_body_is_a_valid_container_group_for_the_sdk() -> None:
    from azure.mgmt.containerinstance.models import ContainerGroup

    body = aci.container_group(inputs())
    model = ContainerGroup.deserialize(body)
    assert model.containers[0].resources.requests.cpu == 0.1
    assert model.containers[0].resources.requests.memory_in_gb == 0.5
    assert model.ip_address.dns_name_label == "diabetes-1a2b3c"
    assert model.ip_address.ports[0].port == 5001
    assert model.serialize()["properties"]["containers"][0]["properties"]["image"].endswith("a" * 64)


# --- what a group's state says ---------------------------------------------------------------------------


def test_microsofts_failed_example_is_a_provisioning_failure_with_its_event() -> None:
    group = example("ContainerGroups_Get_Failed")
    evidence = aci.group_evidence(group)
    assert evidence is not None and evidence.kind is AciEvidenceKind.PROVISIONING_FAILED
    assert "mount error(2): Permission denied" in evidence.message
    assert aci.group_status(group).phase is Phase.FAILED


def test_microsofts_succeeded_example_is_no_evidence_and_has_an_endpoint() -> None:
    group = example("ContainerGroups_Get_Succeeded")
    assert aci.group_evidence(group) is None
    assert aci.endpoint_of(group) == "http://10.0.0.1:80"


def running(group: dict[str, Any], **view: Any) -> dict[str, Any]:
    group = copy.deepcopy(group)
    group["properties"]["provisioningState"] = "Succeeded"
    state = {"currentState": {"state": "Running", "startTime": "2026-11-30T10:00:00Z"}, "restartCount": 0, "events": []}
    group["properties"]["containers"][0]["properties"]["instanceView"] = {**state, **view}
    return group


def test_a_running_container_is_ready_for_its_http_check() -> None:
    group = running(example("ContainerGroups_Get_Succeeded"))
    assert aci.group_status(group).phase is Phase.READY
    assert aci.group_evidence(group) is None


@pytest.mark.parametrize(
    ("view", "kind", "needle"),
    [
        (
            {
                "currentState": {"state": "Waiting", "detailStatus": "ErrImagePull"},
                "events": [
                    {
                        "name": "Failed",
                        "type": "Warning",
                        "count": 3,
                        "message": 'Failed to pull image "myacr.azurecr.io/x@sha256:00": manifest unknown',
                    }
                ],
            },
            AciEvidenceKind.IMAGE_PULL,
            "manifest unknown",
        ),
        (
            {
                "restartCount": 2,
                "currentState": {"state": "Running"},
                "previousState": {"state": "Terminated", "exitCode": 3, "detailStatus": "Error"},
            },
            AciEvidenceKind.CRASHED,
            "code 3",
        ),
        (
            {"currentState": {"state": "Terminated", "exitCode": 137, "detailStatus": "OOMKilled"}},
            AciEvidenceKind.OUT_OF_MEMORY,
            "OOMKilled",
        ),
    ],
    ids=["image pull", "rising restarts", "oom"],
)
def test_each_failure_state_is_evidence(view: dict[str, Any], kind: AciEvidenceKind, needle: str) -> None:
    group = running(example("ContainerGroups_Get_Succeeded"), **view)
    evidence = aci.group_evidence(group)
    assert evidence is not None and evidence.kind is kind and needle in evidence.message
    assert aci.group_status(group).phase is not Phase.READY or kind is AciEvidenceKind.CRASHED


def test_provisioning_in_progress_is_pending() -> None:
    group = copy.deepcopy(example("ContainerGroups_Get_Succeeded"))
    group["properties"]["provisioningState"] = "Creating"
    assert aci.group_status(group).phase is Phase.PENDING
    assert aci.group_evidence(group) is None


# --- clouds and registries ---------------------------------------------------------------------------------


def test_clouds_follow_azures_own_settings() -> None:
    assert cloud_of("azure_public").arm_endpoint == "https://management.azure.com"
    assert cloud_of("azure_public").arm_scope == "https://management.azure.com/.default"
    assert cloud_of("azure_china").authority_host == "https://login.chinacloudapi.cn"
    assert cloud_of("azure_public", environ={"AZURE_AUTHORITY_HOST": "login.example.test"}).authority_host == (
        "https://login.example.test"
    )
    custom = cloud_of("custom", arm_endpoint="https://127.0.0.1:9443", authority_host="https://127.0.0.1:9444")
    assert (custom.arm_endpoint, custom.authority_host) == ("https://127.0.0.1:9443", "https://127.0.0.1:9444")
    with pytest.raises(ValueError, match="arm_endpoint"):
        cloud_of("custom")


@pytest.mark.parametrize(
    ("registry", "server"),
    [
        ("myregistry.azurecr.io", "myregistry.azurecr.io"),
        ("MyRegistry.azurecr.io/team/models", "myregistry.azurecr.io"),
        ("gov12.azurecr.us", "gov12.azurecr.us"),
        ("china1.azurecr.cn", "china1.azurecr.cn"),
        ("127.0.0.1:5000", None),
        ("azurecr.io.evil.example", None),
        ("ab.azurecr.io", None),  # a registry name has 5 to 50 characters
    ],
)
def test_an_acr_login_server_is_recognised_from_the_url(registry: str, server: str | None) -> None:
    assert acr_login_server(registry) == server


def test_the_fqdn_of_a_label() -> None:
    assert aci_fqdn("diabetes", "West Europe", CLOUDS["azure_public"]) == "diabetes.westeurope.azurecontainer.io"


def test_acis_pull_messages_are_told_apart() -> None:
    from mldeploy.diagnosis import Code, aci_image_pull_failed

    missing = aci_image_pull_failed(
        "r.azurecr.io/d@sha256:00", 'Failed to pull image "r.azurecr.io/d": manifest unknown', "g"
    )
    assert missing.code is Code.IMAGE_NOT_FOUND and "--from-stage push" in missing.hint
    inaccessible = aci_image_pull_failed(
        "r.azurecr.io/d@sha256:00",
        "The image 'r.azurecr.io/d@sha256:00' in container group 'g' is not accessible. Please check the image "
        "and registry credential.",
        "g",
    )
    assert inaccessible.code is Code.REGISTRY_AUTH_DENIED and "registry.password_env" in inaccessible.hint
    assert "container group g" in inaccessible.detail
