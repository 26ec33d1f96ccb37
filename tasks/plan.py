"""Between register and build: render the build plan and compare it with what is live.

When the live service already runs this exact plan (same deploy fingerprint, secrets included
as a keyed digest) and is healthy, the run ends as a no-op: no build, push or restart.
"""

from __future__ import annotations

import json
from dataclasses import replace

from prefect import task

from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.capacity import capacity, capacity_markdown, capacity_notice
from mldeploy.drift import drift_reasons
from mldeploy.environment import load_environment
from mldeploy.errors import PermanentError
from mldeploy.models import ModelVersion
from mldeploy.orchestration import STAGE_TASK_OPTIONS, artifact_key, attach_markdown, logger, reports_failure
from mldeploy.plan import BuildPlan, choose_base_image, make_plan, plan_markdown
from mldeploy.results import PlanResult
from mldeploy.settings import Settings
from mldeploy.spec import KubernetesTarget as Kube
from mldeploy.spec import ResolvedSecrets, ServiceSpec
from mldeploy.targets.base import Target


def base_python(engine: DockerEngine, settings: Settings, image: str, image_id: str) -> str:
    """The Python version inside a base image, cached by image id (a container run the first time)."""
    cache_file = settings.home / "base-images.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    if image_id not in cache:
        cache[image_id] = engine.python_version(image)
        settings.home.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache, indent=1))
    return str(cache[image_id])


def build_plan(
    spec: ServiceSpec, models: tuple[ModelVersion, ...], secrets: ResolvedSecrets, engine: DockerEngine
) -> BuildPlan:
    """What the build stage would build for this spec (base image, environment, Dockerfile, tag)."""
    settings = Settings.load()
    base_image, chosen = choose_base_image(spec, settings.base_image)
    image_id = engine.image_id(base_image)
    if image_id is None:
        raise PermanentError(
            f"base image {base_image} is not available to the Docker engine (from "
            f"{'the spec' if chosen else settings.base_image_source}); run 'make setup', 'docker pull "
            f"{base_image}', or set environment.base_image"
        )
    return make_plan(
        spec,
        models,
        load_environment(
            spec.environment.conda_file, spec.environment.requirements, allow_direct_urls=spec.limits.allow_direct_urls
        ),
        base_image=base_image,
        base_image_id=image_id,
        base_python=base_python(engine, settings, base_image, image_id),
        base_chosen_by_spec=chosen,
        secrets_digest=secrets.digest(settings.fingerprint_key()),
    )


@task(name="plan", task_run_name="plan {spec.name}", **STAGE_TASK_OPTIONS)
@reports_failure("plan", lambda spec, *a, **k: spec.name)
def plan_deployment(
    spec: ServiceSpec,
    models: tuple[ModelVersion, ...],
    secrets: ResolvedSecrets,
    engine: DockerEngine,
    target: Target,
    force: bool = False,
) -> PlanResult:
    plan = build_plan(spec, models, secrets, engine)
    log = logger()
    for notice in plan.notices:
        (log.warning if notice.startswith("WARNING") else log.info)(notice)
    target.recover(spec.name, lambda line: log.info(line))  # a killed run's leftovers go first, no-op or not
    live = target.live(spec.name)
    drift = tuple(drift_reasons(plan, live))
    noop = not force and not drift
    if noop:
        log.info("nothing changed since the last deploy of %s and it is healthy: no-op", spec.name)
    markdown = plan_markdown(plan, live, noop, drift)
    found = capacity(spec.target, live.request_seconds if live else None) if isinstance(spec.target, Kube) else None
    if found is not None:
        markdown += "\n" + "\n".join(capacity_markdown(found))
        advice = capacity_notice(found)
        if advice:
            (log.warning if advice.startswith("WARNING") else log.info)(advice)
            plan = replace(plan, notices=(*plan.notices, advice))
    attach_markdown(artifact_key(spec.name, "plan"), markdown, "Build plan and decision")
    return PlanResult(plan=plan, live=live, noop=noop, drift=drift)
