"""The three ways mldeploy is used, on a real Prefect server with a real process worker:
scheduled redeploys (prefect.yaml), CI triggers (--remote, exit codes, idempotency) and reruns
from the UI (a retried flow run resumes at the failed stage)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration import prefect_api
from tests.integration.conftest import REPO, run_cli

pytestmark = [pytest.mark.engine, pytest.mark.server, pytest.mark.slow]
BIN = Path(sys.executable).parent
POOL = "mldeploy-process"


def _prefect(*args: str, api: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api, "MLDEPLOY_REPO": str(REPO)}
    return subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def deployed(prefect_server: str) -> Iterator[str]:
    """prefect.yaml deployed to the session's server, and one process worker polling its pool."""
    created = _prefect("work-pool", "create", POOL, "--type", "process", api=prefect_server)
    assert created.returncode == 0 or "already exists" in created.stdout + created.stderr, created.stderr
    result = _prefect("deploy", "--all", api=prefect_server)
    assert result.returncode == 0, result.stdout + result.stderr
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "MLDEPLOY_REPO": str(REPO),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    }
    log = open(Path(os.environ["MLDEPLOY_HOME"]).parent / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield prefect_server
    for _ in range(3):  # a Prefect worker wants repeated SIGINTs before it exits
        if worker.poll() is not None:
            break
        os.killpg(worker.pid, signal.SIGINT)
        time.sleep(1)
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    log.close()


def _deployment(api: str, name: str) -> dict:
    response = httpx.get(f"{api}/deployments/name/{name}", timeout=10)
    response.raise_for_status()
    return response.json()


def _wait_final(api: str, flow_run_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = prefect_api.flow_run(api, flow_run_id)
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(1)
    pytest.fail(f"flow run {flow_run_id} did not finish in {timeout} s")


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
    run = _wait_final(deployed, response.json()["id"])
    assert run["state"]["type"] == "COMPLETED", run["state"]["message"]
    assert iris.score({"data": [[5.1, 3.5, 1.4, 0.2]]}) == (200, {"predictions": ["setosa"]})

    # the drift check finds nothing to do: a cheap no-op (report-only, so a false drift fails the run)
    response = httpx.post(
        f"{deployed}/deployments/{drift['id']}/create_flow_run",
        json={"parameters": {"spec_path": str(iris.spec), "redeploy": False}},
        timeout=10,
    )
    run = _wait_final(deployed, response.json()["id"])
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
        failed = _wait_final(deployed, flow_run_id)
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
    retried = _wait_final(deployed, flow_run_id)
    assert retried["state"]["type"] == "COMPLETED", retried["state"]
    assert retried["run_count"] >= 2
    latest: dict[str, str] = {}
    for task in prefect_api.task_runs(deployed, flow_run_id):  # oldest first: later attempts win
        latest[task["name"].split(" ")[0]] = prefect_api.state_name(task)
    assert latest["validate"] == "Cached" and latest["register"] == "Cached" and latest["build"] == "Cached"
    assert latest["deploy"] == "Completed" and latest["smoke"] == "Completed"
