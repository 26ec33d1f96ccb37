"""The diagnosis catalog: realistic evidence in, the right stable code, evidence and fix out."""

from __future__ import annotations

import math

import pytest

from mldeploy.diagnosis import (
    Code,
    Diagnosis,
    build_failure,
    burst_503,
    container_exit,
    dependency_failure,
    health_timeout,
    last_traceback,
    port_in_use,
    registry_auth_denied,
    registry_unavailable,
    replicas_needed,
    run_failed,
    scoring_timeout,
    smoke_mismatch,
    spec_invalid,
    tail,
    unknown,
    unresolvable_requirements,
)

# --- evidence, as the tools print it -------------------------------------------------------------

PIP_NO_DISTRIBUTION = """\
Looking in indexes: https://pypi.org/simple
Collecting joblib
  Using cached joblib-1.4.2-py3-none-any.whl.metadata (5.4 kB)
ERROR: Could not find a version that satisfies the requirement nonexistent-pkg==1.0 (from versions: none)
ERROR: No matching distribution found for nonexistent-pkg==1.0
"""

PIP_CONFLICT = """\
Collecting scikit-learn==1.5.2
Collecting numpy<1.19
ERROR: Cannot install scikit-learn==1.5.2 and numpy<1.19 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested numpy<1.19
    scikit-learn 1.5.2 depends on numpy>=1.19.5

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""

CLASSIC_BUILD_LOG = """\
Step 1/12 : FROM python:3.11-slim
 ---> 1a2b3c4d5e6f
Step 2/12 : ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
 ---> Using cache
 ---> 2b3c4d5e6f70
Step 3/12 : COPY wheels/ /tmp/wheels/
 ---> Using cache
 ---> 3c4d5e6f7081
Step 4/12 : RUN /opt/mldeploy/venv/bin/pip install --no-index --find-links=/tmp/wheels -r /tmp/requirements/runtime.txt
 ---> Using cache
 ---> 4d5e6f708192
Step 5/12 : RUN apt-get install -y libgomp1
 ---> Running in 9f8e7d6c5b4a
Reading package lists...
E: Unable to locate package libgomp1
"""
CLASSIC_BUILD_ERROR = "The command '/bin/sh -c apt-get install -y libgomp1' returned a non-zero code: 100"

CLASSIC_BUILD_PIP_LOG = """\
Step 3/12 : COPY wheels/ /tmp/wheels/
 ---> 3c4d5e6f7081
Step 4/12 : RUN /opt/mldeploy/venv/bin/pip install --no-index --find-links=/tmp/wheels -r /tmp/requirements/user.txt
 ---> Running in 0a1b2c3d4e5f
Looking in links: /tmp/wheels
ERROR: Could not find a version that satisfies the requirement torch==2.3.0 (from versions: none)
ERROR: No matching distribution found for torch==2.3.0
"""

MODEL_DIR = "/var/azureml-app/azureml-models/sklearn_regression_model/1"

# What mldeploy_runtime prints when init() cannot open the model (see mldeploy_runtime/server.py, logs.py).
INIT_MODEL_NOT_FOUND = f"""\
mldeploy-runtime: init() failed
Traceback (most recent call last):
  File "/opt/mldeploy/runtime/mldeploy_runtime/server.py", line 86, in _load_and_init
    script.init()
  File "/var/azureml-app/score.py", line 13, in init
    model = joblib.load(model_path)
            ^^^^^^^^^^^^^^^^^^^^^^^
  File "/opt/mldeploy/venv/lib/python3.11/site-packages/joblib/numpy_pickle.py", line 650, in load
    with open(filename, 'rb') as f:
         ^^^^^^^^^^^^^^^^^^^^
FileNotFoundError: [Errno 2] No such file or directory: '{MODEL_DIR}/model.pkl'
mldeploy-runtime: init() could not find {MODEL_DIR}/model.pkl
mldeploy-runtime: AZUREML_MODEL_DIR={MODEL_DIR} contains:
  sklearn_regression_model.pkl
  extra/notes.txt
mldeploy-runtime: exiting with code 3
"""

INIT_RAISES = """\
mldeploy-runtime: init() failed
Traceback (most recent call last):
  File "/opt/mldeploy/runtime/mldeploy_runtime/server.py", line 86, in _load_and_init
    script.init()
  File "/var/azureml-app/score.py", line 9, in init
    model = load(os.environ["MODEL_FLAVOUR"])
                 ~~~~~~~~~~^^^^^^^^^^^^^^^^^
  File "<frozen os>", line 679, in __getitem__
KeyError: 'MODEL_FLAVOUR'
mldeploy-runtime: AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/m/1 contains:
  model.pkl
mldeploy-runtime: exiting with code 3
"""

IMPORT_FAILS = """\
mldeploy-runtime: entry script /var/azureml-app/score.py failed to import
Traceback (most recent call last):
  File "/opt/mldeploy/runtime/mldeploy_runtime/user_script.py", line 103, in load
    spec.loader.exec_module(module)
  File "<frozen importlib._bootstrap_external>", line 940, in exec_module
  File "<frozen importlib._bootstrap>", line 241, in _call_with_frames_removed
  File "/var/azureml-app/score.py", line 3, in <module>
    import torch
ModuleNotFoundError: No module named 'torch'
mldeploy-runtime: AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/m/1 contains:
  model.pt
mldeploy-runtime: exiting with code 3
"""

RUN_RAISES = """\
mldeploy-runtime: init() done in 0.412s; serving on port 5001
mldeploy-runtime: run() failed: KeyError (request id 3f2a)
Traceback (most recent call last):
  File "/opt/mldeploy/runtime/mldeploy_runtime/app.py", line 120, in _score
    result = script.run(body)
  File "/var/azureml-app/score.py", line 20, in run
    rows = json.loads(raw_data)["rows"]
           ~~~~~~~~~~~~~~~~~~~~^^^^^^^^
KeyError: 'rows'
"""


# --- build ---------------------------------------------------------------------------------------


def test_pip_no_matching_distribution() -> None:
    diagnosis = dependency_failure(PIP_NO_DISTRIBUTION, "deployments/examples/diabetes/myenv.yml")
    assert diagnosis.code is Code.DEPENDENCY_RESOLUTION_FAILED
    assert diagnosis.stage == "build"
    assert "nonexistent-pkg==1.0" in diagnosis.summary
    assert "deployments/examples/diabetes/myenv.yml" in diagnosis.hint
    assert "No matching distribution found for nonexistent-pkg==1.0" in diagnosis.detail


def test_every_unresolvable_requirement_is_named_with_what_is_known_of_it() -> None:
    found = unresolvable_requirements(
        [("numpy==1.16.6", True, True), ("lightgbm==2.0.4", False, True), ("nopkg==9", False, False)],
        "3.11",
        "3.10.4",
        "myenv.yml",
    )
    assert found.code is Code.DEPENDENCY_RESOLUTION_FAILED and found.stage == "build"
    assert (
        found.summary == "3 requirement(s) cannot be installed on Python 3.11: numpy==1.16.6, lightgbm==2.0.4, nopkg==9"
    )
    lines = found.detail.splitlines()
    assert lines[0] == "numpy==1.16.6: no wheel for Python 3.11, but there is one for Python 3.10.4"
    assert "source archive does not build into a pure-Python wheel" in lines[1]
    assert lines[2] == "nopkg==9: no version has a wheel for Python 3.11 (manylinux x86_64)"
    assert "environment.python: '3.10'" in found.hint and "myenv.yml" in found.hint


def test_a_pinned_python_the_runtime_cannot_use_is_not_offered_as_the_fix() -> None:
    found = unresolvable_requirements(
        [("numpy==1.16.6", True, False)], "3.11", "3.6.2", "myenv.yml", runtime_can_use=False
    )
    assert "environment.python" not in found.hint
    assert "older than the scoring runtime supports" in found.hint


def test_pip_conflict() -> None:
    diagnosis = dependency_failure(PIP_CONFLICT, "requirements.txt")
    assert diagnosis.code is Code.DEPENDENCY_RESOLUTION_FAILED
    assert "conflict" in diagnosis.summary
    assert "requirements.txt" in diagnosis.hint


def test_pip_unknown_failure_still_shows_the_output() -> None:
    diagnosis = dependency_failure("ERROR: HTTP error 404 while getting https://files/x.whl\n")
    assert diagnosis.code is Code.DEPENDENCY_RESOLUTION_FAILED
    assert "HTTP error 404" in diagnosis.detail
    assert "the environment file" in diagnosis.hint


def test_classic_builder_log_names_the_failing_step() -> None:
    diagnosis = build_failure(CLASSIC_BUILD_LOG, CLASSIC_BUILD_ERROR)
    assert diagnosis.code is Code.DOCKERFILE_STEP_FAILED
    assert diagnosis.summary == "Dockerfile step failed: Step 5/12 : RUN apt-get install -y libgomp1"
    assert diagnosis.detail.startswith("Step 5/12 : RUN apt-get install -y libgomp1")
    assert "E: Unable to locate package libgomp1" in diagnosis.detail
    assert diagnosis.detail.endswith(CLASSIC_BUILD_ERROR)
    assert "Step 4/12" not in diagnosis.detail  # only the failing step's output
    assert "extra_dockerfile_steps" in diagnosis.hint


def test_pip_failure_inside_the_build_is_a_dependency_problem() -> None:
    error = "The command '/bin/sh -c ...' returned a non-zero code: 1"
    diagnosis = build_failure(CLASSIC_BUILD_PIP_LOG, error)
    assert diagnosis.code is Code.DEPENDENCY_RESOLUTION_FAILED
    assert "torch==2.3.0" in diagnosis.summary
    assert diagnosis.stage == "build"


def test_build_failure_without_steps() -> None:
    diagnosis = build_failure("failed to read dockerfile: open Dockerfile: no such file", "build failed")
    assert diagnosis.code is Code.DOCKERFILE_STEP_FAILED
    assert diagnosis.summary == "the image build failed"
    assert "no such file" in diagnosis.detail


def test_long_logs_keep_only_the_tail() -> None:
    log = "Step 1/2 : RUN make\n" + "".join(f"line {i}\n" for i in range(1000))
    diagnosis = build_failure(log, "boom")
    assert "line 999" in diagnosis.detail
    assert "line 10\n" not in diagnosis.detail
    assert len(diagnosis.detail.splitlines()) <= 31


# --- registry ------------------------------------------------------------------------------------


def test_registry_diagnoses() -> None:
    denied = registry_auth_denied("myacr.azurecr.io", "unauthorized: authentication required")
    assert denied.code is Code.REGISTRY_AUTH_DENIED and denied.stage == "push"
    assert "password_env" in denied.hint
    down = registry_unavailable("127.0.0.1:5000", "connection refused")
    assert down.code is Code.REGISTRY_UNAVAILABLE
    assert "make setup" in down.hint and "127.0.0.1:5000" in down.hint


# --- container start -----------------------------------------------------------------------------


def test_init_cannot_find_the_model_shows_the_path_and_the_listing() -> None:
    diagnosis = container_exit(3, False, INIT_MODEL_NOT_FOUND)
    assert diagnosis.code is Code.MODEL_PATH_NOT_FOUND
    assert diagnosis.stage == "deploy"
    assert f"{MODEL_DIR}/model.pkl" in diagnosis.summary
    assert f"{MODEL_DIR} contains:\n  sklearn_regression_model.pkl\n  extra/notes.txt" in diagnosis.detail
    assert "FileNotFoundError" in diagnosis.detail  # the traceback
    assert "AZUREML_MODEL_DIR" in diagnosis.hint


def test_model_not_found_from_a_plain_traceback_without_marker_lines() -> None:
    log = INIT_MODEL_NOT_FOUND.split("mldeploy-runtime: init() could not find")[0]
    diagnosis = container_exit(1, False, log)
    assert diagnosis.code is Code.MODEL_PATH_NOT_FOUND
    assert f"{MODEL_DIR}/model.pkl" in diagnosis.summary
    assert "(no listing in the log)" in diagnosis.detail


def test_init_failure_shows_the_traceback() -> None:
    diagnosis = container_exit(3, False, INIT_RAISES)
    assert diagnosis.code is Code.INIT_FAILED
    assert "code 3" in diagnosis.summary
    assert diagnosis.detail.startswith("Traceback (most recent call last):")
    assert diagnosis.detail.endswith("KeyError: 'MODEL_FLAVOUR'")
    assert "init()" in diagnosis.hint


def test_a_missing_module_at_import_points_at_the_environment_file() -> None:
    diagnosis = container_exit(3, False, IMPORT_FAILS)
    assert diagnosis.code is Code.INIT_FAILED
    assert diagnosis.summary == "the entry script failed to import (code 3): no module named 'torch'"
    assert diagnosis.detail.endswith("ModuleNotFoundError: No module named 'torch'")
    assert "'torch'" in diagnosis.hint and "environment file" in diagnosis.hint


def test_another_import_time_error_points_at_the_top_level_of_the_script() -> None:
    log = IMPORT_FAILS.replace("ModuleNotFoundError: No module named 'torch'", "NameError: name 'np' is not defined")
    diagnosis = container_exit(3, False, log)
    assert diagnosis.code is Code.INIT_FAILED
    assert diagnosis.summary == "the entry script failed to import (code 3)"
    assert "top level" in diagnosis.hint


def test_exit_without_a_traceback() -> None:
    diagnosis = container_exit(127, False, "exec: python3: not found\n")
    assert diagnosis.code is Code.INIT_FAILED
    assert "code 127" in diagnosis.summary
    assert "python3: not found" in diagnosis.detail


@pytest.mark.parametrize(("exit_code", "oom_killed"), [(137, True), (None, True)])
def test_out_of_memory(exit_code: int | None, oom_killed: bool) -> None:
    log = "loading embeddings (4.2 GB)...\nKilled\n"
    diagnosis = container_exit(exit_code, oom_killed, log, memory_limit="512m")
    assert diagnosis.code is Code.OUT_OF_MEMORY
    assert "512m" in diagnosis.hint
    assert "Killed" in diagnosis.detail


def test_exit_137_without_the_oom_flag_is_a_kill_not_out_of_memory() -> None:
    diagnosis = container_exit(137, False, "loading...\n", memory_limit="512m")
    assert diagnosis.code is Code.INIT_FAILED
    assert "killed" in diagnosis.summary and "not by its memory limit" in diagnosis.summary


def test_port_in_use() -> None:
    message = (
        "driver failed programming external connectivity on endpoint diabetes: "
        "Bind for 127.0.0.1:8890 failed: port is already allocated"
    )
    diagnosis = port_in_use(8890, message)
    assert diagnosis.code is Code.PORT_IN_USE
    assert "8890" in diagnosis.summary and "target.port" in diagnosis.hint
    assert diagnosis.detail == message


def test_health_timeout() -> None:
    diagnosis = health_timeout(60, "loading embeddings (4.2 GB)...\n")
    assert diagnosis.code is Code.HEALTH_TIMEOUT
    assert "60 s" in diagnosis.summary
    assert "deploy.health_timeout_seconds" in diagnosis.hint
    assert "loading embeddings" in diagnosis.detail


def test_last_traceback_picks_the_last_one() -> None:
    log = INIT_RAISES + "\n" + RUN_RAISES
    assert last_traceback(log).endswith("KeyError: 'rows'")
    assert last_traceback("no traceback here\n") == "no traceback here"


# --- smoke ---------------------------------------------------------------------------------------


def test_run_failed_shows_the_traceback_from_the_log() -> None:
    diagnosis = run_failed("one patient", 500, RUN_RAISES)
    assert diagnosis.code is Code.RUN_FAILED and diagnosis.stage == "smoke"
    assert "'one patient'" in diagnosis.summary and "HTTP 500" in diagnosis.summary
    assert diagnosis.detail.endswith("KeyError: 'rows'")
    assert "deploy.debug" in diagnosis.hint


def test_smoke_mismatch_and_timeout() -> None:
    mismatch = smoke_mismatch(["one: $[0]: expected 1, got 2", "two: status 400, expected 200"])
    assert mismatch.code is Code.SMOKE_MISMATCH
    assert "2 smoke request(s)" in mismatch.summary
    assert "previous version" in mismatch.hint
    timeout = scoring_timeout("slow", 30)
    assert timeout.code is Code.SCORING_TIMEOUT and "30 s" in timeout.summary


def test_burst_503_recommends_enough_replicas() -> None:
    diagnosis = burst_503(100, 0.1, replicas=2)
    assert diagnosis.code is Code.BURST_503
    assert "at least 15" in diagnosis.hint


# --- the guide's replica formula -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rps", "seconds", "utilization", "concurrency"),
    [
        (100, 0.1, 0.7, 1),
        (7, 0.1, 0.7, 1),  # exactly 1.0: floating point must not round it up to 2
        (14, 0.1, 0.7, 1),
        (21, 0.1, 0.7, 1),
        (50, 0.2, 0.5, 2),
        (1000, 0.05, 0.7, 4),
        (3, 0.25, 0.7, 1),
    ],
)
def test_replicas_needed_matches_the_guide(rps: float, seconds: float, utilization: float, concurrency: int) -> None:
    # the guide: replicas = ceil(target_rps × request_seconds / target_utilization
    #                              / max_concurrent_per_container), computed here in exact fractions
    from fractions import Fraction

    exact = Fraction(str(rps)) * Fraction(str(seconds)) / Fraction(str(utilization)) / concurrency
    assert replicas_needed(rps, seconds, utilization, concurrency) == max(1, math.ceil(exact))


@pytest.mark.parametrize(("rps", "seconds"), [(0, 0.1), (10, 0), (-5, 0.1), (0.1, 0.01)])
def test_replicas_needed_is_at_least_one(rps: float, seconds: float) -> None:
    assert replicas_needed(rps, seconds) == 1


def test_replicas_needed_known_values() -> None:
    assert replicas_needed(100, 0.1) == 15
    assert replicas_needed(7, 0.1) == 1
    assert replicas_needed(14, 0.1) == 2
    assert replicas_needed(10, 1.0, target_utilization=0.5, max_concurrent_per_container=2) == 10


# --- secrets and formatting ----------------------------------------------------------------------


def test_spec_invalid_lists_the_problems() -> None:
    diagnosis = spec_invalid("/specs/service.yaml", ["name: bad", "model.path: missing"])
    assert diagnosis.code is Code.SPEC_INVALID and diagnosis.stage == "validate"
    assert diagnosis.detail == "name: bad\nmodel.path: missing"
    assert "/specs/service.yaml" in diagnosis.hint
    assert "2 problem(s)" in diagnosis.summary


def test_unknown_uses_the_first_line() -> None:
    diagnosis = unknown("push", "weird failure\nwith details")
    assert diagnosis.code is Code.UNKNOWN
    assert diagnosis.summary == "push failed: weird failure"
    assert unknown("push", "").summary == "push failed: unknown error"


def test_diagnosis_serialises_with_a_plain_code() -> None:
    diagnosis = Diagnosis(Code.PORT_IN_USE, "summary", "detail", "hint", "deploy")
    data = diagnosis.to_dict()
    assert data == {"code": "port_in_use", "summary": "summary", "detail": "detail", "hint": "hint", "stage": "deploy"}
    assert type(data["code"]) is str
    markdown = diagnosis.to_markdown()
    assert markdown.startswith("## deploy: summary")
    assert "`port_in_use`" in markdown and "detail" in markdown


def test_codes_are_stable_strings() -> None:
    # the JSON contract: these values are what CI scripts match on
    assert {c.value for c in Code} >= {
        "spec_invalid",
        "dependency_resolution_failed",
        "dockerfile_step_failed",
        "init_failed",
        "model_path_not_found",
        "out_of_memory",
        "port_in_use",
        "health_timeout",
        "run_failed",
        "smoke_mismatch",
        "unknown",
    }


def test_tail() -> None:
    assert tail("a\nb\nc\n", 2) == "b\nc"
    assert tail("") == ""


def test_every_code_is_in_the_readme_table() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("### Diagnosis codes", 1)[1].split("\n## ", 1)[0]
    not_emitted_yet = {Code.BURST_503}  # the catalog has it; the scaled targets (Kubernetes, ACI) will raise it
    missing = [code.value for code in Code if f"`{code.value}`" not in table and code not in not_emitted_yet]
    assert missing == []
