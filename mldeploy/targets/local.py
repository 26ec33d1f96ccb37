"""The local Docker target: one container per service on 127.0.0.1:<port>.

Roll-out keeps the previous version serving until the new one has proven itself:
1. a *candidate* container starts on an ephemeral port; an exit or restart fails the deploy at
   once with its log (no waiting out the deadline), while the previous container keeps serving;
2. the live container is stopped and kept as ``<name>-previous``; the new one starts on the
   service port as ``<name>-new`` and must become healthy, otherwise the previous one is restored;
3. after the smoke stage, ``commit`` removes the previous container and renames ``-new`` to the
   service name, or ``rollback`` removes ``-new`` and restores the previous one.

Container names carry the state, so a run killed at any point is recovered by the next one:
only a container named ``mldeploy-<service>`` has passed its smoke test.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

from mldeploy import diagnosis
from mldeploy.adapters.docker_engine import ContainerState, DockerEngine
from mldeploy.adapters.http_probe import HttpProbe
from mldeploy.contract import (
    CONTAINER_PORT,
    LABEL_FINGERPRINT,
    LABEL_IMAGE,
    LABEL_MODEL,
    LABEL_SECRETS_DIGEST,
    LABEL_SERVICE,
    READINESS_PATH,
)
from mldeploy.errors import PermanentError, TransientError
from mldeploy.spec import LocalTarget
from mldeploy.targets.base import DeployOutcome, DeployRequest, LineSink, LiveService, ServiceDescription
from mldeploy.waiting import Phase, Status, container_status, wait_until

IMAGES_KEPT = 3  # per service, newest first
LOG_TAIL = 200


def container_name(service: str, role: str = "") -> str:
    return f"mldeploy-{service}" + (f"-{role}" if role else "")


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class LocalDockerTarget:
    engine: DockerEngine
    probe: HttpProbe
    section: LocalTarget = field(default_factory=LocalTarget)
    kind: str = "local"
    poll_interval: float = 0.2

    @classmethod
    def from_section(
        cls, section: LocalTarget, *, engine: DockerEngine | None = None, probe: HttpProbe | None = None
    ) -> LocalDockerTarget:
        return cls(engine or DockerEngine(), probe or HttpProbe(), section)

    # --- what is live ------------------------------------------------------------------
    def _by_name(self, name: str) -> ContainerState | None:
        return self.engine.state(name)

    def live(self, service: str) -> LiveService | None:
        state = self._by_name(container_name(service))
        if state is None:
            return None
        endpoint = f"http://127.0.0.1:{state.host_port}" if state.host_port else ""
        healthy = state.status == "running" and bool(endpoint) and self._answers(endpoint + READINESS_PATH)
        return LiveService(
            service=service,
            fingerprint=state.labels.get(LABEL_FINGERPRINT, ""),
            endpoint=endpoint,
            image=state.labels.get(LABEL_IMAGE, state.image),
            healthy=healthy,
            model=state.labels.get(LABEL_MODEL, ""),
            secrets_digest=state.labels.get(LABEL_SECRETS_DIGEST, ""),
            instance=state.id,
            started_at=state.started_at,
        )

    def _answers(self, url: str, attempts: int = 3) -> bool:
        """Liveness of a running service: one slow answer on a busy machine is not a dead service."""
        return any(self.probe.healthy(url, timeout=3.0) for _ in range(attempts))

    # --- roll-out ----------------------------------------------------------------------
    def _recover(self, service: str, on_line: LineSink) -> None:
        """Clean up after a run that was killed mid-deploy: no orphans, and the last good version back."""
        for role in ("candidate", "new"):
            leftover = self._by_name(container_name(service, role))
            if leftover is not None:
                on_line(f"removing {leftover.name}, left by an interrupted run (it never passed its smoke test)")
                self.engine.remove(leftover.id)
        previous = self._by_name(container_name(service, "previous"))
        if previous is None:
            return
        if self._by_name(container_name(service)) is not None:  # a commit was interrupted after its rename
            on_line(f"removing {previous.name}: the new version had already been committed")
            self.engine.remove(previous.id)
        else:
            on_line(f"restoring {previous.name}: an interrupted run stopped it and never finished")
            self._restore(service, previous.id)

    def _start(self, request: DeployRequest, name: str, host_port: int | None, restart: bool) -> str:
        labels = {
            **request.labels,
            LABEL_SERVICE: request.service,
            LABEL_FINGERPRINT: request.fingerprint,
            LABEL_IMAGE: request.image,
            LABEL_SECRETS_DIGEST: request.secrets_digest,
        }
        memory_gb = self.section.memory_gb
        return self.engine.run(
            request.image,
            name=name,
            labels=labels,
            environment={**request.environment, **request.secret_environment, **request.auth_keys},
            host_port=host_port,
            container_port=CONTAINER_PORT,
            mem_limit=f"{int(memory_gb * 1024)}m" if memory_gb else None,
            cpu_cores=self.section.cpu_cores,
            restart=restart,
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
        self, container: str, status: Status, timed_out: bool, request: DeployRequest, what: str
    ) -> PermanentError:
        log = diagnosis.redact(self.engine.logs(container, tail=LOG_TAIL), request.secret_values())
        state = self.engine.state(container)
        if timed_out:
            found = diagnosis.health_timeout(request.health_timeout, log)
        else:
            memory = f"{self.section.memory_gb:g} GB" if self.section.memory_gb else ""
            found = diagnosis.container_exit(
                state.exit_code if state else None, bool(state and state.oom_killed), log, memory_limit=memory
            )
        return PermanentError(f"{what}: {found.summary} ({status.reason})", diagnosis=found, log=log)

    def deploy(self, request: DeployRequest, on_line: LineSink) -> DeployOutcome:
        service, port = request.service, self.section.port
        self._recover(service, on_line)
        active = self._by_name(container_name(service))
        if (active is None or active.host_port != port) and not port_is_free(port):
            found = diagnosis.port_in_use(port, f"127.0.0.1:{port} is bound by another process")
            raise PermanentError(found.summary, diagnosis=found)

        # 1. candidate on an ephemeral port: the live version is untouched while it proves itself
        on_line(f"starting candidate container for {request.image}")
        candidate = self._start(request, container_name(service, "candidate"), None, restart=False)
        status, timed_out = self._wait_healthy(candidate, request.health_timeout)
        if status.phase is not Phase.READY:
            error = self._failure(candidate, status, timed_out, request, "the new version did not start")
            self.engine.remove(candidate)
            raise error
        on_line("candidate is healthy")
        self.engine.remove(candidate)

        # 2. switch: stop (keep) the previous, start the new one on the service port
        previous_id: str | None = None
        if active is not None:
            on_line(f"stopping the previous container {active.name} (kept until the smoke test passes)")
            self.engine.stop(active.id)
            self.engine.rename(active.id, container_name(service, "previous"))
            previous_id = active.id
        try:
            new_id = self._start(request, container_name(service, "new"), port, restart=True)
        except (PermanentError, TransientError):
            self._restore(service, previous_id)
            raise
        status, timed_out = self._wait_healthy(new_id, request.health_timeout)
        if status.phase is not Phase.READY:
            error = self._failure(new_id, status, timed_out, request, "the new version did not start on its port")
            self.engine.remove(new_id)
            self._restore(service, previous_id)
            raise error
        endpoint = f"http://127.0.0.1:{port}"
        on_line(f"live at {endpoint} (awaiting the smoke test)")
        log = diagnosis.redact(self.engine.logs(new_id, tail=50), request.secret_values())
        return DeployOutcome(service=service, endpoint=endpoint, instance=new_id, previous=previous_id, startup_log=log)

    def _restore(self, service: str, previous_id: str | None) -> None:
        if previous_id is None:
            return
        self.engine.rename(previous_id, container_name(service))
        self.engine.start(previous_id)
        self._wait_healthy(previous_id, 30)

    def commit(self, outcome: DeployOutcome) -> None:
        # Rename first: a run killed between the two steps leaves a committed service (see _recover).
        self.engine.rename(outcome.instance, container_name(outcome.service))
        if outcome.previous:
            self.engine.remove(outcome.previous)
        # Keep a few recent images per service (fast rollbacks, warm cache); drop the rest.
        self.engine.prune_images({LABEL_SERVICE: outcome.service}, keep=IMAGES_KEPT)

    def rollback(self, outcome: DeployOutcome) -> None:
        self.engine.remove(outcome.instance)
        self._restore(outcome.service, outcome.previous)

    @contextlib.contextmanager
    def open_endpoint(self, outcome: DeployOutcome) -> Iterator[str]:
        yield outcome.endpoint  # published on 127.0.0.1: nothing to open

    # --- operations --------------------------------------------------------------------
    def logs(self, service: str, *, tail: int = 200, previous: bool = False, follow: bool = False) -> Iterator[str]:
        state = self._by_name(container_name(service)) or self._by_name(container_name(service, "new"))
        if state is None:
            raise PermanentError(f"no local deployment named {service!r} (see 'docker ps')")
        # One container keeps the log of all its runs (restarts included): `previous` is part of it.
        if follow:
            yield from self.engine.follow_logs(state.id, tail=tail)
        else:
            yield self.engine.logs(state.id, tail=tail)

    def describe(self, service: str) -> ServiceDescription:
        live = self.live(service)
        details = {"port": f"127.0.0.1:{self.section.port}"}
        if live is not None:
            details["container"] = container_name(service)
        return ServiceDescription(kind=self.kind, service=service, live=live, details=details)

    def instance_logs(self, outcome: DeployOutcome, tail: int = 200) -> str:
        return self.engine.logs(outcome.instance, tail=tail)

    def delete(self, service: str) -> list[str]:
        removed = []
        for state in self.engine.find({LABEL_SERVICE: service}):
            self.engine.remove(state.id)
            removed.append(state.name)
        images = self.engine.prune_images({LABEL_SERVICE: service}, keep=0)
        if images:
            removed.append(f"{len(images)} image(s)")
        return removed
