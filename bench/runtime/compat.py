"""Side-by-side compatibility check: the same scripts and requests against the classic server and our runtime.

Each fixture of ``tests/fixtures/scoring/`` that the classic server can run is served by
azureml-inference-server-http 1.5.1 and by ``mldeploy_runtime``; every request of the case list goes to both and
the answers are compared (status, media type, body, the ``x-ms-run-function-failed`` header). Differences are
printed as a table; documented differences (``EXPECTED``) are marked as such. The classic server gets the
``azureml.*`` imports the classic SDK provided: ``azureml.contrib.services`` mapped onto its own
``azureml_inference_server_http.api`` modules, ``azureml.core.model`` from our shim.

    .venv/bin/python bench/runtime/compat.py [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime_bench import (  # bench/ is not a package
    CLASSIC_PIN,
    RUNTIME,
    ensure_venv,
    free_port,
    runtime_requirements,
    shared_pins,
    table,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "scoring"
MODELS = FIXTURES / "models"
J = {"Content-Type": "application/json"}

Request = tuple[str, str, bytes | None, dict[str, str]]


def post(body: Any, headers: dict[str, str] | None = None) -> Request:
    data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
    return ("POST", "/score", data, headers or {})


def get(path: str, headers: dict[str, str] | None = None) -> Request:
    return ("GET", path, None, headers or {})


# fixture -> (model dir, extra env, requests)
CASES: dict[str, tuple[Path, dict[str, str], list[Request]]] = {
    "raw": (
        MODELS / "file",
        {},
        [
            post({"data": [[1, 1, 1], [0, 0, 2]]}),
            post("echo-type"),
            post("none"),
            post(b"\xff\xfe"),
            get("/score?data=[[1,1,1]]"),
            get("/"),
            get("/swagger.json"),
            get("/swagger.json?version=3"),
            get("/swagger.json?version=3.1"),
            get("/swagger.json?version=7"),
            get("/nope"),
            ("PUT", "/score", b"x", {}),
            ("HEAD", "/score", None, {}),
            ("OPTIONS", "/score", None, {}),
            ("DELETE", "/", None, {}),
            post("none", {"x-request-id": "x" * 101}),
        ],
    ),
    "schema_numpy": (
        MODELS / "file",
        {"SERVICE_NAME": "linreg"},
        [
            post({"data": [[1, 2, 3], [0, 0, 1]], "scale": 2}, J),
            post({"data": [[1, 2, 3]]}, J),
            post({"scale": 2}, J),
            post([1, 2], J),
            post("{not json", J),
            post("", J),
            post({"data": [[1, 2, 3]]}, {"Content-Type": "text/plain"}),
            post({"data": [[1, 2, 3]]}),
            post({"data": [["a", "b", "c"]]}, J),
            get("/score?data=[[1,2,3]]&scale=2"),
            get("/swagger.json"),
            get("/swagger.json?version=3"),
            get("/swagger.json?version=3.1"),
        ],
    ),
    "schema_pandas": (
        MODELS / "file",
        {},
        [
            post({"data": [{"x1": 1, "x2": 1, "x3": 1, "label": "p"}]}, J),
            post({"data": [{"x1": "no", "x2": 1, "x3": 1, "label": "p"}]}, J),
            get("/swagger.json"),
            get("/swagger.json?version=3"),
        ],
    ),
    "schema_standard": (
        MODELS / "file",
        {},
        [
            post({"config": {"values": [1, 2, 3], "name": "n"}, "factor": 3}, J),
            post({"config": {"values": [1], "name": "n"}}, J),
            get("/swagger.json"),
            get("/swagger.json?version=3"),
        ],
    ),
    "folder_model": (MODELS / "folder", {}, [post({"data": [[1, 5, 2]]})]),
    "multi_model": (MODELS / "multi", {}, [post({"data": [[1, 2, 3]]})]),
    "shim": (MODELS / "file", {}, [post("{}")]),
    "prints": (MODELS / "file", {}, [post("hello")]),
    "response_object": (MODELS / "file", {}, [post("csv"), post("json"), post("bytes"), post("other")]),
    "rawhttp": (
        MODELS / "file",
        {},
        [post({"a": 1}, {"Content-Type": "application/json", "User-Agent": "t/1"}), post(b"", {}), get("/score")],
    ),
    "run_raises": (MODELS / "file", {}, [post("hello")]),
    "non_serializable": (MODELS / "file", {}, [post("give me an object"), post("ok")]),
    "slow": (MODELS / "file", {"SCORING_TIMEOUT_MS": "300"}, [post("hi", {"X-Custom": "v1"}), post("sleep")]),
}

# (fixture, request index) -> why the answers differ on purpose
EXPECTED = {
    ("schema_numpy", 8): "a value inference-schema cannot convert is a 400 naming the parameter (classic: 500)",
    ("schema_pandas", 1): "a value inference-schema cannot convert is a 400 naming the parameter (classic: 500)",
    ("slow", 1): "the timeout cannot be caught by run()'s `except Exception` (classic: TimeoutError, swallowed)",
}

CLASSIC_SHIM = {
    "azureml/__init__.py": "",
    "azureml/contrib/__init__.py": "",
    "azureml/contrib/services/__init__.py": "",
    "azureml/contrib/services/aml_request.py": (
        "from azureml_inference_server_http.api.aml_request import *  # noqa\n"
        "from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp  # noqa\n"
    ),
    "azureml/contrib/services/aml_response.py": (
        "from azureml_inference_server_http.api.aml_response import AMLResponse  # noqa\n"
    ),
}


def classic_pythonpath(work: Path) -> Path:
    root = work / "classic-azureml"
    for rel, text in CLASSIC_SHIM.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    shutil.copytree(RUNTIME / "compat" / "azureml" / "core", root / "azureml" / "core")
    return root


def start(kind: str, fixture: str, venvs: dict[str, Path], work: Path, shim: Path) -> tuple[subprocess.Popen, int]:
    model_dir, extra, _ = CASES[fixture]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MLDEPLOY_", "PYTHON"))}
    env.update({"AZUREML_MODEL_DIR": str(model_dir), "AML_APP_ROOT": str(FIXTURES / fixture), **extra})
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if kind == "classic":
        env["PYTHONPATH"] = str(shim)
        cmd = [str(venvs["classic"] / "bin" / "python"), str(Path(__file__).parent / "classic_server.py")]
        cmd += ["--entry_script", str(FIXTURES / fixture / "score.py"), "--model_dir", str(model_dir)]
        cmd += ["--port", str(port)]
    else:
        env.update(
            {"PYTHONPATH": f"{RUNTIME}:{RUNTIME / 'compat'}", "MLDEPLOY_HOST": "127.0.0.1", "MLDEPLOY_PORT": str(port)}
        )
        cmd = [str(venvs["runtime"] / "bin" / "python"), "-m", "mldeploy_runtime"]
    log = open(work / f"{fixture}-{kind}.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(work))
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} exited on {fixture}; see {work / f'{fixture}-{kind}.log'}")
        try:
            if call(port, ("GET", "/readyz" if kind == "ours" else "/", None, {}))[0] == 200:
                return proc, port
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{kind} did not start on {fixture}")
        time.sleep(0.05)


def call(port: int, request: Request) -> tuple[int, str, Any, str]:
    method, path, body, headers = request
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        ctype = (response.getheader("content-type") or "").split(";")[0].strip()
        failed = response.getheader("x-ms-run-function-failed") or ""
    finally:
        conn.close()
    value: Any = data
    if ctype == "application/json":
        with contextlib.suppress(ValueError):
            value = json.loads(data)
    return response.status, ctype, value, failed


def short(value: Any, limit: int = 90) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--fixtures", default=",".join(CASES))
    args = parser.parse_args()
    pins = shared_pins()
    venvs = {
        "classic": ensure_venv("classic-compat", [CLASSIC_PIN, "pandas", *pins]),
        "runtime": ensure_venv(
            "runtime-compat",
            [*runtime_requirements(), "inference-schema[numpy-support,pandas-support]", "pandas", *pins],
        ),
    }
    work = Path(tempfile.mkdtemp(prefix="mldeploy-compat-"))
    shim = classic_pythonpath(work)
    rows: list[list[str]] = []
    same = 0
    unexpected = 0
    for fixture in args.fixtures.split(","):
        answers: dict[str, list[tuple[int, str, Any, str]]] = {}
        for kind in ("classic", "ours"):
            proc, port = start(kind, fixture, venvs, work, shim)
            try:
                answers[kind] = [call(port, r) for r in CASES[fixture][2]]
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for i, (request, a, b) in enumerate(zip(CASES[fixture][2], answers["classic"], answers["ours"], strict=True)):
            if a == b:
                same += 1
                continue
            note = EXPECTED.get((fixture, i), "")
            unexpected += not note
            what = f"{request[0]} {request[1]} {short(request[2], 40) if request[2] is not None else ''}".strip()
            rows.append(
                [
                    fixture,
                    what,
                    f"{a[0]} {a[1]} {short(a[2])} failed={a[3]}",
                    f"{b[0]} {b[1]} {short(b[2])} failed={b[3]}",
                    note or "UNEXPECTED",
                ]
            )
    print(f"{same} answers identical, {len(rows)} different ({unexpected} not documented); logs in {work}\n")
    if rows:
        print(table(rows, ["fixture", "request", "classic 1.5.1", "ours", "why"], args.markdown))
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
