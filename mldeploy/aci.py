"""Azure Container Instances, as data: the container group one version runs in, and what a group's state says.

``container_group`` renders the body of ``PUT .../containerGroups/{name}`` (api-version 2023-05-01, the REST
shape of Microsoft's examples): the image by digest, cpu and memory, the port, a DNS name label, plain and
**secure** environment variables (the spec's secrets and the service keys: ``secureValue``, which ARM never
returns), registry credentials, restart policy, probes, and tags that carry the service's state (the names and
tags say which group serves). ``to_json`` prints it with every secure value and password elided (``mldeploy
render --target aci``).

``group_status`` and ``group_evidence`` judge a ``GET`` of the group: provisioning ``Failed``, a container
``Waiting`` on an image it cannot pull, a restart count that rises (an ``init()`` crash: the log tells why), an
exit code or an OOM kill. Pure: every case is tested on Microsoft's documented responses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mldeploy.contract import ENV_PORT, LIVENESS_PATH, READINESS_PATH
from mldeploy.spec import AciTarget
from mldeploy.waiting import Phase, Status

API_VERSION = "2023-05-01"
CONTAINER = "scoring"
TAG_SERVICE = "mldeploy-service"
TAG_FINGERPRINT = "mldeploy-fingerprint"
TAG_ROLE = "mldeploy-role"  # candidate (being proven) | live (serves the service's DNS label)
TAG_SECRETS_DIGEST = "mldeploy-secrets-digest"
ELIDED = "(elided)"


@dataclass(frozen=True)
class RegistryCredential:
    server: str
    username: str = ""
    password: str = ""
    identity: str = ""  # a user-assigned managed identity's resource id (ACR pull without a password)


@dataclass(frozen=True)
class GroupInputs:
    service: str
    group: str  # the container group's name
    dns_label: str
    location: str
    section: AciTarget
    image: str
    fingerprint: str
    role: str = "candidate"
    environment: Mapping[str, str] = field(default_factory=dict)
    secret_environment: Mapping[str, str] = field(default_factory=dict)
    auth_keys: Mapping[str, str] = field(default_factory=dict)
    secrets_digest: str = ""
    registry: RegistryCredential | None = None
    startup_seconds: float = 60.0


def container_group(inputs: GroupInputs) -> dict[str, Any]:
    section = inputs.section
    port = section.port
    env: list[dict[str, str]] = [{"name": k, "value": str(v)} for k, v in sorted(inputs.environment.items())]
    env.append({"name": ENV_PORT, "value": str(port)})
    env += [{"name": k, "secureValue": v} for k, v in sorted({**inputs.secret_environment, **inputs.auth_keys}.items())]
    probe_period = 5

    def probe(path: str, failures: int, delay: int = 0) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": port, "scheme": "http"},
            "initialDelaySeconds": delay,
            "periodSeconds": probe_period,
            "failureThreshold": failures,
            "timeoutSeconds": 3,
        }

    container = {
        "name": CONTAINER,
        "properties": {
            "image": inputs.image,
            "ports": [{"port": port, "protocol": "TCP"}],
            "environmentVariables": env,
            "resources": {"requests": {"cpu": section.cpu_cores, "memoryInGB": section.memory_gb}},
            # the runtime answers / at once and /readyz once init() returned: liveness never kills a slow load
            "livenessProbe": probe(LIVENESS_PATH, 3, 10),
            "readinessProbe": probe(READINESS_PATH, max(3, int(inputs.startup_seconds // probe_period))),
        },
    }
    properties: dict[str, Any] = {
        "containers": [container],
        "osType": "Linux",
        "restartPolicy": section.restart_policy,
        "ipAddress": {"type": "Public", "dnsNameLabel": inputs.dns_label, "ports": [{"port": port, "protocol": "TCP"}]},
    }
    if inputs.registry is not None:
        credential: dict[str, str] = {"server": inputs.registry.server}
        if inputs.registry.identity:
            credential["identity"] = inputs.registry.identity
        else:
            credential.update(username=inputs.registry.username, password=inputs.registry.password)
        properties["imageRegistryCredentials"] = [credential]
    identity = {}
    if inputs.registry is not None and inputs.registry.identity:  # the identity ACI pulls with is the group's
        identity = {"identity": {"type": "UserAssigned", "userAssignedIdentities": {inputs.registry.identity: {}}}}
    return {
        "location": inputs.location,
        **identity,
        "tags": {
            TAG_SERVICE: inputs.service,
            TAG_FINGERPRINT: inputs.fingerprint,
            TAG_ROLE: inputs.role,
            TAG_SECRETS_DIGEST: inputs.secrets_digest,
        },
        "properties": properties,
    }


def elide(body: dict[str, Any]) -> dict[str, Any]:
    """The body with every secure value and registry password replaced (what may be printed or logged)."""
    copy = json.loads(json.dumps(body))
    for container in copy["properties"]["containers"]:
        for variable in container["properties"].get("environmentVariables", []):
            if "secureValue" in variable:
                variable["secureValue"] = ELIDED
    for credential in copy["properties"].get("imageRegistryCredentials", []):
        if "password" in credential:
            credential["password"] = ELIDED
    return dict(copy)


def to_json(body: dict[str, Any]) -> str:
    return json.dumps(elide(body), indent=2) + "\n"


# --- what a group's state says -----------------------------------------------------------------------------


class AciEvidenceKind(StrEnum):
    PROVISIONING_FAILED = "provisioning_failed"
    IMAGE_PULL = "image_pull"
    CRASHED = "crashed"
    OUT_OF_MEMORY = "out_of_memory"


@dataclass(frozen=True)
class AciEvidence:
    kind: AciEvidenceKind
    message: str
    exit_code: int | None = None


def _properties(group: Mapping[str, Any]) -> Mapping[str, Any]:
    return group.get("properties") or {}


def _container_views(group: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [
        (container.get("properties") or {}).get("instanceView") or {}
        for container in _properties(group).get("containers") or []
    ]


def _events(views: Sequence[Mapping[str, Any]], group: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = [event for view in views for event in view.get("events") or []]
    return found + list((_properties(group).get("instanceView") or {}).get("events") or [])


_PULL_FAILURE = ("failed to pull", "pull access denied", "inaccessibleimage", "manifest unknown", "not found")


def group_evidence(group: Mapping[str, Any]) -> AciEvidence | None:
    """The first proof in a group's state that it will not serve: provisioning failed, an image it cannot pull,
    a container that exited (a rising restart count: the previous state has the exit) or was OOM-killed."""
    views = _container_views(group)
    events = _events(views, group)
    failed_events = [e for e in events if str(e.get("type", "")).lower() == "warning" or e.get("name") == "Failed"]
    for event in failed_events:
        message = str(event.get("message", ""))
        if any(word in message.lower() for word in _PULL_FAILURE):
            return AciEvidence(AciEvidenceKind.IMAGE_PULL, message)
    for view in views:
        previous = view.get("previousState") or {}
        current = view.get("currentState") or {}
        restarts = int(view.get("restartCount") or 0)
        ended = current if current.get("state") == "Terminated" else (previous if restarts > 0 else {})
        if ended:
            detail = str(ended.get("detailStatus", ""))
            code = ended.get("exitCode")
            if "oom" in detail.lower() or (code == 137 and "killed" in detail.lower()):
                return AciEvidence(AciEvidenceKind.OUT_OF_MEMORY, detail or "OOMKilled", 137)
            if code not in (None, 0) or restarts > 0:
                return AciEvidence(
                    AciEvidenceKind.CRASHED, f"exited with code {code}" + (f" ({detail})" if detail else ""), code
                )
    if _properties(group).get("provisioningState") == "Failed":
        said = "; ".join(str(e.get("message", "")) for e in events if e.get("message")) or "provisioning failed"
        return AciEvidence(AciEvidenceKind.PROVISIONING_FAILED, said)
    return None


def group_status(group: Mapping[str, Any]) -> Status:
    """Provisioned and every container running: ready for its HTTP check; otherwise what it waits for."""
    state = _properties(group).get("provisioningState", "")
    if state in ("Failed", "Canceled"):
        return Status(Phase.FAILED, f"provisioning {state}")
    if state != "Succeeded":
        return Status(Phase.PENDING, f"provisioning {state or 'pending'}")
    views = _container_views(group)
    waiting = [str((v.get("currentState") or {}).get("state", "")) for v in views]
    if all(s == "Running" for s in waiting) and waiting:
        return Status(Phase.READY, "running")
    return Status(Phase.PENDING, "container " + ", ".join(s or "starting" for s in waiting))


def endpoint_of(group: Mapping[str, Any], *, by_ip: bool = False) -> str:
    """http://<fqdn>:<port> of a group's public address ('' while it has none); ``by_ip``: its IP address
    instead (what a deploy checks: a new DNS name may take a while to resolve everywhere)."""
    address = _properties(group).get("ipAddress") or {}
    host = address.get("ip") if by_ip else address.get("fqdn") or address.get("ip")
    ports = address.get("ports") or []
    if not host or not ports:
        return ""
    return f"http://{host}:{ports[0]['port']}"
