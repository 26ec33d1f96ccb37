"""The main flow: validate → register → (plan) → build → push → deploy → smoke.

Composition only. Each stage is its own task; the flow records each stage's state and time
into the run summary, stops at the first failed stage and ends the run Failed with the summary
(diagnosis included) as its data, so the CLI, CI and the UI all see the same thing.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from mldeploy import diagnosis, progress
from mldeploy.errors import SpecError, TransientError
from mldeploy.models import ModelVersion
from mldeploy.orchestration import (
    artifact_key,
    attach_markdown,
    code_block,
    diagnosis_of,
    keep_secrets,
    scrub,
    service_lock,
)
from mldeploy.spec import ServiceSpec, resolve_secrets, service_name_of
from mldeploy.summary import STAGES, RunSummary
from tasks.build import build_image
from tasks.deploy import deploy_service
from tasks.plan import plan_deployment
from tasks.push import push_image
from tasks.register import register_model
from tasks.resume import build_is_stale, push_is_stale, register_is_stale
from tasks.smoke import smoke_test
from tasks.validate import validate_spec

T = TypeVar("T")


class StageFailed(Exception):
    def __init__(self, stage: str, exc: Any) -> None:
        super().__init__(stage)
        self.stage = stage
        self.exc = exc


def _run_name() -> str:
    """`deploy-<service>`: the spec's name when it can be read, else its folder's name."""
    return f"deploy-{service_name_of(str(flow_run.get_parameters().get('spec_path', 'service')))}"


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
        outcome = "cached" if state.name == "Cached" else "completed"
        summary.stage(name, outcome, seconds)
        progress.report(name, outcome, seconds)
        return state.result()
    summary.stage(name, "failed", seconds)
    progress.report(name, "failed", seconds)
    raise StageFailed(name, state.result(raise_on_failure=False))


def _fresh(task: T, stage: str, from_stage: str | None, stale: Callable[[], bool] = lambda: False) -> T:
    """The stage's task, told to ignore cached results when the run restarts at or before it,
    or when what the cached run produced is gone."""
    if (from_stage is not None and STAGES.index(stage) >= STAGES.index(from_stage)) or stale():
        return task.with_options(refresh_cache=True)  # type: ignore[attr-defined, no-any-return]
    return task


@flow(name="deploy-model", flow_run_name=_run_name)
def deploy_model(
    spec_path: str,
    target: str | None = None,
    force: bool = False,
    no_cache: bool = False,
    from_stage: str | None = None,
) -> Any:
    """Deploy the service described by ``spec_path``; returns the run summary (see README).

    ``target`` overrides target.kind; ``force`` deploys even when nothing changed; ``no_cache``
    rebuilds every image layer (implies ``force``). Finished stages of an earlier run with the
    same inputs are reused (Cached); ``from_stage`` re-executes that stage and every later one.
    """
    if from_stage is not None and from_stage not in STAGES:
        raise ValueError(f"from_stage must be one of {', '.join(STAGES)}, not {from_stage!r}")
    force = force or no_cache or from_stage is not None
    ui_url = flow_run.get_flow_run_ui_url()
    summary = RunSummary(
        flow_run_id=str(flow_run.get_id() or ""), ui_url=ui_url if ui_url and ui_url.startswith("http") else None
    )
    try:
        validate = _fresh(validate_spec, "validate", from_stage)
        spec = _stage(summary, "validate", lambda: validate(spec_path, target, return_state=True))
        summary.service = spec.name
        try:  # secret values are known from here on, and scrubbed from every log, artifact and error
            keep_secrets(resolve_secrets(spec, os.environ).values())
        except SpecError as exc:
            summary.stage("validate", "failed")
            raise StageFailed("validate", exc) from None
        register = _fresh(register_model, "register", from_stage, lambda: register_is_stale(spec))
        model = _stage(summary, "register", lambda: register(spec, return_state=True))
        summary.model = {"name": model.name, "version": model.version, "sha256": model.sha256}
        try:
            with service_lock(spec.name):
                _build_to_smoke(summary, spec, model, force=force, no_cache=no_cache, from_stage=from_stage)
        except TimeoutError as exc:
            raise StageFailed(
                "deploy",
                TransientError(
                    f"another run of {spec.name} held the deploy slot for too long",
                    diagnosis=diagnosis.deploy_slot_busy(spec.name, str(exc)),
                ),
            ) from None
        if summary.status == "noop":
            return _finish(summary, Completed(message="no-op: nothing changed", data=summary.to_dict()))
    except StageFailed as failure:
        summary.status = "failed"
        summary.failed_stage = failure.stage
        summary.diagnosis = {k: scrub(v) for k, v in diagnosis_of(failure.stage, failure.exc).to_dict().items()}
        summary.skip_rest(f"{failure.stage} failed")
        message = f"{failure.stage} failed: {summary.diagnosis['summary']}"
        return _finish(summary, Failed(message=message, data=summary.to_dict()))
    summary.status = "succeeded"
    return _finish(
        summary, Completed(message=f"{summary.service} is live at {summary.endpoint}", data=summary.to_dict())
    )


def _build_to_smoke(
    summary: RunSummary, spec: ServiceSpec, model: ModelVersion, *, force: bool, no_cache: bool, from_stage: str | None
) -> None:
    """The stages that change what serves; they run while the service's deploy slot is held."""
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
        return
    build = _fresh(build_image, "build", from_stage, lambda: build_is_stale(result.plan))
    built = _stage(summary, "build", lambda: build(spec, model, result.plan, no_cache=no_cache, return_state=True))
    summary.stages["build"].update(
        steps=built.steps, cached_steps=built.cached_steps, rebuilt_steps=list(built.rebuilt)
    )
    push = _fresh(push_image, "push", from_stage, lambda: push_is_stale(spec, result.plan))
    pushed = _stage(summary, "push", lambda: push(spec, result.plan, built, return_state=True))
    summary.stages["push"].update(layers_uploaded=pushed.layers_uploaded)
    if not pushed.pushed:
        summary.stage("push", "skipped", summary.stages["push"]["seconds"], reason="no registry in the spec")
    summary.image = {"ref": pushed.ref if pushed.pushed else built.ref, "digest": pushed.digest}
    outcome = _stage(
        summary, "deploy", lambda: deploy_service(spec, result.plan, pushed, model.label, return_state=True)
    )
    summary.endpoint = outcome.endpoint
    _stage(summary, "smoke", lambda: smoke_test(spec, outcome, return_state=True))


def _finish(summary: RunSummary, state: State[Any]) -> State[Any]:
    """Publish the summary as an artifact, so remote callers (CI via --remote) can read it."""
    attach_markdown(
        artifact_key(summary.service or "deploy", "summary"),
        code_block(json.dumps(summary.to_dict(), indent=2), "json"),
        "Run summary (mldeploy deploy --json)",
    )
    return state


def _digest(ref: str) -> str | None:
    return ref.split("@", 1)[1] if "@" in ref else None
