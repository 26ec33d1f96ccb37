"""Session-wide isolation: every test session gets its own Prefect and mldeploy homes.

The machine's base image setting (written by `make setup`) is carried over so the engine tests
build on the same base image as `make demo`.

A full run builds about a hundred images of ~300 MB: each module's images, and their manifests in the
local registry, are removed when the module ends, so a run does not fill the disk (a node under
DiskPressure is tainted and the Kubernetes tier's pods stop scheduling).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_session_root = Path(tempfile.mkdtemp(prefix="mldeploy-tests-"))
REGISTRY = "127.0.0.1:5000"
BUILT_BY_US = "mldeploy.service"  # the label every image mldeploy builds carries


def pytest_configure(config: object) -> None:
    from mldeploy.settings import Settings

    machine = Settings.load()
    os.environ.setdefault("MLDEPLOY_BASE_IMAGE", machine.base_image)
    # The test Kubernetes is the machine's (scripts/cluster-up.sh keeps it under the machine's home)
    os.environ.setdefault("MLDEPLOY_MACHINE_HOME", str(machine.home))
    os.environ["MLDEPLOY_HOME"] = str(_session_root / "mldeploy-home")
    os.environ["PREFECT_HOME"] = str(_session_root / "prefect-home")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.pop("PREFECT_API_URL", None)  # never write into the user's server from tests


def pytest_unconfigure(config: object) -> None:
    shutil.rmtree(_session_root, ignore_errors=True)


def _engine() -> Any:
    """A Docker client, or None when no engine answers (unit runs)."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception:
        return None
    return client


def _images(client: Any) -> list[dict[str, Any]]:
    """Images mldeploy built, in one engine call (no per-image inspect that a concurrent removal could break);
    none when the engine does not answer: cleaning up never fails a test."""
    try:
        return list(client.api.images(filters={"label": BUILT_BY_US}))
    except Exception:
        return []


def _delete_from_registry(repo_digest: str) -> None:
    """DELETE the manifest (the registry frees the blobs at its next garbage collection)."""
    host, _, rest = repo_digest.partition("/")
    if not host.startswith("127.0.0.1:") or "@" not in rest:
        return
    # another loopback port is a registry double in front of this one (the ACR double), gone by now
    repository, digest = rest.split("@", 1)
    request = urllib.request.Request(f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", method="DELETE")
    with contextlib.suppress(OSError), urllib.request.urlopen(request, timeout=10):
        pass


@pytest.fixture(scope="module", autouse=True)
def _images_built_by_the_module_are_removed() -> Iterator[None]:
    client = _engine()
    before = {image["Id"] for image in _images(client)} if client is not None else set()
    yield
    if client is None:
        return
    try:
        for image in _images(client):
            if image["Id"] in before:
                continue
            try:  # by tag and without force: an image a container still uses stays
                tags = [tag for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]
                for tag in tags or [image["Id"]]:
                    client.images.remove(tag)
            except Exception:
                continue
            for repo_digest in image.get("RepoDigests") or []:
                _delete_from_registry(repo_digest)
    finally:
        client.close()
