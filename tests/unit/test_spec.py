"""The service spec: the examples are valid, every problem is reported at once, hostile values are refused."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mldeploy.diagnosis import Code
from mldeploy.errors import PermanentError, SpecError, SpecProblem
from mldeploy.spec import KubernetesTarget, ServiceSpec, load_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deployments" / "examples"
SPECS = REPO / "tests" / "fixtures" / "specs"
VALID = SPECS / "valid"


@pytest.fixture(scope="session")
def trained_examples() -> Path:
    """The example specs name a model file; train it once if a fresh checkout has none."""
    for example in ("diabetes", "iris"):
        if not (EXAMPLES / example / "model").is_dir():
            subprocess.run([sys.executable, str(EXAMPLES / example / "train.py")], check=True, cwd=REPO)
    return EXAMPLES


def _problems(path: Path, **kwargs: Any) -> list[SpecProblem]:
    with pytest.raises(SpecError) as caught:
        load_spec(path, **kwargs)
    assert caught.value.problems, "a SpecError always names at least one problem"
    return caught.value.problems


def _fields(problems: list[SpecProblem]) -> list[str]:
    return [p.field for p in problems]


def _base() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((VALID / "service.yaml").read_text())
    return loaded


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the valid fixture folder, to change one thing at a time."""
    target = tmp_path / "svc"
    shutil.copytree(VALID, target)
    return target


def _write(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "service.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    section = data
    *parents, key = dotted.split(".")
    for parent in parents:
        section = section.setdefault(parent, {})
    section[key] = value
    return data


# --- the examples ----------------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["diabetes", "iris"])
def test_examples_are_valid(trained_examples: Path, example: str) -> None:
    spec = load_spec(trained_examples / example / "service.yaml")
    assert spec.name == example
    assert spec.model.path.exists()
    assert spec.entry_script.name == "score.py"
    assert (spec.environment.conda_file or spec.environment.requirements) is not None
    assert spec.target.kind == "local"
    assert spec.smoke, "the examples carry smoke requests"


def test_diabetes_example_reads_as_written(trained_examples: Path) -> None:
    spec = load_spec(trained_examples / "diabetes" / "service.yaml")
    assert spec.model.name == "sklearn_regression_model"
    assert spec.model.path.name == "sklearn_regression_model.pkl"
    assert spec.environment.conda_file == trained_examples / "diabetes" / "myenv.yml"
    assert spec.registry is not None and spec.registry.url == "127.0.0.1:5000"
    assert spec.target.port == 8890
    assert spec.deploy.health_timeout_seconds == 60
    first = spec.smoke[0]
    assert first.name == "one patient" and first.expect_status == 200 and first.has_expect
    assert first.max_latency_ms == 5000
    assert spec.smoke[1].has_expect is False


def test_valid_fixture_parses_every_section() -> None:
    spec = load_spec(VALID / "service.yaml")
    assert isinstance(spec, ServiceSpec)
    assert spec.path == (VALID / "service.yaml").resolve()
    assert spec.model.path == (VALID / "model.pkl").resolve()
    assert spec.environment.requirements == (VALID / "requirements.txt").resolve()
    assert spec.target.port == 8899 and spec.target.cpu_cores is None and spec.target.memory_gb is None
    assert spec.smoke[0].body() == b'{"data": [[1, 2]]}'


# --- every problem at once -------------------------------------------------------------------------


def test_many_problems_are_reported_all_at_once() -> None:
    spec_file = str((SPECS / "many_problems" / "service.yaml").resolve())
    problems = _problems(SPECS / "many_problems" / "service.yaml")
    by_field: dict[str, list[str]] = {}
    for problem in problems:
        by_field.setdefault(problem.field, []).append(problem.message)
        assert problem.file == spec_file
        assert problem.fix.strip(), f"{problem.field} has no fix"
    assert "colour" in by_field  # unknown key
    assert any("My_Service" in m for m in by_field["name"])  # bad DNS name
    assert any("missing-model.pkl" in m and "not found" in m for m in by_field["model.path"])  # missing file
    assert any("init()" in m for m in by_field["entry_script"])  # no init
    assert any("run()" in m for m in by_field["entry_script"])  # no run
    assert any("both conda_file and requirements" in m for m in by_field["environment"])
    assert any("80" in m for m in by_field["target.port"])  # bad port
    assert any("soon" in m for m in by_field["deploy.health_timeout_seconds"])  # wrong type
    assert len(problems) == 8


def test_the_error_message_lists_every_problem_with_its_fix() -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(SPECS / "many_problems" / "service.yaml")
    text = str(caught.value)
    assert "8 problem(s)" in text
    for problem in caught.value.problems:
        assert f"{problem.field}: {problem.message} (fix: {problem.fix})" in text
    assert caught.value.diagnosis is not None
    assert caught.value.diagnosis.code is Code.SPEC_INVALID
    assert caught.value.diagnosis.stage == "validate"


def test_syntax_error_in_the_scoring_script_names_the_line() -> None:
    (problem,) = _problems(SPECS / "syntax_error" / "service.yaml")
    assert problem.field == "entry_script"
    assert "score.py does not compile" in problem.message
    assert "line 5" in problem.message


def test_yaml_syntax_error_reports_line_and_column() -> None:
    (problem,) = _problems(SPECS / "bad_yaml" / "service.yaml")
    assert problem.field == "line 4, column 8"
    assert "not valid YAML" in problem.message
    assert problem.file == str((SPECS / "bad_yaml" / "service.yaml").resolve())


def test_missing_spec_file(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path / "nope.yaml")
    assert "does not exist" in problem.message


@pytest.mark.parametrize("text", ["just a string\n", "- a\n- list\n", ""])
def test_spec_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    (tmp_path / "service.yaml").write_text(text)
    (problem,) = _problems(tmp_path / "service.yaml")
    assert "mapping" in problem.message


def test_missing_required_keys_are_each_named(tmp_path: Path) -> None:
    (tmp_path / "service.yaml").write_text("description: nothing else\n")
    fields = _fields(_problems(tmp_path / "service.yaml"))
    for required in ("name", "model", "entry_script", "environment"):
        assert required in fields


def test_empty_environment_section_names_no_environment(workdir: Path) -> None:
    path = _write(workdir, _set(_base(), "environment", {}))
    assert "environment" in _fields(_problems(path))


# --- the conda file is checked at validate -------------------------------------------------------


def test_conda_only_package_is_reported_with_the_conda_file_and_entry() -> None:
    (problem,) = _problems(SPECS / "conda_only" / "service.yaml")
    assert problem.file == str((SPECS / "conda_only" / "env.yml").resolve())
    assert problem.field == "dependencies[1]"
    assert "cudatoolkit" in problem.message
    assert "extra_dockerfile_steps" in problem.fix


def test_problems_in_the_requirements_file_name_that_file_and_line(workdir: Path) -> None:
    (workdir / "requirements.txt").write_text("joblib\nnumpy; whoami\n")
    path = _write(workdir, _base())
    (problem,) = _problems(path)
    assert problem.file == str((workdir / "requirements.txt").resolve())
    assert problem.field == "line 2"


def test_forbidden_extra_dockerfile_step_is_reported_with_its_line(workdir: Path) -> None:
    (workdir / "steps.Dockerfile").write_text("RUN echo ok\nUSER root\n")
    path = _write(workdir, _set(_base(), "environment.extra_dockerfile_steps", "steps.Dockerfile"))
    (problem,) = _problems(path)
    assert problem.field == "environment.extra_dockerfile_steps (line 2)"
    assert "USER" in problem.message


def test_valid_extra_dockerfile_steps_are_accepted(workdir: Path) -> None:
    path = _write(workdir, _set(_base(), "environment.extra_dockerfile_steps", "extra_steps.Dockerfile"))
    spec = load_spec(path)
    assert spec.environment.extra_dockerfile_steps == (workdir / "extra_steps.Dockerfile").resolve()


# --- hostile values ------------------------------------------------------------------------------

HOSTILE = ["numpy; whoami", "$(id)", "`id`", "x\nRUN id", "with space", "svc\n", "svc\x00"]


@pytest.mark.parametrize("value", HOSTILE, ids=repr)
@pytest.mark.parametrize(
    "field", ["name", "model.name", "environment.base_image", "registry.url", "environment.python", "target.namespace"]
)
def test_hostile_values_are_refused(workdir: Path, field: str, value: str) -> None:
    path = _write(workdir, _set(_base(), field, value))
    problems = _problems(path)
    assert field in _fields(problems)


@pytest.mark.parametrize("value", ["numpy; whoami.py", "$(id).py", "`id`.py", "my score.py", "score.py\n"], ids=repr)
def test_hostile_entry_script_names_are_refused_even_when_the_file_exists(workdir: Path, value: str) -> None:
    shutil.copy(workdir / "score.py", workdir / value)
    path = _write(workdir, _set(_base(), "entry_script", value))
    assert "entry_script" in _fields(_problems(path))


def test_hostile_folder_of_an_entry_script_in_source_directory_is_refused(workdir: Path) -> None:
    (workdir / "src" / "$(id)").mkdir(parents=True)
    shutil.copy(workdir / "score.py", workdir / "src" / "$(id)" / "score.py")
    data = _set(_base(), "source_directory", "src")
    path = _write(workdir, _set(data, "entry_script", "$(id)/score.py"))
    assert "entry_script" in _fields(_problems(path))


def test_entry_script_in_a_plain_subfolder_of_source_directory_is_accepted(workdir: Path) -> None:
    (workdir / "src" / "app").mkdir(parents=True)
    shutil.copy(workdir / "score.py", workdir / "src" / "app" / "score.py")
    data = _set(_base(), "source_directory", "src")
    spec = load_spec(_write(workdir, _set(data, "entry_script", "app/score.py")))
    assert spec.entry_script == (workdir / "src" / "app" / "score.py").resolve()


@pytest.mark.parametrize("value", ["model.pkl\x00", "../../../../etc/passwd\x00"], ids=repr)
def test_nul_byte_in_a_path_is_a_problem_not_a_crash(workdir: Path, value: str) -> None:
    path = _write(workdir, _set(_base(), "model.path", value))
    assert "model.path" in _fields(_problems(path))


def test_unquoted_python_version_is_refused_not_misread(workdir: Path) -> None:
    # YAML reads `python: 3.10` as the number 3.1; building on Python 3.1 is never what was meant
    path = workdir / "service.yaml"
    path.write_text(
        (VALID / "service.yaml")
        .read_text()
        .replace("  requirements: requirements.txt\n", "  requirements: requirements.txt\n  python: 3.10\n")
    )
    (problem,) = _problems(path)
    assert problem.field == "environment.python"
    assert "quote" in problem.fix


def test_quoted_python_version_is_accepted(workdir: Path) -> None:
    spec = load_spec(_write(workdir, _set(_base(), "environment.python", "3.10")))
    assert spec.environment.python == "3.10"


@pytest.mark.parametrize("value", ["3.6", "3.8", "3.9"])
def test_a_python_older_than_the_runtime_supports_is_refused_with_the_oldest_that_works(
    workdir: Path, value: str
) -> None:
    (problem,) = _problems(_write(workdir, _set(_base(), "environment.python", value)))
    assert problem.field == "environment.python"
    assert "older than the scoring runtime supports" in problem.message and "'3.10'" in problem.fix


@pytest.mark.parametrize("value", ["3.11\n", "3.11 ", "3.11-slim", "3.11; whoami", "2.7", "3"], ids=repr)
def test_python_version_must_be_exactly_major_minor(workdir: Path, value: str) -> None:
    # environment.python becomes the base image python:<version>-slim and pip's --python-version
    (problem,) = _problems(_write(workdir, _set(_base(), "environment.python", value)))
    assert problem.field == "environment.python"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("target.port", "8890"),
        ("target.port", 70000),
        ("target.port", True),
        ("target.replicas", 0),
        ("target.cpu_cores", "lots"),
        ("deploy.debug", "yes"),
        ("smoke", {"request": 1}),
        ("environment.variables", ["A=1"]),
    ],
)
def test_wrong_types_and_ranges_are_refused(workdir: Path, field: str, value: Any) -> None:
    path = _write(workdir, _set(_base(), field, value))
    assert field in _fields(_problems(path))


def test_bad_smoke_items_are_named_by_index(workdir: Path) -> None:
    data = _set(
        _base(),
        "smoke",
        [
            {"request": {}, "expect_status": 200},
            {"expect_status": 200},
            {"request": "x", "expect_status": 999, "colour": "red"},
        ],
    )
    problems = _problems(_write(workdir, data))
    fields = _fields(problems)
    (missing,) = [p for p in problems if p.field == "smoke[1]"]
    assert "needs a body" in missing.message and "request" in missing.fix
    assert "smoke[2].expect_status" in fields
    assert "smoke[2].colour" in fields
    assert not any(f.startswith("smoke[0]") for f in fields)


def test_bad_environment_variable_names_are_refused(workdir: Path) -> None:
    data = _set(_base(), "environment.variables", {"GOOD": "1", "BAD NAME": "x", "X\n": "y"})
    fields = _fields(_problems(_write(workdir, data)))
    assert "environment.variables.BAD NAME" in fields
    assert "environment.variables.X\n" in fields


def test_remote_target_needs_a_registry(workdir: Path) -> None:
    data = _base()
    del data["registry"]
    _set(data, "target.kind", "aci")
    assert "registry.url" in _fields(_problems(_write(workdir, data)))


# --- the --target override -----------------------------------------------------------------------


def test_target_override_replaces_the_kind_and_keeps_the_keys_the_new_kind_knows(workdir: Path) -> None:
    assert load_spec(VALID / "service.yaml").target.kind == "local"
    path = _write(workdir, _set(_base(), "target.memory_gb", 2))
    spec = load_spec(path, target_override="kubernetes")
    assert isinstance(spec.target, KubernetesTarget)
    assert spec.target.memory_gb == 2  # a key both kinds know is kept
    assert spec.target.namespace == "default"  # the kind's own defaults fill the rest
    (notice,) = spec.notices
    assert "port" in notice and "ignored" in notice  # a local-only key is dropped, and the user is told


def test_target_override_applies_to_an_empty_target_section(workdir: Path) -> None:
    data = _set(_base(), "target", None)
    spec = load_spec(_write(workdir, data), target_override="kubernetes")
    assert spec.target.kind == "kubernetes"


def test_target_override_is_validated_like_the_file() -> None:
    (problem,) = _problems(VALID / "service.yaml", target_override="mainframe")
    assert problem.field == "target.kind"
    assert "mainframe" in problem.message


def test_target_override_to_remote_needs_a_registry(workdir: Path) -> None:
    data = _base()
    del data["registry"]
    assert "registry.url" in _fields(_problems(_write(workdir, data), target_override="kubernetes"))


# --- SpecError travels through Prefect (pickled) -------------------------------------------------


def test_spec_error_pickles_with_its_problems_and_diagnosis() -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(SPECS / "many_problems" / "service.yaml")
    original = caught.value
    restored = pickle.loads(pickle.dumps(original))
    assert type(restored) is SpecError
    assert isinstance(restored, PermanentError)
    assert restored.problems == original.problems
    assert restored.spec_path == original.spec_path
    assert str(restored) == str(original)
    assert restored.diagnosis == original.diagnosis
    assert restored.diagnosis is not None and restored.diagnosis.code is Code.SPEC_INVALID
