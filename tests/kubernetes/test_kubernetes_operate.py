"""status, history, rollback and logs on the Kubernetes target, through the CLI against the test cluster's real
API server and node, across two versions of the diabetes example (the local target's run of the same is in
tests/integration/test_operate.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import run_cli
from tests.kubernetes.conftest import Cluster
from tests.kubernetes.test_kubernetes_target import K8sService, k8s_service  # noqa: F401 - the fixture

pytestmark = pytest.mark.kubernetes


def cli_json(*args: str) -> Any:
    result = run_cli(*args, "--json", timeout=900)
    assert result.code == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def serving_image(service: K8sService) -> str:
    return str(service.deployment()["spec"]["template"]["spec"]["containers"][0]["image"])


def test_status_history_rollback_and_logs_across_two_versions(k8s_service: K8sService, cluster: Cluster) -> None:  # noqa: F811
    first = k8s_service.deploy().summary
    assert first["status"] == "succeeded", first
    script = k8s_service.root / "score.py"
    script.write_text(script.read_text() + "\n# the second version: another image, the same answers\n")
    second = k8s_service.deploy().summary
    assert second["status"] == "succeeded", second
    assert first["image"]["digest"] != second["image"]["digest"]
    where = ("--spec", str(k8s_service.spec))

    (row,) = cli_json("status", k8s_service.name, *where)["services"]
    assert row["target"] == "kubernetes" and row["health"] == "healthy"
    assert row["image"] == serving_image(k8s_service) and second["image"]["digest"] in row["image"]
    assert row["flow_run_id"] == second["flow_run_id"] and row["deploy"] == 2
    assert row["model"] == "sklearn_regression_model:1"  # as written (a label value cannot hold the ':')
    second_live_since = row["deployed_at"]
    table = run_cli("status", "--target", "kubernetes", "--namespace", k8s_service.namespace)  # KUBECONFIG
    assert table.code == 0 and k8s_service.name in table.stdout, table.stdout + table.stderr

    history = cli_json("history", k8s_service.name)
    assert [(d["number"], d["status"], d["digest"]) for d in history] == [
        (1, "succeeded", first["image"]["digest"]),
        (2, "succeeded", second["image"]["digest"]),
    ]

    rolled = cli_json("rollback", k8s_service.name, "--to", "1")
    assert rolled["status"] == "succeeded", rolled
    assert rolled["image"]["digest"] == first["image"]["digest"] and first["image"]["digest"] in serving_image(
        k8s_service
    )
    stages = {s["name"]: s["state"] for s in rolled["stages"]}
    assert (stages["build"], stages["deploy"], stages["smoke"]) == ("skipped", "completed", "completed")
    (row,) = cli_json("status", k8s_service.name, *where)["services"]
    assert row["flow_run_id"] == rolled["flow_run_id"] and row["deploy"] == 3
    assert row["deployed_at"] > second_live_since  # when this revision went live, not when the Deployment was made

    logs = run_cli("logs", k8s_service.name, *where)
    assert logs.code == 0 and "init() done" in logs.stdout, logs.stdout + logs.stderr
    previous = run_cli("logs", k8s_service.name, "--previous", *where)  # no container of the pod restarted
    assert previous.code == 1 and "has not restarted: there is no previous run" in previous.stderr, previous.stderr
