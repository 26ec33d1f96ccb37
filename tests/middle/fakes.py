"""Fakes for the middle tier, in one place: an engine, a registry and the HTTP endpoints of the
containers the engine "runs". Each stage task is called through ``.fn()`` with them.

The fakes keep the real adapters' contracts (what each method returns or raises, names that
clash, labels that carry state), so a target's state machine behaves as it would on the real
engine — in milliseconds.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from mldeploy.adapters.docker_engine import BuildResult, ContainerState
from mldeploy.adapters.http_probe import HttpProbe
from mldeploy.adapters.oci_registry import OciRegistry
from mldeploy.adapters.wheelhouse import SdistBuilder, Wheelhouse
from mldeploy.errors import PermanentError, TransientError
from mldeploy.registry_auth import ANONYMOUS, RegistryAuth

# How a container of an image behaves once started.
OK, CRASH, OOM, NEVER_READY = "ok", "crash", "oom", "never-ready"
CRASH_LOG = (
    "mldeploy-runtime: init() failed\n"
    "Traceback (most recent call last):\n"
    '  File "/var/azureml-app/score.py", line 5, in init\n'
    "ValueError: no model here\n"
)


def _digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass
class FakeImage:
    id: str
    labels: dict[str, str]
    repo_digests: list[str] = field(default_factory=list)


@dataclass
class FakeContainer:
    id: str
    name: str
    image: str
    labels: dict[str, str]
    environment: dict[str, str]
    host_port: int | None
    behaviour: str
    status: str = "running"
    exit_code: int | None = None
    oom_killed: bool = False
    restart: bool = False
    log: str = "mldeploy-runtime: listening\n"
    mem_limit: str | None = None
    cpu_cores: float | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    networks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    command: list[str] | None = None

    def state(self) -> ContainerState:
        return ContainerState(
            id=self.id,
            name=self.name,
            status=self.status,
            exit_code=self.exit_code,
            oom_killed=self.oom_killed,
            restart_count=0,
            health=None,
            labels=dict(self.labels),
            image=self.image,
            host_port=self.host_port if self.status == "running" else None,
            started_at="2026-11-30T10:00:00Z",
            networks=dict(self.networks),
        )


@dataclass
class FakeRegistry:
    """Manifests by (repository path, tag), as an OCI registry would serve them."""

    manifests: dict[tuple[str, str], str] = field(default_factory=dict)
    answer: int | None = None  # force every answer to this status (429, 503, 401...)
    retry_after: str | None = None
    served_digest_override: str | None = None  # the registry claims another digest (a racing push)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.answer is not None:
            headers = {"retry-after": self.retry_after} if self.retry_after else {}
            return httpx.Response(self.answer, headers=headers)
        parts = request.url.path.split("/manifests/")
        repository, tag = parts[0].removeprefix("/v2/"), parts[1]
        digest = self.manifests.get((repository, tag))
        if digest is None:
            return httpx.Response(404)
        return httpx.Response(200, headers={"docker-content-digest": self.served_digest_override or digest})

    def client(self, registry: str, auth: RegistryAuth = ANONYMOUS) -> OciRegistry:
        return OciRegistry(registry, auth, client=httpx.Client(transport=httpx.MockTransport(self.handler)))


@dataclass
class FakeEngine:
    """An in-memory Docker engine: images, containers, names, labels, a registry to push into."""

    registry: FakeRegistry = field(default_factory=FakeRegistry)
    images: dict[str, FakeImage] = field(default_factory=dict)
    containers: dict[str, FakeContainer] = field(default_factory=dict)
    behaviours: dict[str, str] = field(default_factory=dict)  # image ref -> behaviour
    insecure_registries: set[str] = field(default_factory=set)
    networks: set[str] = field(default_factory=set)
    build_error: PermanentError | None = None
    calls: list[str] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _ports: Any = field(default_factory=lambda: itertools.count(41000))

    # --- images ----------------------------------------------------------------------
    def add_image(self, ref: str, labels: dict[str, str] | None = None) -> FakeImage:
        image = FakeImage(_digest("image", ref, json.dumps(labels or {}, sort_keys=True)), dict(labels or {}))
        self.images[ref] = image
        self.images[image.id] = image
        return image

    def _image(self, ref: str) -> FakeImage | None:
        found = self.images.get(ref)
        if found is None and "@" in ref:  # name@digest: the image pushed under that digest
            found = next((i for i in self.images.values() if ref in i.repo_digests), None)
        return found

    def image_id(self, ref: str) -> str | None:
        image = self._image(ref)
        return image.id if image else None

    def image_labels(self, ref: str) -> dict[str, str] | None:
        image = self._image(ref)
        return dict(image.labels) if image else None

    def repo_digests(self, ref: str) -> tuple[str, ...]:
        image = self._image(ref)
        return tuple(image.repo_digests) if image else ()

    def python_version(self, image: str) -> str:
        return "3.11"

    def build(
        self, context: Path, tag: str, labels: dict[str, str], on_line: Callable[[str], None], *, no_cache: bool = False
    ) -> BuildResult:
        self.calls.append(f"build {tag}")
        assert (context / "Dockerfile").is_file(), "the build context has a Dockerfile"
        if self.build_error is not None:
            raise self.build_error
        on_line("Step 1/2 : FROM base")
        on_line("Step 2/2 : COPY app/ /var/azureml-app/")
        image = self.add_image(tag, labels)
        return BuildResult(image_id=image.id, log="Step 1/2\nStep 2/2", steps=2, cached_steps=1, rebuilt=("COPY",))

    def prune_images(self, labels: dict[str, str], keep: int) -> list[str]:
        return []

    def treats_as_insecure(self, registry: str) -> bool:
        return registry in self.insecure_registries or registry.startswith("127.")

    def push(
        self, repository: str, tag: str, auth: RegistryAuth = ANONYMOUS, on_line: Callable[[str], None] = print
    ) -> tuple[str, int]:
        self.calls.append(f"push {repository}:{tag}")
        image = self.images[f"{repository}:{tag}"]
        digest = _digest("manifest", image.id)
        self.registry.manifests[(repository.split("/", 1)[1], tag)] = digest
        if f"{repository}@{digest}" not in image.repo_digests:
            image.repo_digests.append(f"{repository}@{digest}")
        return digest, 3

    # --- containers ------------------------------------------------------------------
    def _container(self, key: str) -> FakeContainer | None:
        return self.containers.get(key) or next((c for c in self.containers.values() if c.name == key), None)

    def run(
        self,
        image: str,
        *,
        name: str,
        labels: dict[str, str],
        environment: dict[str, str],
        host_port: int | None,
        container_port: int,
        mem_limit: str | None = None,
        cpu_cores: float | None = None,
        restart: bool = False,
        network: str | None = None,
        aliases: tuple[str, ...] = (),
        files: dict[str, bytes] | None = None,
        file_owner: int = 0,
        command: list[str] | None = None,
        user: str | None = None,
    ) -> str:
        self.calls.append(f"run {name}")
        if self._container(name) is not None:
            raise TransientError(f"start container {name}: engine answered 409: Conflict. The name is in use")
        if host_port is not None and any(
            c.host_port == host_port and c.status == "running" for c in self.containers.values()
        ):
            raise PermanentError(f"start container {name}: port is already allocated")
        behaviour = OK if command and "mldeploy_runtime.front" in command else self.behaviours.get(image, OK)
        container = FakeContainer(
            id=_digest("container", str(next(self._ids)))[7:],
            name=name,
            image=image,
            labels=dict(labels),
            environment=dict(environment),
            host_port=host_port if host_port is not None else next(self._ports),
            behaviour=behaviour,
            restart=restart,
            mem_limit=mem_limit,
            cpu_cores=cpu_cores,
            files=dict(files or {}),
            networks={network: aliases} if network else {},
            command=command,
        )
        if behaviour == CRASH:
            container.status, container.exit_code, container.log = "exited", 3, CRASH_LOG
        elif behaviour == OOM:
            container.status, container.exit_code, container.oom_killed = "exited", 137, True
        self.containers[container.id] = container
        return container.id

    def state(self, container: str) -> ContainerState | None:
        found = self._container(container)
        return found.state() if found else None

    def find(self, labels: Mapping[str, str | None], *, include_stopped: bool = True) -> list[ContainerState]:
        def matches(c: Any) -> bool:
            return all(k in c.labels if v is None else c.labels.get(k) == v for k, v in labels.items())

        return [
            c.state() for c in self.containers.values() if matches(c) and (include_stopped or c.status == "running")
        ]

    def logs(self, container: str, tail: int | str = "all") -> str:
        found = self._container(container)
        return found.log if found else ""

    def stop(self, container: str, timeout: int = 10) -> None:
        self.calls.append(f"stop {container}")
        found = self._container(container)
        if found is not None:
            found.status = "exited"

    def start(self, container: str) -> None:
        self.calls.append(f"start {container}")
        found = self._container(container)
        if found is None:
            raise PermanentError(f"start container {container}: not found")
        found.status = "running"

    def rename(self, container: str, name: str) -> None:
        found = self._container(container)
        if found is None:
            raise PermanentError(f"rename container {container}: not found")
        if self._container(name) is not None:
            raise TransientError(f"rename {container}: engine answered 409: name {name} is in use")
        found.name = name

    def remove(self, container: str) -> None:
        found = self._container(container)
        if found is not None:
            del self.containers[found.id]

    def read_file(self, container: str, path: str) -> bytes | None:
        found = self._container(container)
        return found.files.get(path) if found else None

    def write_files(self, container: str, files: dict[str, bytes], owner: int = 0, mode: int = 0o444) -> None:
        self.calls.append(f"write {container} {sorted(files)}")
        found = self._container(container)
        if found is None:
            raise PermanentError(f"write files into {container}: not found")
        found.files.update(files)

    def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        self.networks.add(name)

    def set_restart(self, container: str, policy: str) -> None:
        found = self._container(container)
        if found is not None:
            found.restart = policy != "no"

    def follow_logs(self, container: str, tail: int | str = "all") -> Any:
        yield self.logs(container, tail)

    def remove_dangling(self, labels: dict[str, str]) -> list[str]:
        return []

    # --- the scenario helpers --------------------------------------------------------
    def named(self, name: str) -> FakeContainer | None:
        return self._container(name)


def fake_wheelhouse(
    home: Path,
    requirement_files: dict[str, str],
    python: str,
    *,
    source_file: str = "",
    index_options: tuple[str, ...] = (),
    python_pin: str | None = None,
    build_sdist: SdistBuilder | None = None,
) -> Wheelhouse:
    """The build stage's resolver, without pip: an empty wheelhouse folder."""
    path = home / "wheelhouses" / "fake"
    path.mkdir(parents=True, exist_ok=True)
    return Wheelhouse(path=path, wheels=(), cached=True, log="")


@dataclass
class FakeNetwork:
    """The HTTP side of the fake engine's containers: /readyz and /score on their host ports."""

    engine: FakeEngine
    score: Callable[[FakeContainer, httpx.Request], httpx.Response] = field(
        default=lambda container, request: httpx.Response(200, json=[3])
    )
    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        container = next(
            (
                c
                for c in self.engine.containers.values()
                if c.status == "running" and c.host_port == request.url.port and request.url.host == "127.0.0.1"
            ),
            None,
        )
        if container is not None and container.command and "mldeploy_runtime.front" in container.command:
            container = self._behind(container)  # the front relays to the backend its pointer names
        if container is None:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/readyz":
            return httpx.Response(503 if container.behaviour == NEVER_READY else 200)
        if request.url.path == "/score":
            return self.score(container, request)
        return httpx.Response(200 if request.url.path == "/" else 404)

    def _behind(self, front: FakeContainer) -> FakeContainer | None:
        from mldeploy.targets.local import POINTER

        alias = front.files.get(POINTER, b"").decode().rpartition(":")[0]
        return next(
            (
                c
                for c in self.engine.containers.values()
                if c.status == "running" and alias in c.networks.get("mldeploy", ())
            ),
            None,
        )

    def served_by(self, port: int) -> FakeContainer | None:
        """The backend that answers on a host port (through the front)."""
        front = next(
            (c for c in self.engine.containers.values() if c.host_port == port and c.status == "running"), None
        )
        return self._behind(front) if front is not None else None

    def probe(self) -> HttpProbe:
        return HttpProbe(httpx.Client(transport=httpx.MockTransport(self.handler)))
