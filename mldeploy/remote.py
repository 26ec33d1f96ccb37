"""Trigger a server-side run of a Prefect deployment and wait for its end state (CI's other path).

``mldeploy deploy SPEC --remote ci`` creates a flow run of ``deploy-model/ci`` with the spec path
as its parameter, waits until a worker has finished it, and returns the run summary that the flow
published as an artifact — so exit codes and the JSON summary are the same as for a local run.
An idempotency key (default: the CI commit) makes a duplicate trigger return the existing run.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.exceptions import ObjectNotFound

from mldeploy.errors import PermanentError, TransientError
from mldeploy.history import REMOTE_TAG, Deploy, deploys
from mldeploy.orchestration import artifact_key

FLOW_NAME = "deploy-model"
COMMIT_VARIABLES = ("GITHUB_SHA", "CI_COMMIT_SHA", "BUILD_SOURCEVERSION", "GIT_COMMIT")
_JSON_BLOCK = re.compile(r"```json\n(?P<body>.*)\n```", re.DOTALL)


@dataclass(frozen=True)
class RemoteRun:
    flow_run_id: str
    created: bool  # False: an earlier trigger with the same idempotency key already made this run
    state: str
    summary: dict[str, Any] | None


def default_idempotency_key(deployment: str, spec_path: str, environ: dict[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    for name in COMMIT_VARIABLES:
        if env.get(name):
            return f"{deployment}:{spec_path}:{env[name]}"
    return None


def summary_from_artifacts(artifacts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run summary the flow published (markdown artifact ``<service>-summary``)."""
    for artifact in artifacts:
        if str(artifact.get("key") or "").endswith("-summary"):
            match = _JSON_BLOCK.search(str(artifact.get("data") or ""))
            if match:
                found: dict[str, Any] = json.loads(match.group("body"))
                return found
    return None


def trigger_and_wait(
    deployment: str,
    parameters: dict[str, Any],
    *,
    idempotency_key: str | None,
    timeout: float,
    on_state: Callable[[str], None],
    poll: float = 1.0,
) -> RemoteRun:
    full_name = deployment if "/" in deployment else f"{FLOW_NAME}/{deployment}"
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(full_name)
        except ObjectNotFound as exc:
            raise PermanentError(
                f"no Prefect deployment {full_name!r} on {client.api_url}: run 'make flows' (prefect deploy --all)"
            ) from exc
        before = time.time()
        run = client.create_flow_run_from_deployment(
            found.id, parameters=parameters, idempotency_key=idempotency_key, tags=[REMOTE_TAG]
        )
        created = run.created is None or run.created.timestamp() >= before - 1
        on_state(f"flow run {run.name} ({run.id}) {'created' if created else 'already exists for this key'}")
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            run = client.read_flow_run(run.id)
            state = run.state
            name = str(state.name) if state else "Unknown"
            if name != last:
                on_state(f"flow run is {name}")
                last = name
            if state is not None and state.is_final():
                break
            if time.monotonic() > deadline:
                raise TransientError(
                    f"flow run {run.id} did not finish within {timeout:g} s (now {name}); "
                    "is a worker running on the deployment's work pool?"
                )
            time.sleep(poll)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])), limit=50
        )
        summary = summary_from_artifacts([a.model_dump(mode="json") for a in artifacts])
    return RemoteRun(flow_run_id=str(run.id), created=created, state=name, summary=summary)


HISTORY_LIMIT = 200  # the Prefect API's page size: the newest 200 deploys of a service


def read_history(service: str) -> list[Deploy]:
    """The deploys of ``service`` the Prefect server keeps: each run summary it published, with its flow run."""
    key = artifact_key(service, "summary")
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=HISTORY_LIMIT
        )
        summaries: dict[str, dict[str, Any]] = {}
        for artifact in artifacts:
            found = summary_from_artifacts([artifact.model_dump(mode="json")])
            if artifact.flow_run_id is not None and found is not None:
                summaries[str(artifact.flow_run_id)] = found
        if not summaries:
            return []
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(summaries))), limit=HISTORY_LIMIT
        )
    return deploys((run.model_dump(mode="json"), summaries[str(run.id)]) for run in runs)
