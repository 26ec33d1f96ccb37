"""Reruns continue from the failed stage: finished stages are Cached, and a run killed
mid-deploy can be rerun to success without duplicate model versions or orphaned containers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import docker
import pytest

from tests.integration.conftest import MLDEPLOY, assert_steady, deploy, run_cli

pytestmark = [pytest.mark.engine, pytest.mark.slow]

IRIS_ROWS = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


def _states(summary: dict) -> dict[str, str]:
    return {s["name"]: s["state"] for s in summary["stages"]}


def test_rerun_after_a_deploy_failure_reuses_finished_stages(make_service):
    iris = make_service("iris")
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", iris.port))
    blocker.listen()
    try:
        failed = deploy(iris)
    finally:
        blocker.close()
    assert failed.code == 1
    assert failed.summary["failed_stage"] == "deploy"
    assert failed.summary["diagnosis"]["code"] == "port_in_use"
    assert str(iris.port) in failed.summary["diagnosis"]["summary"]

    rerun = deploy(iris)
    assert rerun.code == 0, rerun.stderr + rerun.stdout
    assert _states(rerun.summary) == {
        "validate": "completed",  # the gate always runs
        "register": "cached",
        "build": "cached",
        "push": "skipped",
        "deploy": "completed",
        "smoke": "completed",
    }
    assert iris.score(IRIS_ROWS)[0] == 200

    restarted = deploy(iris, "--from-stage", "build")
    assert restarted.code == 0, restarted.stderr
    states = _states(restarted.summary)
    assert states["validate"] == "completed" and states["register"] == "cached"
    assert states["build"] == "completed", "--from-stage re-executes that stage"


def test_a_run_killed_mid_deploy_reruns_cleanly(make_service):
    iris = make_service("iris")
    first = deploy(iris)
    assert first.code == 0, first.stderr
    iris.write("score.py", (iris.root / "score.py").read_text() + "\n# a change, so the next run deploys\n")

    proc = subprocess.Popen(
        [MLDEPLOY, "deploy", str(iris.spec)],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    client = docker.from_env()
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            backends = client.containers.list(
                all=True, filters={"label": [f"mldeploy.service={iris.name}", "mldeploy.role=backend"]}
            )
            if len(backends) > 1:  # the new version's candidate is up beside the live one
                break
            assert proc.poll() is None, "the deploy ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the deploy never reached the deploy stage")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    rerun = deploy(iris)
    assert rerun.code == 0, rerun.stderr + rerun.stdout
    assert iris.score(IRIS_ROWS)[0] == 200
    assert_steady(iris.name)
    models = json.loads(run_cli("models", "list", "--json").stdout)
    versions = [m for m in models if m["name"] == "iris-classifier"]
    assert len({m["sha256"] for m in versions}) == len(versions), "the same bytes made two versions"
