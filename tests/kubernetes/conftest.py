"""The Kubernetes tier: a real API server, controllers and scheduler (built from Go modules by
scripts/cluster-build.sh), a real node that runs images from the local registry and a simulated (kwok) node
for failure states.

The session brings the cluster up once (scripts/cluster-up.sh) and takes it down at the end if it started
it. ``MLDEPLOY_TEST_KUBECONFIG`` points the tier at another cluster instead (nothing is started or stopped
then; tests that need the simulated node or the local registry are skipped there). Under ``make test``
(MLDEPLOY_REQUIRE_CLUSTER=1) a cluster that cannot start fails the session instead of skipping it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The real engine, registry and Prefect server of the integration tier, for the full runs of this tier
from tests.integration.conftest import REGISTRY, prefect_server, real_engine  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
KWOK_NODE = "mldeploy-kwok-node"


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    ours: bool  # started by scripts/cluster-up.sh (has the kwok node, pulls from the local registry)


def _fail_or_skip(message: str) -> None:
    if os.environ.get("MLDEPLOY_REQUIRE_CLUSTER") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _machine_env() -> dict[str, str]:
    """The scripts' environment: the machine's home (the session's own home is a temporary one)."""
    return {**os.environ, "MLDEPLOY_HOME": os.environ.get("MLDEPLOY_MACHINE_HOME", str(Path.home() / ".mldeploy"))}


def _apiserver_running() -> bool:
    pid_file = Path(_machine_env()["MLDEPLOY_HOME"]) / "cluster" / "run" / "kube-apiserver.pid"
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    other = os.environ.get("MLDEPLOY_TEST_KUBECONFIG")
    if other:
        yield Cluster(other, ours=False)
        return
    if os.geteuid() != 0:
        _fail_or_skip("the test cluster needs root (kubelet, containerd); run as root or set MLDEPLOY_TEST_KUBECONFIG")
    was_running = _apiserver_running()
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "cluster-up.sh")],
        capture_output=True,
        text=True,
        timeout=3600,
        env=_machine_env(),
    )
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not last.startswith("export KUBECONFIG="):
        _fail_or_skip(
            f"scripts/cluster-up.sh failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    print(f"\n[cluster] up in {time.monotonic() - started:.1f} s ({'reused' if was_running else 'started'})")
    try:
        yield Cluster(last.split("=", 1)[1], ours=True)
    finally:
        if not was_running:
            subprocess.run(
                ["bash", str(REPO / "scripts" / "cluster-down.sh")],
                capture_output=True,
                timeout=600,
                env=_machine_env(),
            )


def _crictl(*args: str) -> Any:
    """crictl against the test node's containerd (paths as scripts/cluster-lib.sh sets them); JSON or None."""
    cache = Path(os.environ.get("MLDEPLOY_CACHE", Path.home() / ".cache" / "mldeploy"))
    binary = next((cache / "kubernetes").glob("*/bin/crictl"), None)
    if binary is None:
        return None
    listing = args[0] in ("images", "ps")
    proc = subprocess.run(
        [str(binary), "--runtime-endpoint", "unix:///run/mldeploy-containerd/containerd.sock", *args]
        + (["-o", "json"] if listing else []),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0 or not listing:
        return None
    return json.loads(proc.stdout)


@pytest.fixture(scope="module", autouse=True)
def _node_images_of_the_module_are_removed(cluster: Cluster) -> Iterator[None]:
    """The node's copies of the images a module pulled go when it ends (a full disk taints the node)."""
    yield
    if not cluster.ours:
        return
    images, containers = _crictl("images"), _crictl("ps", "-a")
    if images is None or containers is None:
        return
    in_use = {c.get("imageRef") for c in containers.get("containers", [])} | {
        c.get("image", {}).get("image") for c in containers.get("containers", [])
    }
    for image in images.get("images", []):
        ours = any(tag.startswith(f"{REGISTRY}/") for tag in image.get("repoTags") or image.get("repoDigests") or [])
        if ours and not image.get("pinned") and image["id"] not in in_use:
            _crictl("rmi", image["id"])


@pytest.fixture(scope="session")
def api(cluster: Cluster):  # type: ignore[no-untyped-def]
    """An API client for the cluster (its own configuration: nothing global is changed)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=cluster.kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration)


@pytest.fixture
def namespace(api) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A namespace of its own for one test, deleted afterwards (with everything in it)."""
    from kubernetes import client

    core = client.CoreV1Api(api)
    name = f"t-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    deadline = time.monotonic() + 30  # pods need the namespace's default service account
    while time.monotonic() < deadline:
        if any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items):
            break
        time.sleep(0.2)
    yield name
    core.delete_namespace(name, propagation_policy="Foreground")


@pytest.fixture
def local_only(cluster: Cluster) -> None:
    if not cluster.ours:
        pytest.skip("needs the project's own test cluster (the simulated node, the local registry)")
