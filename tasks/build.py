"""Stage 3 — build: wheelhouse on the host, build context, image; the whole log kept and attached.

An image with this plan's fingerprint that the engine already has is reused (a rerun resumes
after the build); ``force`` builds anyway, ``no_cache`` rebuilds every layer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from prefect import task

from mldeploy import progress
from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.adapters.wheelhouse import WheelhouseResolver, resolve_wheelhouse
from mldeploy.build_context import write_context
from mldeploy.contract import (
    LABEL_ENVIRONMENT_SHA256,
    LABEL_IMAGE_FINGERPRINT,
    LABEL_MODEL,
    LABEL_MODEL_SHA256,
    LABEL_SERVICE,
)
from mldeploy.errors import MldeployError
from mldeploy.models import ModelRegistry, ModelVersion
from mldeploy.orchestration import (
    STAGE_TASK_OPTIONS,
    artifact_key,
    attach_markdown,
    code_block,
    logger,
    reports_failure,
)
from mldeploy.plan import BuildPlan
from mldeploy.reload import environment_sha256
from mldeploy.results import BuiltImage
from mldeploy.settings import Settings
from mldeploy.spec import ServiceSpec


def _attach_log(spec: ServiceSpec, log_file: Path, text: str) -> None:
    attach_markdown(
        artifact_key(spec.name, "build-log"), f"Full log: `{log_file}`\n\n" + code_block(text), "The whole build log"
    )


BUILD_DIR_PREFIX = "mldeploy-build-"


def _clean_after_killed_builds(engine: DockerEngine, service: str) -> None:
    """A build killed mid-way leaves its context folder and untagged layers: remove them (pid is dead)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{BUILD_DIR_PREFIX}*-*"):
        pid = folder.name.removeprefix(BUILD_DIR_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)
    removed = engine.remove_dangling({LABEL_SERVICE: service})
    if removed:
        logger().info("removed %d image layer(s) left by an interrupted build of %s", len(removed), service)


def existing_image(engine: DockerEngine, plan: BuildPlan) -> str | None:
    """The id of an image the engine has for exactly this plan (same image fingerprint), if any."""
    labels = engine.image_labels(plan.local_ref)
    if labels is None or labels.get(LABEL_IMAGE_FINGERPRINT) != plan.image_fingerprint:
        return None
    return engine.image_id(plan.local_ref)


@task(name="build", task_run_name="build {spec.name}", **STAGE_TASK_OPTIONS)
@reports_failure("build", lambda spec, *a, **k: spec.name)
def build_image(
    spec: ServiceSpec,
    models: tuple[ModelVersion, ...],
    plan: BuildPlan,
    engine: DockerEngine,
    no_cache: bool = False,
    force: bool = False,
    resolve: WheelhouseResolver = resolve_wheelhouse,
) -> BuiltImage:
    log = logger()
    if not (force or no_cache) and (image_id := existing_image(engine, plan)) is not None:
        log.info("reusing %s (%s): it was built from exactly these inputs", plan.local_ref, image_id[:19])
        return BuiltImage(image_id=image_id, ref=plan.local_ref, reused=True)
    settings = Settings.load()
    started = time.monotonic()
    _clean_after_killed_builds(engine, spec.name)
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

    try:
        wheelhouse = resolve(
            settings.home,
            plan.requirement_files,
            plan.python,
            source_file=str(spec.environment.file),
            index_options=plan.index_options,
            python_pin=plan.python_pin,
            build_sdist=lambda sdist, out: engine.build_wheel(plan.base_image, sdist, out),
        )
        on_line(
            f"wheelhouse {'reused' if wheelhouse.cached else 'resolved'}: {len(wheelhouse.wheels)} wheels "
            f"for Python {plan.python} in {wheelhouse.path}"
        )
        with tempfile.TemporaryDirectory(prefix=f"{BUILD_DIR_PREFIX}{os.getpid()}-") as context:
            write_context(
                Path(context),
                plan,
                wheels=wheelhouse.path,
                models=[(m.name, m.version, ModelRegistry(settings.home).files_path(m)) for m in models],
                app=spec.app_source,
                app_roots=spec.roots,
            )
            labels = {
                LABEL_SERVICE: spec.name,
                LABEL_IMAGE_FINGERPRINT: plan.image_fingerprint,
                LABEL_MODEL: ",".join(m.label for m in models),
                LABEL_MODEL_SHA256: ",".join(m.sha256 for m in models),
                LABEL_ENVIRONMENT_SHA256: environment_sha256(spec),
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
