"""launch.json: the attach configuration is added (or replaces its own earlier copy) and nothing else moves; the
debug image's Dockerfile (golden); what `mldeploy debug` mounts and maps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from golden import assert_golden

from mldeploy.contract import APP_ROOT
from mldeploy.debugging import (
    PIPELINE_CONFIGURATION,
    attach_configuration,
    merge_launch,
    path_mapping,
    render_debug_dockerfile,
    source_mount,
    write_launch,
)

MINE = attach_configuration(PIPELINE_CONFIGURATION, 5679)


def test_a_new_file_has_the_configuration_only() -> None:
    data = json.loads(merge_launch(None, MINE))
    assert data == {"version": "0.2.0", "configurations": [MINE]}
    assert MINE["connect"] == {"host": "127.0.0.1", "port": 5679} and MINE["request"] == "attach"


def test_the_users_configurations_and_keys_are_kept_and_ours_replaced() -> None:
    theirs = {"name": "Python: Current File", "type": "debugpy", "request": "launch", "program": "${file}"}
    old_mine = {**MINE, "connect": {"host": "127.0.0.1", "port": 1234}}
    existing = json.dumps({"version": "0.2.0", "compounds": [{"name": "x"}], "configurations": [theirs, old_mine]})
    data = json.loads(merge_launch(existing, MINE))
    assert data["configurations"] == [theirs, MINE] and data["compounds"] == [{"name": "x"}]


@pytest.mark.parametrize(
    "existing", ['{\n  // a comment VS Code allows\n  "configurations": []\n}', '{"configurations": {}}', "[1]"]
)
def test_a_file_that_is_not_plain_json_is_left_alone(tmp_path: Path, existing: str) -> None:
    path = tmp_path / ".vscode" / "launch.json"
    path.parent.mkdir()
    path.write_text(existing)
    _, said = write_launch(tmp_path, MINE)
    assert path.read_text() == existing  # never clobbered
    assert "left" in said and "by hand" in said and '"port": 5679' in said


def test_write_then_merge(tmp_path: Path) -> None:
    _, first = write_launch(tmp_path, MINE)
    _, second = write_launch(tmp_path, attach_configuration("another", 5678))
    assert first.startswith("wrote") and second.startswith("merged into")
    names = [c["name"] for c in json.loads((tmp_path / ".vscode" / "launch.json").read_text())["configurations"]]
    assert names == [PIPELINE_CONFIGURATION, "another"]


def test_the_debug_image_adds_debugpy_offline_to_the_service_image() -> None:
    dockerfile = render_debug_dockerfile("127.0.0.1:5000/diabetes:abc123")
    assert_golden(dockerfile, "Dockerfile.debug")
    assert "--no-index" in dockerfile and dockerfile.splitlines()[3] == "FROM 127.0.0.1:5000/diabetes:abc123"
    with pytest.raises(ValueError, match="not an image reference"):
        render_debug_dockerfile("base\nRUN curl evil")


def test_a_source_directory_is_mounted_over_its_folder_and_a_lone_script_over_its_copy(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "score.py").write_text("def run(data): return data\n")
    mounted = source_mount(folder)
    assert mounted == (folder.resolve(), f"{APP_ROOT}/src")
    assert path_mapping(mounted) == {"localRoot": str(folder.resolve()), "remoteRoot": f"{APP_ROOT}/src"}
    lone = source_mount(folder / "score.py")  # the models live under the app folder: only the script goes over
    assert lone == ((folder / "score.py").resolve(), f"{APP_ROOT}/score.py")
    assert path_mapping(lone) == {"localRoot": str(folder.resolve()), "remoteRoot": APP_ROOT}


def test_the_launcher_reads_the_variables_the_debug_container_is_given() -> None:
    from mldeploy.debugging import ENV_DEBUG_PORT, ENV_DEBUG_WAIT, LAUNCHER

    launcher = LAUNCHER.read_text()
    assert f'"{ENV_DEBUG_PORT}"' in launcher and f'"{ENV_DEBUG_WAIT}"' in launcher
