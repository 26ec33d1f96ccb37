"""The runtime's own start-failure lines, produced from real files and real exceptions, read back by the
deploy stage's diagnosis: a missing model path, a folder opened as a file, and a missing data file are told
apart, and each names what is really there."""

from __future__ import annotations

import importlib
import io
import os
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path
from types import ModuleType

import pytest

from mldeploy.diagnosis import Code, container_exit, not_shipped

RUNTIME = Path(__file__).resolve().parents[2] / "mldeploy" / "runtime"


@pytest.fixture(scope="module")
def logs() -> Iterator[ModuleType]:
    sys.path.insert(0, str(RUNTIME))
    saved = {k: v for k, v in sys.modules.items() if k.startswith("mldeploy_runtime")}
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        yield importlib.import_module("mldeploy_runtime.logs")
    finally:
        sys.dont_write_bytecode = bytecode
        sys.path.remove(str(RUNTIME))
        for k in [k for k in sys.modules if k.startswith("mldeploy_runtime")]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A classic layout: the app root with a script and a data folder, one model registered as a folder."""
    root = tmp_path / "var" / "azureml-app"
    model_dir = root / "azureml-models" / "churn" / "3"
    (model_dir / "model").mkdir(parents=True)
    (model_dir / "model" / "model.pkl").write_bytes(b"\x80\x04N.")
    (root / "src" / "data").mkdir(parents=True)
    (root / "src" / "score.py").write_text("def init(): pass\n")
    (root / "src" / "data" / "labels.json").write_text("[]")
    monkeypatch.chdir(root)
    return {"root": root, "model_dir": model_dir}


def _start_log(logs: ModuleType, app: dict[str, Path], opened: str) -> str:
    """What the runtime writes when init() opens ``opened`` and fails: traceback, explanations, model listing."""
    err = io.StringIO()
    with redirect_stderr(err):
        try:
            Path(opened).read_bytes()
        except OSError as ex:
            logs.log("init() failed")
            logs.log_exception(ex)
            logs.explain_missing(ex, str(app["model_dir"]), str(app["root"]))
            logs.log_model_dir(str(app["model_dir"]))
    return err.getvalue()


def test_a_model_path_that_does_not_exist_says_where_the_file_really_is(logs, app) -> None:  # type: ignore[no-untyped-def]
    wrong = os.path.join(app["model_dir"], "model.pkl")  # registered as a folder, the file is one level down
    log = _start_log(logs, app, wrong)
    found = container_exit(3, False, log)
    assert found.code is Code.MODEL_PATH_NOT_FOUND
    assert wrong in found.summary
    assert f"is at {app['model_dir'] / 'model' / 'model.pkl'}" in found.summary
    assert "  model/model.pkl" in found.detail  # the model folder's listing


def test_a_folder_opened_as_a_file_is_not_called_missing(logs, app) -> None:  # type: ignore[no-untyped-def]
    folder = str(app["model_dir"] / "model")
    log = _start_log(logs, app, folder)
    found = container_exit(3, False, log)
    assert found.code is Code.PATH_IS_A_FOLDER
    assert folder in found.summary and "is a folder" in found.summary
    assert "  model.pkl" in found.detail  # what the folder holds
    assert "IsADirectoryError" in found.detail


def test_a_missing_data_file_shows_the_app_folder_not_the_model_folder(logs, app) -> None:  # type: ignore[no-untyped-def]
    log = _start_log(logs, app, "data/labels.json")  # relative to the wrong folder
    found = container_exit(3, False, log)
    assert found.code is Code.APP_FILE_NOT_FOUND
    assert "data/labels.json" in found.summary
    assert f"is at {app['root'] / 'src' / 'data' / 'labels.json'}" in found.summary
    assert "  src/data/labels.json" in found.detail and "  src/score.py" in found.detail
    assert "__file__" in found.hint


def test_a_missing_module_that_an_installed_distribution_ships_says_it_is_hidden(logs) -> None:  # type: ignore[no-untyped-def]
    err = io.StringIO()
    with redirect_stderr(err):
        try:
            raise ModuleNotFoundError("No module named 'yaml'", name="yaml")  # PyYAML is installed here
        except ModuleNotFoundError as ex:
            logs.log("entry script /var/azureml-app/score.py failed to import")
            logs.log_exception(ex)
            logs.explain_missing_module(ex)
    found = container_exit(3, False, err.getvalue())
    assert found.code is Code.INIT_FAILED
    assert "PyYAML" in found.summary and "'yaml'" in found.summary
    assert "rename" in found.hint


def test_a_module_no_distribution_ships_asks_for_the_package(logs) -> None:  # type: ignore[no-untyped-def]
    err = io.StringIO()
    with redirect_stderr(err):
        try:
            raise ModuleNotFoundError("No module named 'lightgbm_nowhere'", name="lightgbm_nowhere")
        except ModuleNotFoundError as ex:
            logs.log("entry script /var/azureml-app/score.py failed to import")
            logs.log_exception(ex)
            logs.explain_missing_module(ex)
    found = container_exit(3, False, err.getvalue())
    assert "installed" not in found.summary
    assert "add the package" in found.hint


def test_a_missing_data_file_left_beside_the_script_asks_for_source_directory(logs, app) -> None:  # type: ignore[no-untyped-def]
    log = _start_log(logs, app, "normalisation.json")
    found = container_exit(3, False, log)
    assert found.code is Code.APP_FILE_NOT_FOUND
    assert not_shipped(found, ("score.py", "other.json")) is found  # not beside the script: unchanged
    better = not_shipped(found, ("normalisation.json", "score.py"))
    assert better.code is Code.APP_FILE_NOT_FOUND and better.summary == found.summary
    assert "source_directory: ." in better.hint and "normalisation.json" in better.hint


def test_an_import_old_samples_carry_gets_the_modern_spelling() -> None:
    log = (
        "mldeploy-runtime: entry script /var/azureml-app/score.py failed to import\n"
        "Traceback (most recent call last):\n"
        '  File "/var/azureml-app/score.py", line 3, in <module>\n'
        "    from sklearn.externals import joblib\n"
        "ImportError: cannot import name 'joblib' from 'sklearn.externals' "
        "(/opt/venv/lib/python3.11/site-packages/sklearn/externals/__init__.py)\n"
    )
    found = container_exit(3, False, log)
    assert found.code is Code.INIT_FAILED
    assert "removed in scikit-learn 0.23" in found.summary and "import joblib" in found.hint
