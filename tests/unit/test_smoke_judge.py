"""Judging smoke replies: status, payload (with the path of each difference), float tolerance, latency."""

from __future__ import annotations

import json

from mldeploy.smoke import differences, judge
from mldeploy.spec import SmokeCase


def _case(**changes: object) -> SmokeCase:
    values: dict[str, object] = {"name": "one patient", "request": {"data": [[1, 2]]}, "expect_status": 200}
    values.update(changes)
    return SmokeCase.model_validate(values)  # has_expect: whether 'expect' was given


def test_a_matching_reply_passes() -> None:
    result = judge(_case(expect=[199.8485830226578]), 200, "[199.8485830226578]", 0.012)
    assert result.passed
    assert result.problems == ()
    assert result.latency_ms == 12.0
    assert result.row()["result"] == "pass"


def test_status_mismatch() -> None:
    result = judge(_case(), 500, "An unexpected error occurred in scoring script.", 0.01)
    assert not result.passed
    assert result.problems == ("status 500, expected 200",)
    assert result.row()["status"] == "500"
    assert result.row()["result"].startswith("FAIL: status 500")


def test_expected_error_status_passes() -> None:
    assert judge(_case(expect_status=400), 400, "bad input", 0.01).passed


def test_payload_mismatch_names_the_path() -> None:
    case = _case(expect={"predictions": ["setosa", "virginica"], "model": {"version": 2}})
    body = json.dumps({"predictions": ["setosa", "versicolor"], "model": {"version": 2}})
    result = judge(case, 200, body, 0.01)
    assert not result.passed
    assert result.problems == ("$.predictions[1]: expected 'virginica', got 'versicolor'",)


def test_missing_and_unexpected_keys() -> None:
    found = differences({"a": 1, "b": 2}, {"a": 1, "c": 3})
    assert found == ["$.b: missing", "$.c: unexpected"]


def test_list_length_mismatch() -> None:
    assert differences([1, 2], [1, 2, 3]) == ["$: expected 2 items, got 3"]


def test_floats_within_tolerance_match() -> None:
    assert differences([199.8485830226578], [199.84858302265781]) == []  # last-digit noise
    assert differences({"p": 0.1 + 0.2}, {"p": 0.3}) == []
    assert differences(1, 1.0) == []
    assert differences(0.0, 1e-12) == []


def test_floats_outside_tolerance_differ() -> None:
    assert differences([199.8485830226578], [199.85]) == ["$[0]: expected 199.8485830226578, got 199.85"]
    assert differences(1.0, 1.001) != []


def test_booleans_are_not_numbers() -> None:
    assert differences(True, 1) == ["$: expected True, got 1"]
    assert differences(1, True) == ["$: expected 1, got True"]
    assert differences(False, False) == []


def test_type_mismatch() -> None:
    assert differences({"a": 1}, [1]) == ["$: expected {'a': 1}, got [1]"]
    assert differences("1", 1) == ["$: expected '1', got 1"]


def test_a_plain_text_reply_is_compared_as_text() -> None:
    assert judge(_case(expect="Healthy"), 200, "Healthy", 0.01).passed
    result = judge(_case(expect="Healthy"), 200, "Unhealthy", 0.01)
    assert result.problems == ("$: expected 'Healthy', got 'Unhealthy'",)


def test_no_expect_means_only_the_status_is_checked() -> None:
    assert judge(_case(), 200, "anything at all", 0.01).passed


def test_expect_null_is_checked() -> None:
    assert not judge(_case(expect=None), 200, "[1]", 0.01).passed
    assert judge(_case(expect=None), 200, "null", 0.01).passed


def test_latency_limit() -> None:
    case = _case(max_latency_ms=500)
    assert judge(case, 200, "[]", 0.499).passed
    slow = judge(case, 200, "[]", 0.75)
    assert not slow.passed
    assert slow.problems == ("took 750 ms, limit 500 ms",)


def test_no_answer() -> None:
    result = judge(_case(expect=[1]), None, "", 30.0, error="timed out after 30 s")
    assert not result.passed
    assert result.problems == ("no answer (timed out after 30 s)",)  # no payload noise on top
    assert result.status is None
    assert result.row()["status"] == "no answer"


def test_all_problems_of_one_reply_are_listed() -> None:
    result = judge(_case(expect=[1], max_latency_ms=10), 500, "[2]", 0.2)
    assert result.problems == ("status 500, expected 200", "$[0]: expected 1, got 2", "took 200 ms, limit 10 ms")


def test_long_replies_are_cut_in_the_report() -> None:
    body = json.dumps(list(range(1000)))
    result = judge(_case(), 200, body, 0.01)
    assert len(result.response_excerpt) == 201
    assert result.response_excerpt.endswith("…")
