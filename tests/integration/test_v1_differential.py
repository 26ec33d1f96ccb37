"""The corpus of v1 service folders, served side by side by the classic server and by mldeploy's runtime.

azureml-inference-server-http 1.5.1 runs with the real azureml-core (``Model.get_model_path``),
azureml-contrib-services (``rawhttp``) and azureml-monitoring in a virtual environment of its own; our runtime
runs in another with its own requirements and the compat shim. Both get the classic container layout (the app
root as working directory, ``azureml-models/<name>/<version>/``, a relative ``AZUREML_MODEL_DIR``, a source
directory under its own name) and the same model stack, and each folder's smoke requests plus the extra ones below
go to both. Status, media type and body must be equal, except for the differences listed in
``mldeploy/runtime/README.md`` (``DOCUMENTED`` names each with its row there). A folder that cannot start must
fail to start in both.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mldeploy.diagnosis import container_exit
from mldeploy.spec.loading import load_spec
from mldeploy.spec.smoke import SmokeRequest

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "corpus" / "v1"
RUNTIME = REPO / "mldeploy" / "runtime"
sys.path.insert(0, str(REPO / "bench"))
from runtime_bench import CLASSIC_PIN, ensure_venv, free_port, runtime_requirements, shared_pins  # noqa: E402

# What the corpus imports beyond the model stack, at the versions the classic answers were recorded with.
SCRIPT_PACKAGES = [
    "pandas==3.1.1",
    "pillow==13.0.0",
    "onnxruntime==1.32.0",
    "inference-schema[numpy-support,pandas-support]==1.8",
]
CLASSIC_SDK = ["azureml-core==1.61.0.post4", "azureml-contrib-services==1.62.0", "azureml-monitoring==0.1.0a21"]
OUTCOMES = yaml.safe_load((CORPUS / "outcomes.yaml").read_text())

# (folder, request name) -> the row of the runtime README's difference table that explains it
DOCUMENTED: dict[tuple[str, str], str] = {
    ("datacollect-aks", "one row"): "ModelDataCollector",
}

TOUR_HEADERS = {
    "Host": "scoring.example.com",  # not the port each server happens to listen on
    "Cookie": "session=abc123; theme=dark",
    "Authorization": "Bearer gateway-token-1",
    "User-Agent": "portal/2.1",
    "X-Tour-One": "1",
    "X-Tour-Two": "two words",
    "Content-Type": "text/plain",
}
# More requests than the smoke list, for the parts of the classic request object scripts lean on.
EXTRA: dict[str, list[tuple[str, SmokeRequest] | tuple[str, SmokeRequest, str]]] = {
    "rawhttp-request-tour": [
        ("the tour", SmokeRequest("POST", {"top": "3", "tag": "a"}, TOUR_HEADERS, content=b"payload \xe2\x9c\x93")),
        ("the tour, GET", SmokeRequest("GET", {"top": "x"}, {"Host": "scoring.example.com"})),
        ("the script's own x-request-id", SmokeRequest("GET", {"what": "ids"})),
        ("a JSON body forced", SmokeRequest("POST", {"what": "force"}, content=b"[1,")),
        ("a doubled slash", SmokeRequest("GET", {"what": "stream"}), "//score"),
        ("a trailing slash", SmokeRequest("GET", {"what": "stream"}), "/score/"),
    ],
    "rawhttp-query-headers": [
        ("get_json(force=True) on a broken body", SmokeRequest("POST", content=b"{not json", headers={})),
        ("no query at all", SmokeRequest("GET")),
        ("repeated query key", SmokeRequest("GET", params={"top": "x"})),
    ],
    "rawhttp-echo-cors": [
        ("OPTIONS preflight", SmokeRequest("OPTIONS")),
        ("binary body", SmokeRequest("POST", content=bytes(range(256)), headers={"Content-Type": "image/png"})),
    ],
    "rawhttp-streaming-csv": [("empty body", SmokeRequest("POST", content=b""))],
    "schema-pandas-standard": [
        ("wrong content type", SmokeRequest("POST", content=b'{"data": []}', headers={"Content-Type": "text/plain"}))
    ],
    "tutorial-digits": [("not JSON", SmokeRequest("POST", content=b"{", headers={"Content-Type": "application/json"}))],
}


# Headers the corpus scripts set themselves, and the request id (every request sends one, so both servers
# answer it unless the script sets its own); the servers' other headers differ on purpose (see the README)
SCRIPT_HEADERS = ("access-control-allow-origin", "content-disposition", "x-extra", "x-request-id")
REQUEST_ID = {"x-request-id": "differential-1"}


@dataclass
class Answer:
    status: int
    media_type: str
    body: Any
    headers: dict[str, str]

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        media = (response.headers.get("content-type") or "").split(";")[0].strip().lower()
        body: Any = response.content
        if media == "application/json":
            with contextlib.suppress(ValueError):
                body = response.json()
        elif media.startswith("text/"):
            body = response.text
        headers = {name: " | ".join(response.headers.get_list(name)) for name in SCRIPT_HEADERS}
        return cls(response.status_code, media, body, headers)


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (both servers run the same model; only the JSON encoders differ)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.fixture(scope="session")
def venvs() -> dict[str, Path]:
    pins = shared_pins()
    return {
        "classic": ensure_venv("classic-v1", [CLASSIC_PIN, *CLASSIC_SDK, *SCRIPT_PACKAGES, *pins]),
        "ours": ensure_venv("runtime-v1", [*runtime_requirements(), *SCRIPT_PACKAGES, *pins]),
    }


def make_models(folder: Path) -> None:
    subprocess.run([sys.executable, "make_model.py"], cwd=folder, check=True, capture_output=True, timeout=120)


def classic_layout(folder: Path, app: Path) -> tuple[str, dict[str, str]]:
    """The folder as a v1 container had it: the entry script (path in the app) and the environment."""
    spec = load_spec(folder / "service.yaml")
    env = {"AZUREML_ENTRY_SCRIPT": spec.entry_script_in_app}
    if spec.source_directory is not None:
        shutil.copytree(spec.source_directory, app / spec.source_directory.name)
        env["AZUREML_SOURCE_DIRECTORY"] = spec.source_directory.name
    else:
        shutil.copy(spec.entry_script, app / spec.entry_script.name)
    for model in spec.all_models:
        dest = app / "azureml-models" / model.name / str(model.version or 1)
        dest.mkdir(parents=True)
        (shutil.copytree if model.path.is_dir() else shutil.copy)(model.path, dest / model.path.name)
    if len(spec.all_models) == 1:
        env["AZUREML_MODEL_DIR"] = f"azureml-models/{spec.all_models[0].name}/{spec.all_models[0].version or 1}"
    else:
        env["AZUREML_MODEL_DIR"] = "azureml-models"
    return spec.entry_script_in_app, env


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str = "/score") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def start(kind: str, venv: Path, app: Path, entry: str, env_extra: dict[str, str]) -> Server | None:
    """The server on a free port, or None when it exited before it answered (its log kept)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_", "MLDEPLOY_", "PYTHON"))}
    env.update(env_extra, AML_APP_ROOT=str(app), PYTHONDONTWRITEBYTECODE="1")
    if kind == "classic":
        cmd = [str(venv / "bin" / "python"), str(REPO / "bench" / "runtime" / "classic_server.py")]
        cmd += ["--entry_script", str(app / entry), "--port", str(port)]
        probe = "/"
    else:
        env.update(MLDEPLOY_HOST="127.0.0.1", MLDEPLOY_PORT=str(port), PYTHONPATH=str(RUNTIME))
        # as in the image: the compat folder last on sys.path (a .pth file there)
        launch = f"import runpy, sys; sys.path.append({str(RUNTIME / 'compat')!r}); "
        launch += "runpy.run_module('mldeploy_runtime', run_name='__main__')"
        cmd = [str(venv / "bin" / "python"), "-c", launch]
        probe = "/readyz"
    log = app.parent / f"{kind}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        try:
            if httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(server)
    raise AssertionError(f"{kind} neither started nor exited in 90 s; log {log}:\n{server.text()[-3000:]}")


def stop(server: Server) -> None:
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(5)


def send(server: Server, request: SmokeRequest, path: str = "/score") -> Answer:
    response = httpx.request(
        request.method,
        server.url(path),
        params=request.params or None,
        headers={**REQUEST_ID, **request.headers},
        content=request.content,
        files=request.files or None,
        data=request.data or None,
        timeout=60,
    )
    return Answer.of(response)


@pytest.fixture
def served(tmp_path: Path, venvs: dict[str, Path], request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    folder = CORPUS / request.param
    make_models(folder)
    servers: dict[str, Any] = {}
    try:
        for kind in ("classic", "ours"):
            app = tmp_path / kind / "azureml-app"
            app.mkdir(parents=True)
            entry, env = classic_layout(folder, app)
            servers[kind] = start(kind, venvs[kind], app, entry, env)
            servers[f"{kind}-log"] = app.parent / f"{kind}.log"
        yield servers
    finally:
        for kind in ("classic", "ours"):
            if isinstance(servers.get(kind), Server):
                stop(servers[kind])


FOLDERS = sorted(p.name for p in CORPUS.iterdir() if (p / "service.yaml").is_file())


@pytest.mark.parametrize("served", FOLDERS, indirect=True)
def test_the_classic_server_and_ours_answer_alike(served: dict[str, Any], request: pytest.FixtureRequest) -> None:
    folder = request.node.callspec.params["served"]
    expected = OUTCOMES[folder]
    classic, ours = served["classic"], served["ours"]
    if expected["start"] == "fails":
        # neither starts; ours says why in the words the deploy stage reads
        assert classic is None, f"the classic server started {folder}; log {served['classic-log']}"
        assert ours is None, f"our runtime started {folder}; log {served['ours-log']}"
        found = container_exit(3, False, served["ours-log"].read_text(errors="replace"))
        assert found.code == expected["start_code"], found
        return
    assert classic is not None, f"classic did not start:\n{served['classic-log'].read_text()[-3000:]}"
    assert ours is not None, f"ours did not start:\n{served['ours-log'].read_text()[-3000:]}"
    spec = load_spec(CORPUS / folder / "service.yaml")
    cases = [(case.name or f"request {i}", case.http_request(), "/score") for i, case in enumerate(spec.smoke, 1)]
    cases += [(extra[0], extra[1], extra[2] if len(extra) == 3 else "/score") for extra in EXTRA.get(folder, [])]
    assert cases
    differences, documented_but_equal = [], []
    for name, smoke_request, path in cases:
        a, b = send(classic, smoke_request, path), send(ours, smoke_request, path)
        equal = (a.status, a.media_type, a.headers) == (b.status, b.media_type, b.headers) and same(a.body, b.body)
        if not equal and (folder, name) not in DOCUMENTED:
            differences.append(f"{name}: classic {a} / ours {b}")
        if equal and (folder, name) in DOCUMENTED:
            documented_but_equal.append(name)
    assert differences == [], f"{folder}: " + "\n".join(differences)
    assert documented_but_equal == [], "listed as a difference, but the answers are equal: remove it from DOCUMENTED"


def test_every_documented_difference_is_in_the_runtime_readme() -> None:
    readme = (RUNTIME / "README.md").read_text()
    for row in DOCUMENTED.values():
        assert row in readme
