"""The embedded model registry: versions, idempotent registration, crash safety, concurrency."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from mldeploy.errors import PermanentError
from mldeploy.fingerprint import UnsafeFile, hash_content
from mldeploy.models import ModelRegistry, ModelVersion


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "home")


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "sklearn_regression_model.pkl"
    path.parent.mkdir()
    path.write_bytes(b"first model bytes")
    return path


def _version_dirs(registry: ModelRegistry, name: str) -> list[str]:
    return sorted(p.name for p in (registry.root / name).iterdir() if p.is_dir())


def test_first_registration_is_version_1(registry: ModelRegistry, model_file: Path) -> None:
    result = registry.register("diabetes", model_file, source_spec="/specs/service.yaml", description="ridge")
    model = result.model
    assert result.created_new is True
    assert (model.name, model.version, model.label) == ("diabetes", 1, "diabetes:1")
    assert model.sha256 == hash_content(model_file).sha256
    assert model.size == len(b"first model bytes")
    assert model.files == ("sklearn_regression_model.pkl",)
    assert model.basename == "sklearn_regression_model.pkl" and model.is_folder is False
    assert model.source_spec == "/specs/service.yaml" and model.description == "ridge"
    stored = registry.files_path(model) / "sklearn_regression_model.pkl"
    assert stored.read_bytes() == b"first model bytes"
    assert registry.get("diabetes") == model
    assert registry.names() == ["diabetes"]


def test_same_bytes_give_the_same_version(registry: ModelRegistry, model_file: Path, tmp_path: Path) -> None:
    first = registry.register("diabetes", model_file)
    copy = tmp_path / "elsewhere" / model_file.name
    copy.parent.mkdir()
    shutil.copy(model_file, copy)
    again = registry.register("diabetes", copy)
    assert again.created_new is False
    assert again.model == first.model
    assert [m.version for m in registry.versions("diabetes")] == [1]


def test_new_bytes_give_version_2(registry: ModelRegistry, model_file: Path) -> None:
    registry.register("diabetes", model_file)
    model_file.write_bytes(b"retrained model bytes")
    second = registry.register("diabetes", model_file)
    assert second.created_new is True
    assert second.model.version == 2
    assert registry.get("diabetes").version == 2
    assert registry.get("diabetes", 1).sha256 != registry.get("diabetes", 2).sha256
    # the first version's files are untouched
    first_copy = registry.files_path(registry.get("diabetes", 1)) / model_file.name
    assert first_copy.read_bytes() == b"first model bytes"


def test_a_version_carried_over_from_a_workspace_is_kept(registry: ModelRegistry, model_file: Path) -> None:
    # a v1 script may have the number in its paths (azureml-models/<name>/2/...): these bytes become version 2
    result = registry.register("diabetes", model_file, version=2)
    assert result.created_new and result.model.version == 2
    again = registry.register("diabetes", model_file, version=2)
    assert again.model == result.model and not again.created_new
    assert registry.register("diabetes", model_file).model.version == 2  # no number asked: the bytes' version
    model_file.write_bytes(b"retrained")
    assert registry.register("diabetes", model_file).model.version == 3  # the next one after the highest


def test_a_taken_version_with_other_bytes_is_refused_before_anything_is_written(
    registry: ModelRegistry, model_file: Path
) -> None:
    registry.register("diabetes", model_file)
    model_file.write_bytes(b"other bytes")
    with pytest.raises(PermanentError, match="version 1 of model diabetes holds other bytes") as caught:
        registry.register("diabetes", model_file, version=1)
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code == "model_version_taken"
    assert _version_dirs(registry, "diabetes") == ["1"]
    assert registry.get("diabetes", 1).sha256 != hash_content(model_file).sha256


def test_the_same_bytes_can_be_given_another_version_on_purpose(registry: ModelRegistry, model_file: Path) -> None:
    registry.register("diabetes", model_file)
    assert registry.register("diabetes", model_file, version=5).model.version == 5
    assert [m.version for m in registry.versions("diabetes")] == [1, 5]


def test_going_back_to_old_bytes_reuses_the_old_version(registry: ModelRegistry, model_file: Path) -> None:
    registry.register("diabetes", model_file)
    model_file.write_bytes(b"retrained")
    registry.register("diabetes", model_file)
    model_file.write_bytes(b"first model bytes")
    result = registry.register("diabetes", model_file)
    assert (result.created_new, result.model.version) == (False, 1)


def test_folder_model(registry: ModelRegistry, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "extra").mkdir(parents=True)
    (folder / "model.joblib").write_bytes(b"joblib bytes")
    (folder / "labels.json").write_text('["setosa"]')
    (folder / "extra" / "notes.txt").write_text("n")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"\x00")
    model = registry.register("iris", folder).model
    assert model.is_folder is True
    assert model.basename == "model"
    assert model.files == ("extra/notes.txt", "labels.json", "model.joblib")
    stored = registry.files_path(model) / "model"
    assert (stored / "model.joblib").read_bytes() == b"joblib bytes"
    assert hash_content(stored).sha256 == model.sha256
    assert registry.register("iris", folder).created_new is False


def test_folder_model_with_a_symlinked_folder_registers(registry: ModelRegistry, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "vocab.txt").write_text("x")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    os.symlink(shared, folder / "vocab")
    model = registry.register("nlp", folder, roots=[tmp_path]).model  # the link stays inside the allowed root
    assert model.files == ("vocab/vocab.txt", "weights.bin")
    assert (registry.files_path(model) / "model" / "vocab" / "vocab.txt").read_text() == "x"
    assert not (registry.files_path(model) / "model" / "vocab").is_symlink(), "links are materialised"
    with pytest.raises(UnsafeFile, match="outside the allowed folder"):
        registry.register("nlp2", folder)  # by default links may not leave the model folder


def test_a_leftover_temp_folder_is_never_a_version_and_is_cleaned(registry: ModelRegistry, model_file: Path) -> None:
    leftover = registry.root / "diabetes" / ".tmp-crashed"
    (leftover / "files").mkdir(parents=True)
    (leftover / "files" / model_file.name).write_bytes(b"half a mod")
    (leftover / "model.json").write_text(json.dumps({"name": "diabetes", "version": 1}))
    assert registry.versions("diabetes") == []
    assert registry.names() == []
    result = registry.register("diabetes", model_file)
    assert result.model.version == 1
    assert not leftover.exists()
    assert _version_dirs(registry, "diabetes") == ["1"]


def test_a_failed_copy_leaves_no_version(
    registry: ModelRegistry, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mldeploy.models._bounded_copy", disk_full)
    with pytest.raises(OSError, match="No space left"):
        registry.register("diabetes", model_file)
    assert registry.versions("diabetes") == []
    assert _version_dirs(registry, "diabetes") == []  # neither a version nor a half-written temp folder
    monkeypatch.undo()
    assert registry.register("diabetes", model_file).model.version == 1


def test_a_model_that_changes_while_copied_is_not_registered(
    registry: ModelRegistry, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mldeploy.models

    real_copy = mldeploy.models._bounded_copy

    def copy_then_change(src: Path, dst: Path, size: int) -> None:
        real_copy(src, dst, size)
        Path(dst).write_bytes(b"changed during the copy")

    monkeypatch.setattr(mldeploy.models, "_bounded_copy", copy_then_change)
    with pytest.raises(PermanentError, match="changed while it was being registered"):
        registry.register("diabetes", model_file)
    assert _version_dirs(registry, "diabetes") == []


def test_get_unknown_name(registry: ModelRegistry) -> None:
    with pytest.raises(PermanentError) as caught:
        registry.get("nope")
    assert "'nope' is not registered" in str(caught.value)
    assert "mldeploy models list" in str(caught.value)


def test_get_unknown_version_lists_the_known_ones(registry: ModelRegistry, model_file: Path) -> None:
    registry.register("diabetes", model_file)
    model_file.write_bytes(b"v2")
    registry.register("diabetes", model_file)
    with pytest.raises(PermanentError) as caught:
        registry.get("diabetes", 7)
    assert "has no version 7" in str(caught.value)
    assert "known: 1, 2" in str(caught.value)


def test_model_card_round_trips(registry: ModelRegistry, model_file: Path) -> None:
    model = registry.register("diabetes", model_file).model
    card = json.loads((registry.root / "diabetes" / "1" / "model.json").read_text())
    assert ModelVersion.from_dict(card) == model
    assert model.to_dict()["files"] == ["sklearn_regression_model.pkl"]


def test_concurrent_registrations_of_the_same_new_bytes_make_one_version(
    registry: ModelRegistry, model_file: Path
) -> None:
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            barrier.wait()
            result = registry.register("diabetes", model_file)
            results.append((result.model.version, result.created_new))
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(results) == threads_count
    assert {version for version, _ in results} == {1}
    assert sum(created for _, created in results) == 1
    assert _version_dirs(registry, "diabetes") == ["1"]


def test_concurrent_registrations_of_different_bytes_get_distinct_versions(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    sources = []
    for index in range(6):
        path = tmp_path / f"src{index}" / "model.pkl"
        path.parent.mkdir()
        path.write_bytes(f"model {index}".encode())
        sources.append(path)
    barrier = threading.Barrier(len(sources))
    versions: list[int] = []

    def register(source: Path) -> None:
        barrier.wait()
        versions.append(registry.register("m", source).model.version)

    threads = [threading.Thread(target=register, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]
