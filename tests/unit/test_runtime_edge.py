"""The scoring runtime at the edge and the rest of the compatibility suite, as a real server process.

Readiness vs liveness during a slow init(), key auth and its rotation, JSON depth and type errors, request ids,
CORS; and the real-world-shaped scripts: inference-schema pandas and standard types, several models in one service,
a script that prints, and a run() that returns a response object. Same harness as test_runtime.py.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from pathlib import Path

import pytest

from tests.unit.test_runtime import FIXTURES, GENERIC_500, MODEL_FILE_DIR, StartServer, start_server

__all__ = ["start_server"]  # the fixture, shared with test_runtime.py

pytestmark = pytest.mark.timeout(60)

KEY_A = "primary-key-0123456789abcdef"
KEY_B = "secondary-key-0123456789abcdef"
JSON_CT = {"Content-Type": "application/json"}


# -- liveness, readiness, init() duration ------------------------------------------------------------------


def test_liveness_answers_while_init_runs_and_readiness_waits_for_it(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "slow_init", env={"INIT_SLEEP_S": "1.5"})
    s.wait_for_log("slow_init: loading", stream="stdout")

    # alive, not ready: a probe can tell a slow load from a dead process
    assert s.request("GET", "/")[::2] == (200, b"Healthy")
    status, _, body = s.request("GET", "/readyz")
    assert status == 503 and body.startswith(b"Loading: init() has run for")
    info = json.loads(s.request("GET", "/info")[2])
    assert (info["state"], info["ready"], info["init_seconds"]) == ("loading", False, None)
    assert info["loading_seconds"] >= 0

    # a scoring request that arrives while loading waits for init() instead of failing
    started = time.monotonic()
    status, _, body = s.post("early")
    assert (status, json.loads(body)) == (200, {"ready": True, "echo": "early"})
    assert time.monotonic() - started > 0.3

    assert s.request("GET", "/readyz")[::2] == (200, b"Ready")
    info = json.loads(s.request("GET", "/info")[2])
    assert info["state"] == "ready" and info["ready"] is True
    assert 1.4 <= info["init_seconds"] < 10 and info["loading_seconds"] is None
    assert info["uid"] == os.geteuid() and info["input_mode"] == "string"
    assert "mldeploy-runtime: init() done in 1." in s.stderr


def test_requests_during_init_give_up_after_the_scoring_timeout(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "slow_init", env={"INIT_SLEEP_S": "3", "SCORING_TIMEOUT_MS": "400"})
    status, headers, body = s.post("too early")
    assert status == 503 and headers["retry-after"] == "1"
    assert "still loading" in json.loads(body)["message"]
    assert s.request("GET", "/")[0] == 200


def test_init_failure_after_the_port_opened_exits_3_and_releases_waiting_requests(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "slow_init", env={"INIT_SLEEP_S": "0.8", "INIT_FAIL": "1"})
    assert s.request("GET", "/")[0] == 200
    result: list[int] = []

    def waiting_request() -> None:
        try:
            result.append(s.post("x")[0])
        except (OSError, http.client.HTTPException):
            result.append(-1)

    waiter = threading.Thread(target=waiting_request)
    waiter.start()
    assert s.proc.wait(timeout=20) == 3
    waiter.join(timeout=10)
    assert result in ([503], [-1])
    lines = s.stderr.splitlines()
    assert "mldeploy-runtime: init() failed" in lines
    assert "RuntimeError: model file is corrupt" in s.stderr
    assert f"mldeploy-runtime: AZUREML_MODEL_DIR={MODEL_FILE_DIR} contains:" in lines
    assert "mldeploy-runtime: exiting with code 3" in lines


def test_two_workers_are_ready_only_when_both_finished_init(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "slow_init", env={"INIT_SLEEP_S": "1", "WORKER_COUNT": "2"})
    assert s.request("GET", "/")[0] == 200
    assert s.request("GET", "/readyz")[0] == 503
    deadline = time.monotonic() + 15
    while s.request("GET", "/readyz")[0] != 200:
        assert time.monotonic() < deadline, s.stderr
        time.sleep(0.05)
    assert s.stderr.count("init() done in") == 2
    for _ in range(4):  # whichever worker answers, both are ready
        assert s.request("GET", "/readyz")[::2] == (200, b"Ready")


# -- key auth ------------------------------------------------------------------------------------------------


def test_key_auth_primary_and_secondary(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw", env={"MLDEPLOY_AUTH_PRIMARY_KEY": KEY_A, "MLDEPLOY_AUTH_SECONDARY_KEY": KEY_B})
    body = json.dumps({"data": [[1, 1, 1]]})
    status, headers, answer = s.post(body)
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in json.loads(answer)["message"]
    assert s.post(body, {"Authorization": "Bearer wrong-key-0123456789"})[0] == 401
    assert s.post(body, {"Authorization": KEY_A})[0] == 401  # the scheme is required
    assert s.post(body, {"Authorization": f"Basic {KEY_A}"})[0] == 401
    assert s.post(body, {"Authorization": f"Bearer {KEY_A}x"})[0] == 401
    # both keys are valid at once: rotation without refusing a request
    assert s.post(body, {"Authorization": f"Bearer {KEY_A}"})[0] == 200
    assert s.post(body, {"Authorization": f"bearer {KEY_B}"})[0] == 200
    assert s.request("GET", f"/score?data=[[1,1,1]]&key={KEY_A}")[0] == 401

    # probes stay open; the documents and the info need the key
    assert s.request("GET", "/")[0] == 200
    assert s.request("GET", "/readyz")[0] == 200
    assert s.request("GET", "/swagger.json")[0] == 401
    assert s.request("GET", "/info")[0] == 401
    assert s.request("GET", "/swagger.json", headers={"Authorization": f"Bearer {KEY_B}"})[0] == 200
    info = json.loads(s.request("GET", "/info", headers={"Authorization": f"Bearer {KEY_A}"})[2])
    assert info["auth"] == ["MLDEPLOY_AUTH_PRIMARY_KEY", "MLDEPLOY_AUTH_SECONDARY_KEY"]

    # run() ran exactly for the two accepted requests, and no key reached the log
    time.sleep(0.1)
    assert s.stdout.count("run: got") == 2
    assert KEY_A not in s.stderr + s.stdout and KEY_B not in s.stderr + s.stdout
    assert "key auth is on" in s.stderr


def test_keys_are_not_visible_to_the_scoring_script(start_server: StartServer, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "score.py").write_text(
        "import os\ndef init(): pass\n"
        "def run(data): return sorted(k for k in os.environ if k.startswith('MLDEPLOY_AUTH'))\n"
    )
    s = start_server(app, env={"MLDEPLOY_AUTH_PRIMARY_KEY": KEY_A})
    status, _, body = s.post("x", {"Authorization": f"Bearer {KEY_A}"})
    assert (status, json.loads(body)) == (200, [])


def test_key_file_is_reread_when_it_changes(start_server: StartServer, tmp_path: Path) -> None:
    """A mounted secret (MLDEPLOY_AUTH_*_KEY_FILE) rotates without a restart."""
    primary = tmp_path / "primary"
    primary.write_text(KEY_A + "\n")
    s = start_server(FIXTURES / "raw", env={"MLDEPLOY_AUTH_PRIMARY_KEY_FILE": str(primary)})
    ok = json.dumps({"data": [[1, 1, 1]]})
    assert s.post(ok, {"Authorization": f"Bearer {KEY_A}"})[0] == 200
    primary.write_text(KEY_B + "\n")
    deadline = time.monotonic() + 5
    while s.post(ok, {"Authorization": f"Bearer {KEY_B}"})[0] != 200:
        assert time.monotonic() < deadline, s.stderr
        time.sleep(0.2)
    assert s.post(ok, {"Authorization": f"Bearer {KEY_A}"})[0] == 401
    assert "MLDEPLOY_AUTH_PRIMARY_KEY changed" in s.stderr
    assert KEY_A not in s.stderr and KEY_B not in s.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLDEPLOY_AUTH_PRIMARY_KEY": "short"}, "MLDEPLOY_AUTH_PRIMARY_KEY is shorter than 16 characters"),
        ({"MLDEPLOY_AUTH_SECONDARY_KEY_FILE": "/nonexistent/key"}, "is not a readable file"),
        ({"SCORING_TIMEOUT_MS": "soon"}, "SCORING_TIMEOUT_MS='soon' is not an integer"),
        ({"AZUREML_LOG_LEVEL": "loud"}, "AZUREML_LOG_LEVEL='loud' is not one of"),
    ],
)
def test_invalid_settings_exit_3(start_server: StartServer, env: dict[str, str], message: str) -> None:
    s = start_server(FIXTURES / "raw", env=env, wait=False)
    assert s.proc.wait(timeout=20) == 3
    assert "mldeploy-runtime: invalid setting: " in s.stderr and message in s.stderr
    assert "short" not in s.stderr.replace("shorter", "")


# -- request limits and bad input ------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def test_deeply_nested_json_is_refused_before_run(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw", env={"MLDEPLOY_MAX_JSON_DEPTH": "20"})
    status, _, body = s.post(json.dumps({"data": json.loads(_nested(19))}))  # 20 levels with the object
    assert status == 500  # reached run(), which cannot use it
    status, _, body = s.post(json.dumps({"data": json.loads(_nested(20))}))
    assert status == 400 and "MLDEPLOY_MAX_JSON_DEPTH" in json.loads(body)["message"]
    # brackets inside strings do not count
    assert s.post(json.dumps({"data": [[1, 1, 1]], "note": "[" * 100}))[0] == 200
    # half a mebibyte of brackets is refused fast
    started = time.monotonic()
    assert s.post("[" * 500_000 + "]" * 500_000)[0] == 400
    assert time.monotonic() - started < 2
    time.sleep(0.1)
    assert s.stdout.count("run: got") == 2


def test_default_depth_limit_for_typed_scripts(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "schema_numpy")
    status, _, body = s.post('{"data": ' + _nested(100) + "}", JSON_CT)
    assert status == 400 and "nested deeper than 64 levels" in json.loads(body)["message"]
    status, _, body = s.post('{"data": ' + _nested(200_000) + "}", JSON_CT)
    assert status == 400


def test_typed_input_errors_name_the_parameter(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "schema_numpy")
    cases = [
        {"data": [["a", "b", "c"]]},  # not numbers
        {"data": [[1, 2]]},  # wrong shape
        {"data": "text"},  # not an array
    ]
    for case in cases:
        status, headers, body = s.post(json.dumps(case), JSON_CT)
        message = json.loads(body)["message"]
        assert status == 400, body
        assert "'data' parameter" in message and "NumpyParameterType" in message
        assert "could not convert" not in message and "Traceback" not in message  # no exception text
        assert headers["x-ms-run-function-failed"] == "False"
    # malformed JSON names where it broke; a missing parameter is named
    status, _, body = s.post('{"data": [[1, 2, 3]', JSON_CT)
    assert status == 400 and "POST body could not be decoded as JSON" in json.loads(body)["message"]
    status, _, body = s.post("{}", JSON_CT)
    assert status == 400 and "'data' parameter" in json.loads(body)["message"]
    # the classic server required the JSON content type for typed scripts
    assert s.post(json.dumps({"data": [[1, 2, 3]]}))[0] == 415
    # nested parameters are named by their path; debug mode adds the library's reason
    t = start_server(FIXTURES / "schema_standard", env={"AZUREML_DEBUG": "true"})
    status, _, body = t.post(json.dumps({"config": {"values": ["x"], "name": "n"}, "factor": 1}), JSON_CT)
    message = json.loads(body)["message"]
    assert status == 400 and "'config.values' parameter" in message and "could not convert" in message
    assert "run() failed" not in t.stderr


def test_request_ids_as_the_classic_server_echoed_them(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")
    ok = json.dumps({"data": [[1, 1, 1]]})
    _, headers, _ = s.post(ok)
    assert len(headers["x-request-id"]) == 36 and headers["x-ms-request-id"] == headers["x-request-id"]
    _, headers, _ = s.post(ok, {"x-request-id": "r1", "x-ms-client-request-id": "c1", "TraceId": "t1"})
    assert (headers["x-request-id"], headers["x-ms-request-id"], headers["x-ms-client-request-id"]) == (
        "r1",
        "c1",
        "c1",
    )
    assert headers["traceid"] == "t1"
    _, headers, _ = s.post(ok, {"x-ms-request-id": "legacy"})
    assert (headers["x-ms-request-id"], headers["x-ms-client-request-id"]) == ("legacy", "legacy")
    status, _, body = s.post(ok, {"x-request-id": "x" * 101})
    assert status == 431 and "must not exceed 100 characters" in json.loads(body)["message"]


def test_cors_origins(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw", env={"AML_CORS_ORIGINS": "https://a.example, https://b.example"})
    ok = json.dumps({"data": [[1, 1, 1]]})
    _, headers, _ = s.post(ok, {"Origin": "https://b.example"})
    assert headers["access-control-allow-origin"] == "https://b.example"
    _, headers, _ = s.post(ok, {"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers
    status, headers, _ = s.request(
        "OPTIONS",
        "/score",
        headers={
            "Origin": "https://a.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )
    assert status == 200 and headers["access-control-allow-origin"] == "https://a.example"
    assert headers["access-control-allow-methods"] == "GET, POST"
    assert headers["access-control-allow-headers"] == "content-type,authorization"


# -- the real-world-shaped scripts -----------------------------------------------------------------------------


def test_inference_schema_pandas_script(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "schema_pandas")
    rows = [{"x1": 1, "x2": 1, "x3": 1, "label": "p"}, {"x1": 0, "x2": 0, "x3": 2, "label": "q"}]
    status, _, body = s.post(json.dumps({"data": rows}), JSON_CT)
    assert status == 200, s.stderr
    assert json.loads(body) == {"predictions": [6.5, 6.5], "labels": ["p", "q"], "input_type": "DataFrame"}
    status, _, body = s.post(json.dumps({"data": [{"x1": "no", "x2": 1, "x3": 1, "label": "p"}]}), JSON_CT)
    assert status == 400 and "'data' parameter" in json.loads(body)["message"]

    for version, where in (("2", "definitions"), ("3", "components")):
        doc = json.loads(s.request("GET", f"/swagger.json?version={version}")[2])
        inp = doc[where]["ServiceInput"] if version == "2" else doc[where]["schemas"]["ServiceInput"]
        assert inp["properties"]["data"]["type"] == "array"
        assert inp["example"]["data"] == [{"x1": 1.0, "x2": 2.0, "x3": 3.0, "label": "a"}]


def test_inference_schema_standard_types(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "schema_standard")
    status, _, body = s.post(json.dumps({"config": {"values": [1, 2, 3], "name": "n"}, "factor": 3}), JSON_CT)
    assert (status, json.loads(body)) == (200, {"name": "n", "total": 18.0})
    status, _, body = s.post(json.dumps({"config": {"values": [1], "name": "n"}}), JSON_CT)
    assert status == 400 and "'factor'" in json.loads(body)["message"]
    doc = json.loads(s.request("GET", "/swagger.json")[2])
    assert doc["definitions"]["ServiceInput"]["example"] == {
        "config": {"values": [1.0, 2.0], "name": "sample"},
        "factor": 2,
    }


def test_multiple_models_in_one_service(start_server: StartServer) -> None:
    multi = FIXTURES / "models" / "multi"
    s = start_server(FIXTURES / "multi_model", model_dir=multi)
    status, _, body = s.post(json.dumps({"data": [[1, 2, 3]]}))
    assert status == 200, s.stderr
    assert json.loads(body) == {
        "a": 106.0,
        "b": 2.0,
        "b_latest": os.path.join("linear_b", "2", "linear_model"),
        "b_v1": os.path.join("linear_b", "1", "linear_model"),
    }


def test_script_that_prints(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "prints")
    status, _, body = s.post("hello")
    assert (status, json.loads(body)) == (200, {"echo": "hello"})
    out = s.wait_for_log("prints: run got hello", stream="stdout")
    assert out.index("prints: module imported") < out.index("prints: init called") < out.index("prints: run got")
    assert "prints: warning on stderr" in s.wait_for_log("warning on stderr")
    # a second request still answers cleanly: prints never reach the response
    assert s.post("again")[2] == b'{"echo": "again"}'


def test_run_returning_a_response_object(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "response_object")
    status, headers, body = s.post("csv")
    assert (status, body, headers["content-type"], headers["x-model"]) == (201, b"a,b\n1,2\n", "text/csv", "linear")
    assert headers["x-ms-run-function-failed"] == "False" and "x-ms-run-fn-exec-ms" in headers
    status, headers, body = s.post("json")
    assert (status, json.loads(body), headers["content-type"]) == (200, {"result": [1, 2]}, "application/json")
    status, headers, body = s.post("bytes")
    assert (status, body, headers["content-type"]) == (200, b"\x89PNG\r\n", "image/png")
    status, headers, body = s.post("other")
    assert (status, body) == (503, b"model unavailable")
    assert headers["content-type"] == "text/html; charset=utf-8"  # a str without a type: Flask's default, as before
    assert headers["x-ms-run-function-failed"] == "True"  # a 5xx response counts as a failed run, as before


def test_no_exception_text_in_any_response_without_debug(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "run_raises")
    for method, path, body in (("POST", "/score", "hello"), ("GET", "/score?x=1", None)):
        status, _, answer = s.request(method, path, body)
        assert (status, json.loads(answer)) == (500, {"message": GENERIC_500})
    assert s.stderr.count("Traceback (most recent call last)") == 2
