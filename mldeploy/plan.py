"""From a valid spec and a registered model to a build plan: pure.

The plan holds the rendered Dockerfile, the requirement files, the image name and two
fingerprints: ``image_fingerprint`` (everything that goes into the image) and
``deploy_fingerprint`` (the image plus the target's configuration). The deploy fingerprint is
what a no-op check compares with the live service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mldeploy.dockerfile import DockerfileInputs, render_dockerfile
from mldeploy.environment import PythonEnvironment, python_pin_notice
from mldeploy.fingerprint import fingerprint, hash_content
from mldeploy.models import ModelVersion
from mldeploy.spec import ServiceSpec

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

    @property
    def local_ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def choose_base_image(spec: ServiceSpec, default: str) -> tuple[str, bool]:
    """The base image, and whether the spec chose it (explicitly, or through environment.python)."""
    if spec.environment.base_image:
        return spec.environment.base_image, True
    if spec.environment.python:
        return f"python:{spec.environment.python}-slim", True
    return default, False


def runtime_requirements() -> str:
    return (RUNTIME_DIR / "requirements.txt").read_text()


def app_source(spec: ServiceSpec) -> Path:
    return spec.source_directory or spec.entry_script


def make_plan(
    spec: ServiceSpec,
    model: ModelVersion,
    env: PythonEnvironment,
    *,
    base_image: str,
    base_image_id: str,
    base_python: str,
    base_chosen_by_spec: bool,
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
            model_name=model.name,
            model_version=model.version,
            entry_script=spec.entry_script.name
            if spec.source_directory is None
            else spec.entry_script.relative_to(spec.source_directory).as_posix(),
            has_requirements="user.txt" in requirement_files,
            extra_steps=extra.read_text() if extra else "",
        )
    )
    image_fp = fingerprint(
        {
            "dockerfile": dockerfile,
            "requirements": requirement_files,
            "base_image_id": base_image_id,
            "runtime": hash_content(RUNTIME_DIR).sha256,
            "model": [model.name, model.version, model.sha256],
            "app": hash_content(app_source(spec)).sha256,
        }
    )
    deploy_fp = fingerprint(
        {
            "image": image_fp,
            "target": [
                spec.target.kind,
                spec.target.port,
                spec.target.cpu_cores,
                spec.target.memory_gb,
                spec.target.namespace,
                spec.target.replicas,
            ],
            "variables": dict(spec.variables),
            "debug": spec.debug,
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
    )
