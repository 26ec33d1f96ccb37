"""``mldeploy reload``: an edited ``score.py`` (and the other app files) live in seconds, without a new image.

What may be reloaded is the app folder only. The environment and the model are baked into the image's lower
layers; a change to either is refused with a pointer to ``deploy`` (the image records what it was built from:
``LABEL_ENVIRONMENT_SHA256``, ``LABEL_MODEL_SHA256``). The files go into the running version's app folder, the
scoring process restarts, readiness is waited for and the smoke requests run again. The service is then marked
as diverged from its image, so the next ``deploy`` of the spec replaces it.

Pure but for reading the spec's files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mldeploy.contract import APP_ROOT, LABEL_ENVIRONMENT_SHA256, LABEL_MODEL_SHA256
from mldeploy.fingerprint import fingerprint, hash_content, walk_files
from mldeploy.spec import ServiceSpec


@dataclass(frozen=True)
class AppFile:
    path: str  # in the container
    content: bytes


def environment_sha256(spec: ServiceSpec) -> str:
    """What of the spec shapes the image's environment: the environment file, the Python and base image, the
    extra Dockerfile steps."""
    env = spec.environment
    return fingerprint(
        {
            "file": hash_content(env.file).sha256,
            "python": env.python,
            "base_image": env.base_image,
            "extra_steps": hash_content(env.extra_dockerfile_steps).sha256 if env.extra_dockerfile_steps else "",
        }
    )


def app_files(spec: ServiceSpec) -> list[AppFile]:
    """The files the image's app folder holds, read now: the source directory under its own name, or the
    entry script alone (as the build context lays them out)."""
    source = spec.app_source
    base = f"{APP_ROOT}/{source.name}" if source.is_dir() else APP_ROOT
    return [
        AppFile(f"{base}/{found.rel}", found.real.read_bytes())
        for found in walk_files(source, spec.roots, spec.limits.max_bytes)
    ]


def refusals(spec: ServiceSpec, image_labels: Mapping[str, str]) -> list[str]:
    """Why this spec cannot be reloaded into an image with these labels (empty: it can)."""
    found = []
    built_with = image_labels.get(LABEL_ENVIRONMENT_SHA256)
    if built_with is None:
        found.append("the running image does not record its environment (built by an earlier mldeploy): deploy once")
    elif built_with != environment_sha256(spec):
        found.append(
            f"the environment changed ({spec.environment.file.name}, python, base image or extra steps): "
            "dependencies are not reloaded; run mldeploy deploy"
        )
    shipped = set(image_labels.get(LABEL_MODEL_SHA256, "").split(","))
    for model in spec.all_models:
        if model.path is not None and hash_content(model.path, spec.roots, spec.limits.max_bytes).sha256 not in shipped:
            found.append(
                f"the model {model.name} ({model.path.name}) changed: models are not reloaded; run mldeploy deploy"
            )
    return found
