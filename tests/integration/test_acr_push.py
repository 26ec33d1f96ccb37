"""Azure Container Registry end to end: ``mldeploy deploy SPEC`` pushes through an HTTPS double of ACR (in front
of the real local registry) after the documented token exchange — a real ``ClientSecretCredential`` gets an
Entra token from the Entra double, ``/oauth2/exchange`` turns it into a refresh token, the Docker engine pushes
with it and the /v2 client verifies the digest with a per-repository access token. ACI then pulls with the
managed identity named in the spec, never with that short-lived token. Refusals end in one attempt with
``registry_auth_denied``; a 429 waits out its Retry-After; ``immutable_tags`` never moves a tag."""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import pytest
import yaml

from tests.conftest import _delete_from_registry
from tests.integration import canary
from tests.integration.conftest import REGISTRY, Service, deploy
from tests.middle.acr_registry_double import AcrRegistryDouble
from tests.middle.azure_doubles import CLIENT_SECRET, SUBSCRIPTION, Answer, Azure

pytestmark = pytest.mark.usefixtures("real_engine")
RG = "ml-prod"
IDENTITY = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/"
    "userAssignedIdentities/ml-pull"
)


def with_acr(service: Service, acr: AcrRegistryDouble, **registry: Any) -> None:
    data = yaml.safe_load(service.spec.read_text())
    data["registry"] = {"url": acr.login_server, "kind": "acr", **registry}
    service.spec.write_text(yaml.safe_dump(data, sort_keys=False))


def upstream_digest(image_ref: str) -> str:
    """The digest the real registry behind the double serves for repository:tag."""
    repository, tag = image_ref.split("/", 1)[1].rsplit(":", 1)
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.headers["Docker-Content-Digest"])


def pushed_tag(service: str, registry: str) -> str:
    import docker

    client = docker.from_env()
    try:
        tags = [t for i in client.images.list(filters={"label": f"mldeploy.service={service}"}) for t in i.tags]
    finally:
        client.close()
    return next(t for t in tags if t.startswith(registry + "/"))


def test_an_aci_deploy_pushes_to_acr_with_the_entra_identity_and_aci_pulls_with_the_managed_identity(
    make_service: Any, azure: Azure, acr: AcrRegistryDouble, prefect_server: str
) -> None:
    service: Service = make_service("diabetes")
    with_acr(service, acr)
    service.edit_spec(
        target={
            "kind": "aci",
            "subscription_id": SUBSCRIPTION,
            "resource_group": RG,
            "location": "westeurope",
            "cloud": "custom",
            "arm_endpoint": azure.arm.url,
            "authority_host": azure.entra.url,
            "memory_gb": 1.0,
            "registry_identity": IDENTITY,
        }
    )
    acr.script("POST", "/oauth2/exchange", Answer(429, {"errors": [{"code": "TOOMANYREQUESTS"}]}, {"Retry-After": "2"}))

    result = deploy(service)

    assert result.summary["status"] == "succeeded", result.stdout + result.stderr
    exchanges = [s for s in acr.seen if s.path == "/oauth2/exchange"]
    assert len(exchanges) == 2 and exchanges[1].at - exchanges[0].at >= 2  # the 429 waited out, then signed in
    form = dict(item.split("=", 1) for item in exchanges[1].body.decode().split("&"))
    assert form["grant_type"] == "access_token" and form["access_token"] in azure.tokens  # an Entra token
    assert any(s.path.startswith("/v2/") and s.method == "PUT" for s in acr.seen)  # the engine pushed through it
    digest = result.summary["image"]["digest"]
    assert digest == upstream_digest(pushed_tag(service.name, acr.login_server))  # verified over /v2: the real one
    puts = [json.loads(s.body) for s in azure.arm.http.seen if s.method == "PUT" and "/containerGroups/" in s.path]
    for body in puts:
        assert body["properties"]["containers"][0]["properties"]["image"].endswith("@" + digest)
        assert body["properties"]["imageRegistryCredentials"] == [{"server": acr.login_server, "identity": IDENTITY}]
        assert body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}}
    tokens = [*acr.refresh_tokens, *acr.access_tokens]
    assert tokens and azure.tokens
    kept = canary.haystacks(prefect_server, [result])  # CLI output, summary, runs, artifacts, logs, both homes
    kept += [("ARM request", s.body.decode()) for s in azure.arm.http.seen]
    assert canary.leaks(kept, [*tokens, *azure.tokens, CLIENT_SECRET]) == []


def test_an_exchange_the_registry_refuses_fails_the_push_in_one_attempt(
    make_service: Any, azure: Azure, acr: AcrRegistryDouble
) -> None:
    service: Service = make_service("diabetes")
    with_acr(service, acr)
    refusal = Answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "identity has no AcrPush"}]})
    acr.script("POST", "/oauth2/exchange", *[refusal] * 5)

    result = deploy(service)

    assert result.summary["status"] == "failed" and result.summary["failed_stage"] == "push", result.stdout
    assert result.summary["diagnosis"]["code"] == "registry_auth_denied"
    assert len([s for s in acr.seen if s.path == "/oauth2/exchange"]) == 1  # permanent: never retried
    assert not [s for s in acr.seen if s.path.startswith("/v2/") and s.method in ("PUT", "POST", "PATCH")]


def test_a_service_principal_entra_refuses_fails_the_push_in_one_attempt(
    make_service: Any, azure: Azure, acr: AcrRegistryDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    service: Service = make_service("diabetes")
    with_acr(service, acr)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "canary-wrong-secret-9f2e")

    result = deploy(service)

    assert result.summary["failed_stage"] == "push", result.stdout + result.stderr
    assert result.summary["diagnosis"]["code"] == "registry_auth_denied"
    assert "Entra ID refused the identity" in result.summary["diagnosis"]["detail"]
    token_requests = [s for s in azure.entra.seen if s.method == "POST"]
    assert len(token_requests) == 1 and not [s for s in acr.seen if s.path == "/oauth2/exchange"]
    assert "canary-wrong-secret-9f2e" not in result.stdout + result.stderr + json.dumps(result.summary)


def test_immutable_tags_never_move_a_tag_and_the_service_serves_on(make_service: Any) -> None:
    import docker

    service: Service = make_service("diabetes")
    service.name = f"{service.name}-{uuid.uuid4().hex[:6]}"  # a repository no earlier run left a tag in
    service.edit_spec(name=service.name, **{"registry.immutable_tags": True})
    first = deploy(service)
    assert first.summary["status"] == "succeeded", first.stdout + first.stderr
    tag = pushed_tag(service.name, REGISTRY)
    client = docker.from_env()
    try:  # another image under the same tag, as another machine's build of the same inputs would be
        other = client.images.get("mldeploy/python:3.11-bookworm")
        repository, _, name = tag.rpartition(":")
        other.tag(repository, name)
        for _ in client.api.push(repository, tag=name, stream=True, decode=True):
            pass
        other_digest = upstream_digest(tag)
        client.images.remove(tag)  # the service's own image keeps its other tags and digests
    finally:
        client.close()

    try:
        refused = deploy(service, "--force")

        assert refused.summary["failed_stage"] == "push", refused.stdout + refused.stderr
        assert refused.summary["diagnosis"]["code"] == "tag_immutable"
        assert other_digest in refused.summary["diagnosis"]["detail"]
        assert upstream_digest(tag) == other_digest  # the tag did not move
    finally:
        _delete_from_registry(f"{repository}@{other_digest}")
    assert (
        service.score({"data": [[0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.020, -0.018]]})[0] == 200
    )
