"""The Docker engine adapter: the only module that talks to the engine (docker-py).

Every call has a client-side timeout, and every foreign exception is translated here, once,
into :class:`TransientError` (daemon unavailable, 5xx, timeouts, resets, conflicts) or
:class:`PermanentError` (not found, bad request, port in use, build step failed). The build and
push streams do not raise on failure, so each loop checks for an ``error`` event.
"""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from mldeploy import diagnosis
from mldeploy.errors import MldeployError, PermanentError, TransientError, most_specific
from mldeploy.registry_auth import ANONYMOUS, BasicAuth, EntraSignIn, RegistryAuth, TokenAuth

LineSink = Callable[[str], None]
API_TIMEOUT_SECONDS = 60
BUILD_TIMEOUT_SECONDS = 1800
_TRANSIENT_MESSAGES = re.compile(
    r"connection refused|connection reset|i/o timeout|tls handshake timeout|timeout|temporar|"
    r"502|503|504|too many requests|429|eof",
    re.IGNORECASE,
)
_PORT_IN_USE = re.compile(r"port is already allocated|address already in use", re.IGNORECASE)
_AUTH = re.compile(r"unauthorized|authentication required|denied|forbidden|401|403", re.IGNORECASE)
_UNREACHABLE = re.compile(
    r"Error while fetching server API version|Connection aborted|connection refused|No such file or directory",
    re.IGNORECASE,
)


def _noop(_: str) -> None:
    return None


def _api_error(exc: docker.errors.APIError, operation: str) -> MldeployError:
    text = str(exc.explanation or exc)
    status = exc.status_code or 0
    if _PORT_IN_USE.search(text):
        return PermanentError(f"{operation}: {text}")
    if status == 409 or status >= 500 or status == 429:
        return TransientError(f"{operation}: engine answered {status}: {text}")
    return PermanentError(f"{operation}: engine answered {status}: {text}")


def _unreachable(exc: BaseException, operation: str) -> MldeployError:
    return TransientError(
        f"{operation}: Docker engine unreachable or slow: {exc}",
        diagnosis=diagnosis.engine_unavailable(str(exc)),
    )


def _by_message(exc: BaseException, operation: str) -> MldeployError:
    text = str(exc)
    if _UNREACHABLE.search(text):
        return _unreachable(exc, operation)
    if _TRANSIENT_MESSAGES.search(text):
        return TransientError(f"{operation}: {text}")
    return PermanentError(f"{operation}: {text}")


def _permanent(exc: BaseException, operation: str) -> MldeployError:
    return PermanentError(f"{operation}: {exc}")


def _not_found(exc: BaseException, operation: str) -> MldeployError:
    explanation = getattr(exc, "explanation", None)
    return PermanentError(f"{operation}: not found: {explanation or exc}")


# Every docker-py exception class, and the requests failures under it: the most specific class
# decides (tests/unit/test_error_boundaries.py fails when docker-py grows an unmapped one).
DOCKER_ERRORS: dict[type[BaseException], Callable[[Any, str], MldeployError]] = {
    docker.errors.ImageNotFound: _not_found,
    docker.errors.NotFound: _not_found,
    docker.errors.APIError: _api_error,
    docker.errors.BuildError: _permanent,
    docker.errors.ContainerError: _permanent,
    docker.errors.ImageLoadError: _permanent,
    docker.errors.InvalidArgument: _permanent,
    docker.errors.InvalidRepository: _permanent,
    docker.errors.InvalidVersion: _permanent,
    docker.errors.InvalidConfigFile: _permanent,
    docker.errors.TLSParameterError: _permanent,
    docker.errors.NullResource: _permanent,
    docker.errors.DeprecatedMethod: _permanent,
    docker.errors.ContextException: _permanent,
    docker.errors.ContextAlreadyExists: _permanent,
    docker.errors.ContextNotFound: _permanent,
    docker.errors.MissingContextParameter: _permanent,
    docker.errors.StreamParseError: _by_message,
    docker.errors.DockerException: _by_message,  # "Error while fetching server API version: ..."
    requests.exceptions.ConnectionError: _unreachable,
    requests.exceptions.Timeout: _unreachable,
    requests.exceptions.ChunkedEncodingError: _by_message,
    requests.exceptions.RequestException: _by_message,
}


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    """Classify every docker-py/requests failure once, with the original chained."""
    try:
        yield
    except MldeployError:
        raise
    except Exception as exc:
        handler = most_specific(exc, DOCKER_ERRORS)
        if handler is None:
            raise PermanentError(f"{operation}: {type(exc).__name__}: {exc}") from exc
        raise handler(exc, operation) from exc


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    log: str
    steps: int
    cached_steps: int
    rebuilt: tuple[str, ...]  # instructions that ran (not from cache), FROM and metadata LABELs aside


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    status: str  # created | running | restarting | exited | dead | paused
    exit_code: int | None
    oom_killed: bool
    restart_count: int
    health: str | None  # starting | healthy | unhealthy | None (no healthcheck)
    labels: dict[str, str] = field(default_factory=dict)
    image: str = ""
    host_port: int | None = None
    started_at: str = ""
    networks: dict[str, tuple[str, ...]] = field(default_factory=dict)  # network -> aliases
    host_ports: dict[int, int] = field(default_factory=dict)  # container port -> published port on 127.0.0.1


def auth_config(auth: RegistryAuth) -> dict[str, str] | None:
    """Docker's ``auth_config`` for a push or pull."""
    if isinstance(auth, BasicAuth):
        return {"username": auth.username, "password": auth.password}
    if isinstance(auth, TokenAuth):
        return {"username": auth.username, "identitytoken": auth.token}
    if isinstance(auth, EntraSignIn):
        raise TypeError("an Entra sign-in is exchanged for a TokenAuth (adapters.acr_auth) before the engine pushes")
    return None


class DockerEngine:
    """Thin wrapper over docker-py. Pass a client to use another engine (or a test double).

    The connection is made on first use, so a run can build its one engine up front and the
    stage that first needs it reports an unreachable engine (``engine_unavailable``).
    """

    def __init__(self, client: Any | None = None, *, timeout: int = API_TIMEOUT_SECONDS) -> None:
        self._client = client
        self._timeout = timeout

    @property
    def client(self) -> Any:
        if self._client is None:
            with translated("connect to the Docker engine"):
                self._client = docker.from_env(timeout=self._timeout)
        return self._client

    # --- images ------------------------------------------------------------------------
    def image_id(self, ref: str) -> str | None:
        try:
            with translated(f"inspect image {ref}"):
                return str(self.client.api.inspect_image(ref)["Id"])
        except PermanentError:
            return None

    def image_labels(self, ref: str) -> dict[str, str] | None:
        """The labels of a local image, or None when the engine has no such image."""
        try:
            with translated(f"inspect image {ref}"):
                info = self.client.api.inspect_image(ref)
        except PermanentError:
            return None
        return dict((info.get("Config") or {}).get("Labels") or {})

    def python_version(self, image: str) -> str:
        """major.minor of python3 inside an image (a 0.3 s container run)."""
        with translated(f"read the Python version of {image}"):
            out = self.client.containers.run(
                image,
                ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                remove=True,
                network_disabled=True,
                stdout=True,
                stderr=True,
            )
        return bytes(out).decode().strip()

    def build(
        self, context: Path, tag: str, labels: dict[str, str], on_line: LineSink = _noop, *, no_cache: bool = False
    ) -> BuildResult:
        lines: list[str] = []
        image_id = ""
        steps = cached = 0
        step_instructions: list[str] = []
        cached_indexes: set[int] = set()
        with translated(f"build image {tag}"):
            stream = self.client.api.build(
                path=str(context),
                tag=tag,
                labels=labels,
                rm=True,
                forcerm=True,
                decode=True,
                pull=False,
                nocache=no_cache,
                timeout=BUILD_TIMEOUT_SECONDS,
                network_mode="none",  # the wheelhouse is the only source: RUN steps reach no network
            )
            for event in stream:
                if "error" in event:
                    message = str(event["error"]).strip()
                    lines.append(message)
                    on_line(message)
                    log = "\n".join(lines)
                    if _TRANSIENT_MESSAGES.search(message) and "returned a non-zero code" not in message:
                        raise TransientError(f"build of {tag} interrupted: {message}")
                    raise PermanentError(
                        f"build of {tag} failed: {message}", diagnosis=diagnosis.build_failure(log, message)
                    )
                text = event.get("stream")
                if text:
                    for line in str(text).splitlines():
                        if not line.strip():
                            continue
                        lines.append(line)
                        on_line(line)
                        if line.startswith("Step "):
                            steps += 1
                            step_instructions.append(line.split(" : ", 1)[-1])
                        elif "Using cache" in line:
                            cached += 1
                            cached_indexes.add(len(step_instructions) - 1)
                aux = event.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = str(aux["ID"])
        if not image_id:
            image_id = self.image_id(tag) or ""
        if not image_id:
            raise PermanentError(
                f"build of {tag} ended without an image",
                diagnosis=diagnosis.build_failure("\n".join(lines), "no image id in the build stream"),
            )
        rebuilt = tuple(
            instruction
            for index, instruction in enumerate(step_instructions)
            if index not in cached_indexes and not instruction.startswith(("FROM ", "LABEL "))
        )
        return BuildResult(image_id=image_id, log="\n".join(lines), steps=steps, cached_steps=cached, rebuilt=rebuilt)

    def remove_dangling(self, labels: dict[str, str]) -> list[str]:
        """Remove untagged images with these labels: what a killed build leaves behind."""
        filters = {"dangling": True, "label": [f"{k}={v}" for k, v in labels.items()]}
        with translated("list dangling images"):
            found = self.client.api.images(filters=filters, quiet=True)
        removed = []
        for image_id in found:
            try:
                with translated(f"remove image {image_id}"):
                    self.client.api.remove_image(image_id, force=False, noprune=False)
                removed.append(str(image_id))
            except (PermanentError, TransientError):
                continue  # in use or already gone
        return removed

    def build_wheel(self, image: str, sdist: Path, out: Path) -> Path | None:
        """Build ``sdist`` into a wheel in a container of ``image`` with no network (its setup code never
        runs on this machine); the wheel in ``out``, or None when it does not build there."""
        import os

        before = set(out.glob("*.whl"))
        try:
            with translated(f"build a wheel from {sdist.name}"):
                self.client.containers.run(
                    image,
                    [
                        "python3",
                        "-m",
                        "pip",
                        "wheel",
                        "--no-deps",
                        "--no-build-isolation",
                        "--no-index",
                        "--wheel-dir",
                        "/out",
                        f"/src/{sdist.name}",
                    ],
                    volumes={
                        str(sdist.parent): {"bind": "/src", "mode": "ro"},
                        str(out): {"bind": "/out", "mode": "rw"},
                    },
                    environment={"HOME": "/tmp", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
                    user=f"{os.getuid()}:{os.getgid()}",
                    network_disabled=True,
                    remove=True,
                )
        except PermanentError:
            return None  # it needs a compiler or a build backend the image lacks
        made = sorted(set(out.glob("*.whl")) - before)
        return made[0] if made else None

    def prune_images(self, labels: dict[str, str], keep: int) -> list[str]:
        """Remove all but the ``keep`` newest images with these labels; images in use stay."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with translated("list images"):
            found = sorted(self.client.api.images(filters=filters), key=lambda i: i.get("Created", 0), reverse=True)
        removed = []
        for image in found[keep:]:
            try:
                with translated(f"remove image {image['Id']}"):
                    self.client.api.remove_image(image["Id"], force=True, noprune=False)
                removed.append(str(image["Id"]))
            except (PermanentError, TransientError):
                continue  # in use by a container, or already gone
        return removed

    def repo_digests(self, ref: str) -> tuple[str, ...]:
        """``name@digest`` entries of a local image: where the engine knows it was pushed."""
        try:
            with translated(f"inspect image {ref}"):
                info = self.client.api.inspect_image(ref)
        except PermanentError:
            return ()
        return tuple(str(d) for d in info.get("RepoDigests") or ())

    def treats_as_insecure(self, registry: str) -> bool:
        """Whether the engine talks plain HTTP to ``registry`` (loopback, or its insecure-registries)."""
        import ipaddress

        with translated("read the engine's registry settings"):
            config = self.client.api.info().get("RegistryConfig") or {}
        index = (config.get("IndexConfigs") or {}).get(registry)
        if index is not None:
            return not bool(index.get("Secure", True))
        host = registry.rsplit(":", 1)[0].strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(
            address in ipaddress.ip_network(cidr, strict=False) for cidr in config.get("InsecureRegistryCIDRs") or ()
        )

    def push(
        self, repository: str, tag: str, auth: RegistryAuth = ANONYMOUS, on_line: LineSink = _noop
    ) -> tuple[str, int]:
        """Push and return (digest, layers actually uploaded)."""
        digest = ""
        uploaded = 0
        registry = repository.split("/", 1)[0]
        with translated(f"push {repository}:{tag}"):
            for event in self.client.api.push(
                repository, tag=tag, stream=True, decode=True, auth_config=auth_config(auth)
            ):
                if "error" in event:
                    message = str(event["error"])
                    on_line(message)
                    if _AUTH.search(message):
                        raise PermanentError(
                            f"push to {registry} denied: {message}",
                            diagnosis=diagnosis.registry_auth_denied(registry, message),
                        )
                    if _TRANSIENT_MESSAGES.search(message):
                        raise TransientError(
                            f"push to {registry} failed: {message}",
                            diagnosis=diagnosis.registry_unavailable(registry, message),
                        )
                    raise PermanentError(f"push to {registry} failed: {message}")
                status = str(event.get("status", ""))
                if status == "Pushed":
                    uploaded += 1
                if status and status not in ("Pushing", "Preparing", "Waiting"):
                    on_line(f"{event.get('id', '')} {status}".strip())
                aux = event.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
        if not digest:
            raise TransientError(f"push of {repository}:{tag} returned no digest")
        return digest, uploaded

    def pull(self, ref: str, auth: RegistryAuth = ANONYMOUS, on_line: LineSink = _noop) -> None:
        """Pull an image by digest (or tag) from its registry."""
        registry = ref.split("/", 1)[0]
        with translated(f"pull {ref}"):
            for event in self.client.api.pull(ref, stream=True, decode=True, auth_config=auth_config(auth)):
                if "error" in event:
                    message = str(event["error"])
                    if _AUTH.search(message):
                        found = diagnosis.registry_auth_denied(registry, message)
                        raise PermanentError(f"pull {ref} denied: {message}", diagnosis=found)
                    if _TRANSIENT_MESSAGES.search(message):
                        found = diagnosis.registry_unavailable(registry, message)
                        raise TransientError(f"pull {ref} failed: {message}", diagnosis=found)
                    raise PermanentError(f"pull {ref} failed: {message}")
                status = str(event.get("status", ""))
                if status and status not in ("Downloading", "Extracting", "Waiting"):
                    on_line(f"{event.get('id', '')} {status}".strip())

    # --- containers --------------------------------------------------------------------
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
        extra_ports: Mapping[int, int | None] | None = None,
        read_only_mounts: Mapping[str, str] | None = None,
    ) -> str:
        """Create and start a container; ``host_port`` None publishes an ephemeral port on 127.0.0.1.

        ``files`` (absolute path -> content, mode 0400, owned by ``file_owner``) are put into the
        container before it starts: secrets that must not be readable from its environment.
        ``extra_ports`` (container port -> host port) are published on 127.0.0.1 too;
        ``read_only_mounts`` (host path -> container path) are bind-mounted read-only.
        """
        bindings: dict[int, tuple[str, int | None]] = {container_port: ("127.0.0.1", host_port)}
        bindings.update({inside: ("127.0.0.1", outside) for inside, outside in (extra_ports or {}).items()})
        ports = {f"{inside}/tcp": binding for inside, binding in bindings.items()}
        with translated(f"start container {name}"):
            networking = None
            if network is not None:
                endpoint = self.client.api.create_endpoint_config(aliases=list(aliases) or None)
                networking = self.client.api.create_networking_config({network: endpoint})
            host_config = self.client.api.create_host_config(
                port_bindings=bindings,
                binds={host: {"bind": inside, "mode": "ro"} for host, inside in (read_only_mounts or {}).items()}
                or None,
                mem_limit=mem_limit,
                nano_cpus=int(cpu_cores * 1e9) if cpu_cores else None,
                restart_policy={"Name": "unless-stopped"} if restart else None,
                network_mode=network,
            )
            created = self.client.api.create_container(
                image,
                command=command,
                name=name,
                labels=labels,
                environment=environment,
                ports=list(ports),
                host_config=host_config,
                networking_config=networking,
                user=user,
            )
            container = str(created["Id"])
            try:
                if files:
                    self.client.api.put_archive(container, "/", _tar(files, file_owner))
                self.client.api.start(container)
            except BaseException:
                self.client.api.remove_container(container, force=True)
                raise
        return container

    def write_files(self, container: str, files: dict[str, bytes], owner: int = 0, mode: int = 0o444) -> None:
        """Put files into a (running) container, each replaced whole."""
        with translated(f"write files into {container}"):
            self.client.api.put_archive(container, "/", _tar(files, owner, mode))

    def read_file(self, container: str, path: str) -> bytes | None:
        """One file from a container, or None when it has none."""
        try:
            with translated(f"read {path} from {container}"):
                stream, _ = self.client.api.get_archive(container, path)
                data = b"".join(stream)
        except PermanentError:
            return None
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            member = archive.next()
            handle = archive.extractfile(member) if member is not None else None
            return handle.read() if handle is not None else None

    def set_restart(self, container: str, policy: str) -> None:
        """Change a container's restart policy (``unless-stopped`` once it serves; ``no`` while it proves itself)."""
        with translated(f"update container {container}"):
            self.client.api.update_container(container, restart_policy={"Name": policy})

    def ensure_network(self, name: str, labels: dict[str, str]) -> None:
        """A user-defined bridge network (containers on it reach each other by alias), made once."""
        with translated(f"inspect network {name}"):
            if self.client.api.networks(names=[name]):
                return
        try:
            with translated(f"create network {name}"):
                self.client.api.create_network(name, driver="bridge", labels=labels, check_duplicate=True)
        except TransientError:  # 409: another run made it first
            with translated(f"inspect network {name}"):
                if not self.client.api.networks(names=[name]):
                    raise

    def state(self, container: str) -> ContainerState | None:
        try:
            with translated(f"inspect container {container}"):
                info = self.client.api.inspect_container(container)
        except PermanentError:
            return None
        return _state_of(info)

    def find(self, labels: Mapping[str, str | None], *, include_stopped: bool = True) -> list[ContainerState]:
        """Containers with these labels (a label whose value is None: any value)."""
        filters = {"label": [k if v is None else f"{k}={v}" for k, v in labels.items()]}
        with translated("list containers"):
            found = self.client.api.containers(all=include_stopped, filters=filters)
        states = [self.state(str(item["Id"])) for item in found]
        return [s for s in states if s is not None]

    def logs(self, container: str, tail: int | str = "all", until: float | None = None) -> str:
        """The container's log (every run of it: the engine keeps restarts in one log), up to ``until`` (epoch)."""
        try:
            with translated(f"read the log of {container}"):
                raw = self.client.api.logs(container, stdout=True, stderr=True, tail=tail, until=until)
                return bytes(raw).decode("utf-8", errors="replace")
        except PermanentError:
            return ""

    def follow_logs(self, container: str, tail: int | str = "all") -> Iterator[str]:
        """The log as it is written, until the container stops (or the caller stops reading)."""
        with translated(f"follow the log of {container}"):
            for chunk in self.client.api.logs(container, stdout=True, stderr=True, tail=tail, stream=True, follow=True):
                yield bytes(chunk).decode("utf-8", errors="replace")

    def stop(self, container: str, timeout: int = 10) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds: the runtime finishes what it is answering."""
        with translated(f"stop container {container}"):
            self.client.api.stop(container, timeout=timeout)

    def restart(self, container: str, timeout: int = 10) -> None:
        """Stop (SIGTERM, SIGKILL after ``timeout`` s) and start again: same container, same files."""
        with translated(f"restart container {container}"):
            self.client.api.restart(container, timeout=timeout)

    def start(self, container: str) -> None:
        with translated(f"start container {container}"):
            self.client.api.start(container)

    def rename(self, container: str, name: str) -> None:
        with translated(f"rename container {container}"):
            self.client.api.rename(container, name)

    def remove(self, container: str) -> None:
        try:
            with translated(f"remove container {container}"):
                self.client.api.remove_container(container, force=True)
        except PermanentError:
            pass  # already gone


def _tar(files: dict[str, bytes], owner: int, mode: int = 0o400) -> bytes:
    """A tar of absolute paths, for the engine's archive API (extracted at /)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        made: set[str] = set()
        for path, content in files.items():
            parts = path.strip("/").split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in made:
                    made.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, 0, 0
                    archive.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.uid, info.gid, info.mtime = len(content), mode, owner, owner, time.time()
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _state_of(info: dict[str, Any]) -> ContainerState:
    state = info.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    bindings = info.get("NetworkSettings", {}).get("Ports") or {}
    published = {
        int(inside.split("/")[0]): int(binding[0]["HostPort"]) for inside, binding in bindings.items() if binding
    }
    port = next(iter(published.values()), None)
    return ContainerState(
        id=str(info["Id"]),
        name=str(info.get("Name", "")).lstrip("/"),
        status=str(state.get("Status", "")),
        exit_code=state.get("ExitCode"),
        oom_killed=bool(state.get("OOMKilled")),
        restart_count=int(info.get("RestartCount", 0)),
        health=health,
        labels=dict(info.get("Config", {}).get("Labels") or {}),
        image=str(info.get("Image", "")),
        host_port=port,
        host_ports=published,
        started_at=str(state.get("StartedAt", "")),
        networks={
            name: tuple(endpoint.get("Aliases") or ())
            for name, endpoint in (info.get("NetworkSettings", {}).get("Networks") or {}).items()
        },
    )
