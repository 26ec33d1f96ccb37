"""Which registry a spec names and how the push signs in: ACR recognised by its login server (or ``kind: acr``),
an Entra sign-in when no password is given, the target's cloud for it, ACI pulling with a managed identity, the
password from a Prefect Secret block, and the refusals that name the field and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mldeploy.adapters.oci_registry import base_url
from mldeploy.azure_cloud import registry_cloud_name
from mldeploy.errors import SpecError, SpecProblem
from mldeploy.plan import spec_registry_auth
from mldeploy.registry_auth import ANONYMOUS, BasicAuth, EntraSignIn
from mldeploy.spec import ResolvedSecrets, ServiceSpec, load_spec, resolve_secrets

VALID = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "valid"
SUB = "00000000-0000-0000-0000-0000000000cc"
IDENTITY = f"/subscriptions/{SUB}/resourceGroups/ml/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pull"


def spec_with(tmp_path: Path, registry: dict[str, Any] | None, target: dict[str, Any] | None = None) -> Path:
    folder = tmp_path / "svc"
    shutil.copytree(VALID, folder)
    data = yaml.safe_load((folder / "service.yaml").read_text())
    data["registry"] = registry
    if target is not None:
        data["target"] = target
    (folder / "service.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "service.yaml"


def load(tmp_path: Path, registry: dict[str, Any], target: dict[str, Any] | None = None) -> ServiceSpec:
    return load_spec(spec_with(tmp_path, registry, target))


def problems(tmp_path: Path, registry: dict[str, Any], target: dict[str, Any] | None = None) -> list[SpecProblem]:
    with pytest.raises(SpecError) as caught:
        load(tmp_path, registry, target)
    return caught.value.problems


ACI = {"kind": "aci", "subscription_id": SUB, "resource_group": "ml", "location": "westeurope"}


@pytest.mark.parametrize(
    ("url", "kind", "acr"),
    [
        ("myacr.azurecr.io", "auto", True),
        ("myacr.azurecr.cn/team", "auto", True),
        ("ghcr.io/org", "auto", False),
        ("127.0.0.1:5000", "auto", False),
        ("127.0.0.1:5443", "acr", True),  # a private endpoint or a double: ACR by kind
        ("myacr.azurecr.io", "oci", False),  # treated as a plain registry with its password
    ],
)
def test_acr_is_recognised_by_its_login_server_or_its_kind(tmp_path: Path, url: str, kind: str, acr: bool) -> None:
    assert load(tmp_path, {"url": url, "kind": kind}).registry.is_acr is acr  # type: ignore[union-attr]


def test_an_acr_without_a_password_signs_in_with_entra_in_the_login_servers_cloud(tmp_path: Path) -> None:
    spec = load(tmp_path, {"url": "myacr.azurecr.us"})
    auth = spec_registry_auth(spec, ResolvedSecrets(), {})
    assert isinstance(auth, EntraSignIn)
    assert auth.login_server == "myacr.azurecr.us"
    assert auth.cloud.name == "azure_us_government" and auth.cloud.authority_host == "https://login.microsoftonline.us"
    custom = spec_registry_auth(spec, ResolvedSecrets(), {"AZURE_AUTHORITY_HOST": "https://login.example"})
    assert isinstance(custom, EntraSignIn) and custom.cloud.authority_host == "https://login.example"


def test_an_aci_spec_signs_in_to_its_acr_in_the_targets_cloud(tmp_path: Path) -> None:
    target = {**ACI, "cloud": "azure_china", "registry_identity": IDENTITY}
    auth = spec_registry_auth(load(tmp_path, {"url": "myacr.azurecr.io"}, target), ResolvedSecrets(), {})
    assert isinstance(auth, EntraSignIn) and auth.cloud.authority_host == "https://login.chinacloudapi.cn"


def test_a_password_wins_over_entra_and_a_plain_registry_is_anonymous(tmp_path: Path) -> None:
    spec = load(tmp_path, {"url": "myacr.azurecr.io", "username": "pusher", "password_env": "ACR_PASSWORD"})
    assert spec_registry_auth(spec, ResolvedSecrets({}, "p" * 24), {}) == BasicAuth("pusher", "p" * 24)
    assert spec_registry_auth(load(tmp_path / "b", {"url": "ghcr.io/org"}), ResolvedSecrets(), {}) is ANONYMOUS


def test_aci_pulling_from_an_acr_signed_into_with_entra_needs_a_managed_identity(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, {"url": "myacr.azurecr.io"}, ACI)
    assert "registry_identity" in problem.message and "AcrPull" in problem.fix
    with_token = {"url": "myacr.azurecr.io", "username": "pull-token", "password_env": "ACR_TOKEN"}
    assert load(tmp_path / "b", with_token, ACI).registry is not None  # a scoped token ACI can keep using


def test_a_registry_identity_must_be_a_user_assigned_identitys_resource_id(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, {"url": "myacr.azurecr.io"}, {**ACI, "registry_identity": "ml-pull"})
    assert problem.field == "target.registry_identity" and "userAssignedIdentities" in problem.fix


@pytest.mark.parametrize(
    ("registry", "words"),
    [
        ({"url": "myacr.azurecr.io", "insecure": True}, "HTTPS only"),
        ({"url": "r.example", "username": "u", "password_env": "A", "password_block": "b"}, "keep one"),
        ({"url": "r.example", "password_block": "reg-password"}, "set username"),
        ({"url": "r.example", "username": "u", "password_block": "Not A Block"}, "lowercase"),
        ({"url": "r.example", "kind": "harbor"}, "'auto', 'acr' or 'oci'"),
    ],
)
def test_contradictory_registry_settings_are_refused_with_the_fix(
    tmp_path: Path, registry: dict[str, Any], words: str
) -> None:
    (problem,) = problems(tmp_path, registry)
    assert problem.field.startswith("registry")
    assert words in problem.message + problem.fix


def test_the_password_comes_from_a_prefect_secret_block(tmp_path: Path) -> None:
    spec = load(tmp_path, {"url": "r.example", "username": "u", "password_block": "reg-password"})
    blocks = {"reg-password": "s" * 24}

    def read(name: str) -> str:
        if name not in blocks:
            raise LookupError(f"no Prefect Secret block named {name!r}")
        return blocks[name]

    assert resolve_secrets(spec, {}, read).registry_password == "s" * 24
    blocks.clear()
    with pytest.raises(SpecError) as caught:
        resolve_secrets(spec, {}, read)
    (problem,) = caught.value.problems
    assert problem.field == "registry.password_block" and "reg-password" in problem.message
    assert "prefect block create secret" in problem.fix
    blocks["reg-password"] = "short"
    with pytest.raises(SpecError, match="too short"):
        resolve_secrets(spec, {}, read)


def test_acr_is_spoken_to_over_https_even_on_loopback() -> None:
    assert base_url("127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert base_url("127.0.0.1:5443", https=True) == "https://127.0.0.1:5443"
    assert base_url("myacr.azurecr.io/team") == "https://myacr.azurecr.io"


@pytest.mark.parametrize(
    ("server", "cloud"),
    [("a.azurecr.io", "azure_public"), ("a.azurecr.cn", "azure_china"), ("a.azurecr.us", "azure_us_government")],
)
def test_the_cloud_of_a_login_server(server: str, cloud: str) -> None:
    assert registry_cloud_name(server) == cloud
