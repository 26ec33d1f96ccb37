"""The error taxonomy: two roots, one retry predicate, diagnoses that survive pickling (Prefect states)."""

from __future__ import annotations

import pickle

import pytest

from mldeploy.diagnosis import Code, Diagnosis, port_in_use
from mldeploy.errors import (
    MldeployError,
    PermanentError,
    SpecError,
    SpecProblem,
    TransientError,
    is_transient,
)

PROBLEMS = [
    SpecProblem("/s/service.yaml", "name", "'My_Service' is not allowed", "use a DNS-1123 label"),
    SpecProblem("/s/env.yml", "dependencies[1]", "conda package 'cudatoolkit' has no pip equivalent", "remove it"),
]


def test_only_transient_errors_are_retried() -> None:
    assert is_transient(TransientError("registry answered 503"))
    assert not is_transient(PermanentError("unauthorized"))
    assert not is_transient(SpecError("/s/service.yaml", PROBLEMS))
    # unknown errors are permanent
    assert not is_transient(RuntimeError("boom"))
    assert not is_transient(TimeoutError("timed out"))
    assert not is_transient(ConnectionError("reset"))


def test_hierarchy() -> None:
    assert issubclass(SpecError, PermanentError)
    assert issubclass(PermanentError, MldeployError) and issubclass(TransientError, MldeployError)
    assert not issubclass(TransientError, PermanentError)


@pytest.mark.parametrize("cls", [MldeployError, PermanentError, TransientError])
def test_errors_pickle_with_their_diagnosis(cls: type[MldeployError]) -> None:
    diagnosis = port_in_use(8890, "Bind for 127.0.0.1:8890 failed: port is already allocated")
    error = cls("deploy: port 8890 is taken", diagnosis=diagnosis)
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is cls
    assert str(restored) == "deploy: port 8890 is taken"
    assert restored.message == error.message
    assert restored.diagnosis == diagnosis
    assert isinstance(restored.diagnosis, Diagnosis) and restored.diagnosis.code is Code.PORT_IN_USE


def test_error_without_diagnosis_pickles() -> None:
    restored = pickle.loads(pickle.dumps(PermanentError("plain")))
    assert restored.diagnosis is None and str(restored) == "plain"


def test_spec_error_carries_every_problem_and_a_diagnosis() -> None:
    error = SpecError("/s/service.yaml", PROBLEMS)
    assert error.problems == PROBLEMS
    assert str(error).splitlines() == [
        "/s/service.yaml: 2 problem(s) in the service spec",
        "  - /s/service.yaml: name: 'My_Service' is not allowed (fix: use a DNS-1123 label)",
        "  - /s/env.yml: dependencies[1]: conda package 'cudatoolkit' has no pip equivalent (fix: remove it)",
    ]
    assert error.diagnosis is not None
    assert error.diagnosis.code is Code.SPEC_INVALID
    assert error.diagnosis.stage == "validate"
    assert "'My_Service' is not allowed" in error.diagnosis.detail
    assert "cudatoolkit" in error.diagnosis.detail


def test_spec_error_pickles() -> None:
    error = SpecError("/s/service.yaml", PROBLEMS)
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is SpecError
    assert restored.problems == PROBLEMS
    assert restored.spec_path == "/s/service.yaml"
    assert restored.diagnosis == error.diagnosis
    assert str(restored) == str(error)


def test_spec_problem_as_dict() -> None:
    assert PROBLEMS[0].to_dict() == {
        "file": "/s/service.yaml",
        "field": "name",
        "message": "'My_Service' is not allowed",
        "fix": "use a DNS-1123 label",
    }


def test_raise_from_keeps_the_cause_for_the_log() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as exc:
            raise TransientError("registry 127.0.0.1:5000 unreachable") from exc
    except TransientError as error:
        assert isinstance(error.__cause__, ConnectionRefusedError)
        assert is_transient(error)
