"""The Azure Container Instances target: a new container group beside the old one, proven, then moved in.

1. ``deploy`` creates the version as a container group of its own (``<service>-<6 hex>``, tagged
   ``mldeploy-role: candidate``) on a temporary DNS label, beside the group that serves, and polls it
   (``aci.group_status`` / ``aci.group_evidence``) until it runs and its runtime answers ``/readyz``, or the
   group's state proves it never will — provisioning ``Failed``, an image it cannot pull, a restart count that
   rises (the container log says why, classified as on the local target), an OOM kill. On any failure the new
   group is deleted (ACI would keep restarting it) and the old one was never touched.
2. The smoke stage calls the candidate on its own address.
3. ``commit`` moves the service in the one order ACI allows — a DNS label belongs to one group at a time:
   the candidate is tagged ``proven``; the old group is deleted (its label is free); the candidate is updated
   to the service's label and tagged ``live``; then it must answer again (ACI restarts the containers of an
   updated group). Clients of the FQDN see a gap from the delete until the update answers; clients of the
   candidate's IP none. ``docs/aci.md`` gives the measured gap.

The tags carry the state, so a run killed at any point is recovered by the next one from Azure alone
(``recover``): a candidate never proven is deleted; a proven one is deleted while the old group still serves,
and becomes the live group (on its temporary label) when the old one was already gone.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from mldeploy import aci, diagnosis
from mldeploy.aci import (
    TAG_FINGERPRINT,
    TAG_ROLE,
    TAG_SECRETS_DIGEST,
    TAG_SERVICE,
    AciEvidence,
    AciEvidenceKind,
    GroupInputs,
    RegistryCredential,
)
from mldeploy.adapters.aci_api import AciApi
from mldeploy.adapters.http_probe import HttpProbe
from mldeploy.contract import READINESS_PATH
from mldeploy.errors import MldeployError, PermanentError
from mldeploy.redaction import redact
from mldeploy.registry_auth import BasicAuth, EntraSignIn, TokenAuth
from mldeploy.spec import AciTarget as AciSection
from mldeploy.targets.base import DeployOutcome, DeployRequest, LineSink, LiveService, ServiceDescription
from mldeploy.waiting import Phase

LOG_TAIL = 200
ROLE_CANDIDATE, ROLE_PROVEN, ROLE_LIVE = "candidate", "proven", "live"
TAG_REQUEST_SECONDS = "mldeploy-request-seconds"
GROUP_NAME_MAX = 63


def group_name(service: str, token: str) -> str:
    """``<service>-<token>``, within ACI's 63 characters (the service part is cut, never the token)."""
    return f"{service[: GROUP_NAME_MAX - len(token) - 1].rstrip('-')}-{token}"


def _tags(group: dict[str, Any]) -> dict[str, str]:
    return dict(group.get("tags") or {})


def _registry_credential(request: DeployRequest, section: AciSection) -> RegistryCredential | None:
    server = request.image.split("/", 1)[0]
    auth = request.registry_auth
    if isinstance(auth, BasicAuth):
        return RegistryCredential(server, auth.username, auth.password)
    if isinstance(auth, TokenAuth):
        return RegistryCredential(server, auth.username, auth.token)
    if isinstance(auth, EntraSignIn) and section.registry_identity:  # ACI pulls as the managed identity
        return RegistryCredential(server, identity=section.registry_identity)
    return None


@dataclass
class AciDeployTarget:
    api: AciApi
    section: AciSection
    probe: HttpProbe = field(default_factory=HttpProbe)
    kind: str = "aci"
    poll_interval: float = 2.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    # bodies this run sent, by group: the label move is a PUT, and ARM never returns secure values
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    _location: str = ""

    @property
    def resource_group(self) -> str:
        return self.section.resource_group

    @property
    def location(self) -> str:
        if not self._location:
            self._location = self.section.location or self.api.resource_group_location(self.resource_group)
        return self._location

    def service_label(self, service: str) -> str:
        return self.section.dns_name_label or service

    # --- what is in the resource group ------------------------------------------------------------------------

    def services(self) -> list[str]:
        return sorted({_tags(g)[TAG_SERVICE] for g in self.api.list(self.resource_group) if _tags(g).get(TAG_SERVICE)})

    def _groups(self, service: str) -> list[dict[str, Any]]:
        return [g for g in self.api.list(self.resource_group) if _tags(g).get(TAG_SERVICE) == service]

    def _with_role(self, service: str, role: str) -> list[dict[str, Any]]:
        return [g for g in self._groups(service) if _tags(g).get(TAG_ROLE) == role]

    def _live_group(self, service: str) -> dict[str, Any] | None:
        live = self._with_role(service, ROLE_LIVE)
        return live[0] if live else None

    def recover(self, service: str, on_line: LineSink) -> None:
        """Only a proven version serves; nothing half-made stays (ACI would keep restarting a failed group)."""
        groups = self._groups(service)
        live = [g for g in groups if _tags(g).get(TAG_ROLE) == ROLE_LIVE]
        for group in groups:
            role, name = _tags(group).get(TAG_ROLE), group["name"]
            if role == ROLE_CANDIDATE:
                on_line(f"{service}: container group {name} never passed its smoke test (a killed run); deleting it")
                self.api.delete(self.resource_group, name)
            elif role == ROLE_PROVEN and live:
                on_line(f"{service}: {name} passed but was never moved in; {live[0]['name']} still serves")
                self.api.delete(self.resource_group, name)
            elif role == ROLE_PROVEN:
                on_line(f"{service}: {name} passed and the old group is gone: it serves (on its own DNS label)")
                self.api.set_tags(self.resource_group, name, {**_tags(group), TAG_ROLE: ROLE_LIVE})

    def live(self, service: str) -> LiveService | None:
        group = self._live_group(service)
        if group is None:
            return None
        group = self.api.get(self.resource_group, group["name"]) or group
        tags = _tags(group)
        seconds = tags.get(TAG_REQUEST_SECONDS, "")
        containers = group.get("properties", {}).get("containers") or [{}]
        return LiveService(
            service=service,
            fingerprint=tags.get(TAG_FINGERPRINT, ""),
            endpoint=aci.endpoint_of(group),
            image=str(containers[0].get("properties", {}).get("image", "")),
            healthy=aci.group_status(group).phase is Phase.READY,
            secrets_digest=tags.get(TAG_SECRETS_DIGEST, ""),
            instance=str(group["name"]),
            request_seconds=float(seconds) if seconds else None,
        )

    # --- deploy -----------------------------------------------------------------------------------------------

    def body(self, request: DeployRequest, name: str, label: str, role: str) -> dict[str, Any]:
        return aci.container_group(
            GroupInputs(
                service=request.service,
                group=name,
                dns_label=label,
                location=self.location,
                section=self.section,
                image=request.image,
                fingerprint=request.fingerprint,
                role=role,
                environment=dict(request.environment),
                secret_environment=dict(request.secret_environment),
                auth_keys=dict(request.auth_keys),
                secrets_digest=request.secrets_digest,
                registry=_registry_credential(request, self.section),
                startup_seconds=request.health_timeout,
            )
        )

    def deploy(self, request: DeployRequest, on_line: LineSink) -> DeployOutcome:
        service = request.service
        self.recover(service, on_line)
        old = self._live_group(service)
        name = group_name(service, uuid.uuid4().hex[:6])
        on_line(
            f"creating container group {name} beside {old['name']}, which serves {service}"
            if old
            else f"first deploy of {service} to {self.resource_group}: creating container group {name}"
        )
        body = self.body(request, name, label=name, role=ROLE_CANDIDATE)
        self.sent[name] = body
        try:
            self.api.create_or_update(self.resource_group, name, body)
            on_line(f"{name} is provisioned; waiting for its container and /readyz")
            endpoint = self._wait(name, request, on_line)
        except MldeployError as failure:
            on_line(f"deleting {name}: it will not serve ({failure.message})")
            with contextlib.suppress(MldeployError):
                self.api.delete(self.resource_group, name)
            self.sent.pop(name, None)
            raise
        log = redact(self.api.logs(self.resource_group, name, aci.CONTAINER, tail=50), request.secret_values())
        on_line(f"{name} answers at {endpoint}; the smoke test goes there")
        return DeployOutcome(
            service=service,
            endpoint=endpoint,
            instance=name,
            previous=str(old["name"]) if old else None,
            startup_log=log,
            service_endpoint=self._service_endpoint(service),
        )

    def _service_endpoint(self, service: str) -> str:
        from mldeploy.azure_cloud import aci_fqdn, cloud_of

        cloud = cloud_of(self.section.cloud, arm_endpoint=self.section.arm_endpoint)
        return f"http://{aci_fqdn(self.service_label(service), self.location, cloud)}:{self.section.port}"

    def _budget(self, request: DeployRequest) -> float:
        return max(120.0, request.health_timeout * 2)

    def _wait(self, name: str, request: DeployRequest, on_line: LineSink) -> str:
        """Poll the group until its container runs and /readyz answers, or its state proves it never will."""
        timeout = self._budget(request)
        deadline = self.clock() + timeout
        said = ""
        while True:
            group = self.api.get(self.resource_group, name)
            if group is None:
                raise PermanentError(f"container group {name} disappeared while it started")
            evidence = aci.group_evidence(group)
            if evidence is not None:
                raise self._failure(name, evidence, request)
            status = aci.group_status(group)
            endpoint = self._answering(group)
            if endpoint:
                return endpoint
            reason = status.reason if status.phase is not Phase.READY else "the runtime does not answer /readyz yet"
            if reason != said:
                on_line(f"waiting: {reason}")
                said = reason
            if self.clock() >= deadline:
                log = redact(
                    self.api.logs(self.resource_group, name, aci.CONTAINER, tail=LOG_TAIL), request.secret_values()
                )
                found = diagnosis.health_timeout(timeout, log)
                raise PermanentError(found.summary, diagnosis=found, log=log or None)
            self.sleep(self.poll_interval)

    def _answering(self, group: dict[str, Any]) -> str:
        """The group's address (by IP) when its containers run and the runtime answers /readyz there, else ''."""
        endpoint = aci.endpoint_of(group, by_ip=True)
        ready = aci.group_status(group).phase is Phase.READY
        return endpoint if ready and endpoint and self.probe.healthy(endpoint + READINESS_PATH) else ""

    def _failure(self, name: str, evidence: AciEvidence, request: DeployRequest) -> PermanentError:
        log = redact(self.api.logs(self.resource_group, name, aci.CONTAINER, tail=LOG_TAIL), request.secret_values())
        if evidence.kind is AciEvidenceKind.OUT_OF_MEMORY:
            found = diagnosis.container_exit(137, True, log, memory_limit=f"{self.section.memory_gb:g} GB")
        elif evidence.kind is AciEvidenceKind.CRASHED:
            found = diagnosis.container_exit(evidence.exit_code, False, log)
        elif evidence.kind is AciEvidenceKind.IMAGE_PULL:
            found = diagnosis.aci_image_pull_failed(request.image, evidence.message, name)
        else:
            found = diagnosis.aci_provisioning_failed(name, evidence.message)
        return PermanentError(f"container group {name}: {evidence.message}", diagnosis=found, log=log or None)

    # --- smoke, commit, roll back -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def open_endpoint(self, outcome: DeployOutcome) -> Iterator[str]:
        yield outcome.endpoint

    def commit(self, outcome: DeployOutcome, request_seconds: float | None = None) -> None:
        """Move the service's DNS label to the proven group: tag it, delete the old group, relabel, re-check."""
        name, service = outcome.instance, outcome.service
        extra = {TAG_REQUEST_SECONDS: f"{request_seconds:.4f}"} if request_seconds is not None else {}
        group = self.api.get(self.resource_group, name) or {}
        self.api.set_tags(self.resource_group, name, {**_tags(group), TAG_ROLE: ROLE_PROVEN, **extra})
        if outcome.previous:
            self.api.delete(self.resource_group, outcome.previous)
        sent = self.sent.get(name)  # kept until the move succeeded: a retried commit needs it again
        if sent is None:  # a resumed run in another process: it serves on its own label until the next deploy
            self.api.set_tags(self.resource_group, name, {**_tags(group), TAG_ROLE: ROLE_LIVE, **extra})
            return
        body = json.loads(json.dumps(sent))
        body["properties"]["ipAddress"]["dnsNameLabel"] = self.service_label(service)
        body["tags"] = {**body["tags"], TAG_ROLE: ROLE_LIVE, **extra}
        self.api.create_or_update(self.resource_group, name, body)
        self.sent.pop(name, None)
        deadline = self.clock() + 300.0
        while self.clock() < deadline:  # an updated group's containers restart: it must answer again
            if self._answering(self.api.get(self.resource_group, name) or {}):
                return
            self.sleep(self.poll_interval)
        raise PermanentError(f"{name} took the label {self.service_label(service)} but did not answer again in time")

    def rollback(self, outcome: DeployOutcome) -> str | None:
        """The old group never stopped serving: only the candidate goes."""
        self.sent.pop(outcome.instance, None)
        self.api.delete(self.resource_group, outcome.instance)
        return None

    # --- operations -------------------------------------------------------------------------------------------

    def _serving(self, service: str) -> dict[str, Any]:
        group = self._live_group(service)
        if group is None:
            raise PermanentError(
                f"no container group serves {service!r} in resource group {self.resource_group} "
                f"(az container list -g {self.resource_group})"
            )
        return group

    def logs(self, service: str, *, tail: int = 200, previous: bool = False, follow: bool = False) -> Iterator[str]:
        if previous or follow:  # ACI keeps one log per container, the current instance's, and streams none
            raise PermanentError(
                "Azure Container Instances keeps only the current log of a container: "
                "--previous and --follow are not available for target aci (drop them)"
            )
        yield self.api.logs(self.resource_group, self._serving(service)["name"], aci.CONTAINER, tail=tail)

    def instance_logs(self, outcome: DeployOutcome, tail: int = 200) -> str:
        return self.api.logs(self.resource_group, outcome.instance, aci.CONTAINER, tail=tail)

    def describe(self, service: str) -> ServiceDescription:
        details = {"resource group": self.resource_group, "Resource Manager": self.api.cloud.arm_endpoint}
        group = self._live_group(service)
        if group is not None:
            details["container group"] = str(group["name"])
            details["state"] = aci.group_status(group).reason
        return ServiceDescription(kind=self.kind, service=service, live=self.live(service), details=details)

    def delete(self, service: str) -> list[str]:
        removed = []
        for group in self._groups(service):
            if self.api.delete(self.resource_group, group["name"]):
                removed.append(f"containerGroups/{group['name']}")
        return removed
