"""The target seam: what every deploy target (local Docker, ACI, Kubernetes) provides.

The deploy and smoke stages only speak this protocol, so a new target plugs in without touching
the stages: report what is live, roll a new version out (keeping the previous one until told to
let it go), open the endpoint for the smoke test, commit or roll back, read logs, describe,
delete. A target is built from its spec section (:func:`mldeploy.targets.make_target`) once per
run; everything it needs to recover from a killed run lives on the target, not in our process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from mldeploy.registry_auth import ANONYMOUS, RegistryAuth

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class LiveService:
    service: str
    fingerprint: str
    endpoint: str
    image: str
    healthy: bool
    model: str = ""
    secrets_digest: str = ""  # keyed digest of the secret values it runs with (never the values)
    instance: str = ""
    started_at: str = ""
    request_seconds: float | None = None  # the median smoke latency measured when it was committed
    diverged: str = ""  # what changed it since its image (mldeploy reload), or "" when it runs its image as built


@dataclass(frozen=True)
class DeployRequest:
    service: str
    image: str  # by digest when pushed (name@sha256:...), else the local image id
    fingerprint: str
    health_timeout: float
    environment: Mapping[str, str] = field(default_factory=dict)  # plain configuration
    secret_environment: Mapping[str, str] = field(default_factory=dict)  # the spec's secrets: values
    auth_keys: Mapping[str, str] = field(default_factory=dict)  # key-auth keys by runtime variable
    registry_auth: RegistryAuth = ANONYMOUS  # to pull the image
    labels: Mapping[str, str] = field(default_factory=dict)
    secrets_digest: str = ""

    def secret_values(self) -> tuple[str, ...]:
        """Every value a log this target returns must not show."""
        return (
            *self.secret_environment.values(),
            *self.auth_keys.values(),
            *self.registry_auth.secret_values(),
        )

    def __repr__(self) -> str:  # never the values
        return f"DeployRequest(service={self.service!r}, image={self.image!r}, fingerprint={self.fingerprint[:12]!r})"


@dataclass(frozen=True)
class DeployOutcome:
    service: str
    endpoint: str  # where the new version answers now (the smoke test goes there, via open_endpoint)
    instance: str  # container id / container group / deployment revision
    previous: str | None  # what served before, kept until commit() or rollback()
    startup_log: str = ""
    service_endpoint: str = ""  # where clients reach the service once the new version is committed


@dataclass(frozen=True)
class ServiceDescription:
    """What `mldeploy status` prints for one service on one target."""

    kind: str
    service: str
    live: LiveService | None
    details: Mapping[str, str] = field(default_factory=dict)  # target-specific facts, human-readable


class Target(Protocol):
    kind: str

    def recover(self, service: str, on_line: LineSink) -> None:
        """Bring the service back to its steady state after a run killed at any point: only a version
        that passed its smoke test serves, and nothing half-made is left (called before every run)."""
        ...

    def services(self) -> list[str]:
        """The names of the services mldeploy deployed here (``mldeploy status``)."""
        ...

    def live(self, service: str) -> LiveService | None: ...

    def deploy(self, request: DeployRequest, on_line: LineSink) -> DeployOutcome: ...

    def open_endpoint(self, outcome: DeployOutcome) -> AbstractContextManager[str]:
        """The base URL of the rolled-out version, usable for as long as the context is open
        (a Kubernetes port-forward lives exactly as long as the smoke test)."""
        ...

    def commit(self, outcome: DeployOutcome, request_seconds: float | None = None) -> None:
        """The new version passed its smoke test (which measured ``request_seconds`` per request): it serves."""
        ...

    def rollback(self, outcome: DeployOutcome) -> str | None:
        """Put back what served before ``outcome``; what now serves, when the target had to restore it
        (a Kubernetes revision), else None (the previous version never stopped serving)."""
        ...

    def logs(self, service: str, *, tail: int = 200, previous: bool = False, follow: bool = False) -> Iterator[str]:
        """The service's log in chunks; ``previous``: the instance before the last restart or crash."""
        ...

    def instance_logs(self, outcome: DeployOutcome, tail: int = 200) -> str: ...

    def describe(self, service: str) -> ServiceDescription: ...

    def delete(self, service: str) -> list[str]: ...
