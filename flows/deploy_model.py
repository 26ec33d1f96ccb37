"""The main flow: validate → register → (plan) → build → push → deploy → smoke.

Composition only. Each stage is its own task; the flow records each stage's state and time
into the run summary, stops at the first failed stage and ends the run Failed with the summary
(diagnosis included) as its data, so the CLI, CI and the UI all see the same thing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from mldeploy import progress
from mldeploy.orchestration import diagnosis_of
from mldeploy.summary import RunSummary
from tasks.build import build_image
from tasks.deploy import deploy_service
from tasks.plan import plan_deployment
from tasks.push import push_image
from tasks.register import register_model
from tasks.smoke import smoke_test
from tasks.validate import validate_spec


class StageFailed(Exception):
    def __init__(self, stage: str, exc: Any) -> None:
        super().__init__(stage)
        self.stage = stage
        self.exc = exc


def _run_name() -> str:
    params = flow_run.get_parameters()
    name = Path(str(params.get("spec_path", "service"))).resolve().parent.name
    return f"deploy-{name}"


def _stage(summary: RunSummary, name: str, call: Callable[[], State[Any]], *, record: bool = True) -> Any:
    """Run one stage task; record its state and time, or raise StageFailed with its exception.

    ``record=False`` runs a helper task (the plan) whose failure counts against stage ``name``.
    """
    if not record:
        state = call()
        if state.is_completed():
            return state.result()
        summary.stage(name, "failed")
        raise StageFailed(name, state.result(raise_on_failure=False))
    progress.report(name, "running")
    started = time.monotonic()
    state = call()
    seconds = time.monotonic() - started
    if state.is_completed():
        summary.stage(name, "completed", seconds)
        progress.report(name, "completed", seconds)
        return state.result()
    summary.stage(name, "failed", seconds)
    progress.report(name, "failed", seconds)
    raise StageFailed(name, state.result(raise_on_failure=False))


@flow(name="deploy-model", flow_run_name=_run_name)
def deploy_model(spec_path: str, target: str | None = None, force: bool = False, no_cache: bool = False) -> Any:
    """Deploy the service described by ``spec_path``; returns the run summary (see README).

    ``target`` overrides target.kind; ``force`` deploys even when nothing changed; ``no_cache``
    rebuilds every image layer (implies ``force``).
    """
    force = force or no_cache
    ui_url = flow_run.get_flow_run_ui_url()
    summary = RunSummary(
        flow_run_id=str(flow_run.get_id() or ""), ui_url=ui_url if ui_url and ui_url.startswith("http") else None
    )
    try:
        spec = _stage(summary, "validate", lambda: validate_spec(spec_path, target, return_state=True))
        summary.service = spec.name
        model = _stage(summary, "register", lambda: register_model(spec, return_state=True))
        summary.model = {"name": model.name, "version": model.version, "sha256": model.sha256}
        # Planning (base image, environment, no-op check) belongs to the build stage.
        result = _stage(
            summary, "build", lambda: plan_deployment(spec, model, force=force, return_state=True), record=False
        )
        summary.notices = list(result.plan.notices)
        if result.noop and result.live is not None:
            summary.status = "noop"
            summary.endpoint = result.live.endpoint
            summary.image = {"ref": result.live.image, "digest": _digest(result.live.image)}
            summary.skip_rest("nothing changed since the last successful deploy")
            return Completed(message="no-op: nothing changed", data=summary.to_dict())
        built = _stage(
            summary, "build", lambda: build_image(spec, model, result.plan, no_cache=no_cache, return_state=True)
        )
        summary.stages["build"].update(
            steps=built.steps, cached_steps=built.cached_steps, rebuilt_steps=list(built.rebuilt)
        )
        pushed = _stage(summary, "push", lambda: push_image(spec, result.plan, built, return_state=True))
        summary.stages["push"].update(layers_uploaded=pushed.layers_uploaded)
        if not pushed.pushed:
            summary.stage("push", "skipped", summary.stages["push"]["seconds"], reason="no registry in the spec")
        summary.image = {"ref": pushed.ref if pushed.pushed else built.ref, "digest": pushed.digest}
        outcome = _stage(
            summary, "deploy", lambda: deploy_service(spec, result.plan, pushed, model.label, return_state=True)
        )
        summary.endpoint = outcome.endpoint
        _stage(summary, "smoke", lambda: smoke_test(spec, outcome, return_state=True))
    except StageFailed as failure:
        summary.status = "failed"
        summary.failed_stage = failure.stage
        summary.diagnosis = diagnosis_of(failure.stage, failure.exc).to_dict()
        summary.skip_rest(f"{failure.stage} failed")
        return Failed(message=f"{failure.stage} failed: {summary.diagnosis['summary']}", data=summary.to_dict())
    summary.status = "succeeded"
    return Completed(message=f"{summary.service} is live at {summary.endpoint}", data=summary.to_dict())


def _digest(ref: str) -> str | None:
    return ref.split("@", 1)[1] if "@" in ref else None
