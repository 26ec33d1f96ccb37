"""Operating a real local deployment: ``status`` (what serves, since when, which flow run put it there),
``history`` (the deploys the Prefect server keeps) and ``rollback`` (an earlier image by digest through deploy
and smoke), across two versions of the diabetes example."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.integration import prefect_api
from tests.integration.conftest import REGISTRY, CliResult, Service, deploy, run_cli

pytestmark = pytest.mark.usefixtures("real_engine")
PATIENT = {"data": [[0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.020, -0.018]]}


def cli_json(*args: str) -> tuple[CliResult, Any]:
    result = run_cli(*args, "--json")
    lines = result.stdout.strip().splitlines()
    return result, json.loads(lines[-1]) if lines else None


def two_versions(service: Service) -> tuple[dict[str, Any], dict[str, Any]]:
    first = deploy(service)
    assert first.summary["status"] == "succeeded", first.stdout + first.stderr
    service.patch_script("def init():", "# the second version: another image, the same answers\ndef init():")
    second = deploy(service)
    assert second.summary["status"] == "succeeded", second.stdout + second.stderr
    assert second.summary["image"]["digest"] != first.summary["image"]["digest"]
    return first.summary, second.summary


def test_status_history_and_rollback_across_two_versions(make_service: Any, prefect_server: str) -> None:
    service: Service = make_service("diabetes")
    first, second = two_versions(service)

    result, status = cli_json("status", service.name)
    assert result.code == 0, result.stdout + result.stderr
    (row,) = status["services"]
    assert row["target"] == "local" and row["health"] == "healthy"
    assert row["image"] == second["image"]["ref"] and row["endpoint"] == f"http://127.0.0.1:{service.port}"
    assert row["flow_run_id"] == second["flow_run_id"] and row["deploy"] == 2  # the run that put it there
    assert row["model"] == "sklearn_regression_model:1" and row["deployed_at"]
    everything = run_cli("status")  # the table of every service, this one among them
    assert everything.code == 0 and service.name in everything.stdout and "FLOW_RUN" in everything.stdout
    from flows.service_status import service_status

    state = service_status(name=service.name, return_state=True)  # the same, as a table in the Prefect UI
    assert state.is_completed()
    (artifact,) = [a for a in prefect_api.artifacts(prefect_server, str(state.state_details.flow_run_id))]
    assert artifact["key"] == "status" and artifact["type"] == "table"
    (table_row,) = json.loads(artifact["data"])
    assert table_row["service"] == service.name and table_row["flow_run"] == row["flow_run"]

    result, history = cli_json("history", service.name)
    assert [(d["number"], d["status"], d["digest"], d["trigger"]) for d in history] == [
        (1, "succeeded", first["image"]["digest"], "cli"),
        (2, "succeeded", second["image"]["digest"], "cli"),
    ]
    assert history[0]["spec_path"] == str(service.spec)

    rolled = run_cli("rollback", service.name, "--json")  # default: the newest other image that went live
    summary = json.loads(rolled.stdout.strip().splitlines()[-1])
    assert summary["status"] == "succeeded", rolled.stdout + rolled.stderr
    assert summary["image"]["digest"] == first["image"]["digest"]
    stages = {s["name"]: s["state"] for s in summary["stages"]}
    assert stages["build"] == "skipped" and stages["push"] == "cached"  # nothing built, nothing pushed
    assert stages["deploy"] == "completed" and stages["smoke"] == "completed"
    assert service.score(PATIENT)[0] == 200
    _, status = cli_json("status", service.name)
    assert status["services"][0]["image"] == first["image"]["ref"]
    assert status["services"][0]["flow_run_id"] == summary["flow_run_id"]

    again = deploy(service)  # the spec's own version replaces the rollback (it differs from the spec)
    assert again.summary["status"] == "succeeded", again.stdout + again.stderr
    assert again.summary["image"]["digest"] == second["image"]["digest"]
    _, history = cli_json("history", service.name)
    assert [d["digest"] for d in history] == [
        first["image"]["digest"],
        second["image"]["digest"],
        first["image"]["digest"],
        second["image"]["digest"],
    ]


def test_a_rollback_to_an_image_that_is_gone_is_refused_and_the_service_serves_on(make_service: Any) -> None:
    service: Service = make_service("diabetes")
    first, second = two_versions(service)
    repository, digest = first["image"]["ref"].split("/", 1)[1].split("@")
    request = urllib.request.Request(f"http://{REGISTRY}/v2/{repository}/manifests/{digest}", method="DELETE")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202

    rolled = run_cli("rollback", service.name, "--to", "1", "--json")

    summary = json.loads(rolled.stdout.strip().splitlines()[-1])
    assert rolled.code == 1 and summary["failed_stage"] == "push", rolled.stdout + rolled.stderr
    assert summary["diagnosis"]["code"] == "image_not_found" and "gone" in summary["diagnosis"]["summary"]
    _, status = cli_json("status", service.name)
    assert status["services"][0]["image"] == second["image"]["ref"]  # nothing changed
    assert service.score(PATIENT)[0] == 200


def test_unknown_names_and_numbers_are_refused_with_the_reason(make_service: Any) -> None:
    service: Service = make_service("diabetes")
    missing, status = cli_json("status", f"{service.name}-none")
    assert missing.code == 1 and status["services"] == [] and "nothing serves" in status["notes"][0]
    nothing = run_cli("rollback", service.name)
    assert nothing.code == 1 and "no deploys" in nothing.stderr
    assert deploy(service).summary["status"] == "succeeded"
    beyond = run_cli("rollback", service.name, "--to", "7")
    assert beyond.code == 1 and "there is no deploy 7 (deploys on record: 1)" in beyond.stderr
    only = run_cli("rollback", service.name)
    assert only.code == 1 and "no earlier successful deploy of another image" in only.stderr


def answers_only(service: Service) -> None:
    """Smoke requests that check the status only, so a reloaded script may answer in another shape."""
    service.edit_spec(smoke=[{"name": "answers", "request": PATIENT, "expect_status": 200}])


def test_reload_puts_an_edited_script_live_without_a_new_image_and_deploy_replaces_it(make_service: Any) -> None:
    service: Service = make_service("diabetes")
    answers_only(service)
    first = deploy(service)
    assert first.summary["status"] == "succeeded", first.stdout + first.stderr
    _, before = cli_json("status", service.name)
    service.patch_script("return result.tolist()", "return {'reloaded': result.tolist()}")

    result, reloaded = cli_json("reload", service.name)  # the spec comes from the last deploy's record

    assert result.code == 0 and reloaded["status"] == "reloaded", result.stdout + result.stderr
    assert "/var/azureml-app/score.py" in reloaded["files"] and reloaded["smoke"][0]["status"] == "200"
    status, body = service.score(PATIENT)
    assert status == 200 and set(body) == {"reloaded"}  # the edited script answers
    _, after = cli_json("status", service.name)
    assert after["services"][0]["image"] == before["services"][0]["image"]  # no new image, the same version

    again = deploy(service)  # diverged from its image: the next deploy replaces it
    assert again.summary["status"] == "succeeded", again.stdout + again.stderr
    assert any("mldeploy reload" in reason for reason in again.summary["reasons"]), again.summary["reasons"]
    assert again.summary["image"]["digest"] != first.summary["image"]["digest"]
    assert set(service.score(PATIENT)[1]) == {"reloaded"}  # now built into the image

    env = service.root / "myenv.yml"
    env.write_text(env.read_text() + "\n# a dependency change\n")
    refused = run_cli("reload", service.name, "--spec", str(service.spec))
    assert refused.code == 1 and "the environment changed (myenv.yml" in refused.stdout, refused.stdout


def test_reload_watch_reloads_on_save(make_service: Any) -> None:
    import subprocess
    import time

    from tests.integration.conftest import MLDEPLOY

    service: Service = make_service("diabetes")
    answers_only(service)
    assert deploy(service).summary["status"] == "succeeded"
    args = [MLDEPLOY, "reload", service.name, "--spec", str(service.spec), "--watch", "--json"]
    watcher = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert watcher.stdout is not None
        assert json.loads(watcher.stdout.readline())["status"] == "reloaded"  # the first reload, at once
        time.sleep(0.5)
        service.patch_script("return result.tolist()", "return {'saved': result.tolist()}")
        second = json.loads(watcher.stdout.readline())  # the save is seen and reloaded
        assert second["status"] == "reloaded", second
        assert set(service.score(PATIENT)[1]) == {"saved"}
    finally:
        watcher.terminate()
        watcher.wait(timeout=30)


def test_pull_runs_a_deployed_image_the_engine_no_longer_has(make_service: Any) -> None:
    import docker

    from tests.integration.conftest import free_port

    service: Service = make_service("diabetes")
    first = deploy(service)
    assert first.summary["status"] == "succeeded", first.stdout + first.stderr
    image = first.summary["image"]["ref"]
    assert run_cli("delete", service.name).code == 0  # the service, its containers and its images are gone
    client = docker.from_env()
    try:
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(image)
        port = free_port()

        pulled = run_cli("pull", service.name, "--run", "--port", str(port))  # by name: the newest pushed deploy

        assert pulled.code == 0, pulled.stdout + pulled.stderr
        assert f"pulling {image}" in pulled.stdout and f"http://127.0.0.1:{port}/score" in pulled.stdout
        status, body = Service(service.root, service.name, port).score(PATIENT)
        assert status == 200 and body == [199.8485830226578]
        assert client.images.get(image).id  # pulled by digest
    finally:
        for container in client.containers.list(all=True, filters={"label": "mldeploy.pulled"}):
            if service.name in container.name:
                container.remove(force=True)
        client.close()


def test_logs_previous_is_the_run_before_the_last_restart(make_service: Any) -> None:
    import time

    import docker

    service: Service = make_service("diabetes")
    first = deploy(service)
    assert first.summary["status"] == "succeeded", first.stdout + first.stderr
    refused = run_cli("logs", service.name, "--previous")
    assert refused.code != 0 and "has not restarted" in refused.stderr and "no previous run" in refused.stderr

    client = docker.from_env()
    try:
        (backend,) = client.containers.list(
            filters={"label": [f"mldeploy.service={service.name}", "mldeploy.role=backend"]}
        )
        # the scoring process ends (as after a crash) and the engine's restart policy starts it again
        backend.exec_run(["python3", "-c", "import os, signal; os.kill(1, signal.SIGTERM)"])
        deadline = time.monotonic() + 60
        while True:
            backend.reload()
            if (
                backend.attrs["RestartCount"] >= 1
                and "init() done" in backend.logs().decode().split("Shutting down")[-1]
            ):
                break
            assert time.monotonic() < deadline, backend.logs().decode()[-2000:]
            time.sleep(0.5)
    finally:
        client.close()

    everything = run_cli("logs", service.name)
    previous = run_cli("logs", service.name, "--previous")
    assert previous.code == 0, previous.stderr
    started = "mldeploy-runtime: listening on port"
    assert everything.stdout.count(started) == 2 and previous.stdout.count(started) == 1
    assert "Shutting down" in previous.stdout  # the end of the previous run is in it, the new start is not
    assert everything.stdout.startswith(previous.stdout)  # the whole log is that run, then the current one
    status, body = service.score(PATIENT)
    assert status == 200 and body == [199.8485830226578]
