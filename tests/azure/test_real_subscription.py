"""Opt-in: the ACI target against a real Azure subscription (skipped unless asked for).

    MLDEPLOY_AZURE_E2E=1
    AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET   a service principal with Contributor on the group
    AZURE_SUBSCRIPTION_ID
    MLDEPLOY_AZURE_RESOURCE_GROUP                           an existing resource group (its region is used)
    MLDEPLOY_AZURE_REGISTRY                                 e.g. myregistry.azurecr.io (ACI pulls from it)
    and either
    MLDEPLOY_AZURE_REGISTRY_IDENTITY                        a user-assigned identity's resource id with AcrPull
                                                            (the push signs in as the service principal, which
                                                            needs AcrPush: the Entra token exchange)
    or
    MLDEPLOY_AZURE_REGISTRY_USERNAME, ACR_PASSWORD          a token or admin user that may push and pull

    .venv/bin/pytest tests/azure -s

It deploys the diabetes example twice (the second time a new version that takes over the DNS label), checks the
scoring answer through the public FQDN, and deletes every group it made. It costs a few cents of ACI time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
MLDEPLOY = str(Path(sys.executable).parent / "mldeploy")
NEEDED: tuple[str, ...] = (
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_SUBSCRIPTION_ID",
    "MLDEPLOY_AZURE_RESOURCE_GROUP",
    "MLDEPLOY_AZURE_REGISTRY",
)
ENTRA = bool(os.environ.get("MLDEPLOY_AZURE_REGISTRY_IDENTITY"))
if not ENTRA:
    NEEDED += ("MLDEPLOY_AZURE_REGISTRY_USERNAME", "ACR_PASSWORD")
missing = [name for name in NEEDED if not os.environ.get(name)]
pytestmark = pytest.mark.skipif(
    os.environ.get("MLDEPLOY_AZURE_E2E") != "1" or bool(missing),
    reason="opt-in suite for a real Azure subscription: set MLDEPLOY_AZURE_E2E=1 and " + ", ".join(missing or NEEDED),
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MLDEPLOY, *args], capture_output=True, text=True, timeout=1800)


def test_deploy_replace_and_delete_on_a_real_subscription(tmp_path: Path) -> None:
    source = REPO / "deployments" / "examples" / "diabetes"
    if not (source / "model").exists():
        subprocess.run([sys.executable, str(source / "train.py")], check=True)
    folder = tmp_path / "diabetes"
    shutil.copytree(source, folder)
    name = f"mldeploy-e2e-{uuid.uuid4().hex[:6]}"
    spec = yaml.safe_load((folder / "service.yaml").read_text())
    spec["name"] = name
    spec["target"] = {"kind": "aci", "resource_group": os.environ["MLDEPLOY_AZURE_RESOURCE_GROUP"], "memory_gb": 1.0}
    if ENTRA:  # push as the service principal (token exchange), ACI pulls as the managed identity
        spec["registry"] = {"url": os.environ["MLDEPLOY_AZURE_REGISTRY"]}
        spec["target"]["registry_identity"] = os.environ["MLDEPLOY_AZURE_REGISTRY_IDENTITY"]
    else:
        spec["registry"] = {
            "url": os.environ["MLDEPLOY_AZURE_REGISTRY"],
            "username": os.environ["MLDEPLOY_AZURE_REGISTRY_USERNAME"],
            "password_env": "ACR_PASSWORD",
        }
    (folder / "service.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        first = cli("deploy", str(folder / "service.yaml"), "--json")
        summary = json.loads(first.stdout.strip().splitlines()[-1])
        assert summary["status"] == "succeeded", first.stdout + first.stderr
        spec["environment"]["variables"] = {"MODEL_NOTE": "second"}
        (folder / "service.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        second = cli("deploy", str(folder / "service.yaml"), "--json")
        summary = json.loads(second.stdout.strip().splitlines()[-1])
        assert summary["status"] == "succeeded", second.stdout + second.stderr
        body = json.dumps({"data": [[0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.020, -0.018]]})
        deadline = time.monotonic() + 300  # the label's DNS record follows the move
        while True:
            try:
                request = urllib.request.Request(
                    summary["endpoint"] + "/score", body.encode(), {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    assert response.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(5)
    finally:
        removed = cli("delete", name, "--spec", str(folder / "service.yaml"))
        print(removed.stdout, removed.stderr)
