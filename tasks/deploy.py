"""Stage 5 — deploy: roll the image out on the target and wait until it is healthy (or fail fast)."""

from __future__ import annotations

import os

from prefect import task

from mldeploy import progress
from mldeploy.orchestration import (
    STAGE_TASK_OPTIONS,
    artifact_key,
    attach_link,
    attach_markdown,
    code_block,
    logger,
    reports_failure,
)
from mldeploy.plan import BuildPlan
from mldeploy.spec import ServiceSpec, resolve_secrets
from mldeploy.targets import make_target
from mldeploy.targets.base import LABEL_MODEL, DeployOutcome, DeployRequest, Target
from tasks.push import PushedImage


def deploy_request(spec: ServiceSpec, plan: BuildPlan, image: PushedImage, model_label: str) -> DeployRequest:
    secrets = resolve_secrets(spec, os.environ)
    environment = {**spec.variables, **secrets.container}
    if spec.debug:
        environment["AZUREML_DEBUG"] = "true"
    return DeployRequest(
        service=spec.name,
        image=image.ref,
        fingerprint=plan.deploy_fingerprint,
        port=spec.target.port,
        environment=environment,
        health_timeout=spec.health_timeout_seconds,
        memory_gb=spec.target.memory_gb,
        cpu_cores=spec.target.cpu_cores,
        labels={LABEL_MODEL: model_label},
        secrets=tuple(secrets.values()),
    )


@task(name="deploy", task_run_name="deploy {spec.name} to {spec.target.kind}", **STAGE_TASK_OPTIONS)
@reports_failure("deploy", lambda spec, *a, **k: spec.name)
def deploy_service(
    spec: ServiceSpec, plan: BuildPlan, image: PushedImage, model_label: str, target: Target | None = None
) -> DeployOutcome:
    target = target or make_target(spec.target.kind)
    log = logger()

    def on_line(line: str) -> None:
        log.info(line)
        progress.note("deploy", line)

    outcome = target.deploy(deploy_request(spec, plan, image, model_label), on_line)
    attach_link(
        artifact_key(spec.name, "endpoint"),
        outcome.endpoint + "/score",
        f"{spec.name} /score",
        "The live scoring endpoint",
    )
    attach_markdown(
        artifact_key(spec.name, "startup-log"),
        code_block(outcome.startup_log or "(empty)"),
        "The first lines the new version logged",
    )
    return outcome
