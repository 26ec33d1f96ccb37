"""A failed Kubernetes rollout as the user sees it: the run on the Prefect server (its REST API) and the
flow-run page of its UI in a headless Chromium. The screenshot is kept in
``test-artifacts/failed-k8s-rollout.png`` (the README shows a copy from ``docs/images/``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration import prefect_api
from tests.integration.conftest import REPO
from tests.integration.test_prefect_ui import _screenshot_flow_run, browser_tools  # noqa: F401
from tests.kubernetes.test_kubernetes_target import K8sService, k8s_service  # noqa: F401

pytestmark = [pytest.mark.kubernetes, pytest.mark.ui]

SCREENSHOT = REPO / "test-artifacts" / "failed-k8s-rollout.png"


def test_a_failed_rollout_in_the_prefect_ui(browser_tools: None, k8s_service: K8sService, prefect_server: str) -> None:  # noqa: F811
    assert k8s_service.deploy().summary["status"] == "succeeded"
    script = k8s_service.root / "score.py"
    script.write_text(
        script.read_text().replace("def init():\n", "def init():\n    raise RuntimeError('model store is down')\n", 1)
    )
    result = k8s_service.deploy()
    summary: dict[str, Any] = result.summary
    assert (summary["failed_stage"], summary["diagnosis"]["code"], summary["rolled_back_to"]) == (
        "deploy",
        "init_failed",
        "1",
    )
    task_runs = prefect_api.task_runs(prefect_server, summary["flow_run_id"])
    failed = [t for t in task_runs if prefect_api.state_type(t) == "FAILED"]
    assert [str(t["name"]).split()[0] for t in failed] == ["deploy"]
    attached = {a["key"]: a for a in prefect_api.artifacts(prefect_server, task_run_id=failed[0]["id"])}
    diagnosis = attached[f"{k8s_service.name}-deploy-diagnosis"]["data"]
    assert "init_failed" in diagnosis and "RuntimeError: model store is down" in diagnosis
    assert "RuntimeError: model store is down" in attached[f"{k8s_service.name}-deploy-log"]["data"]
    run = prefect_api.flow_run(prefect_server, summary["flow_run_id"])
    text = _screenshot_flow_run(
        prefect_server, summary["flow_run_id"], wait_for=[run["name"], "Failed"], path=SCREENSHOT
    )
    assert "deploy" in text and "Failed" in text
    assert SCREENSHOT.stat().st_size > 20_000
