"""The three ways mldeploy is used, on a real Prefect server with a real process worker:
scheduled redeploys (prefect.yaml), CI triggers (--remote, exit codes, idempotency) and reruns
from the UI (a retried flow run resumes at the failed stage)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mldeploy.remote import summary_from_artifacts
from tests.integration import prefect_api
from tests.integration.conftest import deploy_prefect_yaml, run_cli, running_worker, wait_flow_run

pytestmark = [pytest.mark.engine, pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def deployed(prefect_server: str) -> Iterator[str]:
    """prefect.yaml deployed to the session's server, and one process worker polling its pool."""
    deploy_prefect_yaml(prefect_server)
    with running_worker(prefect_server, Path(os.environ["MLDEPLOY_HOME"]).parent / "worker.log"):
        yield prefect_server


def _deployment(api: str, name: str) -> dict:
    response = httpx.get(f"{api}/deployments/name/{name}", timeout=10)
    response.raise_for_status()
    return response.json()


def test_prefect_yaml_has_schedules_and_a_scheduled_deployment_runs(deployed, make_service):
    nightly = _deployment(deployed, "deploy-model/diabetes-nightly")
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
    assert nightly["parameters"]["spec_path"] == "deployments/examples/diabetes/service.yaml"
    drift = _deployment(deployed, "drift-check/diabetes-drift")
    assert [s["schedule"]["cron"] for s in drift["schedules"]] == ["0 * * * *"]
    manual = _deployment(deployed, "deploy-model/manual")
    assert {"spec_path", "force", "no_cache"} <= set(manual["parameters"])
    assert {"from_stage", "target"} <= set(manual["parameter_openapi_schema"]["properties"]), "editable in the UI"

    iris = make_service("iris")
    # what the scheduler does at 02:00, with this test's copy of the service
    response = httpx.post(
        f"{deployed}/deployments/{nightly['id']}/create_flow_run",
        json={"parameters": {"spec_path": str(iris.spec)}},
        timeout=10,
    )
    response.raise_for_status()
    run = wait_flow_run(deployed, response.json()["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]["message"]
    assert iris.score({"data": [[5.1, 3.5, 1.4, 0.2]]}) == (200, {"predictions": ["setosa"]})

    # the drift check finds nothing to do: a cheap no-op (report-only, so a false drift fails the run)
    response = httpx.post(
        f"{deployed}/deployments/{drift['id']}/create_flow_run",
        json={"parameters": {"spec_path": str(iris.spec), "redeploy": False}},
        timeout=10,
    )
    run = wait_flow_run(deployed, response.json()["id"])
    assert run["state"]["type"] == "COMPLETED" and "no drift" in run["state"]["message"], run["state"]["message"]


def test_ci_trigger_waits_with_the_exit_code_contract_and_is_idempotent(deployed, make_service):
    iris = make_service("iris")
    key = f"commit-{iris.name}"
    first = run_cli("deploy", str(iris.spec), "--remote", "ci", "--idempotency-key", key, "--json")
    assert first.code == 0, first.stderr + first.stdout
    assert first.summary["status"] == "succeeded" and first.summary["service"] == iris.name
    again = [run_cli("deploy", str(iris.spec), "--remote", "ci", "--idempotency-key", key, "--json") for _ in range(3)]
    assert {r.summary["flow_run_id"] for r in again} == {first.summary["flow_run_id"]}, "one run per key"
    assert all(r.code == 0 and "already exists" in r.stderr for r in again)

    score = (iris.root / "score.py").read_text()
    iris.write("score.py", score.replace("def init():\n", "def init():\n    raise RuntimeError('broken')\n", 1))
    broken = run_cli("deploy", str(iris.spec), "--remote", "ci", "--idempotency-key", key + "-2", "--json")
    assert broken.code == 1
    assert broken.summary["failed_stage"] == "deploy", broken.summary
    assert broken.summary["diagnosis"]["code"] == "init_failed"

    missing = run_cli("deploy", str(iris.spec), "--remote", "no-such-deployment", "--json")
    assert missing.code == 1 and "no Prefect deployment" in missing.stderr


def test_a_failed_run_retried_from_the_ui_resumes_at_the_failed_stage(deployed, make_service):
    iris = make_service("iris")
    ci = _deployment(deployed, "deploy-model/ci")
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", iris.port))
    blocker.listen()
    try:
        response = httpx.post(
            f"{deployed}/deployments/{ci['id']}/create_flow_run",
            json={"parameters": {"spec_path": str(iris.spec)}},
            timeout=10,
        )
        flow_run_id = response.json()["id"]
        failed = wait_flow_run(deployed, flow_run_id)
    finally:
        blocker.close()
    assert failed["state"]["type"] == "FAILED"
    assert "deploy failed" in failed["state"]["message"]

    # the UI's "Retry" button: the same flow run goes back to Scheduled and a worker picks it up
    response = httpx.post(
        f"{deployed}/flow_runs/{flow_run_id}/set_state",
        json={"state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": True},
        timeout=10,
    )
    response.raise_for_status()
    time.sleep(2)
    retried = wait_flow_run(deployed, flow_run_id)
    assert retried["state"]["type"] == "COMPLETED", retried["state"]
    assert retried["run_count"] >= 2
    latest: dict[str, str] = {}
    for task in prefect_api.task_runs(deployed, flow_run_id):  # oldest first: later attempts win
        latest[task["name"].split(" ")[0]] = prefect_api.state_name(task)
    assert all(latest[stage] == "Completed" for stage in ("validate", "register", "build", "deploy", "smoke")), latest
    # the retry resumed: the model and the image of the first attempt were reused, not made again
    summaries = [a for a in prefect_api.artifacts(deployed, flow_run_id) if str(a.get("key")).endswith("-summary")]
    retried_summary = summary_from_artifacts(summaries[-1:])
    assert retried_summary is not None and retried_summary["status"] == "succeeded"
    states = {stage["name"]: stage["state"] for stage in retried_summary["stages"]}
    assert states["register"] == "cached" and states["build"] == "cached", states
