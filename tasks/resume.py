"""Resume keys: a stage's cache key is built from content fingerprints, never from run ids.

A rerun — a retry of the flow run from the UI or a new run with the same inputs — finds the
finished stages' results under the same keys and shows them as Cached. Before a stage runs, the
flow asks whether what it produced still exists (the model version, the image, the pushed
manifest); when it does not, the stage runs with refresh_cache, so a stale record is never trusted.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from prefect.context import TaskRunContext

import mldeploy
from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.adapters.oci_registry import OciRegistry
from mldeploy.errors import MldeployError
from mldeploy.fingerprint import fingerprint, hash_content, stat_fingerprint
from mldeploy.models import ModelRegistry
from mldeploy.plan import BuildPlan
from mldeploy.settings import Settings
from mldeploy.spec import ServiceSpec
from mldeploy.targets.base import LABEL_FINGERPRINT


@cache
def code_fingerprint() -> str:
    """Results pickled by one version of the code are not read back by another."""
    return hash_content(Path(mldeploy.__file__).parent).sha256[:16]


def _key(stage: str, **parts: Any) -> str:
    return f"mldeploy-{stage}-{fingerprint({'code': code_fingerprint(), **parts})[:40]}"


def validate_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    spec_path = Path(parameters["spec_path"]).resolve()
    if not spec_path.is_file():
        return None
    return _key(
        "validate", spec=str(spec_path), files=stat_fingerprint(spec_path.parent), target=parameters.get("target")
    )


def register_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    spec = parameters["spec"]
    return _key(
        "register",
        name=spec.model.name,
        path=str(spec.model.path),
        files=stat_fingerprint(spec.model.path),
        home=str(Settings.load().home),
    )


def build_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    if parameters.get("no_cache"):
        return None
    return _key("build", image=parameters["plan"].image_fingerprint)


def push_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    spec, plan = parameters["spec"], parameters["plan"]
    if spec.registry is None:
        return None  # nothing to push: the stage only says so
    return _key("push", repository=plan.repository, tag=plan.tag, image=plan.image_fingerprint)


# --- is a cached result still true? A stale one makes the flow refresh that stage. -------------


def register_is_stale(spec: ServiceSpec) -> bool:
    registry = ModelRegistry(Settings.load().home)
    return not any(m.basename == spec.model.path.name for m in registry.versions(spec.model.name))


def build_is_stale(plan: BuildPlan) -> bool:
    try:
        labels = DockerEngine().image_labels(plan.local_ref)
    except MldeployError:
        return True
    return labels is None or labels.get(LABEL_FINGERPRINT) != plan.image_fingerprint


def push_is_stale(spec: ServiceSpec, plan: BuildPlan) -> bool:
    if spec.registry is None:
        return False
    from tasks.push import registry_password

    try:
        host, _, path = plan.repository.partition("/")
        return (
            OciRegistry(host, spec.registry.username, registry_password(spec)).manifest_digest(path, plan.tag) is None
        )
    except MldeployError:
        return True
