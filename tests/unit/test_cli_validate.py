"""`mldeploy validate SPEC [--json]`: exit 0 for a valid spec, 2 with every problem for a bad one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mldeploy.cli import EXIT_OK, EXIT_SPEC_INVALID, main

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "tests" / "fixtures" / "specs"
IRIS = REPO / "deployments" / "examples" / "iris" / "service.yaml"


def _last_json_line(text: str) -> dict[str, Any]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no output"
    loaded: dict[str, Any] = json.loads(lines[-1])
    return loaded


@pytest.fixture(autouse=True)
def _examples_trained() -> None:
    if not (IRIS.parent / "model").is_dir():
        pytest.skip("train the iris example first: .venv/bin/python deployments/examples/iris/train.py")


def test_valid_example_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(IRIS)]) == EXIT_OK == 0
    out = capsys.readouterr().out
    assert "valid" in out and "service iris" in out and "target local" in out


def test_valid_example_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(IRIS), "--json"]) == 0
    assert _last_json_line(capsys.readouterr().out) == {"valid": True, "service": "iris", "notices": []}


def test_bad_spec_exits_2_with_every_problem_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    spec = SPECS / "many_problems" / "service.yaml"
    assert main(["validate", str(spec), "--json"]) == EXIT_SPEC_INVALID == 2
    result = _last_json_line(capsys.readouterr().out)
    assert result["valid"] is False
    problems = result["problems"]
    assert isinstance(problems, list) and len(problems) == 8
    for problem in problems:
        assert set(problem) == {"file", "field", "message", "fix"}
        assert problem["file"] == str(spec.resolve())
        assert problem["fix"]
    fields = {p["field"] for p in problems}
    assert {
        "name",
        "colour",
        "model.path",
        "entry_script",
        "environment",
        "target.port",
        "deploy.health_timeout_seconds",
    } <= fields


def test_bad_spec_human_output_lists_each_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SPECS / "conda_only" / "service.yaml")]) == 2
    out = capsys.readouterr().out
    assert "1 problem(s)" in out
    assert "env.yml: dependencies[1]: conda package 'cudatoolkit' has no pip equivalent" in out
    assert "fix:" in out


def test_problem_in_another_file_names_that_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SPECS / "conda_only" / "service.yaml"), "--json"]) == 2
    (problem,) = _last_json_line(capsys.readouterr().out)["problems"]
    assert problem["file"] == str((SPECS / "conda_only" / "env.yml").resolve())


def test_yaml_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SPECS / "bad_yaml" / "service.yaml"), "--json"]) == 2
    (problem,) = _last_json_line(capsys.readouterr().out)["problems"]
    assert problem["field"] == "line 4, column 8"


def test_missing_spec_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "missing.yaml"), "--json"]) == 2
    assert _last_json_line(capsys.readouterr().out)["valid"] is False


def test_validate_needs_a_spec_argument(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["validate"])
    assert caught.value.code == 2
    assert "spec" in capsys.readouterr().err
