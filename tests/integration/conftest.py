"""Real parts for the integration tier: the Docker engine, the local registry, a Prefect server.

`make test` sets MLDEPLOY_REQUIRE_ENGINE=1: a missing engine or registry then fails the session
instead of skipping it, so CI cannot pass without having run these tests.
"""

from __future__ import annotations

import contextlib
import crypt  # bcrypt for the test registry's htpasswd (glibc's libxcrypt); deprecated in 3.13
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deployments" / "examples"
MLDEPLOY = str(Path(sys.executable).parent / "mldeploy")
REGISTRY = "127.0.0.1:5000"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def require_parts(problems: list[str], fix: str) -> None:
    """Missing real parts fail the test under `make test` (MLDEPLOY_REQUIRE_ENGINE=1), else skip it."""
    if not problems:
        return
    message = "; ".join(problems) + f" — run `{fix}`"
    if os.environ.get("MLDEPLOY_REQUIRE_ENGINE") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def real_engine() -> None:
    import docker

    problems = []
    try:
        docker.from_env(timeout=5).ping()
    except Exception as exc:
        problems.append(f"no Docker engine ({exc})")
    if not _answers(f"http://{REGISTRY}/v2/"):
        problems.append(f"no registry on {REGISTRY}")
    require_parts(problems, "make setup")


@contextlib.contextmanager
def running_prefect_server(home: Path, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """`prefect server start` on a free loopback port with its own home; yields the API URL."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "true",
        "PREFECT_UI_API_URL": api,  # the UI must read this server, not :4200
        **(extra_env or {}),
    }
    with (home / "server.log").open("w") as log:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the server runs uvicorn in a child: stop the whole group
        )
        try:
            deadline = time.monotonic() + 90
            while not _answers(f"{api}/health"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Prefect server did not start; see {home / 'server.log'}", pytrace=False)
                time.sleep(0.25)
            yield api
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextlib.contextmanager
def using_api(api: str) -> Iterator[None]:
    """Point this process (settings) and its subprocesses (environment) at a Prefect API."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api
    try:
        with temporary_settings(updates={PREFECT_API_URL: api}):
            yield
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server (SQLite) for the session; in-process runs and CLI runs use it."""
    with running_prefect_server(tmp_path_factory.mktemp("prefect-server")) as api, using_api(api):
        yield api


@dataclass
class Service:
    """A copy of an example service in a temp folder, with its own name and port."""

    root: Path
    name: str
    port: int

    @property
    def spec(self) -> Path:
        return self.root / "service.yaml"

    def edit_spec(self, **changes: Any) -> None:
        data = yaml.safe_load(self.spec.read_text())
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        self.spec.write_text(yaml.safe_dump(data, sort_keys=False))

    def write(self, relative: str, text: str) -> None:
        (self.root / relative).write_text(text)

    def patch_script(self, old: str, new: str) -> None:
        """Replace text in score.py; a pattern that is not there fails the test instead of changing nothing."""
        script = (self.root / "score.py").read_text()
        assert old in script, f"score.py has no {old!r}"
        self.write("score.py", script.replace(old, new, 1))

    def prepend_to(self, function: str, *lines: str) -> None:
        """Insert statements at the top of a top-level function of score.py (e.g. make init() raise)."""
        header = f"def {function}({'raw_data' if function == 'run' else ''}):\n"
        self.patch_script(header, header + "".join(f"    {line}\n" for line in lines))

    def score(self, body: object, timeout: float = 10) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/score",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


@dataclass
class CliResult:
    code: int
    summary: dict[str, Any]
    stdout: str
    stderr: str
    seconds: float


def run_cli(*args: str, timeout: float = 600, cwd: Path | None = None) -> CliResult:
    started = time.monotonic()
    proc = subprocess.run(
        [MLDEPLOY, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy(), cwd=cwd
    )
    seconds = time.monotonic() - started
    summary: dict[str, Any] = {}
    lines = proc.stdout.strip().splitlines()
    if "--json" in args and lines:
        summary = json.loads(lines[-1])
    return CliResult(proc.returncode, summary, proc.stdout, proc.stderr, seconds)


def deploy(service: Service, *extra: str) -> CliResult:
    return run_cli("deploy", str(service.spec), "--json", *extra)


@pytest.fixture
def make_service(
    tmp_path: Path, real_engine: None, prefect_server: str, request: pytest.FixtureRequest
) -> Iterator[Any]:
    created: list[Service] = []

    def make(example: str) -> Service:
        source = EXAMPLES / example
        if not (source / "model").exists():
            subprocess.run([sys.executable, str(source / "train.py")], check=True, capture_output=True)
        root = tmp_path / f"{example}-{len(created)}"
        shutil.copytree(source, root)
        slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower().replace("_", "-"))[:40].strip("-")
        service = Service(root=root, name=f"t-{slug}-{len(created)}", port=free_port())
        service.edit_spec(name=service.name, **{"target.port": service.port})
        created.append(service)
        return service

    yield make
    for service in created:
        subprocess.run([MLDEPLOY, "delete", service.name], capture_output=True, timeout=60)


def containers_of(service: str) -> list[dict[str, Any]]:
    import docker

    client = docker.from_env()
    return [c.attrs for c in client.containers.list(all=True, filters={"label": f"mldeploy.service={service}"})]


def roles_of(service: str) -> list[tuple[str, str]]:
    """(role, name) of every container of a service on the local target: its front and its versions."""
    return sorted(
        (c["Config"]["Labels"].get("mldeploy.role", "?"), c["Name"].lstrip("/")) for c in containers_of(service)
    )


def assert_steady(service: str) -> None:
    """Only the front and the one version that serves: no candidate, no version left from before a swap."""
    roles = roles_of(service)
    assert [role for role, _ in roles] == ["backend", "front"], f"leftover containers: {roles}"


def live_backend(service: str) -> Any:
    """The container of the version that serves (the one the front points at)."""
    import docker

    client = docker.from_env()
    front = client.containers.get(f"mldeploy-{service}")
    import io
    import tarfile

    stream, _ = front.get_archive("/run/mldeploy/front/backend")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        member = archive.next()
        assert member is not None
        handle = archive.extractfile(member)
        assert handle is not None
        alias = handle.read().decode().strip().rpartition(":")[0]
    return client.containers.get(alias)


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[str]:
    """A second real registry that requires a user and password (htpasswd, bcrypt)."""
    port = free_port()
    (tmp_path / "htpasswd").write_text(f"ci:{crypt.crypt('right-password', crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    (tmp_path / "config.yml").write_text(
        f"version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
        f"auth: {{htpasswd: {{realm: test, path: {tmp_path / 'htpasswd'}}}}}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(tmp_path / "config.yml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
        except urllib.error.HTTPError:
            break  # 401: it answers
        except OSError:
            time.sleep(0.1)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


POOL = "mldeploy-process"


def prefect_cli(*args: str, api: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PREFECT_API_URL": api, "MLDEPLOY_REPO": str(REPO)}
    return subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "--no-prompt", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def deploy_prefect_yaml(api: str) -> None:
    """The process work pool and every deployment of prefect.yaml, on the server at ``api``."""
    created = prefect_cli("work-pool", "create", POOL, "--type", "process", api=api)
    assert created.returncode == 0 or "already exists" in created.stdout + created.stderr, created.stderr
    result = prefect_cli("deploy", "--all", api=api)
    assert result.returncode == 0, result.stdout + result.stderr


@contextlib.contextmanager
def running_worker(api: str, log_file: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process worker polling the pool every second; stopped with repeated SIGINTs, then SIGKILL."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "MLDEPLOY_REPO": str(REPO),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    }
    with log_file.open("w") as log:
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield worker
        finally:
            for _ in range(3):  # a Prefect worker wants repeated SIGINTs before it exits
                if worker.poll() is not None:
                    break
                os.killpg(worker.pid, signal.SIGINT)
                time.sleep(1)
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_flow_run(api: str, flow_run_id: str, timeout: float = 300) -> dict[str, Any]:
    """Poll a flow run until it is in a final state."""
    from tests.integration import prefect_api

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = prefect_api.flow_run(api, flow_run_id)
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(1)
    pytest.fail(f"flow run {flow_run_id} did not finish in {timeout} s")


@pytest.fixture
def azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """HTTPS doubles of Entra ID and Resource Manager (groups run as real containers), and the service
    principal the deploy signs in as, in the environment as CI would have it."""
    from tests.middle.azure_doubles import CLIENT_ID, CLIENT_SECRET, TENANT, azure_doubles

    with azure_doubles(tmp_path, monkeypatch, run_containers=True) as doubles:
        monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
        monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
        monkeypatch.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", doubles.entra.url)  # for a registry outside an ACI spec
        yield doubles


@pytest.fixture
def acr(azure: Any) -> Iterator[Any]:
    """An HTTPS double of Azure Container Registry in front of the real local registry."""
    from tests.middle.acr_registry_double import AcrRegistryDouble

    double = AcrRegistryDouble(azure.tls, azure.tokens)
    yield double
    double.close()
