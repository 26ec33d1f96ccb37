"""Every foreign exception is classified once, at an adapter boundary (httpx's lesson: a test
fails if any is left unmapped), and third-party SDKs are imported only by the adapters."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import docker.errors
import httpx
import pytest
import requests.exceptions

from mldeploy.adapters.docker_engine import translated
from mldeploy.adapters.http_probe import HttpProbe
from mldeploy.adapters.oci_registry import OciRegistry
from mldeploy.errors import PermanentError, TransientError

REPO = Path(__file__).resolve().parents[2]


def _api_error(status: int, text: str) -> docker.errors.APIError:
    response = requests.models.Response()
    response.status_code = status
    return docker.errors.APIError(text, response=response, explanation=text)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (requests.exceptions.ConnectionError("Connection refused"), TransientError),
        (requests.exceptions.ReadTimeout("read timed out"), TransientError),
        (_api_error(500, "Internal Server Error"), TransientError),
        (_api_error(502, "Bad Gateway"), TransientError),
        (_api_error(409, "Conflict. The container name is already in use"), TransientError),
        (_api_error(429, "toomanyrequests"), TransientError),
        (_api_error(500, "driver failed: Bind for 127.0.0.1:8890 failed: port is already allocated"), PermanentError),
        (_api_error(400, "invalid reference format"), PermanentError),
        (docker.errors.NotFound("No such container"), PermanentError),
        (docker.errors.DockerException("Error while fetching server API version: Connection refused"), TransientError),
        (docker.errors.DockerException("something nobody has seen"), PermanentError),
    ],
)
def test_docker_errors_are_classified_with_the_original_chained(raised, expected):
    with pytest.raises(expected) as caught, translated("do a thing"):
        raise raised
    assert caught.value.__cause__ is raised
    assert "do a thing" in str(caught.value)


def _registry(handler) -> OciRegistry:
    return OciRegistry("registry.example:5000", client=httpx.Client(transport=httpx.MockTransport(handler)))


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        (401, PermanentError, "registry_auth_denied"),
        (403, PermanentError, "registry_auth_denied"),
        (429, TransientError, "registry_unavailable"),
        (503, TransientError, "registry_unavailable"),
    ],
)
def test_registry_statuses_are_classified(status, expected, code):
    with pytest.raises(expected) as caught:
        _registry(lambda request: httpx.Response(status)).manifest_digest("svc", "tag")
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code == code


def test_registry_connection_failure_is_transient_and_chained():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TransientError) as caught:
        _registry(refuse).manifest_digest("svc", "tag")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_registry_bearer_challenge_is_followed():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.path == "/token":
            assert request.url.params["scope"] == "repository:svc:pull"
            return httpx.Response(200, json={"token": "t0k"})
        if request.headers.get("authorization") == "Bearer t0k":
            return httpx.Response(200, headers={"docker-content-digest": "sha256:" + "a" * 64})
        return httpx.Response(
            401,
            headers={
                "www-authenticate": 'Bearer realm="https://registry.example:5000/token",service="registry.example:5000"'
            },
        )

    assert _registry(handler).manifest_digest("svc", "tag") == "sha256:" + "a" * 64
    assert seen[0].startswith("https://registry.example:5000/v2/svc/manifests/tag")


def test_http_probe_turns_no_answer_into_a_reply_not_an_exception():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    probe = HttpProbe(httpx.Client(transport=httpx.MockTransport(refuse)))
    assert probe.healthy("http://127.0.0.1:1/") is False
    from mldeploy.spec import SmokeRequest

    reply = probe.send("http://127.0.0.1:1/score", SmokeRequest("POST", content=b"{}"))
    assert reply.status is None and "ConnectError" in reply.error


# --- layering: which modules may import which SDKs -----------------------------------------------

SDKS = {"docker", "kubernetes", "azure", "httpx", "requests", "prefect"}
ALLOWED = {
    "docker": {"mldeploy/adapters/docker_engine.py"},
    "requests": {"mldeploy/adapters/docker_engine.py"},
    "httpx": {
        "mldeploy/adapters/http_probe.py",
        "mldeploy/adapters/oci_registry.py",
        "mldeploy/adapters/package_index.py",
        "mldeploy/adapters/acr_auth.py",
    },
    "kubernetes": {"mldeploy/adapters/kube_api.py"},
    "azure": {"mldeploy/adapters/aci_api.py", "mldeploy/adapters/acr_auth.py", "mldeploy/adapters/azure_identity.py"},
    "prefect": {"mldeploy/orchestration.py", "mldeploy/remote.py", "mldeploy/cli.py"},  # cli: typing only
}
# Pure modules: importing one (and everything it imports) loads no SDK, no adapter, no Prefect.
PURE = [
    "mldeploy.spec",
    "mldeploy.spec.reference",
    "mldeploy.environment",
    "mldeploy.dockerfile",
    "mldeploy.plan",
    "mldeploy.fingerprint",
    "mldeploy.diagnosis",
    "mldeploy.smoke",
    "mldeploy.waiting",
    "mldeploy.summary",
    "mldeploy.report",
    "mldeploy.errors",
    "mldeploy.retry",
    "mldeploy.images",
    "mldeploy.registry_auth",
    "mldeploy.contract",
    "mldeploy.results",
    "mldeploy.drift",
    "mldeploy.targets.base",
    "mldeploy.history",
    "mldeploy.manifests",
    "mldeploy.rollout",
    "mldeploy.capacity",
]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_sdks_are_imported_only_by_their_adapters():
    offenders = []
    for path in sorted((REPO / "mldeploy").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("mldeploy/runtime/"):
            continue  # the in-image runtime has its own rules (tests/unit/test_runtime_shim.py)
        for sdk in _imports(path) & SDKS:
            if rel not in ALLOWED[sdk]:
                offenders.append(f"{rel} imports {sdk}")
    assert offenders == []


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_load_no_sdk_and_no_adapter(module):
    forbidden = ("mldeploy.adapters", "mldeploy.orchestration", "mldeploy.targets.local")
    probe = (
        f"import sys, {module}; "
        "print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(SDKS)!r} or m.startswith({forbidden!r}))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert loaded.stdout.split() == [], f"{module} loads {loaded.stdout.split()}"


def test_every_docker_exception_class_is_mapped_explicitly():
    import inspect

    from mldeploy.adapters.docker_engine import DOCKER_ERRORS

    classes = [
        cls
        for _, cls in inspect.getmembers(docker.errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == "docker.errors"
    ]
    assert classes, "docker.errors lists exception classes"
    assert [cls.__name__ for cls in classes if cls not in DOCKER_ERRORS] == []


def test_every_requests_exception_resolves_to_an_entry():
    import inspect

    from mldeploy.adapters.docker_engine import DOCKER_ERRORS
    from mldeploy.errors import most_specific

    for _, cls in inspect.getmembers(requests.exceptions, inspect.isclass):
        if issubclass(cls, Exception) and not issubclass(cls, Warning) and cls.__module__ == "requests.exceptions":
            assert most_specific(cls.__new__(cls), DOCKER_ERRORS) is not None, cls


def test_an_unreachable_engine_is_diagnosed_as_engine_unavailable():
    raised = docker.errors.DockerException(
        "Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2, 'No such file'))"
    )
    with pytest.raises(TransientError) as caught, translated("connect to the Docker engine"):
        raise raised
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code == "engine_unavailable"
    with pytest.raises(TransientError) as caught, translated("list containers"):
        raise requests.exceptions.ConnectionError("Connection refused")
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code == "engine_unavailable"
