"""The ACI adapter through the real SDKs (azure-identity's ClientSecretCredential, azure-mgmt-containerinstance's
ContainerInstanceManagementClient) against HTTPS doubles of Entra ID and Resource Manager: every error is
what the SDK really raises for the answer Azure really gives, decided once by ``aci_api.ERRORS``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mldeploy import aci
from mldeploy.aci import GroupInputs, RegistryCredential
from mldeploy.adapters.aci_api import AciApi
from mldeploy.azure_cloud import cloud_of
from mldeploy.diagnosis import Code
from mldeploy.errors import PermanentError, TransientError
from mldeploy.spec import AciTarget
from tests.middle.azure_doubles import SUBSCRIPTION, Answer, Azure, azure_doubles

SECRET = "canary-aci-secure-value-31d7"
GROUP = r"/containerGroups/svc-1$"


@pytest.fixture
def azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Azure]:
    with azure_doubles(tmp_path, monkeypatch) as doubles:
        yield doubles


def api_for(azure: Azure, secret: str | None = None) -> AciApi:
    cloud = cloud_of("custom", arm_endpoint=azure.arm.url, authority_host=azure.entra.url)
    credential = azure.credential() if secret is None else azure.credential(secret)
    return AciApi(credential, SUBSCRIPTION, cloud, poll_seconds=0.01)


def body(name: str = "svc-1") -> dict[str, Any]:
    section = AciTarget.model_validate({"kind": "aci", "resource_group": "ml", "location": "westeurope"})
    return aci.container_group(
        GroupInputs(
            service="svc",
            group=name,
            dns_label=name,
            location="westeurope",
            section=section,
            image="myacr.azurecr.io/svc@sha256:" + "b" * 64,
            fingerprint="e" * 64,
            secret_environment={"API_TOKEN": SECRET},
            registry=RegistryCredential("myacr.azurecr.io", "user", SECRET + "-password"),
        )
    )


def test_create_polls_the_operation_and_returns_the_running_group(azure: Azure) -> None:
    azure.arm.polls_per_operation = 3
    group = api_for(azure).create_or_update("ml", "svc-1", body())
    assert group["properties"]["provisioningState"] == "Succeeded"
    assert aci.group_status(group).phase.name == "READY"
    assert aci.endpoint_of(group) == "http://svc-1.westeurope.azurecontainer.io:5001"
    polls = [s for s in azure.arm.http.seen if "/operations/" in s.path]
    assert len(polls) == 4  # three InProgress, then Succeeded
    put = next(s for s in azure.arm.http.seen if s.method == "PUT")
    assert put.query["api-version"] == ["2023-05-01"]
    sent = json.loads(put.body)
    assert sent["properties"]["containers"][0]["properties"]["environmentVariables"][-1] == {
        "name": "API_TOKEN",
        "secureValue": SECRET,
    }


def test_the_token_comes_from_the_entra_double_and_is_sent_as_bearer(azure: Azure) -> None:
    api = api_for(azure)
    assert api.get("ml", "nothing-here") is None
    token_requests = [s for s in azure.entra.seen if s.path.endswith("/oauth2/v2.0/token")]
    assert len(token_requests) == 1
    assert "scope=https%3A%2F%2F127.0.0.1" in token_requests[0].body.decode()  # the custom cloud's ARM scope
    arm_request = azure.arm.http.seen[-1]
    assert arm_request.headers["Authorization"] == f"Bearer {azure.tokens[0]}"


def test_a_rejected_client_secret_is_permanent_and_not_retried(azure: Azure) -> None:
    with pytest.raises(PermanentError) as caught:
        api_for(azure, secret="wrong-secret").get("ml", "svc-1")
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is Code.AZURE_ACCESS_DENIED
    assert "AADSTS7000215" in str(caught.value)
    assert not azure.arm.http.seen  # Resource Manager never asked
    assert "wrong-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "error", "code", "delay"),
    [
        (
            Answer.arm_error(409, "Conflict", "The operation cannot be performed: another operation is in progress."),
            TransientError,
            Code.AZURE_UNAVAILABLE,
            None,
        ),
        (
            Answer.arm_error(429, "TooManyRequests", "Throttled.", **{"Retry-After": "17"}),
            TransientError,
            Code.AZURE_UNAVAILABLE,
            17.0,
        ),
        (Answer.arm_error(500, "InternalServerError", "Try again."), TransientError, Code.AZURE_UNAVAILABLE, None),
        (
            Answer.arm_error(403, "AuthorizationFailed", "The client does not have authorization to perform action."),
            PermanentError,
            Code.AZURE_ACCESS_DENIED,
            None,
        ),
        (
            Answer.arm_error(
                409,
                "ContainerGroupQuotaReached",
                "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota "
                "'StandardCores' exceeded in region 'westeurope'.",
            ),
            PermanentError,
            Code.QUOTA_REACHED,
            None,
        ),
        (
            Answer.arm_error(
                409,
                "ServiceUnavailable",
                "The requested resource is not available in the location 'westeurope' at this moment.",
            ),
            PermanentError,
            Code.CAPACITY_UNAVAILABLE,
            None,
        ),
        (
            Answer.arm_error(
                400,
                "InaccessibleImage",
                "The image 'myacr.azurecr.io/svc@sha256:bb' in container group 'svc-1' is not accessible.",
            ),
            PermanentError,
            Code.REGISTRY_AUTH_DENIED,
            None,
        ),
        (
            Answer.arm_error(
                400, "InvalidContainerGroup", "The container group 'svc-1' is invalid: cpu 0.1 is not supported."
            ),
            PermanentError,
            Code.REQUEST_INVALID,
            None,
        ),
    ],
    ids=["409 busy", "429 retry-after", "500", "403", "quota", "capacity", "inaccessible image", "invalid"],
)
def test_each_answer_to_a_create_is_decided_once(
    azure: Azure, answer: Answer, error: type[Exception], code: Code, delay: float | None
) -> None:
    azure.arm.http.script("PUT", GROUP, answer)
    with pytest.raises(error) as caught:
        api_for(azure).create_or_update("ml", "svc-1", body())
    raised: Any = caught.value
    assert raised.diagnosis is not None and raised.diagnosis.code is code, raised.diagnosis
    assert answer.body["error"]["code"] in str(raised)
    if delay is not None:
        assert raised.delay >= delay
    assert len([s for s in azure.arm.http.seen if s.method == "PUT"]) == 1  # the SDK itself never retries
    assert SECRET not in str(raised)


def test_a_500_then_success_is_one_retry_of_the_stage(azure: Azure) -> None:
    azure.arm.http.script("PUT", GROUP, Answer.arm_error(500, "InternalServerError", "Try again."))
    api = api_for(azure)
    with pytest.raises(TransientError):
        api.create_or_update("ml", "svc-1", body())
    assert api.create_or_update("ml", "svc-1", body())["properties"]["provisioningState"] == "Succeeded"


def test_provisioning_failed_in_the_operation_is_permanent(azure: Azure) -> None:
    def fails(name: str, group: dict[str, Any]) -> None:
        group["properties"]["provisioningState"] = "Failed"

    azure.arm.state_after_create = fails
    with pytest.raises((PermanentError, TransientError)) as caught:
        api_for(azure).create_or_update("ml", "svc-1", body())
    assert isinstance(caught.value, PermanentError), caught.value


def test_get_list_logs_and_delete(azure: Azure) -> None:
    api = api_for(azure)
    azure.arm.logs["svc-1"] = "Traceback (most recent call last):\nValueError: boom\n"
    api.create_or_update("ml", "svc-1", body())
    api.create_or_update("ml", "svc-2", body("svc-2"))
    got = api.get("ml", "svc-1")
    assert got is not None and got["tags"]["mldeploy-service"] == "svc"
    assert "secureValue" not in json.dumps(got)  # ARM never returns secure values
    assert sorted(g["name"] for g in api.list("ml")) == ["svc-1", "svc-2"]
    assert "ValueError: boom" in api.logs("ml", "svc-1", aci.CONTAINER)
    assert api.logs("ml", "gone", aci.CONTAINER) == ""
    assert api.delete("ml", "svc-1") is True
    assert api.delete("ml", "svc-1") is False
    assert api.get("ml", "svc-1") is None
    assert api.resource_group_location("ml") == "westeurope"


def test_no_secret_leaves_in_a_log_line_or_error(azure: Azure, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    api = api_for(azure)
    api.create_or_update("ml", "svc-1", body())
    azure.arm.http.script("PUT", GROUP, Answer.arm_error(400, "InvalidContainerGroup", "bad"))
    with pytest.raises(PermanentError) as caught:
        api.create_or_update("ml", "svc-1", body())
    assert SECRET not in caplog.text and SECRET not in str(caught.value)


def test_a_service_principal_from_the_environment_signs_in_against_the_clouds_authority(azure: Azure) -> None:
    from azure.identity import ClientSecretCredential

    from mldeploy.adapters.azure_identity import credential_for
    from tests.middle.azure_doubles import CLIENT_ID, CLIENT_SECRET, TENANT

    cloud = cloud_of("custom", arm_endpoint=azure.arm.url, authority_host=azure.entra.url)
    env = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT_ID, "AZURE_CLIENT_SECRET": CLIENT_SECRET}
    credential = credential_for(cloud, env)
    assert isinstance(credential, ClientSecretCredential)
    assert AciApi(credential, SUBSCRIPTION, cloud, poll_seconds=0.01).get("ml", "none") is None
    assert any(
        s.path == f"/{TENANT}/oauth2/v2.0/token" for s in azure.entra.seen
    )  # the spec's authority, not Microsoft's


def test_an_aci_target_without_a_subscription_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from mldeploy.targets import make_target

    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    section = AciTarget.model_validate({"kind": "aci", "resource_group": "ml"})
    with pytest.raises(PermanentError, match="AZURE_SUBSCRIPTION_ID") as caught:
        make_target(section)
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is Code.AZURE_ACCESS_DENIED
