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
from dataclasses import dataclass
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed, Failed

from mldeploy import diagnosis, progress
from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.capacity import capacity, capacity_notice
from mldeploy.debugging import wait_for_debugger
from mldeploy.errors import MldeployError, SpecError, TransientError
from mldeploy.images import ImageRef
from mldeploy.models import Registrations
from mldeploy.orchestration import (
    artifact_key,
    attach_markdown,
    code_block,
    diagnosis_of,
    end_killed_runs,
    keep_secrets,
    logger,
    recorded_run,
    scrub,
    secret_block_value,
    service_lock,
)
from mldeploy.plan import RollbackPlan, deploy_request, spec_registry_auth
from mldeploy.settings import Settings
from mldeploy.spec import KubernetesTarget, ResolvedSecrets, ServiceSpec, resolve_secrets, service_name_of
from mldeploy.summary import STAGES, RunSummary
from mldeploy.targets import make_target
from mldeploy.targets.base import Target
from tasks.build import build_image
from tasks.deploy import deploy_service
from tasks.plan import plan_deployment
from tasks.push import push_image, reuse_pushed_image
from tasks.register import register_model
from tasks.smoke import smoke_test
from tasks.validate import validate_spec


class StageFailed(Exception):
    def __init__(self, stage: str, exc: Any) -> None:
        super().__init__(stage)
        self.stage = stage
        self.exc = exc


def _run_name() -> str:
    """`deploy-<service>`: the spec's name when it can be read, else its folder's name."""
    return f"deploy-{service_name_of(str(flow_run.get_parameters().get('spec_path', 'service')))}"


def _reused(result: Any) -> bool:
    return bool(getattr(result, "reused", False))


def _stage(summary: RunSummary, name: str, call: Callable[[], State[Any]], *, record: bool = True) -> Any:
    """Run one stage task; record its state and time, or raise StageFailed with its exception.

    ``record=False`` runs a helper task (the plan) whose failure counts against stage ``name``.
    A stage that found its output already made by an earlier run is recorded as ``cached``.
    """
    if record:
        progress.report(name, "running")
    started = time.monotonic()
    state = call()
    seconds = time.monotonic() - started
    if state.is_completed():
        result = state.result()
        if record:
            outcome = "cached" if _reused(result) else "completed"
            summary.stage(name, outcome, seconds)
            progress.report(name, outcome, seconds)
        return result
    summary.stage(name, "failed", seconds if record else summary.stages[name]["seconds"])
    if record:
        progress.report(name, "failed", seconds)
    raise StageFailed(name, state.result(raise_on_failure=False))


@dataclass(frozen=True)
class RunInputs:
    """Everything a run reads or connects to, made once and handed to each stage."""

    spec: ServiceSpec
    secrets: ResolvedSecrets
    engine: DockerEngine
    target: Target
    from_stage: str | None

    def forced(self, stage: str) -> bool:
        """Whether ``stage`` re-executes instead of reusing what an earlier run made (--from-stage)."""
        return self.from_stage is not None and STAGES.index(stage) >= STAGES.index(self.from_stage)


@flow(name="deploy-model", flow_run_name=_run_name)
def deploy_model(
    spec_path: str,
    target: str | None = None,
    force: bool = False,
    no_cache: bool = False,
    from_stage: str | None = None,
    allowed_roots: list[str] | None = None,
    allow_direct_urls: bool = False,
    rollback_image: str | None = None,
    rollback_models: str = "",
    debug_pipeline_port: int | None = None,
    debug_wait_seconds: float = 60.0,
) -> Any:
    """Deploy the service described by ``spec_path``; returns the run summary (see README).

    ``target`` overrides target.kind; ``force`` deploys even when nothing changed; ``no_cache``
    rebuilds every image layer (implies ``force``). What an earlier run already made (the model
    version, the image, the pushed manifest) is reused; ``from_stage`` re-executes that stage and
    every later one. ``allowed_roots``, ``allow_direct_urls``: what the deploying user allows the spec
    beyond its own folder and the package index (the spec cannot allow itself anything).
    ``rollback_image`` (name@sha256:..., with ``rollback_models``, its model labels): ``mldeploy rollback`` —
    run that earlier image with the spec's configuration; nothing is registered, built or pushed.
    ``debug_pipeline_port``: listen for a debugger (debugpy) on 127.0.0.1:PORT of the process that runs the
    flow and wait up to ``debug_wait_seconds`` for one before the first stage (the log line says where).
    """
    if debug_pipeline_port is not None:
        wait_for_debugger(debug_pipeline_port, debug_wait_seconds, logger().warning)
    if from_stage is not None and from_stage not in STAGES:
        raise ValueError(f"from_stage must be one of {', '.join(STAGES)}, not {from_stage!r}")
    force = force or no_cache or from_stage is not None
    ui_url = flow_run.get_flow_run_ui_url()
    summary = RunSummary(
        flow_run_id=str(flow_run.get_id() or ""), ui_url=ui_url if ui_url and ui_url.startswith("http") else None
    )
    with recorded_run(service_name_of(spec_path)):
        rollback = (rollback_image, rollback_models) if rollback_image else None
        return _deploy(
            summary, spec_path, target, force, no_cache, from_stage, allowed_roots, allow_direct_urls, rollback
        )


def _deploy(
    summary: RunSummary,
    spec_path: str,
    target: str | None,
    force: bool,
    no_cache: bool,
    from_stage: str | None,
    allowed_roots: list[str] | None,
    allow_direct_urls: bool,
    rollback: tuple[str, str] | None = None,
) -> Any:
    end_killed_runs()  # runs this machine started and that were killed end Crashed, not Running forever
    try:
        roots = tuple(allowed_roots or ())
        spec = _stage(
            summary,
            "validate",
            lambda: validate_spec(spec_path, target, roots, allow_direct_urls, return_state=True),
        )
        summary.service = spec.name
        summary.notices += spec.notices
        try:  # secret values are read once, here, and scrubbed from every log, artifact and error from now on
            secrets = resolve_secrets(spec, os.environ, secret_block_value)
        except SpecError as exc:
            summary.stage("validate", "failed")
            raise StageFailed("validate", exc) from None
        keep_secrets(secrets.values())
        engine = DockerEngine()
        try:  # the target's client and credentials, before anything is built for it
            target_client = make_target(spec.target, engine=engine)
        except MldeployError as exc:
            summary.stage("deploy", "failed")
            raise StageFailed("deploy", exc) from None
        run = RunInputs(spec, secrets, engine, target_client, from_stage)
        if rollback is not None:
            summary.stage("register", "skipped", reason="rollback: the earlier image holds its models")
            summary.models = [_model_of(label) for label in rollback[1].split(",") if label.strip()]
        else:
            registered = _stage(
                summary, "register", lambda: register_model(spec, force=run.forced("register"), return_state=True)
            )
            summary.models = [{"name": m.name, "version": m.version, "sha256": m.sha256} for m in registered.models]
        try:
            with service_lock(spec.name):
                if rollback is not None:
                    _rollback_to_smoke(summary, run, *rollback)
                else:
                    _build_to_smoke(summary, run, registered, force=force, no_cache=no_cache)
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
        summary.fail(
            failure.stage, {k: scrub(v) for k, v in diagnosis_of(failure.stage, failure.exc).to_dict().items()}
        )
        summary.rolled_back_to = getattr(failure.exc, "rolled_back_to", None)
        message = f"{failure.stage} failed: {summary.diagnosis['summary'] if summary.diagnosis else ''}"
        return _finish(summary, Failed(message=message, data=summary.to_dict()))
    summary.status = "succeeded"
    return _finish(
        summary, Completed(message=f"{summary.service} is live at {summary.endpoint}", data=summary.to_dict())
    )


def _build_to_smoke(
    summary: RunSummary, run: RunInputs, registered: Registrations, *, force: bool, no_cache: bool
) -> None:
    """The stages that change what serves; they run while the service's deploy slot is held."""
    spec = run.spec
    # Planning (base image, environment, no-op check) belongs to the build stage.
    result = _stage(
        summary,
        "build",
        lambda: plan_deployment(
            spec, registered.models, run.secrets, run.engine, run.target, force=force, return_state=True
        ),
        record=False,
    )
    summary.notices += list(result.plan.notices)
    if result.noop and result.live is not None:
        summary.status = "noop"
        summary.endpoint = result.live.endpoint
        summary.image = {"ref": result.live.image, "digest": _digest(result.live.image)}
        summary.skip_rest("nothing changed since the last successful deploy")
        return
    summary.reasons = list(result.drift)
    built = _stage(
        summary,
        "build",
        lambda: build_image(
            spec,
            registered.models,
            result.plan,
            run.engine,
            no_cache=no_cache,
            force=run.forced("build"),
            return_state=True,
        ),
    )
    summary.stages["build"].update(
        steps=built.steps, cached_steps=built.cached_steps, rebuilt_steps=list(built.rebuilt)
    )
    auth = spec_registry_auth(spec, run.secrets, os.environ)
    pushed = _stage(
        summary,
        "push",
        lambda: push_image(spec, result.plan, built, run.engine, auth, force=run.forced("push"), return_state=True),
    )
    summary.stages["push"].update(layers_uploaded=pushed.layers_uploaded)
    if not pushed.pushed:
        summary.stage("push", "skipped", summary.stages["push"]["seconds"], reason="no registry in the spec")
    summary.image = {"ref": pushed.ref if pushed.pushed else built.ref, "digest": pushed.digest}
    request = deploy_request(spec, result.plan, pushed.ref, registered.label, run.secrets, auth)
    outcome = _stage(
        summary, "deploy", lambda: deploy_service(request, run.target, spec.files_left_behind, return_state=True)
    )
    report = _stage(
        summary, "smoke", lambda: smoke_test(spec, outcome, run.target, request.auth_keys, return_state=True)
    )
    summary.endpoint = outcome.service_endpoint or outcome.endpoint
    if isinstance(spec.target, KubernetesTarget):
        found = capacity(spec.target, report.request_seconds)
        notice = capacity_notice(found) if found is not None and found.request_seconds is not None else None
        if notice:
            summary.notices.append(notice)


def _model_of(label: str) -> dict[str, Any]:
    name, _, version = label.strip().rpartition(":")
    return {"name": name, "version": int(version) if version.isdigit() else version, "sha256": None}


def _rollback_to_smoke(summary: RunSummary, run: RunInputs, image: str, models: str) -> None:
    """An earlier image, by digest, deployed and smoke-tested like a new version (the previous one serves
    until the smoke test passed)."""
    spec = run.spec
    summary.stage("build", "skipped", reason=f"rollback: reusing {image}")
    auth = spec_registry_auth(spec, run.secrets, os.environ)
    pushed = _stage(summary, "push", lambda: reuse_pushed_image(spec, image, auth, return_state=True))
    summary.image = {"ref": pushed.ref, "digest": pushed.digest}
    summary.reasons = [f"rollback to {image}"]
    plan = RollbackPlan(image, run.secrets.digest(Settings.load().fingerprint_key()))
    label = ",".join(part.strip() for part in models.split(",") if part.strip())
    request = deploy_request(spec, plan, pushed.ref, label, run.secrets, auth)
    outcome = _stage(
        summary, "deploy", lambda: deploy_service(request, run.target, spec.files_left_behind, return_state=True)
    )
    _stage(summary, "smoke", lambda: smoke_test(spec, outcome, run.target, request.auth_keys, return_state=True))
    summary.endpoint = outcome.service_endpoint or outcome.endpoint


def _finish(summary: RunSummary, state: State[Any]) -> State[Any]:
    """Publish the summary as an artifact, so remote callers (CI via --remote) can read it."""
    attach_markdown(
        artifact_key(summary.service or "deploy", "summary"),
        code_block(json.dumps(summary.to_dict(), indent=2), "json"),
        "Run summary (mldeploy deploy --json)",
    )
    return state


def _digest(ref: str) -> str | None:
    try:
        return ImageRef.parse(ref).digest
    except ValueError:
        return None
