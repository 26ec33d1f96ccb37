"""Stage 5 — deploy: roll the image out on the target and wait until it is healthy (or fail fast)."""

from __future__ import annotations

from prefect import task

from mldeploy import diagnosis, progress
from mldeploy.contract import SCORE_PATH
from mldeploy.errors import PermanentError
from mldeploy.orchestration import (
    STAGE_TASK_OPTIONS,
    artifact_key,
    attach_link,
    attach_markdown,
    code_block,
    logger,
    reports_failure,
)
from mldeploy.targets.base import DeployOutcome, DeployRequest, Target


@task(name="deploy", task_run_name="deploy {request.service} to {target.kind}", **STAGE_TASK_OPTIONS)
@reports_failure("deploy", lambda request, *a, **k: request.service)
def deploy_service(request: DeployRequest, target: Target, left_behind: tuple[str, ...] = ()) -> DeployOutcome:
    """``left_behind``: files beside the entry script that are not shipped, to explain a missing data file."""
    log = logger()

    def on_line(line: str) -> None:
        log.info(line)
        progress.note("deploy", line)

    try:
        outcome = target.deploy(request, on_line)
    except PermanentError as exc:
        if exc.diagnosis is not None and left_behind:
            better = diagnosis.not_shipped(exc.diagnosis, left_behind)
            if better is not exc.diagnosis:
                raise PermanentError(exc.message, diagnosis=better, log=exc.log) from exc
        raise
    attach_link(
        artifact_key(request.service, "endpoint"),
        (outcome.service_endpoint or outcome.endpoint) + SCORE_PATH,
        f"{request.service} {SCORE_PATH}",
        "The scoring endpoint (live once the smoke test passed)",
    )
    attach_markdown(
        artifact_key(request.service, "startup-log"),
        code_block(outcome.startup_log or "(empty)"),
        "The first lines the new version logged",
    )
    return outcome
