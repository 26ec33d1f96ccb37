"""In-process checks of the runtime package: the azureml shim, its imports and the pinned requirements."""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "mldeploy" / "runtime"


@pytest.fixture
def model_mod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ModuleType]:
    """azureml.core.model from the shim, imported fresh; cwd is an empty tmp folder."""
    monkeypatch.syspath_prepend(str(RUNTIME / "compat"))
    monkeypatch.syspath_prepend(str(RUNTIME))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    saved = {k: v for k, v in sys.modules.items() if k == "azureml" or k.startswith(("azureml.", "mldeploy_runtime"))}
    for k in saved:
        del sys.modules[k]
    try:
        yield importlib.import_module("azureml.core.model")
    finally:
        for k in [k for k in sys.modules if k == "azureml" or k.startswith(("azureml.", "mldeploy_runtime"))]:
            del sys.modules[k]
        sys.modules.update(saved)


def test_mldeploy_layout_file_and_folder(
    model_mod: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    md = tmp_path / "md"
    (md / "model").mkdir(parents=True)
    (md / "model" / "w.bin").write_bytes(b"x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(md))
    assert model_mod.Model.get_model_path("model") == str(md / "model")
    assert importlib.import_module("azureml.core").Model is model_mod.Model


def test_an_unknown_name_is_the_classic_error_not_the_one_model(
    model_mod: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vdir = tmp_path / "azureml-models" / "diabetes" / "1"
    vdir.mkdir(parents=True)
    (vdir / "sklearn_regression_model.pkl").write_bytes(b"x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(vdir))
    with pytest.raises(model_mod.ModelNotFoundException, match="not found in cache or in root"):
        model_mod.Model.get_model_path("my-model")
    # asked for by the registered name, or (an extension) by its own file name
    assert model_mod.Model.get_model_path("diabetes") == str(vdir / "sklearn_regression_model.pkl")
    assert model_mod.Model.get_model_path("sklearn_regression_model.pkl") == str(vdir / "sklearn_regression_model.pkl")


def test_several_models_each_resolve_to_their_own(
    model_mod: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "azureml-models"
    (root / "encoder" / "2").mkdir(parents=True)
    (root / "encoder" / "2" / "encoder.pkl").write_bytes(b"e")
    (root / "classifier" / "1" / "weights").mkdir(parents=True)
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(root))
    assert model_mod.Model.get_model_path("encoder") == str(root / "encoder" / "2" / "encoder.pkl")
    assert model_mod.Model.get_model_path("classifier") == str(root / "classifier" / "1" / "weights")
    with pytest.raises(model_mod.ModelNotFoundException):
        model_mod.Model.get_model_path("ranker")


def test_classic_layout_model_dir_is_version_folder(
    model_mod: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vdir = tmp_path / "azureml-models" / "diabetes" / "3"
    vdir.mkdir(parents=True)
    (vdir / "model.pkl").write_bytes(b"x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(vdir))
    assert model_mod.Model.get_model_path("diabetes") == str(vdir / "model.pkl")


def test_classic_layout_multi_model_latest_and_pinned_version(
    model_mod: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "azureml-models"
    for version in ("1", "2", "10"):
        (root / "clf" / version).mkdir(parents=True)
        (root / "clf" / version / f"clf_v{version}.pkl").write_bytes(b"x")
    (root / "other" / "1").mkdir(parents=True)
    (root / "other" / "1" / "o.pkl").write_bytes(b"x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(root))
    assert model_mod.Model.get_model_path("clf") == str(root / "clf" / "10" / "clf_v10.pkl")
    assert model_mod.Model.get_model_path("clf", version=2) == str(root / "clf" / "2" / "clf_v2.pkl")
    with pytest.raises(model_mod.WebserviceException, match="version should be an int"):
        model_mod.Model.get_model_path("clf", version="2")


def test_classic_relative_cache_in_working_dir(model_mod: ModuleType, tmp_path: Path) -> None:
    vdir = tmp_path / "azureml-models" / "m" / "1"
    vdir.mkdir(parents=True)
    (vdir / "m.onnx").write_bytes(b"x")
    assert model_mod.Model.get_model_path("m") == str(vdir / "m.onnx")


def test_not_found_names_what_the_folder_contains(
    model_mod: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    md = tmp_path / "md"
    md.mkdir()
    (md / "a.pkl").write_bytes(b"x")
    (md / "b.pkl").write_bytes(b"x")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(md))
    with pytest.raises(model_mod.ModelNotFoundException) as info:
        model_mod.Model.get_model_path("missing.pkl")
    message = str(info.value)
    assert "'missing.pkl'" in message
    assert f"{md} contains: a.pkl, b.pkl" in message
    assert str(md / "missing.pkl") in message


def test_not_found_without_model_dir(model_mod: ModuleType) -> None:
    with pytest.raises(model_mod.ModelNotFoundException, match="AZUREML_MODEL_DIR is not set"):
        model_mod.Model.get_model_path("x")


def test_model_objects_are_not_available(model_mod: ModuleType) -> None:
    with pytest.raises(model_mod.WebserviceException, match="get_model_path"):
        model_mod.Model(None, "x")


# -- package hygiene -----------------------------------------------------------------------------------------

ALLOWED_THIRD_PARTY = {"uvicorn", "uvloop", "httptools", "inference_schema", "debugpy", "werkzeug"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_runtime_imports_only_stdlib_uvicorn_and_inference_schema() -> None:
    files = sorted((RUNTIME / "mldeploy_runtime").glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "__main__.py", "app.py"}
    for f in files:
        for name in _imports(f):
            assert name in sys.stdlib_module_names or name in ALLOWED_THIRD_PARTY, f"{f.name} imports {name}"
            assert name not in {"mldeploy", "prefect", "starlette", "fastapi"}


def test_shim_imports_nothing_but_stdlib_and_the_runtime() -> None:
    for f in sorted((RUNTIME / "compat").rglob("*.py")):
        for name in _imports(f):
            assert name in sys.stdlib_module_names or name == "mldeploy_runtime", f"{f} imports {name}"


def test_requirements_are_exactly_pinned() -> None:
    lines = [ln.strip() for ln in (RUNTIME / "requirements.txt").read_text().splitlines() if ln.strip()]
    assert lines == ["uvicorn==0.54.0", "uvloop==0.23.0", "httptools==0.9.0", "werkzeug==3.1.5", "MarkupSafe==3.0.4"]
