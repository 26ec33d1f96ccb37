"""What `mldeploy reload` puts into the running version, and what it refuses (the environment or the model
changed since the image was built)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mldeploy.contract import LABEL_ENVIRONMENT_SHA256, LABEL_MODEL_SHA256
from mldeploy.fingerprint import hash_content
from mldeploy.reload import app_files, environment_sha256, refusals
from mldeploy.spec import ServiceSpec, load_spec

VALID = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "valid"


@pytest.fixture
def spec(tmp_path: Path) -> ServiceSpec:
    shutil.copytree(VALID, tmp_path / "svc")
    return load_spec(tmp_path / "svc" / "service.yaml")


def labels_of(spec: ServiceSpec) -> dict[str, str]:
    """The labels the build gives an image of this spec as it is now."""
    model = spec.all_models[0]
    assert model.path is not None
    return {
        LABEL_ENVIRONMENT_SHA256: environment_sha256(spec),
        LABEL_MODEL_SHA256: hash_content(model.path).sha256,
    }


def test_the_entry_script_alone_goes_where_the_image_has_it(spec: ServiceSpec) -> None:
    assert [f.path for f in app_files(spec)] == ["/var/azureml-app/score.py"]
    assert app_files(spec)[0].content == spec.entry_script.read_bytes()


def test_a_source_directory_keeps_its_folder(tmp_path: Path) -> None:
    shutil.copytree(VALID, tmp_path / "svc")
    folder = tmp_path / "svc" / "src"
    (folder / "lib").mkdir(parents=True)
    shutil.move(tmp_path / "svc" / "score.py", folder / "score.py")
    (folder / "lib" / "helpers.py").write_text("X = 1\n")
    spec_file = tmp_path / "svc" / "service.yaml"
    spec_file.write_text(spec_file.read_text() + "source_directory: src\n")  # entry_script is relative to it
    found = [f.path for f in app_files(load_spec(tmp_path / "svc" / "service.yaml"))]
    assert found == ["/var/azureml-app/src/lib/helpers.py", "/var/azureml-app/src/score.py"]


def test_an_unchanged_environment_and_model_may_be_reloaded(spec: ServiceSpec) -> None:
    assert refusals(spec, labels_of(spec)) == []


def test_a_changed_environment_is_refused_with_a_pointer_to_deploy(spec: ServiceSpec) -> None:
    labels = labels_of(spec)
    spec.environment.file.write_text(spec.environment.file.read_text() + "requests\n")
    (reason,) = refusals(spec, labels)
    assert "the environment changed (requirements.txt" in reason and "mldeploy deploy" in reason


def test_a_changed_model_is_refused_with_a_pointer_to_deploy(spec: ServiceSpec) -> None:
    labels = labels_of(spec)
    model = spec.all_models[0].path
    assert model is not None
    model.write_bytes(model.read_bytes() + b"retrained")
    (reason,) = refusals(spec, labels)
    assert "the model fixture-model (model.pkl) changed" in reason


def test_an_image_that_does_not_record_its_environment_is_refused(spec: ServiceSpec) -> None:
    labels = labels_of(spec)
    del labels[LABEL_ENVIRONMENT_SHA256]
    (reason,) = refusals(spec, labels)
    assert "deploy once" in reason
