"""More of the failure catalog on the real engine and registry: each failure stops at its stage
with its diagnosis code, in the expected number of attempts."""

from __future__ import annotations

import os

import httpx
import pytest

from tests.integration.conftest import containers_of, deploy, free_port

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def task_run_counts(flow_run_id: str) -> dict[str, int]:
    """How many times each stage task ran in a flow run (from the Prefect server)."""
    api = os.environ["PREFECT_API_URL"]
    response = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [flow_run_id]}}}, timeout=10)
    response.raise_for_status()
    return {run["name"].split(" ")[0]: run["run_count"] for run in response.json()}


def test_slow_init_fails_at_the_health_deadline(make_service):
    iris = make_service("iris")
    iris.prepend_to("init", "import time", "time.sleep(60)")
    iris.edit_spec(**{"deploy.health_timeout_seconds": 3})
    result = deploy(iris)
    assert result.code == 1
    assert result.summary["failed_stage"] == "deploy"
    assert result.summary["diagnosis"]["code"] == "health_timeout"
    assert "health_timeout_seconds" in result.summary["diagnosis"]["hint"]
    assert next(s for s in result.summary["stages"] if s["name"] == "deploy")["seconds"] < 20
    assert containers_of(iris.name) == []


def test_out_of_memory_is_named(make_service):
    iris = make_service("iris")
    iris.prepend_to("init", "hog = bytearray(400 * 1024 * 1024)", "hog[::4096] = b'x' * len(hog[::4096])")
    iris.edit_spec(**{"target.memory_gb": 0.2})
    result = deploy(iris)
    assert result.code == 1
    assert result.summary["failed_stage"] == "deploy"
    assert result.summary["diagnosis"]["code"] == "out_of_memory"
    assert "0.2 GB" in result.summary["diagnosis"]["hint"]
    assert task_run_counts(result.summary["flow_run_id"])["deploy"] == 1


def test_failing_extra_dockerfile_step_names_the_step(make_service):
    iris = make_service("iris")
    iris.write("Dockerfile.steps", "RUN echo preparing the image && echo 'disk full' >&2 && exit 3\n")
    iris.edit_spec(**{"environment.extra_dockerfile_steps": "Dockerfile.steps"})
    result = deploy(iris)
    assert result.code == 1
    found = result.summary["diagnosis"]
    assert result.summary["failed_stage"] == "build"
    assert found["code"] == "dockerfile_step_failed"
    assert "RUN echo preparing the image" in found["summary"]
    assert "disk full" in found["detail"]
    assert task_run_counts(result.summary["flow_run_id"])["build"] == 1, "a failed step is not retried"


def test_unreachable_registry_is_transient_and_retried(make_service, monkeypatch):
    monkeypatch.setenv("MLDEPLOY_RETRY_BACKOFF_SECONDS", "0.1")
    iris = make_service("iris")
    iris.edit_spec(registry={"url": f"127.0.0.1:{free_port()}"})
    result = deploy(iris)
    assert result.code == 1
    assert result.summary["failed_stage"] == "push"
    assert result.summary["diagnosis"]["code"] == "registry_unavailable"
    assert task_run_counts(result.summary["flow_run_id"])["push"] == 4, "3 retries after the first attempt"


def test_wrong_registry_password_is_permanent(make_service, private_registry, monkeypatch):
    monkeypatch.setenv("MLDEPLOY_TEST_REGISTRY_PASSWORD", "wrong-password")
    iris = make_service("iris")
    iris.edit_spec(
        registry={"url": private_registry, "username": "ci", "password_env": "MLDEPLOY_TEST_REGISTRY_PASSWORD"}
    )
    result = deploy(iris)
    assert result.code == 1
    assert result.summary["failed_stage"] == "push"
    assert result.summary["diagnosis"]["code"] == "registry_auth_denied"
    assert task_run_counts(result.summary["flow_run_id"])["push"] == 1, "auth errors are not retried"

    monkeypatch.setenv("MLDEPLOY_TEST_REGISTRY_PASSWORD", "right-password")
    fixed = deploy(iris)
    assert fixed.code == 0, fixed.stderr + fixed.stdout
    assert fixed.summary["image"]["ref"].startswith(f"{private_registry}/{iris.name}@sha256:")
