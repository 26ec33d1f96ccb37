"""Stage 3 — build: wheelhouse on the host, build context, image; the whole log kept and attached."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from prefect import task

from mldeploy import progress
from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.adapters.wheelhouse import resolve_wheelhouse
from mldeploy.build_context import write_context
from mldeploy.errors import MldeployError
from mldeploy.models import ModelRegistry, ModelVersion
from mldeploy.orchestration import (
    artifact_key,
    attach_markdown,
    code_block,
    logger,
    reports_failure,
    stage_options,
)
from mldeploy.plan import BuildPlan, app_source
from mldeploy.settings import Settings
from mldeploy.spec import ServiceSpec
from mldeploy.targets.base import LABEL_FINGERPRINT, LABEL_MODEL, LABEL_SERVICE
from tasks.resume import build_key


@dataclass(frozen=True)
class BuiltImage:
    image_id: str
    ref: str
    steps: int
    cached_steps: int
    rebuilt: tuple[str, ...]
    wheels: int
    log_file: str
    seconds: float


def _attach_log(spec: ServiceSpec, log_file: Path, text: str) -> None:
    attach_markdown(
        artifact_key(spec.name, "build-log"),
        f"Full log: `{log_file}`\n\n" + code_block(text),
        "The whole image build log",
    )


@task(name="build", task_run_name="build {spec.name}", **stage_options(build_key))
@reports_failure("build", lambda spec, *a, **k: spec.name)
def build_image(
    spec: ServiceSpec,
    model: ModelVersion,
    plan: BuildPlan,
    engine: DockerEngine | None = None,
    no_cache: bool = False,
) -> BuiltImage:
    settings = Settings.load()
    engine = engine or DockerEngine()
    log = logger()
    started = time.monotonic()
    attach_markdown(
        artifact_key(spec.name, "dockerfile"), code_block(plan.dockerfile, "dockerfile"), "The rendered Dockerfile"
    )
    log_dir = settings.home / "logs" / spec.name
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"build-{plan.tag}.log"
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        log.info(line)
        working_step = line.startswith("Step ") and (" : RUN " in line or " : COPY " in line)
        if working_step or line.startswith("wheelhouse "):
            progress.note("build", line)  # the steps that do work; metadata steps go by in an instant

    env_file = str(spec.environment.conda_file or spec.environment.requirements or "")
    try:
        wheelhouse = resolve_wheelhouse(settings.home, plan.requirement_files, plan.python, source_file=env_file)
        on_line(
            f"wheelhouse {'reused' if wheelhouse.cached else 'resolved'}: {len(wheelhouse.wheels)} wheels "
            f"for Python {plan.python} in {wheelhouse.path}"
        )
        with tempfile.TemporaryDirectory(prefix="mldeploy-build-") as context:
            write_context(
                Path(context),
                plan,
                wheels=wheelhouse.path,
                model_files=ModelRegistry(settings.home).files_path(model),
                app=app_source(spec),
            )
            labels = {
                LABEL_SERVICE: spec.name,
                LABEL_FINGERPRINT: plan.image_fingerprint,
                LABEL_MODEL: model.label,
                "mldeploy.model.sha256": model.sha256,
            }
            result = engine.build(Path(context), plan.local_ref, labels, on_line, no_cache=no_cache)
    except MldeployError as exc:
        # A dependency failure happens before the engine build: its pip output is the log.
        if exc.diagnosis is not None and exc.diagnosis.detail not in "\n".join(lines):
            lines.append(exc.diagnosis.detail)
        log_file.write_text("\n".join(lines) + "\n")
        _attach_log(spec, log_file, "\n".join(lines))
        raise
    log_file.write_text(result.log + "\n")
    _attach_log(spec, log_file, result.log)
    seconds = time.monotonic() - started
    log.info(
        "built %s (%s) in %.1f s: %d of %d steps from cache; rebuilt: %s",
        plan.local_ref,
        result.image_id[:19],
        seconds,
        result.cached_steps,
        result.steps,
        "; ".join(result.rebuilt) or "nothing",
    )
    return BuiltImage(
        image_id=result.image_id,
        ref=plan.local_ref,
        steps=result.steps,
        cached_steps=result.cached_steps,
        rebuilt=result.rebuilt,
        wheels=len(wheelhouse.wheels),
        log_file=str(log_file),
        seconds=seconds,
    )
