"""The rendered Dockerfile: golden files, layer order, and hostile values that must never reach it."""

from __future__ import annotations

from pathlib import Path

import pytest
from golden import assert_golden

from mldeploy.dockerfile import (
    APP_ROOT,
    CONTAINER_PORT,
    DockerfileInputs,
    check_extra_steps,
    render_dockerfile,
)
from mldeploy.environment import load_environment

REPO = Path(__file__).resolve().parents[2]
DIABETES = REPO / "deployments" / "examples" / "diabetes"
EXTRA_STEPS = REPO / "tests" / "fixtures" / "specs" / "valid" / "extra_steps.Dockerfile"


def _inputs(**changes: object) -> DockerfileInputs:
    values: dict[str, object] = {
        "base_image": "python:3.11-slim",
        "models": (("sklearn_regression_model", 3),),
        "entry_script": "score.py",
        "has_requirements": True,
        "service": "diabetes",
    }
    values.update(changes)
    return DockerfileInputs(**values)  # type: ignore[arg-type]


def _instructions(dockerfile: str) -> list[str]:
    """Instruction lines only (no comments, no blanks, continuation lines folded into their instruction)."""
    found: list[str] = []
    continued = False
    for line in dockerfile.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if continued:
            found[-1] += " " + stripped
        else:
            found.append(stripped)
        continued = stripped.endswith("\\")
    return found


def _index(instructions: list[str], prefix: str) -> int:
    matches = [i for i, line in enumerate(instructions) if line.startswith(prefix)]
    assert len(matches) == 1, f"expected one instruction starting {prefix!r}, found {len(matches)}"
    return matches[0]


# --- golden files ----------------------------------------------------------------------------------


def test_golden_conda_environment_with_requirements() -> None:
    env = load_environment(DIABETES / "myenv.yml", None)
    assert env.requirements, "the diabetes example's conda file lists pip packages"
    dockerfile = render_dockerfile(_inputs(has_requirements=bool(env.requirements)))
    assert_golden(dockerfile, "Dockerfile.conda_requirements")


def test_golden_without_user_requirements() -> None:
    dockerfile = render_dockerfile(_inputs(models=(("iris-classifier", 1),), has_requirements=False))
    assert_golden(dockerfile, "Dockerfile.no_requirements")
    assert "user.txt" not in dockerfile


def test_golden_with_extra_steps() -> None:
    steps = EXTRA_STEPS.read_text()
    assert check_extra_steps(steps) == []
    dockerfile = render_dockerfile(_inputs(extra_steps=steps))
    assert_golden(dockerfile, "Dockerfile.extra_steps")


# --- layer order and hardening -------------------------------------------------------------------


@pytest.mark.parametrize("has_requirements", [True, False])
@pytest.mark.parametrize("extra_steps", ["", "RUN echo extra"])
def test_layers_run_from_least_to_most_often_changed(has_requirements: bool, extra_steps: str) -> None:
    instructions = _instructions(render_dockerfile(_inputs(has_requirements=has_requirements, extra_steps=extra_steps)))
    assert instructions[0] == "FROM python:3.11-slim"
    # the scoring script's folder is the very last instruction, so editing score.py rebuilds one layer
    assert instructions[-1] == f"COPY --chown=10001 app/ {APP_ROOT}/"
    pip_install = _index(instructions, "RUN /opt/mldeploy/venv/bin/pip install")
    wheels = _index(instructions, "COPY wheels/")
    runtime = _index(instructions, "COPY runtime/")
    model = _index(instructions, "COPY model/")
    assert wheels < pip_install < runtime < model < len(instructions) - 1
    if extra_steps:
        assert pip_install < _index(instructions, "RUN echo extra") < runtime


def test_pip_installs_offline_from_the_wheelhouse() -> None:
    with_user = render_dockerfile(_inputs(has_requirements=True))
    without_user = render_dockerfile(_inputs(has_requirements=False))
    assert "--no-index --find-links=/tmp/wheels" in with_user
    assert "-r /tmp/requirements/user.txt" in with_user
    assert "-r /tmp/requirements/user.txt" not in without_user
    assert "-r /tmp/requirements/runtime.txt" in without_user


def test_runs_as_non_root_with_a_healthcheck() -> None:
    instructions = _instructions(render_dockerfile(_inputs()))
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users, "the image must set a USER"
    assert users[-1] not in {"root", "0"}
    health = [line for line in instructions if line.startswith("HEALTHCHECK ")]
    assert len(health) == 1
    assert f"http://127.0.0.1:{CONTAINER_PORT}/" in health[0]
    assert f"EXPOSE {CONTAINER_PORT}" in instructions


def test_model_lands_where_azureml_model_dir_points() -> None:
    dockerfile = render_dockerfile(_inputs(models=(("my.model_v2", 7),)))
    model_dir = f"{APP_ROOT}/azureml-models/my.model_v2/7"
    assert f"COPY model/my.model_v2/7/ {model_dir}/" in dockerfile
    assert "AZUREML_MODEL_DIR=azureml-models/my.model_v2/7 " in dockerfile, "relative to the working directory"
    assert f"WORKDIR {APP_ROOT}" in dockerfile
    assert "AZUREML_ENTRY_SCRIPT=score.py" in dockerfile


def test_several_models_share_azureml_models_as_the_classic_service_did() -> None:
    dockerfile = render_dockerfile(_inputs(models=(("encoder", 2), ("classifier", 1))))
    assert f"COPY model/encoder/2/ {APP_ROOT}/azureml-models/encoder/2/" in dockerfile
    assert f"COPY model/classifier/1/ {APP_ROOT}/azureml-models/classifier/1/" in dockerfile
    assert "AZUREML_MODEL_DIR=azureml-models " in dockerfile


def test_the_azureml_shim_goes_last_on_sys_path() -> None:
    dockerfile = render_dockerfile(_inputs())
    assert '"mldeploy-compat.pth").write_text("/opt/mldeploy/runtime/compat\\n")' in dockerfile


# --- extra steps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "FROM ubuntu:22.04",
        "USER root",
        "COPY secrets/ /root/",
        'CMD ["bash"]',
        'ENTRYPOINT ["sh"]',
        "from ubuntu",  # instructions are case-insensitive in Docker
        "WORKDIR /",
    ],
)
def test_extra_steps_refuse_instructions_that_break_the_image(line: str) -> None:
    text = f"RUN echo before\n{line}\nRUN echo after\n"
    problems = check_extra_steps(text)
    assert len(problems) == 1
    number, message = problems[0]
    assert number == 2
    assert line.split()[0].upper() in message


def test_extra_steps_accept_run_with_continuation_lines() -> None:
    text = (
        "# comment\n"
        "ARG VERSION=1\n"
        "ENV A=1 \\\n"
        "    B=2\n"
        "RUN apt-get update \\\n"
        "  && apt-get install -y --no-install-recommends \\\n"
        "     libgomp1 \\\n"
        "  && rm -rf /var/lib/apt/lists/*\n"
        "\n"
        "LABEL team=ml\n"
    )
    assert check_extra_steps(text) == []


def test_a_continuation_line_starting_with_a_forbidden_word_is_an_argument() -> None:
    assert check_extra_steps("RUN echo \\\n  USER is just an argument here\n") == []


def test_extra_steps_ending_in_a_continuation_are_refused() -> None:
    # rendered, the dangling '\' would swallow the next instruction (COPY runtime/)
    problems = check_extra_steps("RUN pip list \\\n\n# trailing comment\n")
    assert len(problems) == 1
    assert "continuation" in problems[0][1]


# --- hostile values ------------------------------------------------------------------------------

HOSTILE = ["numpy; whoami", "$(id)", "`id`", "x\nRUN id", "x\n", "with space", "-rm", "x'y"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("field", ["base_image", "models", "entry_script"])
def test_render_refuses_hostile_values(field: str, value: str) -> None:
    with pytest.raises(ValueError, match="unsafe"):
        render_dockerfile(_inputs(**{field: ((value, 1),) if field == "models" else value}))


def test_render_refuses_forbidden_extra_steps() -> None:
    with pytest.raises(ValueError, match="USER"):
        render_dockerfile(_inputs(extra_steps="RUN true\nUSER root\n"))
