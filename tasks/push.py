"""Stage 4 — push: to any OCI registry; record and verify the digest. Skipped without a registry.

A manifest the registry already serves under this plan's tag, which the engine knows it pushed
from this image, is reused (a rerun resumes after the push). An ACR without a password is signed into here,
with the deploying identity's Entra token exchanged for a registry token; with ``immutable_tags`` a tag that
already points at another digest is never moved.
"""

from __future__ import annotations

import os

from prefect import task

from mldeploy import diagnosis
from mldeploy.adapters import acr_auth
from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.adapters.oci_registry import OciRegistry
from mldeploy.errors import PermanentError
from mldeploy.images import ImageRef
from mldeploy.orchestration import (
    STAGE_TASK_OPTIONS,
    artifact_key,
    attach_markdown,
    keep_secrets,
    logger,
    reports_failure,
)
from mldeploy.plan import BuildPlan
from mldeploy.redaction import redact
from mldeploy.registry_auth import ANONYMOUS, EntraSignIn, RegistryAuth
from mldeploy.results import BuiltImage, PushedImage
from mldeploy.spec import ServiceSpec


def _image_markdown(pushed: PushedImage, tag_ref: str) -> str:
    return (
        f"# Image\n\n- reference `{pushed.ref}`\n- tag `{tag_ref}`\n"
        f"- digest `{pushed.digest}` (verified against the registry)\n- layers uploaded: {pushed.layers_uploaded}"
        + ("\n- reused: the registry already had it" if pushed.reused else "")
    )


def signed_in(auth: RegistryAuth) -> RegistryAuth:
    """An ACR sign-in with the deploying identity, resolved to a registry token for this push (and scrubbed from
    every log from now on); any other credentials as they are."""
    if not isinstance(auth, EntraSignIn):
        return auth
    token = acr_auth.sign_in(auth, os.environ)
    keep_secrets(token.secret_values())
    logger().info("signed in to %s with the Entra ID identity (ACR token exchange)", auth.login_server)
    return token


@task(name="push", task_run_name="push {spec.name}", **STAGE_TASK_OPTIONS)
@reports_failure("push", lambda spec, *a, **k: spec.name)
def push_image(
    spec: ServiceSpec,
    plan: BuildPlan,
    built: BuiltImage,
    engine: DockerEngine,
    auth: RegistryAuth = ANONYMOUS,
    registry: OciRegistry | None = None,
    force: bool = False,
) -> PushedImage:
    log = logger()
    if spec.registry is None:
        log.info("push skipped: the spec names no registry; the local target runs the local image %s", built.ref)
        attach_markdown(
            artifact_key(spec.name, "image"),
            f"# Image\n\n- local image `{built.ref}`\n- id `{built.image_id}`\n"
            "- not pushed: the spec has no `registry`",
            "Image reference",
        )
        return PushedImage(ref=built.image_id, digest=None, pushed=False)
    image = plan.image
    if spec.registry.insecure and not engine.treats_as_insecure(str(image.registry)):
        raise PermanentError(
            f"registry.insecure is set, but the Docker engine uses HTTPS for {image.registry}: add it to "
            "'insecure-registries' in /etc/docker/daemon.json and restart the engine, or serve the registry over HTTPS"
        )
    auth = signed_in(auth)
    registry = registry or OciRegistry(
        str(image.registry), auth, insecure=spec.registry.insecure, https=spec.registry.is_acr
    )
    immutable = spec.registry.immutable_tags
    served = None if force and not immutable else registry.manifest_digest(image.repository, plan.tag)
    ours = served is not None and f"{image.name}@{served}" in engine.repo_digests(built.ref)
    if served is not None and immutable and not ours:
        found = diagnosis.tag_immutable(plan.local_ref, served)
        raise PermanentError(found.summary, diagnosis=found)
    if ours and not force:
        assert served is not None
        pushed = PushedImage(ref=image.with_digest(served).pinned(), digest=served, pushed=True, reused=True)
        log.info("reusing %s: the registry already serves it (digest %s)", plan.local_ref, served)
    else:
        digest, uploaded = engine.push(
            image.name, plan.tag, auth, lambda line: log.info(redact(line, auth.secret_values()))
        )
        served = registry.manifest_digest(image.repository, plan.tag)
        if served != digest:
            found = diagnosis.Diagnosis(
                diagnosis.Code.DIGEST_MISMATCH,
                "the registry serves another digest than pushed",
                f"pushed {digest}, registry serves {served}",
                "another push raced this one, or the registry rewrote the manifest; rerun",
                "push",
            )
            raise PermanentError(found.summary, diagnosis=found)
        pushed = PushedImage(
            ref=image.with_digest(digest).pinned(), digest=digest, pushed=True, layers_uploaded=uploaded
        )
        log.info("pushed %s as %s (%d layers uploaded; digest verified)", plan.local_ref, digest, uploaded)
    attach_markdown(artifact_key(spec.name, "image"), _image_markdown(pushed, plan.local_ref), "Image and digest")
    return pushed


@task(name="push", task_run_name="push {spec.name} (rollback)", **STAGE_TASK_OPTIONS)
@reports_failure("push", lambda spec, *a, **k: spec.name)
def reuse_pushed_image(
    spec: ServiceSpec, image_ref: str, auth: RegistryAuth = ANONYMOUS, registry: OciRegistry | None = None
) -> PushedImage:
    """A rollback's push stage: nothing is built or pushed; the earlier image must still be in its registry."""
    image = ImageRef.parse(image_ref)
    if image.digest is None or image.registry is None:
        raise PermanentError(f"{image_ref} is not an image in a registry by digest: it cannot be brought back")
    insecure = spec.registry.insecure if spec.registry else False
    acr = spec.registry.is_acr if spec.registry else False
    auth = signed_in(auth)
    registry = registry or OciRegistry(image.registry, auth, insecure=insecure, https=acr)
    served = registry.manifest_digest(image.repository, image.digest)
    if served is None:
        found = diagnosis.Diagnosis(
            diagnosis.Code.IMAGE_NOT_FOUND,
            f"the image of that deploy is gone: {image.registry} no longer serves {image.repository}@{image.digest}",
            f"HEAD /v2/{image.repository}/manifests/{image.digest} answered 404",
            "it was deleted (or garbage-collected) from the registry: roll back to another deploy (mldeploy history "
            "NAME lists them) or redeploy that version from its spec",
            "push",
        )
        raise PermanentError(found.summary, diagnosis=found)
    pushed = PushedImage(ref=image_ref, digest=image.digest, pushed=True, reused=True)
    logger().info("rollback: %s is still in its registry; nothing is built or pushed", image_ref)
    attach_markdown(artifact_key(spec.name, "image"), _image_markdown(pushed, image_ref), "Image and digest")
    return pushed
