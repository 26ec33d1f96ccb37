"""The ACI target end to end: ``mldeploy deploy SPEC`` with ``target.kind: aci`` through the real SDKs
(azure-identity's ClientSecretCredential, ContainerInstanceManagementClient) against HTTPS doubles of Entra
ID, Resource Manager and Container Registry (in front of the real local registry, signed into with the Entra
token exchange), whose container groups run as real containers of the local engine (the built image, the real
runtime, its real log). Each failure kind ends in its diagnosis with the log attached, the new group deleted
and the old one untouched; the service's DNS label moves only after the smoke test passed."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.integration.conftest import Service, deploy
from tests.middle.acr_registry_double import AcrRegistryDouble
from tests.middle.azure_doubles import SUBSCRIPTION, Answer, Azure

pytestmark = pytest.mark.usefixtures("real_engine")
SECRET = "canary-aci-e2e-51f0a2"
RG = "ml-prod"


@pytest.fixture
def service(make_service: Any, azure: Azure, acr: AcrRegistryDouble, monkeypatch: pytest.MonkeyPatch) -> Service:
    """The diabetes example on ACI, pushed to an ACR (the HTTPS double, signed into with Entra ID) that ACI
    pulls from with a managed identity: the classic path."""
    monkeypatch.setenv("ACI_TEST_SECRET", SECRET)
    svc: Service = make_service("diabetes")
    data = __import__("yaml").safe_load(svc.spec.read_text())
    data["registry"] = {"url": acr.login_server, "kind": "acr"}
    data["target"] = {
        "kind": "aci",
        "subscription_id": SUBSCRIPTION,
        "resource_group": RG,
        "location": "westeurope",
        "cloud": "custom",
        "arm_endpoint": azure.arm.url,
        "authority_host": azure.entra.url,
        "memory_gb": 1.0,
        "registry_identity": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/ml-pull",
    }
    data["secrets"] = {"API_TOKEN": "ACI_TEST_SECRET"}
    svc.spec.write_text(__import__("yaml").safe_dump(data, sort_keys=False))
    return svc


def groups(azure: Azure) -> dict[str, dict[str, Any]]:
    return {name: group.body for (rg, name), group in azure.arm.groups.items() if rg == RG}


def score(ip: str, body: object) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://{ip}:5001/score", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def only_live(azure: Azure, service: str) -> dict[str, Any]:
    found = groups(azure)
    assert len(found) == 1, f"leftover groups: {sorted(found)}"
    (group,) = found.values()
    assert group["tags"]["mldeploy-role"] == "live" and group["properties"]["ipAddress"]["dnsNameLabel"] == service
    return group


def secrets_nowhere(azure: Azure, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text
    for seen in azure.arm.http.seen:
        if seen.method == "PUT":
            sent = json.loads(seen.body)
            variables = sent["properties"]["containers"][0]["properties"]["environmentVariables"]
            assert {"name": "API_TOKEN", "secureValue": SECRET} in variables  # only ever as a secure value
            assert SECRET not in json.dumps([v for v in variables if "secureValue" not in v])
        else:
            assert SECRET.encode() not in seen.body


def test_a_deploy_proves_the_new_group_then_moves_the_label_and_the_old_group_goes(
    service: Service, azure: Azure
) -> None:
    first = deploy(service)
    assert first.summary["status"] == "succeeded", first.stdout + first.stderr
    group = only_live(azure, service.name)
    ip = group["properties"]["ipAddress"]["ip"]
    assert score(ip, {"data": [[0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.020, -0.018]]})[0] == 200
    assert first.summary["endpoint"] == f"http://{service.name}.westeurope.azurecontainer.io:5001"

    service.edit_spec(**{"environment.variables": {"MODEL_NOTE": "second"}})  # a new version
    azure.arm.http.seen.clear()
    second = deploy(service)
    assert second.summary["status"] == "succeeded", second.stdout + second.stderr
    moved = only_live(azure, service.name)
    assert moved["name"] != group["name"]
    methods = [(s.method, s.path.rsplit("/", 1)[-1]) for s in azure.arm.http.seen if "/containerGroups/" in s.path]
    old_deleted = methods.index(("DELETE", group["name"]))
    puts = [i for i, m in enumerate(methods) if m == ("PUT", moved["name"])]
    assert len(puts) == 2 and puts[0] < old_deleted < puts[1]  # created beside, old deleted, label moved
    deleted_at = next(s.at for s in azure.arm.http.seen if s.method == "DELETE")
    last_get = [s.at for s in azure.arm.http.seen if s.method == "GET" and s.path.endswith(moved["name"])][-1]
    print(f"\n[aci] label gap against the doubles: {last_get - deleted_at:.2f} s (delete old -> moved group answers)")
    secrets_nowhere(azure, first.stdout, first.stderr, second.stdout, second.stderr, json.dumps(second.summary))


def test_init_that_raises_is_diagnosed_with_its_log_and_the_old_group_serves_on(service: Service, azure: Azure) -> None:
    assert deploy(service).summary["status"] == "succeeded"
    old = only_live(azure, service.name)
    service.prepend_to("init", "raise RuntimeError('the model store is unreachable')")
    failed = deploy(service)
    assert failed.summary["status"] == "failed" and failed.summary["failed_stage"] == "deploy", failed.stdout
    assert failed.summary["diagnosis"]["code"] == "init_failed"
    assert "the model store is unreachable" in json.dumps(failed.summary["diagnosis"])
    assert only_live(azure, service.name)["name"] == old["name"]  # the new group is gone, the old untouched


def test_a_failed_smoke_test_deletes_the_candidate_and_keeps_the_label(service: Service, azure: Azure) -> None:
    assert deploy(service).summary["status"] == "succeeded"
    old = only_live(azure, service.name)
    service.patch_script("return result.tolist()", "return [0]")
    failed = deploy(service)
    assert failed.summary["failed_stage"] == "smoke", failed.stdout + failed.stderr
    assert only_live(azure, service.name)["name"] == old["name"]


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (
            lambda body: (
                body["properties"].update(provisioningState="Failed")
                or body["properties"]
                .setdefault("instanceView", {})
                .update(
                    events=[{"name": "FailedMount", "type": "Warning", "message": "mount error(2): Permission denied"}]
                )
            ),
            "provisioning_failed",
        ),
        (
            lambda body: body["properties"]["containers"][0]["properties"].update(
                instanceView={
                    "restartCount": 0,
                    "currentState": {"state": "Waiting"},
                    "events": [{"name": "Failed", "type": "Warning", "message": "Failed to pull image: unauthorized"}],
                }
            ),
            "registry_auth_denied",
        ),
    ],
    ids=["provisioning failed", "image pull denied"],
)
def test_failure_states_of_a_new_group(service: Service, azure: Azure, state: Any, code: str) -> None:
    assert deploy(service).summary["status"] == "succeeded"
    old = only_live(azure, service.name)
    azure.arm.state_after_create = lambda name, body: state(body)
    service.edit_spec(**{"environment.variables": {"MODEL_NOTE": "another"}})
    failed = deploy(service)
    assert failed.summary["diagnosis"]["code"] == code, failed.summary
    assert only_live(azure, service.name)["name"] == old["name"]


def test_a_409_while_another_operation_runs_is_waited_out(service: Service, azure: Azure) -> None:
    azure.arm.http.script(
        "PUT", r"/containerGroups/", Answer.arm_error(409, "Conflict", "Another operation is in progress.")
    )
    result = deploy(service)
    assert result.summary["status"] == "succeeded", result.stdout + result.stderr
    assert not azure.arm.http.scripts[0][2]  # the 409 was answered, and the stage's retry went on
    assert len([s for s in azure.arm.http.seen if s.method == "PUT"]) == 3  # 409, the candidate, the label move
    only_live(azure, service.name)


def test_logs_and_delete_through_the_cli(service: Service, azure: Azure) -> None:
    from tests.integration.conftest import run_cli

    assert deploy(service).summary["status"] == "succeeded"
    name = only_live(azure, service.name)["name"]
    logs = run_cli("logs", service.name, "--spec", str(service.spec))
    assert logs.code == 0 and "mldeploy-runtime: init() done in" in logs.stdout, logs.stdout + logs.stderr
    assert SECRET not in logs.stdout
    removed = run_cli("delete", service.name, "--spec", str(service.spec))
    assert removed.code == 0 and f"containerGroups/{name}" in removed.stdout, removed.stdout + removed.stderr
    assert groups(azure) == {}
    again = run_cli("delete", service.name, "--spec", str(service.spec))
    assert again.code == 0 and "nothing deployed" in again.stdout


def test_status_history_and_rollback_on_aci(service: Service, azure: Azure) -> None:
    from tests.integration.conftest import run_cli

    first = deploy(service)
    assert first.summary["status"] == "succeeded", first.stdout + first.stderr
    service.patch_script("def init():", "# the second version: another image, the same answers\ndef init():")
    second = deploy(service)
    assert second.summary["status"] == "succeeded", second.stdout + second.stderr

    shown = run_cli("status", service.name, "--spec", str(service.spec), "--json")
    (row,) = json.loads(shown.stdout.strip().splitlines()[-1])["services"]
    assert row["target"] == "aci" and row["image"] == second.summary["image"]["ref"], shown.stdout + shown.stderr
    assert row["flow_run_id"] == second.summary["flow_run_id"] and row["health"] == "healthy"
    assert row["endpoint"] == f"http://{service.name}.westeurope.azurecontainer.io:5001"

    rolled = run_cli("rollback", service.name, "--json")  # the spec (and its ACI target) from the deploy's record
    summary = json.loads(rolled.stdout.strip().splitlines()[-1])
    assert summary["status"] == "succeeded", rolled.stdout + rolled.stderr
    assert summary["image"]["digest"] == first.summary["image"]["digest"]
    live = only_live(azure, service.name)  # one group serves the label: the first image's
    assert live["properties"]["containers"][0]["properties"]["image"] == first.summary["image"]["ref"]
    history = run_cli("history", service.name, "--json")
    assert [d["digest"] for d in json.loads(history.stdout)] == [
        first.summary["image"]["digest"],
        second.summary["image"]["digest"],
        first.summary["image"]["digest"],
    ]
