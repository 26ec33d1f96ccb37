"""The local Docker target: a front on 127.0.0.1:<port> and the service's versions behind it.

The port belongs to a small *front* container (``mldeploy-<service>``) that relays each new
connection to the backend its pointer file names. A roll-out never touches the live version
until the new one has proven itself:

1. ``deploy`` starts the new version as a *candidate* backend (``mldeploy-<service>-<id>``) on an
   ephemeral port; an exit or restart fails at once with its log, while the live version serves;
2. the smoke stage calls the candidate on its own port (``open_endpoint``);
3. ``commit`` points the front at the candidate (one file write: new connections reach it, open
   ones finish on the old version) and stops the old version gracefully; ``rollback`` removes the
   candidate. No request is refused on the port during either.

What serves is what the front's pointer names, so a run killed at any point is recovered by the
next one from the engine alone: every backend the pointer does not name is removed.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mldeploy import diagnosis
from mldeploy.adapters.docker_engine import ContainerState, DockerEngine
from mldeploy.adapters.http_probe import HttpProbe
from mldeploy.contract import (
    AUTH_FILE_SUFFIX,
    CONTAINER_PORT,
    LABEL_FINGERPRINT,
    LABEL_IMAGE,
    LABEL_MODEL,
    LABEL_ROLE,
    LABEL_SECRETS_DIGEST,
    LABEL_SERVICE,
    READINESS_PATH,
    SERVICE_UID,
)
from mldeploy.errors import PermanentError
from mldeploy.redaction import redact
from mldeploy.spec import LocalTarget
from mldeploy.targets.base import DeployOutcome, DeployRequest, LineSink, LiveService, ServiceDescription
from mldeploy.waiting import Phase, Status, container_status, wait_until

DNS_LABEL_MAX = 63
NETWORK = "mldeploy"  # one bridge network: the front reaches backends by their alias
POINTER = "/run/mldeploy/front/backend"  # in the front: "<alias>:<port>" of the backend that serves
KEYS_DIR = "/run/mldeploy/keys"  # service keys as files, not environment variables (/proc/1/environ)
IMAGES_KEPT = 3  # per service, newest first
LOG_TAIL = 200
DRAIN_SECONDS = 1.0  # after the swap, before the old version is told to stop
DIVERGED_MARKER = "/run/mldeploy/diverged"  # in a version that mldeploy reload changed: what, and when
RELOAD_STOP_SECONDS = 1  # a reload is the dev loop: the scoring process gets 1 s to finish, not 30
STOP_GRACE_SECONDS = 30  # SIGTERM, then SIGKILL: in-flight requests finish


def front_name(service: str) -> str:
    return f"mldeploy-{service}"


def backend_name(service: str, token: str) -> str:
    """``mldeploy-<service>-<token>``, within a DNS label's 63 characters: it is also the alias the front
    resolves (a longer name does not resolve). The service part is cut, never the token."""
    prefix = front_name(service)[: DNS_LABEL_MAX - len(token) - 1].rstrip("-")
    return f"{prefix}-{token}"


def started_at(stamp: str) -> datetime:
    """The engine's RFC 3339 start time (nanoseconds, Z) as an aware datetime (microseconds)."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + (f".{fraction[:6]}" if fraction else "")).replace(tzinfo=UTC)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Layout:
    """A service's containers on the engine: the front, the backend it points at, and the others."""

    front: ContainerState | None
    live: ContainerState | None  # the backend the front's pointer names
    others: tuple[ContainerState, ...]  # backends that do not serve: candidates, or the version before a swap
    legacy: ContainerState | None = None  # a container of the layout before fronts (one container on the port)
    stale_fronts: tuple[ContainerState, ...] = ()  # a front replaced (new port) whose removal was interrupted


@dataclass
class LocalDockerTarget:
    engine: DockerEngine
    probe: HttpProbe
    section: LocalTarget = field(default_factory=LocalTarget)
    kind: str = "local"
    poll_interval: float = 0.2
    drain_seconds: float = DRAIN_SECONDS

    @classmethod
    def from_section(
        cls, section: LocalTarget, *, engine: DockerEngine | None = None, probe: HttpProbe | None = None
    ) -> LocalDockerTarget:
        return cls(engine or DockerEngine(), probe or HttpProbe(), section)

    # --- what is on the engine ------------------------------------------------------------
    def _layout(self, service: str) -> Layout:
        found = self.engine.find({LABEL_SERVICE: service})
        fronts = [c for c in found if c.labels.get(LABEL_ROLE) == "front"]
        backends = [c for c in found if c.labels.get(LABEL_ROLE) == "backend"]
        legacy = next((c for c in found if LABEL_ROLE not in c.labels), None)
        front = next((c for c in fronts if c.name == front_name(service)), fronts[0] if fronts else None)
        alias = self._pointer(front) if front is not None else None
        live = next((b for b in backends if b.name == alias), None)
        stale = tuple(c for c in fronts if c is not front)
        return Layout(front, live, tuple(b for b in backends if b is not live), legacy, stale)

    def services(self) -> list[str]:
        return sorted({c.labels[LABEL_SERVICE] for c in self.engine.find({LABEL_SERVICE: None})})

    def _pointer(self, front: ContainerState) -> str | None:
        data = self.engine.read_file(front.id, POINTER)
        return data.decode().strip().rpartition(":")[0] if data else None

    def live(self, service: str) -> LiveService | None:
        layout = self._layout(service)
        serving = layout.live if layout.front is not None else layout.legacy
        if serving is None:
            return None
        port = (layout.front or serving).host_port  # the front holds the port (the old layout: the container)
        endpoint = f"http://127.0.0.1:{port}" if port else ""
        running = serving.status == "running" and (layout.front is None or layout.front.status == "running")
        return LiveService(
            service=service,
            fingerprint=serving.labels.get(LABEL_FINGERPRINT, ""),
            endpoint=endpoint,
            image=serving.labels.get(LABEL_IMAGE, serving.image),
            healthy=running and bool(endpoint) and self._answers(endpoint + READINESS_PATH),
            model=serving.labels.get(LABEL_MODEL, ""),
            secrets_digest=serving.labels.get(LABEL_SECRETS_DIGEST, ""),
            instance=serving.id,
            started_at=serving.started_at,
            diverged=(self.engine.read_file(serving.id, DIVERGED_MARKER) or b"").decode(errors="replace").strip(),
        )

    def _answers(self, url: str, attempts: int = 3) -> bool:
        """Liveness of a running service: one slow answer on a busy machine is not a dead service."""
        return any(self.probe.healthy(url, timeout=3.0) for _ in range(attempts))

    # --- recovery: the engine alone says what serves -----------------------------------------
    def recover(self, service: str, on_line: LineSink) -> None:
        """Put the service back into its steady state after a run that was killed at any point."""
        layout = self._layout(service)
        for other in layout.others:
            served = other.labels.get(LABEL_FINGERPRINT) and other.status == "running"
            on_line(
                f"removing {other.name}, left by an interrupted run "
                + ("(the front no longer points at it)" if served else "(it never served)")
            )
            self._retire(other.id)
        for stale in layout.stale_fronts:
            on_line(f"removing {stale.name}: a front replaced by an interrupted run")
            self._retire(stale.id)
        if layout.front is not None and layout.legacy is not None:
            on_line(f"removing {layout.legacy.name}: the front serves the port now")
            self._retire(layout.legacy.id)
        if layout.front is not None and layout.live is None:
            on_line(f"removing {layout.front.name}: it points at no backend (an interrupted first deploy)")
            self.engine.remove(layout.front.id)

    def _retire(self, container: str) -> None:
        """Stop gracefully (what it is answering finishes), then remove; gone already is fine."""
        state = self.engine.state(container)
        if state is None:
            return
        if state.status == "running":
            self.engine.stop(container, timeout=STOP_GRACE_SECONDS)
        self.engine.remove(container)

    # --- roll-out --------------------------------------------------------------------------
    def _labels(self, request: DeployRequest, role: str) -> dict[str, str]:
        return {
            **request.labels,
            LABEL_SERVICE: request.service,
            LABEL_ROLE: role,
            LABEL_FINGERPRINT: request.fingerprint,
            LABEL_IMAGE: request.image,
            LABEL_SECRETS_DIGEST: request.secrets_digest,
        }

    def _start_candidate(self, request: DeployRequest, name: str) -> str:
        key_files = {f"{KEYS_DIR}/{var}": value.encode() for var, value in request.auth_keys.items()}
        key_vars = {f"{var}{AUTH_FILE_SUFFIX}": f"{KEYS_DIR}/{var}" for var in request.auth_keys}
        memory_gb = self.section.memory_gb
        return self.engine.run(
            request.image,
            name=name,
            labels=self._labels(request, "backend"),
            environment={**request.environment, **request.secret_environment, **key_vars},
            host_port=None,
            container_port=CONTAINER_PORT,
            mem_limit=f"{int(memory_gb * 1024)}m" if memory_gb else None,
            cpu_cores=self.section.cpu_cores,
            network=NETWORK,
            aliases=(name,),
            files=key_files,
            file_owner=SERVICE_UID,
        )

    def _wait_healthy(self, container: str, timeout: float) -> tuple[Status, bool]:
        def observe() -> Status:
            state = self.engine.state(container)
            if state is None:
                return container_status(status=None, restart_count=0, http_ok=False)
            http_ok = (
                state.status == "running"
                and state.host_port is not None
                and self.probe.healthy(f"http://127.0.0.1:{state.host_port}{READINESS_PATH}", timeout=1.0)
            )
            return container_status(status=state.status, restart_count=state.restart_count, http_ok=http_ok)

        result = wait_until(observe, timeout, interval=self.poll_interval)
        return result.status, result.timed_out

    def _failure(
        self, container: str, status: Status, timed_out: bool, timeout: float, secret_values: Sequence[str], what: str
    ) -> PermanentError:
        log = redact(self.engine.logs(container, tail=LOG_TAIL), secret_values)
        state = self.engine.state(container)
        if timed_out:
            found = diagnosis.health_timeout(timeout, log)
        else:
            memory = f"{self.section.memory_gb:g} GB" if self.section.memory_gb else ""
            found = diagnosis.container_exit(
                state.exit_code if state else None, bool(state and state.oom_killed), log, memory_limit=memory
            )
        return PermanentError(f"{what}: {found.summary} ({status.reason})", diagnosis=found, log=log)

    def deploy(self, request: DeployRequest, on_line: LineSink) -> DeployOutcome:
        service, port = request.service, self.section.port
        self.recover(service, on_line)
        layout = self._layout(service)
        holder = layout.front or layout.legacy
        if (holder is None or holder.host_port != port) and not port_is_free(port):
            found = diagnosis.port_in_use(port, f"127.0.0.1:{port} is bound by another process")
            raise PermanentError(found.summary, diagnosis=found)
        self.engine.ensure_network(NETWORK, {LABEL_ROLE: "network"})
        name = backend_name(service, secrets.token_hex(4))
        on_line(f"starting {name} for {request.image} beside the live version")
        candidate = self._start_candidate(request, name)
        status, timed_out = self._wait_healthy(candidate, request.health_timeout)
        if status.phase is not Phase.READY:
            error = self._failure(
                candidate,
                status,
                timed_out,
                request.health_timeout,
                request.secret_values(),
                "the new version did not start",
            )
            self.engine.remove(candidate)
            raise error
        state = self.engine.state(candidate)
        endpoint = f"http://127.0.0.1:{state.host_port if state else ''}"
        on_line(f"{name} is ready at {endpoint} (the smoke test runs there; the port is untouched)")
        log = redact(self.engine.logs(candidate, tail=50), request.secret_values())
        previous = layout.live or layout.legacy
        return DeployOutcome(
            service=service,
            endpoint=endpoint,
            instance=candidate,
            previous=previous.id if previous else None,
            startup_log=log,
            service_endpoint=f"http://127.0.0.1:{port}",
        )

    def reload(
        self, service: str, files: Mapping[str, bytes], marker: str, timeout: float, secret_values: Sequence[str]
    ) -> str:
        """Put ``files`` into the version that serves, mark it diverged from its image, restart its scoring
        process and wait until it is ready again; its base URL (mldeploy reload, the local dev loop)."""
        layout = self._layout(service)
        serving = layout.live
        if layout.front is None or serving is None:
            raise PermanentError(f"nothing serves as {service!r} on the local target: deploy it first")
        self.engine.write_files(serving.id, dict(files), owner=SERVICE_UID, mode=0o644)
        self.engine.write_files(serving.id, {DIVERGED_MARKER: marker.encode()})
        self.engine.restart(serving.id, timeout=RELOAD_STOP_SECONDS)
        status, timed_out = self._wait_healthy(serving.id, timeout)
        if status.phase is not Phase.READY:
            raise self._failure(
                serving.id, status, timed_out, timeout, secret_values, "the reloaded version did not start"
            )
        state = self.engine.state(serving.id)
        return f"http://127.0.0.1:{state.host_port if state else ''}"

    @contextlib.contextmanager
    def open_endpoint(self, outcome: DeployOutcome) -> Iterator[str]:
        yield outcome.endpoint  # the candidate, published on its own 127.0.0.1 port

    def commit(self, outcome: DeployOutcome, request_seconds: float | None = None) -> None:
        """Point the front at the new version, then let the old one finish and go."""
        service, port = outcome.service, self.section.port
        candidate = self.engine.state(outcome.instance)
        if candidate is None:
            raise PermanentError(f"the new version of {service} disappeared before it could take over")
        self.engine.set_restart(candidate.id, "unless-stopped")
        pointer = {POINTER: f"{candidate.name}:{CONTAINER_PORT}".encode()}
        layout = self._layout(service)
        if layout.front is not None and layout.front.host_port == port and layout.front.status == "running":
            self.engine.write_files(layout.front.id, pointer, owner=SERVICE_UID)
        else:
            self._new_front(service, port, candidate, pointer, layout)
        self._wait_front(port)
        if outcome.previous:
            time.sleep(self.drain_seconds)  # connections the front opened just before the swap are accepted
            self._retire(outcome.previous)
        # Keep a few recent images per service (fast rollbacks, warm cache); drop the rest.
        self.engine.prune_images({LABEL_SERVICE: service}, keep=IMAGES_KEPT)

    def _new_front(
        self, service: str, port: int, backend: ContainerState, pointer: dict[str, bytes], layout: Layout
    ) -> None:
        """First deploy, a new port, or the layout before fronts: a front of its own on the port."""
        old = layout.front
        if old is not None and old.name == front_name(service):
            self.engine.rename(old.id, f"{front_name(service)}-retired")
        if layout.legacy is not None:  # the layout before fronts held the port itself: one short gap, once
            self._retire(layout.legacy.id)
        self.engine.run(
            backend.labels.get(LABEL_IMAGE, backend.image),
            name=front_name(service),
            labels={LABEL_SERVICE: service, LABEL_ROLE: "front"},
            environment={},
            host_port=port,
            container_port=CONTAINER_PORT,
            restart=True,
            network=NETWORK,
            files=pointer,
            file_owner=SERVICE_UID,
            command=["python3", "-m", "mldeploy_runtime.front", POINTER, str(CONTAINER_PORT)],
        )
        if old is not None:
            self._retire(old.id)

    def _wait_front(self, port: int, timeout: float = 30) -> None:
        url = f"http://127.0.0.1:{port}{READINESS_PATH}"
        result = wait_until(
            lambda: Status(Phase.READY) if self.probe.healthy(url, timeout=1.0) else Status(Phase.PENDING),
            timeout,
            interval=self.poll_interval,
        )
        if result.timed_out:
            raise PermanentError(f"the front on 127.0.0.1:{port} does not answer {READINESS_PATH}")

    def rollback(self, outcome: DeployOutcome) -> str | None:
        self.engine.remove(outcome.instance)  # the live version was never touched
        return None

    # --- operations --------------------------------------------------------------------------
    def logs(self, service: str, *, tail: int = 200, previous: bool = False, follow: bool = False) -> Iterator[str]:
        layout = self._layout(service)
        serving = layout.live or layout.legacy
        if serving is None:
            raise PermanentError(f"no local deployment named {service!r} (see 'docker ps')")
        # One container keeps the log of all its runs: the previous run's is the part before the current start.
        if previous:
            if serving.restart_count == 0:
                raise PermanentError(
                    f"{serving.name} has not restarted since it started at {serving.started_at}: there is no "
                    f"previous run; its log: mldeploy logs {service}"
                )
            yield self.engine.logs(serving.id, tail=tail, until=started_at(serving.started_at).timestamp())
        elif follow:
            yield from self.engine.follow_logs(serving.id, tail=tail)
        else:
            yield self.engine.logs(serving.id, tail=tail)

    def instance_logs(self, outcome: DeployOutcome, tail: int = 200) -> str:
        """The candidate's log, and its state when the process ended since it started (an exit says nothing)."""
        log = self.engine.logs(outcome.instance, tail=tail)
        state = self.engine.state(outcome.instance)
        if state is not None and (state.status != "running" or state.restart_count):
            log += (
                f"\n[the scoring process ended: container {state.status}, last exit code {state.exit_code}, "
                f"restarts: {state.restart_count}]"
            )
        return log

    def describe(self, service: str) -> ServiceDescription:
        layout = self._layout(service)
        details = {"port": f"127.0.0.1:{self.section.port}"}
        if layout.front is not None:
            details["front"] = layout.front.name
        if layout.live is not None:
            details["backend"] = layout.live.name
        return ServiceDescription(kind=self.kind, service=service, live=self.live(service), details=details)

    def delete(self, service: str) -> list[str]:
        removed = []
        for state in self.engine.find({LABEL_SERVICE: service}):
            self.engine.remove(state.id)
            removed.append(state.name)
        images = self.engine.prune_images({LABEL_SERVICE: service}, keep=0)
        if images:
            removed.append(f"{len(images)} image(s)")
        return removed
