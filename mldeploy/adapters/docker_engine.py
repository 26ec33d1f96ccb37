"""The Docker engine adapter: the only module that talks to the engine (docker-py).

Every call has a client-side timeout, and every foreign exception is translated here, once,
into :class:`TransientError` (daemon unavailable, 5xx, timeouts, resets, conflicts) or
:class:`PermanentError` (not found, bad request, port in use, build step failed). The build and
push streams do not raise on failure, so each loop checks for an ``error`` event.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from mldeploy import diagnosis
from mldeploy.errors import MldeployError, PermanentError, TransientError

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


def _noop(_: str) -> None:
    return None


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    """Classify every docker-py/requests failure once, with the original chained."""
    try:
        yield
    except MldeployError:
        raise
    except docker.errors.NotFound as exc:
        raise PermanentError(f"{operation}: not found: {exc.explanation or exc}") from exc
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc)
        status = exc.status_code or 0
        if _PORT_IN_USE.search(text):
            raise PermanentError(f"{operation}: {text}") from exc
        if status == 409 or status >= 500 or status == 429:
            raise TransientError(f"{operation}: engine answered {status}: {text}") from exc
        raise PermanentError(f"{operation}: engine answered {status}: {text}") from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise TransientError(f"{operation}: Docker engine unreachable or slow: {exc}") from exc
    except docker.errors.DockerException as exc:
        text = str(exc)
        if _TRANSIENT_MESSAGES.search(text):
            raise TransientError(f"{operation}: {text}") from exc
        raise PermanentError(f"{operation}: {text}") from exc


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


class DockerEngine:
    """Thin wrapper over docker-py. Pass a client to use another engine (or a test double)."""

    def __init__(self, client: Any | None = None, *, timeout: int = API_TIMEOUT_SECONDS) -> None:
        if client is None:
            with translated("connect to the Docker engine"):
                client = docker.from_env(timeout=timeout)
        self.client = client

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

    def push(
        self, repository: str, tag: str, auth: dict[str, str] | None = None, on_line: LineSink = _noop
    ) -> tuple[str, int]:
        """Push and return (digest, layers actually uploaded)."""
        digest = ""
        uploaded = 0
        registry = repository.split("/", 1)[0]
        with translated(f"push {repository}:{tag}"):
            for event in self.client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=auth):
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
        restart: bool = False,
    ) -> str:
        ports = (
            {f"{container_port}/tcp": ("127.0.0.1", host_port)}
            if host_port is not None
            else {f"{container_port}/tcp": ("127.0.0.1", None)}
        )
        with translated(f"start container {name}"):
            container = self.client.containers.run(
                image,
                detach=True,
                name=name,
                labels=labels,
                environment=environment,
                ports=ports,
                mem_limit=mem_limit,
                restart_policy={"Name": "unless-stopped"} if restart else None,
            )
        return str(container.id)

    def state(self, container: str) -> ContainerState | None:
        try:
            with translated(f"inspect container {container}"):
                info = self.client.api.inspect_container(container)
        except PermanentError:
            return None
        return _state_of(info)

    def find(self, labels: dict[str, str], *, include_stopped: bool = True) -> list[ContainerState]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with translated("list containers"):
            found = self.client.api.containers(all=include_stopped, filters=filters)
        states = [self.state(str(item["Id"])) for item in found]
        return [s for s in states if s is not None]

    def logs(self, container: str, tail: int | str = "all") -> str:
        try:
            with translated(f"read the log of {container}"):
                return bytes(self.client.api.logs(container, stdout=True, stderr=True, tail=tail)).decode(
                    "utf-8", errors="replace"
                )
        except PermanentError:
            return ""

    def stop(self, container: str, timeout: int = 10) -> None:
        with translated(f"stop container {container}"):
            self.client.api.stop(container, timeout=timeout)

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


def _state_of(info: dict[str, Any]) -> ContainerState:
    state = info.get("State", {})
    health = (state.get("Health") or {}).get("Status")
    port = None
    bindings = info.get("NetworkSettings", {}).get("Ports") or {}
    for binding in bindings.values():
        if binding:
            port = int(binding[0]["HostPort"])
            break
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
    )
