"""The scoring runtime (mldeploy/runtime/mldeploy_runtime) as a real server process on a loopback port.

Each test starts ``python -m mldeploy_runtime`` with PYTHONPATH=mldeploy/runtime, exactly like the image does,
against a fixture script from tests/fixtures/scoring/, and talks HTTP to it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "mldeploy" / "runtime"
FIXTURES = REPO / "tests" / "fixtures" / "scoring"
MODEL_FILE_DIR = FIXTURES / "models" / "file"
MODEL_FOLDER_DIR = FIXTURES / "models" / "folder"
GENERIC_500 = "An unexpected error occurred in scoring script. Check the logs for more info."

pytestmark = pytest.mark.timeout(60)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    out_path: Path
    err_path: Path
    conns: list[http.client.HTTPConnection] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def request(
        self, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.conns.append(conn)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def post(self, body: bytes | str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return self.request("POST", "/score", body, headers)

    def wait_for_log(self, needle: str, stream: str = "stderr", timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr if stream == "stderr" else self.stdout
            if needle in text or time.monotonic() > deadline:
                return text
            time.sleep(0.02)


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """start_server(app_dir, model_dir=..., env={...}, wait=True) -> Server; killed at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        app_dir: Path,
        model_dir: Path | None = MODEL_FILE_DIR,
        env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Server:
        port = _free_port()
        n = len(procs)
        out_path, err_path = tmp_path / f"server{n}.out", tmp_path / f"server{n}.err"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MLDEPLOY_"))}
        full_env.update(
            {
                "PYTHONPATH": f"{RUNTIME}:{RUNTIME / 'compat'}",  # the image: the shim last (a .pth)
                "AML_APP_ROOT": str(app_dir),
                "MLDEPLOY_HOST": "127.0.0.1",
                "MLDEPLOY_PORT": str(port),
                "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ litter in the runtime and fixture folders
            }
        )
        full_env.pop("WORKER_COUNT", None)
        full_env.pop("SCORING_TIMEOUT_MS", None)
        if model_dir is not None:
            full_env["AZUREML_MODEL_DIR"] = str(model_dir)
        full_env.update(env or {})
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mldeploy_runtime"],
                cwd=str(tmp_path),
                env=full_env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        procs.append(proc)
        server = Server(proc, port, out_path, err_path)
        if wait:
            deadline = time.monotonic() + 20
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"server exited with {proc.returncode}:\n{server.stderr}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"server did not listen in time:\n{server.stderr}") from None
                    time.sleep(0.02)
        return server

    yield start
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# -- raw (undecorated) script --------------------------------------------------------------------------------


def test_raw_script_scores_and_serves_health(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")

    status, headers, body = s.request("GET", "/")
    assert (status, body) == (200, b"Healthy")
    assert headers["content-type"] == "text/html; charset=utf-8"  # as Flask answered it in the classic server

    status, headers, body = s.post(json.dumps({"data": [[1, 1, 1], [0, 0, 2]]}))
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"predictions": [6.5, 6.5]}
    assert headers["x-ms-run-function-failed"] == "False"
    assert float(headers["x-ms-run-fn-exec-ms"]) >= 0

    # run() receives the body as str; a str result goes out as a JSON string, None as {} (classic behaviour)
    assert s.post("echo-type")[2] == b'"str"'
    assert s.post("none")[2] == b"{}"

    # the client's request id is echoed
    assert s.post("none", {"x-request-id": "abc-123"})[1]["x-request-id"] == "abc-123"

    assert s.request("GET", "/readyz")[:1] == (200,)
    status, _, body = s.request("GET", "/info")
    info = json.loads(body)
    assert status == 200 and info["input_mode"] == "string"
    assert isinstance(info["init_seconds"], float) and info["init_seconds"] >= 0

    # marker line with the port, and prints from init()/run() reach stdout at once (line-buffered)
    assert re.search(rf"^mldeploy-runtime: init\(\) done in \d+\.\d+s; serving on port {s.port}$", s.stderr, re.M), (
        s.stderr
    )
    out = s.wait_for_log("run: got 9 characters", stream="stdout")
    assert "init: loaded model with 3 weights" in out
    assert "run: got 9 characters" in out


def test_routes_404_405_head_options(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")
    status, _, body = s.request("GET", "/nope")
    assert status == 404 and "was not found on the server" in json.loads(body)["message"]

    status, headers, body = s.request("PUT", "/score", b"x")
    assert status == 405 and headers["allow"] == "GET, OPTIONS, POST"
    assert json.loads(body) == {"message": "The method is not allowed for the requested URL."}
    status, headers, _ = s.request("DELETE", "/")
    assert status == 405 and headers["allow"] == "GET, HEAD, OPTIONS"
    # the classic /score handler refused HEAD itself, and answered OPTIONS with an empty 200
    assert s.request("HEAD", "/score")[0] == 405
    assert s.request("OPTIONS", "/score")[:1] == (200,)

    status, headers, body = s.request("HEAD", "/")
    assert (status, body, headers["content-length"]) == (200, b"", "7")

    # nothing of the above reached run()
    assert "run: got" not in s.stdout


def test_get_score_passes_query_parameters_as_json(start_server: StartServer) -> None:
    """GET /score?data=[[1,1,1]]: the classic server handed run() json.dumps of the parsed query parameters."""
    s = start_server(FIXTURES / "raw")
    status, _, body = s.request("GET", "/score?data=[[1,1,1],[0,0,2]]")
    assert (status, json.loads(body)) == (200, {"predictions": [6.5, 6.5]})
    out = s.wait_for_log("run: got", stream="stdout")
    assert f"run: got {len(json.dumps({'data': [[1, 1, 1], [0, 0, 2]]}))} characters" in out

    t = start_server(FIXTURES / "schema_numpy")
    status, _, body = t.request("GET", "/score?data=[[1,2,3]]&scale=2")
    assert status == 200, body
    assert json.loads(body) == {"predictions": [29.0], "input_type": "ndarray", "scale": 2}


def test_undecorated_swagger_is_generic(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")
    status, _, body = s.request("GET", "/swagger.json")
    doc = json.loads(body)
    assert status == 200 and doc["swagger"] == "2.0"
    assert doc["definitions"]["ServiceInput"] == {"type": "object", "example": {}}
    assert set(doc["paths"]) == {"/", "/score", "/swagger.json"}


def test_non_utf8_body_is_400(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")
    status, _, body = s.post(b"\xff\xfe\x00bad")
    assert status == 400 and "UTF-8" in json.loads(body)["message"]


# -- inference-schema ----------------------------------------------------------------------------------------


def test_inference_schema_numpy_script(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "schema_numpy")
    ct = {"Content-Type": "application/json"}

    status, _, body = s.post(json.dumps({"data": [[1, 2, 3], [0, 0, 1]], "scale": 2}), ct)
    assert status == 200, body
    # inference-schema converted the JSON list to a numpy array before run() saw it
    assert json.loads(body) == {"predictions": [29.0, 7.0], "input_type": "ndarray", "scale": 2}

    # optional parameter falls back to run()'s default
    assert json.loads(s.post(json.dumps({"data": [[1, 2, 3]]}), ct)[2])["scale"] == 1.0

    # classic input errors
    status, _, body = s.post(json.dumps({"scale": 2}), ct)
    assert status == 400 and "'data'" in json.loads(body)["message"]
    assert s.post(json.dumps([1, 2]), ct)[0] == 400
    assert s.post("{not json", ct)[0] == 400
    assert s.post(json.dumps({"data": [[1, 2, 3]]}), {"Content-Type": "text/plain"})[0] == 415
    assert json.loads(s.request("GET", "/info")[2])["input_mode"] == "schema"


def test_inference_schema_swagger(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "schema_numpy", env={"SERVICE_NAME": "linreg"})
    status, _, body = s.request("GET", "/swagger.json")
    assert status == 200
    doc = json.loads(body)
    assert doc["swagger"] == "2.0" and doc["info"]["title"] == "linreg"
    inp = doc["definitions"]["ServiceInput"]
    assert inp["example"]["data"] == [[1.0, 2.0, 3.0]]
    assert inp["example"]["scale"] == 1.0
    assert set(inp["properties"]) >= {"data", "scale"}
    assert doc["definitions"]["ServiceOutput"]["example"]["input_type"] == "ndarray"

    status, _, body = s.request("GET", "/swagger.json?version=3")
    doc3 = json.loads(body)
    assert status == 200 and doc3["openapi"].startswith("3.0")
    assert doc3["components"]["schemas"]["ServiceInput"]["example"]["data"] == [[1.0, 2.0, 3.0]]
    assert json.loads(s.request("GET", "/swagger.json?version=3.1")[2])["openapi"] == "3.1.0"

    status, _, body = s.request("GET", "/swagger.json?version=7")
    assert status == 404 and "not valid" in json.loads(body)["message"]


# -- models --------------------------------------------------------------------------------------------------


def test_folder_model(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "folder_model", model_dir=MODEL_FOLDER_DIR)
    status, _, body = s.post(json.dumps({"data": [[1, 5, 2]]}))
    assert status == 200
    assert json.loads(body) == {"predictions": [9.0], "notes": "trained on nothing"}


def test_azureml_model_get_model_path_shim(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "shim")
    status, _, body = s.post("{}")
    assert status == 200, s.stderr
    result = json.loads(body)
    assert result["model_path"] == str(MODEL_FILE_DIR / "linear_model.json")
    assert result["bias"] == 0.5


# -- failures ------------------------------------------------------------------------------------------------


def test_run_raising_is_generic_500_with_traceback_in_log(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "run_raises")
    status, headers, body = s.post("hello")
    assert status == 500
    assert json.loads(body) == {"message": GENERIC_500}
    assert b"secret-detail" not in body and b"ValueError" not in body
    assert headers["x-ms-run-function-failed"] == "True"

    err = s.wait_for_log("secret-detail-4711")
    assert re.search(r"^mldeploy-runtime: run\(\) failed", err, re.M), err
    assert "Traceback (most recent call last)" in err
    assert "ValueError: secret-detail-4711: cannot score hello" in err
    # the server keeps serving
    assert s.request("GET", "/")[0] == 200


def test_debug_mode_returns_error_details(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "run_raises", env={"AZUREML_DEBUG": "true"})
    status, _, body = s.post("hello")
    assert status == 500
    message = json.loads(body)["message"]
    assert "ValueError: secret-detail-4711" in message and "Traceback" in message


def test_init_raising_exits_3_with_markers_and_listing(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "init_raises", wait=False)
    assert s.proc.wait(timeout=20) == 3
    err = s.stderr
    lines = err.splitlines()
    assert "mldeploy-runtime: init() failed" in lines
    assert "FileNotFoundError" in err and "Traceback (most recent call last)" in err
    missing = MODEL_FILE_DIR / "sklearn_regression_model.pkl"
    assert f"mldeploy-runtime: init() could not find {missing}" in lines
    i = lines.index(f"mldeploy-runtime: AZUREML_MODEL_DIR={MODEL_FILE_DIR} contains:")
    assert lines[i + 1] == "  linear_model.json"
    # markers come after the traceback, in this order
    assert lines.index("mldeploy-runtime: init() failed") < i
    # it never listened
    assert "serving on port" not in err


def test_init_failure_listing_is_limited_to_50_files(start_server: StartServer, tmp_path: Path) -> None:
    model_dir = tmp_path / "many"
    (model_dir / "sub").mkdir(parents=True)
    for n in range(60):
        (model_dir / "sub" / f"f{n:02d}.bin").write_bytes(b"x")
    s = start_server(FIXTURES / "init_raises", model_dir=model_dir, wait=False)
    assert s.proc.wait(timeout=20) == 3
    lines = s.stderr.splitlines()
    i = lines.index(f"mldeploy-runtime: AZUREML_MODEL_DIR={model_dir} contains:")
    listed = []
    for line in lines[i + 1 :]:
        if not line.startswith("  "):
            break
        listed.append(line)
    assert len(listed) == 50
    assert listed[0] == "  " + os.path.join("sub", "f00.bin")
    assert any("10 more" in line for line in lines[i + 51 :])


def test_missing_entry_script_exits_3(start_server: StartServer, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "scoring.py").write_text("def init(): pass\ndef run(x): return x\n")
    s = start_server(app, wait=False)
    assert s.proc.wait(timeout=20) == 3
    assert "score.py does not exist" in s.stderr and "scoring.py" in s.stderr


def test_script_import_error_exits_3(start_server: StartServer, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "score.py").write_text("import no_such_module_xyz\ndef init(): pass\ndef run(x): return x\n")
    s = start_server(app, wait=False)
    assert s.proc.wait(timeout=20) == 3
    assert "failed to import" in s.stderr and "No module named 'no_such_module_xyz'" in s.stderr
    assert f"mldeploy-runtime: AZUREML_MODEL_DIR={MODEL_FILE_DIR} contains:" in s.stderr


def test_body_too_large_is_413_without_calling_run(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw", env={"MLDEPLOY_MAX_BODY_BYTES": "1000"})
    payload = json.dumps({"data": [[1, 1, 1]]})
    at_limit = payload + " " * (1000 - len(payload))
    status, _, body = s.post(at_limit)
    assert status == 200, body

    status, _, body = s.post(at_limit + " ")
    assert status == 413 and "1000" in json.loads(body)["message"]

    # chunked upload without content-length is counted too
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("POST", "/score", body=iter([b"x" * 600, b"y" * 600]), encode_chunked=True)
    resp = conn.getresponse()
    assert resp.status == 413
    resp.read()
    conn.close()

    out = s.wait_for_log("run: got 1000", stream="stdout")
    assert "run: got 1000 characters" in out
    assert "run: got 1001" not in out and "run: got 1200" not in out


def test_default_body_limit_is_one_mib(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "run_raises")
    assert s.post(b"x" * (1024 * 1024 + 1))[0] == 413
    assert s.post(b"x" * (1024 * 1024))[0] == 500  # reached run(), which raises
    time.sleep(0.1)
    assert s.stderr.count("run() failed") == 1


def test_non_serializable_result_is_500(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "non_serializable")
    status, _, body = s.post("give me an object")
    assert status == 500
    message = json.loads(body)["message"]
    assert "Prediction" not in message
    err = s.wait_for_log("cannot be serialized")
    assert re.search(
        r"^mldeploy-runtime: run\(\) returned a value that cannot be serialized to JSON: Prediction",
        err,
        re.M,
    ), err
    assert s.post("ok")[:1] == (200,)


def test_scoring_timeout_and_request_headers(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "slow", env={"SCORING_TIMEOUT_MS": "300"})
    # request_headers is dict(flask.request.headers) in the classic server: Title-Case names
    status, _, body = s.post("hi", {"x-custom": "v1"})
    assert (status, json.loads(body)) == (200, {"x-custom": "v1"})
    started = time.monotonic()
    status, headers, body = s.post("sleep")
    assert time.monotonic() - started < 5
    assert status == 500 and json.loads(body)["message"] == "Scoring timeout after 300 ms"
    assert headers["x-ms-run-function-failed"] == "True"
    assert "run() failed: did not finish within SCORING_TIMEOUT_MS=300" in s.wait_for_log("SCORING_TIMEOUT_MS")
    # the worker survived and scores the next request
    assert s.request("GET", "/")[0] == 200
    assert s.post("again", {"X-Custom": "v2"})[:1] == (200,)
    assert "swallowed" not in s.stdout


def test_rawhttp_mode(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "rawhttp")
    status, _, body = s.post(json.dumps({"a": 1}), {"Content-Type": "application/json", "User-Agent": "t/1"})
    assert status == 200, s.stderr
    assert json.loads(body) == {"method": "POST", "n": 8, "json": {"a": 1}, "ua": "t/1"}

    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    conn.request("POST", "/score?teapot=1", body=b"")
    resp = conn.getresponse()
    assert resp.status == 418 and resp.read() == b"short and stout"
    assert resp.getheader("content-type") == "text/plain"
    assert resp.headers.get_all("x-extra") == ["a", "b"]
    conn.close()


def test_sigterm_stops_cleanly(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw")
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 0


def test_two_workers_each_run_init_and_serve(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "raw", env={"WORKER_COUNT": "2"})
    deadline = time.monotonic() + 10
    while s.stderr.count("serving on port") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert s.stderr.count(f"serving on port {s.port}") == 2
    pids = set()
    for _ in range(40):
        pids.add(json.loads(s.request("GET", "/info")[2])["pid"])
        if len(pids) == 2:
            break
    assert len(pids) == 2
    assert s.post(json.dumps({"data": [[1, 1, 1]]}))[0] == 200
    os.kill(s.proc.pid, signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 0


def test_two_workers_init_failure_exits_3(start_server: StartServer) -> None:
    s = start_server(FIXTURES / "init_raises", env={"WORKER_COUNT": "2"}, wait=False)
    assert s.proc.wait(timeout=20) == 3
    assert "mldeploy-runtime: init() failed" in s.stderr
