"""Breaking a deploy on purpose: each failure stops at its stage with a diagnosis, and the
previous version keeps serving."""

from __future__ import annotations

import pytest

from tests.integration.conftest import assert_steady, containers_of, deploy

pytestmark = [pytest.mark.engine, pytest.mark.slow]

IRIS_ROWS = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
GOOD = (200, {"predictions": ["setosa", "virginica"]})


def _stage(summary: dict, name: str) -> dict:
    return next(s for s in summary["stages"] if s["name"] == name)


@pytest.fixture
def live_iris(make_service):
    """An iris service that is live and healthy before the test breaks it."""
    iris = make_service("iris")
    first = deploy(iris)
    assert first.code == 0, first.stderr + first.stdout
    assert iris.score(IRIS_ROWS) == GOOD
    return iris


def _assert_previous_still_serving(service) -> None:
    assert service.score(IRIS_ROWS) == GOOD, "the previous version must keep serving"
    assert_steady(service.name)


def test_init_raising_fails_deploy_fast_with_traceback(live_iris):
    live_iris.prepend_to("init", "raise RuntimeError('cannot load the tokenizer')")
    result = deploy(live_iris)
    assert result.code == 1
    summary = result.summary
    assert summary["status"] == "failed" and summary["failed_stage"] == "deploy"
    assert summary["diagnosis"]["code"] == "init_failed"
    assert "RuntimeError: cannot load the tokenizer" in summary["diagnosis"]["detail"]
    assert "init()" in summary["diagnosis"]["hint"]
    deploy_stage = _stage(summary, "deploy")
    assert deploy_stage["state"] == "failed"
    assert deploy_stage["seconds"] < 20, "an init() crash must fail at once, not after the health deadline"
    assert _stage(summary, "smoke")["state"] == "skipped"
    _assert_previous_still_serving(live_iris)


def test_model_path_mismatch_names_the_path_and_the_folder_contents(live_iris):
    live_iris.patch_script('"model.joblib"', '"iris_model.pkl"')
    result = deploy(live_iris)
    assert result.code == 1
    found = result.summary["diagnosis"]
    assert found["code"] == "model_path_not_found"
    assert "iris_model.pkl" in found["summary"]
    assert "model/model.joblib" in found["detail"], "the listing of AZUREML_MODEL_DIR must be in the evidence"
    assert "AZUREML_MODEL_DIR" in found["hint"]
    _assert_previous_still_serving(live_iris)


def test_run_raising_fails_smoke_and_rolls_back(live_iris):
    live_iris.prepend_to("run", "raise KeyError('petal_width')")
    result = deploy(live_iris)
    assert result.code == 1
    summary = result.summary
    assert summary["failed_stage"] == "smoke"
    assert summary["diagnosis"]["code"] == "run_failed"
    assert "KeyError: 'petal_width'" in summary["diagnosis"]["detail"]
    assert _stage(summary, "deploy")["state"] == "completed"
    _assert_previous_still_serving(live_iris)


def test_run_ending_the_process_is_an_unavailable_endpoint_with_the_exit_code(live_iris):
    live_iris.prepend_to("run", "os._exit(3)")  # no traceback, no log line: only the engine saw it end
    result = deploy(live_iris)
    assert result.code == 1
    found = result.summary["diagnosis"]
    assert result.summary["failed_stage"] == "smoke" and found["code"] == "endpoint_unavailable"
    assert "last exit code 3" in found["detail"] and "the scoring process ended" in found["detail"]
    assert "mldeploy debug" in found["hint"]
    _assert_previous_still_serving(live_iris)


def test_unknown_package_fails_build_naming_the_package(make_service):
    iris = make_service("iris")
    iris.write("requirements.txt", "scikit-learn==1.9.1\njoblib\nmldeploy-no-such-package==9.9.9\n")
    result = deploy(iris)
    assert result.code == 1
    summary = result.summary
    assert summary["failed_stage"] == "build"
    assert summary["diagnosis"]["code"] == "dependency_resolution_failed"
    assert "mldeploy-no-such-package==9.9.9" in summary["diagnosis"]["summary"]
    assert _stage(summary, "deploy")["state"] == "skipped"
    assert containers_of(iris.name) == []
