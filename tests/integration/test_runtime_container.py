"""The scoring runtime at the edge, against a real container built and started by `mldeploy deploy`.

One iris service whose score.py has a few extra behaviours (raise, sleep past the scoring timeout, sleep in
init()), deployed with key auth from the spec's `secrets:` section, a scoring timeout and the default body limit.
Everything is checked over HTTP on the published loopback port and in the container's own log.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid

import docker
import pytest

from tests.integration.conftest import Service, deploy, live_backend

pytestmark = [pytest.mark.engine, pytest.mark.slow]

IRIS_ROWS = {"data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}
PREDICTIONS = {"predictions": ["setosa", "virginica"]}
GENERIC_500 = "An unexpected error occurred in scoring script. Check the logs for more info."
INIT_SLEEP_S = 3.0

EXTRA_RUN = """
def run(raw_data):
    if raw_data == "boom":
        raise ValueError("secret-detail-" + os.environ["CANARY"])
    if raw_data == "sleep":
        try:
            time.sleep(30)
        except Exception:
            return "the timeout was swallowed"
    return _run(raw_data)
"""


def _request(
    service: Service, method: str, path: str, body: bytes | str | None = None, key: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def _container(service: Service) -> docker.models.containers.Container:
    return live_backend(service.name)


def _logs(service: Service) -> str:
    return str(_container(service).logs().decode(errors="replace"))


@pytest.fixture
def edge_service(make_service, monkeypatch):
    primary, secondary = f"primary-{uuid.uuid4().hex}", f"secondary-{uuid.uuid4().hex}"
    canary = uuid.uuid4().hex
    monkeypatch.setenv("RUNTIME_TEST_PRIMARY_KEY", primary)
    monkeypatch.setenv("RUNTIME_TEST_SECONDARY_KEY", secondary)
    monkeypatch.setenv("RUNTIME_TEST_CANARY", canary)
    service = make_service("iris")
    score = (service.root / "score.py").read_text()
    score = score.replace("import json\n", "import json\nimport time\n", 1)
    score = score.replace("def init():\n", f"def init():\n    time.sleep({INIT_SLEEP_S})\n", 1)
    score = score.replace("def run(raw_data):", "def _run(raw_data):", 1) + EXTRA_RUN
    service.write("score.py", score)
    service.edit_spec(
        secrets={
            "MLDEPLOY_AUTH_PRIMARY_KEY": "RUNTIME_TEST_PRIMARY_KEY",
            "MLDEPLOY_AUTH_SECONDARY_KEY": "RUNTIME_TEST_SECONDARY_KEY",
            "CANARY": "RUNTIME_TEST_CANARY",
        },
        **{"environment.variables": {"SCORING_TIMEOUT_MS": "1000"}},
        # with key auth on, the smoke stage sends the primary key like any client
        smoke=[{"name": "with key", "request": IRIS_ROWS, "expect_status": 200, "expect": PREDICTIONS}],
    )
    result = deploy(service)
    assert result.code == 0, result.stderr + result.stdout
    deadline = time.monotonic() + 60
    while _request(service, "GET", "/readyz")[0] != 200:
        assert time.monotonic() < deadline, _logs(service)
        time.sleep(0.2)
    return service, primary, secondary, canary


def test_runtime_edge_cases_in_a_real_container(edge_service) -> None:
    """One deploy (a deploy costs far more than the checks): auth, user, limits, errors, timeout, probes."""
    service, primary, secondary, canary = edge_service
    body = json.dumps(IRIS_ROWS)

    # -- key auth: both keys at once, 401 otherwise; probes stay open ----------------------------------------
    status, headers, answer = _request(service, "POST", "/score", body)
    assert status == 401 and headers["www-authenticate"] == "Bearer", answer
    assert _request(service, "POST", "/score", body, key="not-" + primary)[0] == 401
    assert _request(service, "POST", "/score", body, key=primary)[::2] == (200, json.dumps(PREDICTIONS).encode())
    assert _request(service, "POST", "/score", body, key=secondary)[0] == 200
    assert _request(service, "GET", "/")[::2] == (200, b"Healthy")
    assert _request(service, "GET", "/readyz")[::2] == (200, b"Ready")
    assert _request(service, "GET", "/swagger.json")[0] == 401
    assert json.loads(_request(service, "GET", "/swagger.json", key=secondary)[2])["swagger"] == "2.0"

    # -- not root --------------------------------------------------------------------------------------------
    info = json.loads(_request(service, "GET", "/info", key=primary)[2])
    assert info["uid"] != 0 and info["state"] == "ready"
    assert info["auth"] == ["MLDEPLOY_AUTH_PRIMARY_KEY", "MLDEPLOY_AUTH_SECONDARY_KEY"]
    assert info["init_seconds"] >= INIT_SLEEP_S
    assert _container(service).attrs["Config"]["User"] not in ("", "0", "root")

    # -- the service keys are files, not environment variables: neither inspect nor /proc/1/environ shows them --
    container = _container(service)
    assert primary not in json.dumps(container.attrs) and secondary not in json.dumps(container.attrs)
    environ = container.exec_run(["cat", "/proc/1/environ"]).output
    assert primary.encode() not in environ and b"MLDEPLOY_AUTH_PRIMARY_KEY_FILE=" in environ

    # -- body limit: 413 without calling run() (default 1 MiB) -------------------------------------------------
    big = json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]], "pad": "x" * (1024 * 1024)})
    status, _, answer = _request(service, "POST", "/score", big, key=primary)
    assert status == 413 and "1048576" in json.loads(answer)["message"]

    # -- deeply nested JSON: 400 without calling run() ----------------------------------------------------------
    status, _, answer = _request(service, "POST", "/score", "[" * 5000 + "]" * 5000, key=primary)
    assert status == 400 and "MLDEPLOY_MAX_JSON_DEPTH" in json.loads(answer)["message"]

    # -- run() raises: generic 500, the traceback only in the container log -----------------------------------
    status, headers, answer = _request(service, "POST", "/score", "boom", key=primary)
    assert (status, json.loads(answer)) == (500, {"message": GENERIC_500})
    assert canary.encode() not in answer and b"Traceback" not in answer
    assert headers["x-ms-run-function-failed"] == "True"

    # -- scoring timeout: 500 after SCORING_TIMEOUT_MS, the worker survives and scores the next request --------
    started = time.monotonic()
    status, _, answer = _request(service, "POST", "/score", "sleep", key=primary)
    assert time.monotonic() - started < 10
    assert (status, json.loads(answer)) == (500, {"message": "Scoring timeout after 1000 ms"})
    assert _request(service, "POST", "/score", body, key=primary)[::2] == (200, json.dumps(PREDICTIONS).encode())
    assert json.loads(_request(service, "GET", "/info", key=primary)[2])["pid"] == info["pid"]

    log = _logs(service)
    assert "mldeploy-runtime: run() failed: ValueError" in log and f"secret-detail-{canary}" in log
    assert "mldeploy-runtime: run() failed: did not finish within SCORING_TIMEOUT_MS=1000" in log
    assert "the timeout was swallowed" not in log
    assert primary not in log and secondary not in log
    assert log.count("mldeploy-runtime: run() failed") == 2  # the 401/413/400 requests never reached run()

    # -- liveness vs readiness: after a restart the port answers liveness at once, readiness once init() returned
    container = _container(service)
    container.restart(timeout=10)
    started = time.monotonic()
    live_while_loading = ready_at = None
    while time.monotonic() - started < 60:
        try:
            live = _request(service, "GET", "/")[0]
            ready = _request(service, "GET", "/readyz")[0]
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)
            continue
        if live == 200 and ready == 503 and live_while_loading is None:
            live_while_loading = time.monotonic() - started
        if ready == 200:
            ready_at = time.monotonic() - started
            break
        time.sleep(0.05)
    assert live_while_loading is not None, _logs(service)
    assert ready_at is not None and ready_at >= INIT_SLEEP_S, (live_while_loading, ready_at)
    assert live_while_loading < ready_at - 1
    # a request sent during loading would have waited; now it scores at once
    assert _request(service, "POST", "/score", json.dumps(IRIS_ROWS), key=primary)[0] == 200
    info = json.loads(_request(service, "GET", "/info", key=primary)[2])
    assert info["init_seconds"] >= INIT_SLEEP_S
    assert f"mldeploy-runtime: init() done in {info['init_seconds']:.3f}s" in _logs(service)
