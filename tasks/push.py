"""Stage 4 — push: to any OCI registry; record and verify the digest. Skipped without a registry."""

from __future__ import annotations

import os
from dataclasses import dataclass

from prefect import task

from mldeploy import diagnosis
from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.adapters.oci_registry import OciRegistry
from mldeploy.errors import PermanentError
from mldeploy.orchestration import artifact_key, attach_markdown, logger, reports_failure, stage_options
from mldeploy.plan import BuildPlan
from mldeploy.spec import ServiceSpec, resolve_secrets
from tasks.build import BuiltImage
from tasks.resume import push_key


@dataclass(frozen=True)
class PushedImage:
    ref: str  # what deploys use: repo@digest, or the local image id when not pushed
    digest: str | None
    pushed: bool
    layers_uploaded: int = 0


def registry_password(spec: ServiceSpec) -> str | None:
    return resolve_secrets(spec, os.environ).registry_password


@task(name="push", task_run_name="push {spec.name}", **stage_options(push_key))
@reports_failure("push", lambda spec, *a, **k: spec.name)
def push_image(
    spec: ServiceSpec,
    plan: BuildPlan,
    built: BuiltImage,
    engine: DockerEngine | None = None,
    registry: OciRegistry | None = None,
) -> PushedImage:
    log = logger()
    if spec.registry is None:
        log.info("push skipped: the spec names no registry; the local target runs the local image %s", built.ref)
        attach_markdown(
            artifact_key(spec.name, "image"),
            f"# Image\n\n- local image `{built.ref}`\n"
            f"- id `{built.image_id}`\n- not pushed: the spec has no `registry`",
            "Image reference",
        )
        return PushedImage(ref=built.image_id, digest=None, pushed=False)
    engine = engine or DockerEngine()
    password = registry_password(spec)
    auth = {"username": spec.registry.username or "", "password": password} if password else None
    digest, uploaded = engine.push(
        plan.repository, plan.tag, auth, lambda line: log.info(diagnosis.redact(line, [password or ""]))
    )
    host, _, path = plan.repository.partition("/")
    registry = registry or OciRegistry(host, spec.registry.username, password)
    served = registry.manifest_digest(path, plan.tag)
    if served != digest:
        found = diagnosis.Diagnosis(
            diagnosis.Code.DIGEST_MISMATCH,
            "the registry serves another digest than pushed",
            f"pushed {digest}, registry serves {served}",
            "another push raced this one, or the registry rewrote the manifest; rerun",
            "push",
        )
        raise PermanentError(found.summary, diagnosis=found)
    ref = f"{plan.repository}@{digest}"
    log.info("pushed %s:%s as %s (%d layers uploaded; digest verified)", plan.repository, plan.tag, digest, uploaded)
    attach_markdown(
        artifact_key(spec.name, "image"),
        f"# Image\n\n- reference `{ref}`\n- tag "
        f"`{plan.repository}:{plan.tag}`\n- digest `{digest}` (verified against the registry)\n"
        f"- layers uploaded: {uploaded}",
        "Image reference and digest",
    )
    return PushedImage(ref=ref, digest=digest, pushed=True, layers_uploaded=uploaded)
