"""The target seam: what every deploy target (local Docker, ACI, Kubernetes) provides.

The deploy and smoke stages only speak this protocol, so a new target plugs in without touching
the stages: report what is live, roll a new version out (keeping the previous one until told to
let it go), roll back, read logs, delete.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

LineSink = Callable[[str], None]

LABEL_SERVICE = "mldeploy.service"
LABEL_FINGERPRINT = "mldeploy.fingerprint"
LABEL_MODEL = "mldeploy.model"
LABEL_IMAGE = "mldeploy.image"


@dataclass(frozen=True)
class LiveService:
    service: str
    fingerprint: str
    endpoint: str
    image: str
    healthy: bool
    model: str = ""


@dataclass(frozen=True)
class DeployRequest:
    service: str
    image: str  # by digest when pushed (repo@sha256:...), else the local image id
    fingerprint: str
    port: int
    environment: Mapping[str, str]
    health_timeout: float
    memory_gb: float | None = None
    cpu_cores: float | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # values to redact from any log this target returns


@dataclass(frozen=True)
class DeployOutcome:
    service: str
    endpoint: str
    instance: str  # container id / container group / deployment name
    previous: str | None  # what served before, kept stopped until commit() or rollback()
    startup_log: str = ""


class Target(Protocol):
    kind: str

    def live(self, service: str) -> LiveService | None: ...

    def deploy(self, request: DeployRequest, on_line: LineSink) -> DeployOutcome: ...

    def commit(self, outcome: DeployOutcome) -> None: ...

    def rollback(self, outcome: DeployOutcome) -> None: ...

    def logs(self, service: str, tail: int = 200) -> str: ...

    def instance_logs(self, outcome: DeployOutcome, tail: int = 200) -> str: ...

    def delete(self, service: str) -> list[str]: ...
