"""The scheduled drift check: compare the live service with its spec; redeploy or report.

A service that still runs exactly what its spec describes (same fingerprint, healthy) ends
the run as a cheap no-op. Otherwise the check either redeploys (the deploy flow, as a subflow,
with everything it brings: stages, lock, diagnosis) or only reports, and fails so the
drift shows up in the UI and in notifications.
"""

from __future__ import annotations

import os
from typing import Any, cast

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from flows.deploy_model import deploy_model
from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.orchestration import artifact_key, attach_markdown, keep_secrets, logger, secret_block_value
from mldeploy.spec import resolve_secrets
from mldeploy.targets import make_target
from tasks.plan import plan_deployment
from tasks.register import register_model
from tasks.validate import validate_spec


@flow(name="drift-check")
def drift_check(spec_path: str, redeploy: bool = True) -> Any:
    """Redeploy ``spec_path``'s service when it drifted from its spec (or only report, ``redeploy=False``)."""
    spec = validate_spec(spec_path)
    secrets = resolve_secrets(spec, os.environ, secret_block_value)
    keep_secrets(secrets.values())
    engine = DockerEngine()
    models = register_model(spec).models
    result = plan_deployment(spec, models, secrets, engine, make_target(spec.target, engine=engine))
    report = {"service": spec.name, "drift": list(result.drift), "live": result.live.endpoint if result.live else None}
    lines = [f"# Drift check: {spec.name}", ""]
    lines += [f"- {reason}" for reason in result.drift] or ["No drift: the live service matches its spec."]
    attach_markdown(
        artifact_key(spec.name, "drift"), "\n".join(lines), "What differs between the spec and the live service"
    )
    if not result.drift:
        return Completed(message="no-op: no drift", data={**report, "status": "noop"})
    logger().warning("%s drifted: %s", spec.name, "; ".join(result.drift))
    if not redeploy:
        return Failed(message=f"{spec.name} drifted: {'; '.join(result.drift)}", data={**report, "status": "drifted"})
    state = cast("State[Any]", deploy_model(spec_path=spec_path, return_state=True))
    summary = state.result(raise_on_failure=False)
    status = "redeployed" if state.is_completed() else "redeploy_failed"
    final = Completed if state.is_completed() else Failed
    return final(message=f"{spec.name}: {status}", data={**report, "status": status, "deploy": summary})
