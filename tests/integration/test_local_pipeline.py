"""The pipeline end to end on real parts: Docker engine, local registry, Prefect server."""

from __future__ import annotations

import urllib.request
import uuid

import docker
import pytest

from tests.integration.conftest import REGISTRY, assert_steady, containers_of, deploy, live_backend, run_cli

pytestmark = [pytest.mark.engine, pytest.mark.slow]

IRIS_ROWS = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


def _layers(ref: str) -> list[str]:
    return list(docker.from_env().images.get(ref).attrs["RootFS"]["Layers"])


def _live_container_id(service: str) -> str:
    return str(live_backend(service).id)


def test_deploy_then_noop_then_score_change_rebuilds_only_the_last_layer(make_service):
    iris = make_service("iris")

    first = deploy(iris)
    assert first.code == 0, first.stderr + first.stdout
    summary = first.summary
    assert summary["status"] == "succeeded"
    assert summary["failed_stage"] is None and summary["diagnosis"] is None
    assert summary["endpoint"] == f"http://127.0.0.1:{iris.port}"
    assert summary["model"]["name"] == "iris-classifier" and summary["model"]["version"] == 1
    assert len(summary["model"]["sha256"]) == 64
    assert summary["flow_run_id"]
    states = {s["name"]: s["state"] for s in summary["stages"]}
    assert states == {
        "validate": "completed",
        "register": "completed",
        "build": "completed",
        "push": "skipped",
        "deploy": "completed",
        "smoke": "completed",
    }
    assert iris.score(IRIS_ROWS) == (200, {"predictions": ["setosa", "virginica"]})
    container = _live_container_id(iris.name)

    again = deploy(iris)
    assert again.code == 0, again.stderr
    assert again.summary["status"] == "noop"
    assert {s["state"] for s in again.summary["stages"][2:]} == {"skipped"}
    assert _live_container_id(iris.name) == container, "a no-op must not restart the container"
    assert again.summary["model"]["version"] == 1

    old_layers = _layers(first.summary["image"]["ref"])
    token = uuid.uuid4().hex  # unique, so the engine's cache cannot hold this layer from an earlier run
    iris.write(
        "score.py",
        (iris.root / "score.py")
        .read_text()
        .replace(
            'return {"predictions": [labels[int(i)] for i in model.predict(rows)]}',
            f'return {{"predictions": [labels[int(i)] for i in model.predict(rows)], "served_by": "{token}"}}',
        ),
    )
    iris.edit_spec(
        smoke=[
            {
                "request": IRIS_ROWS,
                "expect_status": 200,
                "expect": {"predictions": ["setosa", "virginica"], "served_by": token},
            }
        ]
    )
    changed = deploy(iris)
    assert changed.code == 0, changed.stderr + changed.stdout
    assert changed.summary["status"] == "succeeded"
    new_layers = _layers(changed.summary["image"]["ref"])
    assert len(new_layers) == len(old_layers)
    assert new_layers[:-1] == old_layers[:-1], "only the last layer (the app files) may change"
    assert new_layers[-1] != old_layers[-1]
    build = next(s for s in changed.summary["stages"] if s["name"] == "build")
    assert build["rebuilt_steps"] == ["COPY --chown=10001 app/ /var/azureml-app/"], build
    assert iris.score(IRIS_ROWS)[1]["served_by"] == token
    assert changed.summary["model"]["version"] == 1, "same model bytes never make a new version"
    assert_steady(iris.name)


def test_push_records_a_verified_digest_and_deploys_by_digest(make_service):
    diabetes = make_service("diabetes")
    result = deploy(diabetes)
    assert result.code == 0, result.stderr + result.stdout
    image = result.summary["image"]
    assert image["digest"].startswith("sha256:")
    assert image["ref"] == f"{REGISTRY}/{diabetes.name}@{image['digest']}"
    tag = result.summary["image"]["ref"]
    request = urllib.request.Request(
        f"http://{REGISTRY}/v2/{diabetes.name}/manifests/{image['digest']}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Docker-Content-Digest"] == image["digest"]
    live = live_backend(diabetes.name)
    assert live.attrs["Config"]["Image"] == tag, "the container must run the image by digest"
    notices = " ".join(result.summary["notices"])
    assert "python=3.6.2" in notices and "azureml-defaults" in notices

    forced = deploy(diabetes, "--from-stage", "push")  # push again, for real
    assert forced.code == 0, forced.stderr
    push = next(s for s in forced.summary["stages"] if s["name"] == "push")
    assert push["state"] == "completed", push
    assert push["layers_uploaded"] == 0, "pushing what is there uploads nothing"
    assert forced.summary["image"]["digest"] == image["digest"]


def test_bad_spec_exits_2_fast_with_every_problem(make_service):
    iris = make_service("iris")
    iris.edit_spec(name="Not_A_DNS_Name", entry_script="missing.py", **{"target.port": "eighty"})
    result = run_cli("deploy", str(iris.spec), "--json")
    assert result.code == 2
    assert result.summary["status"] == "failed" and result.summary["failed_stage"] == "validate"
    assert result.summary["diagnosis"]["code"] == "spec_invalid"
    fields = {p["field"] for p in result.summary["problems"]}
    assert {"name", "entry_script", "target.port"} <= fields
    assert all(p["file"] == str(iris.spec) for p in result.summary["problems"])
    assert result.seconds < 5
    assert containers_of("Not_A_DNS_Name") == []
