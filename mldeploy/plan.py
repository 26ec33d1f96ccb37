"""From a valid spec and a registered model to a build plan: pure.

The plan holds the rendered Dockerfile, the requirement files, the image name and two
fingerprints: ``image_fingerprint`` (everything that goes into the image) and
``deploy_fingerprint`` (the image plus the target's configuration). The deploy fingerprint is
what a no-op check compares with the live service.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mldeploy.azure_cloud import cloud_of, registry_cloud_name
from mldeploy.contract import AUTH_KEY_VARS, ENV_DEBUG, LABEL_MODEL
from mldeploy.dockerfile import DockerfileInputs, render_dockerfile
from mldeploy.environment import PythonEnvironment, python_pin_notice
from mldeploy.fingerprint import fingerprint, hash_content
from mldeploy.images import ImageRef
from mldeploy.models import ModelVersion
from mldeploy.registry_auth import ANONYMOUS, EntraSignIn, RegistryAuth, registry_auth
from mldeploy.spec import AciTarget, ResolvedSecrets, ServiceSpec
from mldeploy.targets.base import DeployRequest, LiveService

RUNTIME_DIR = Path(__file__).parent / "runtime"
LOCAL_IMAGE_PREFIX = "mldeploy"


@dataclass(frozen=True)
class BuildPlan:
    service: str
    dockerfile: str
    requirement_files: dict[str, str]  # name in the context's requirements/ folder -> content
    base_image: str
    python: str
    repository: str  # where the image is pushed (or a local name without a registry)
    tag: str
    image_fingerprint: str
    deploy_fingerprint: str
    notices: tuple[str, ...]
    secrets_digest: str = ""  # keyed digest of the secret values the service will run with
    index_options: tuple[str, ...] = ()  # pip index options the user allowed (environment file lines)
    python_pin: str | None = None  # the environment file's python= pin, to explain a missing wheel

    @property
    def local_ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def image(self) -> ImageRef:
        return ImageRef.parse(self.local_ref)


def choose_base_image(spec: ServiceSpec, default: str) -> tuple[str, bool]:
    """The base image, and whether the spec chose it (explicitly, or through environment.python)."""
    if spec.environment.base_image:
        return spec.environment.base_image, True
    if spec.environment.python:
        return f"python:{spec.environment.python}-slim", True
    return default, False


def runtime_requirements() -> str:
    return (RUNTIME_DIR / "requirements.txt").read_text()


def make_plan(
    spec: ServiceSpec,
    models: Sequence[ModelVersion],
    env: PythonEnvironment,
    *,
    base_image: str,
    base_image_id: str,
    base_python: str,
    base_chosen_by_spec: bool,
    secrets_digest: str = "",
) -> BuildPlan:
    notices = list(env.notices)
    env_file = str(spec.environment.conda_file or spec.environment.requirements or "")
    pin = python_pin_notice(env.python_pin, base_python, base_chosen_by_spec, env_file)
    if pin:
        notices.append(pin)
    elif env.python_pin and base_chosen_by_spec and not env.python_pin.startswith(base_python):
        notices.append(
            f"{env_file}: python={env.python_pin} differs from the chosen base image's Python "
            f"{base_python}; the base image wins"
        )
    requirement_files = {"runtime.txt": runtime_requirements()}
    if env.requirements:
        requirement_files["user.txt"] = "\n".join(env.requirements) + "\n"
    extra = spec.environment.extra_dockerfile_steps
    dockerfile = render_dockerfile(
        DockerfileInputs(
            base_image=base_image,
            models=tuple((model.name, model.version) for model in models),
            entry_script=spec.entry_script_in_app,
            has_requirements="user.txt" in requirement_files,
            service=spec.name,
            source_directory=spec.source_directory.name if spec.source_directory else "",
            extra_steps=extra.read_text() if extra else "",
        )
    )
    image_fp = fingerprint(
        {
            "dockerfile": dockerfile,
            "requirements": requirement_files,
            "index_options": list(env.index_options),
            "base_image_id": base_image_id,
            "runtime": hash_content(RUNTIME_DIR).sha256,
            "models": [[model.name, model.version, model.sha256] for model in models],
            "app": hash_content(spec.app_source, spec.roots, spec.limits.max_bytes).sha256,
        }
    )
    deploy_fp = fingerprint(
        {
            "image": image_fp,
            "target": spec.target.model_dump(mode="json"),
            "variables": spec.variables,
            "secret_names": sorted(spec.secrets),
            "secrets": secrets_digest,  # a rotated secret or key redeploys (the digest, never the values)
            "debug": spec.deploy.debug,
        }
    )
    repository = f"{spec.registry.url}/{spec.name}" if spec.registry else f"{LOCAL_IMAGE_PREFIX}/{spec.name}"
    return BuildPlan(
        service=spec.name,
        dockerfile=dockerfile,
        requirement_files=requirement_files,
        base_image=base_image,
        python=base_python,
        repository=repository,
        tag=image_fp[:16],
        image_fingerprint=image_fp,
        deploy_fingerprint=deploy_fp,
        notices=tuple(notices),
        secrets_digest=secrets_digest,
        index_options=env.index_options,
        python_pin=env.python_pin,
    )


def plan_markdown(plan: BuildPlan, live: LiveService | None, noop: bool, drift: Sequence[str]) -> str:
    """The plan artifact: what will be built, what is live, and the decision with its reasons."""
    lines = [
        f"# Plan for {plan.service}",
        "",
        f"- image: `{plan.local_ref}` on `{plan.base_image}` (Python {plan.python})",
        f"- deploy fingerprint: `{plan.deploy_fingerprint}`",
        f"- live: {f'`{live.fingerprint[:16]}` healthy={live.healthy}' if live else 'nothing deployed'}",
        f"- decision: {'no-op (nothing changed)' if noop else 'deploy'}",
        *[f"  - {reason}" for reason in drift],
    ]
    if plan.notices:
        lines += ["", "Notices:", *[f"- {notice}" for notice in plan.notices]]
    return "\n".join(lines)


def spec_registry_auth(spec: ServiceSpec, secrets: ResolvedSecrets, environ: Mapping[str, str]) -> RegistryAuth:
    """How the push signs in: the registry's password (environment or Prefect block), else for an ACR the
    deploying identity through Entra ID (in the target's cloud for ACI, else the login server's), else none."""
    registry = spec.registry
    if registry is None:
        return ANONYMOUS
    entra = None
    if registry.signs_in_with_entra:
        login_server = registry.url.split("/", 1)[0]
        target = spec.target
        if isinstance(target, AciTarget):
            cloud = cloud_of(
                target.cloud, arm_endpoint=target.arm_endpoint, authority_host=target.authority_host, environ=environ
            )
        else:
            cloud = cloud_of(registry_cloud_name(login_server), environ=environ)
        entra = EntraSignIn(login_server, cloud)
    return registry_auth(registry.username, secrets.registry_password, entra=entra)


class Fingerprints(Protocol):
    """What a deploy request takes from its plan (a BuildPlan, or a rollback's)."""

    @property
    def deploy_fingerprint(self) -> str: ...

    @property
    def secrets_digest(self) -> str: ...


@dataclass(frozen=True)
class RollbackPlan:
    """A rollback runs an earlier image: its fingerprint names that image (so the next deploy of the spec sees
    drift and replaces it), with the secrets the spec resolves to now."""

    image: str
    secrets_digest: str

    @property
    def deploy_fingerprint(self) -> str:
        return fingerprint({"rollback": self.image, "secrets": self.secrets_digest})


def deploy_request(
    spec: ServiceSpec,
    plan: Fingerprints,
    image_ref: str,
    model_label: str,
    secrets: ResolvedSecrets,
    pull_auth: RegistryAuth,
) -> DeployRequest:
    """What the target is asked to run: plain configuration, secret values and service keys kept apart."""
    environment = dict(spec.variables)
    if spec.deploy.debug:
        environment[ENV_DEBUG] = "true"
    auth_keys = {name: value for name, value in secrets.container.items() if name in AUTH_KEY_VARS}
    return DeployRequest(
        service=spec.name,
        image=image_ref,
        fingerprint=plan.deploy_fingerprint,
        health_timeout=spec.deploy.health_timeout_seconds,
        environment=environment,
        secret_environment={k: v for k, v in secrets.container.items() if k not in auth_keys},
        auth_keys=auth_keys,
        registry_auth=pull_auth,
        labels={LABEL_MODEL: model_label},
        secrets_digest=plan.secrets_digest,
    )
