"""The Kubernetes objects of one service version: pure functions of the deploy request and the target section.

Deployment (the image by digest; non-root, read-only root filesystem with a writable /tmp; requests and
limits; liveness ``/``, readiness ``/readyz`` and a startup probe whose budget covers ``init()``; a revision
history to roll back to; labels and the deploy fingerprint), Service, HorizontalPodAutoscaler (autoscaling/v2),
PodDisruptionBudget when more than one replica serves, an optional Ingress, a Secret with the spec's secrets and
the service keys (named after their digest, so each revision keeps its own), and an image pull secret when the
registry needs credentials. ``render`` returns them in apply order; ``to_yaml`` prints them with secret values
elided (``mldeploy render``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from mldeploy.contract import (
    AUTH_FILE_SUFFIX,
    CONTAINER_PORT,
    LIVENESS_PATH,
    READINESS_PATH,
    SERVICE_UID,
)
from mldeploy.images import ImageRef
from mldeploy.registry_auth import ANONYMOUS, BasicAuth, RegistryAuth, TokenAuth
from mldeploy.rollout import FINGERPRINT_ANNOTATION
from mldeploy.spec import Autoscale, KubernetesTarget

MANAGER = "mldeploy"  # the server-side apply field manager
LABEL_SERVICE = "mldeploy.dev/service"
LABEL_MODEL = "mldeploy.dev/model"
LABEL_FINGERPRINT = "mldeploy.dev/fingerprint"
# What the target records about the service, in a ConfigMap of its own: on the Deployment an annotation
# would bump metadata.generation (the controller copies them to ReplicaSets), so a re-apply would not be a no-op.
STATE_COMMITTED = "committed-revision"  # the revision that last passed its smoke test
STATE_IMAGE = "image"  # the image of that revision
STATE_INIT_SECONDS = "init-seconds"  # init() time its runtime reported
STATE_REQUEST_SECONDS = "request-seconds"  # median smoke latency measured for it
STATE_COMMITTED_AT = "committed-at"  # when that revision went live (UTC, ISO 8601)
ANNOTATION_SECRETS_DIGEST = "mldeploy.dev/secrets-digest"
ANNOTATION_MODEL = "mldeploy.dev/model"  # the model label as written (name:version): a label value cannot hold ':'
KEYS_DIR = "/run/mldeploy/keys"
ELIDED = "(elided)"
PROBE_PERIOD_SECONDS = 2  # startup and readiness: a ready pod joins the Service within ~2 s
DRAIN_SECONDS = 5  # preStop: endpoints drop the pod before it stops taking requests


@dataclass(frozen=True)
class KubeInputs:
    """Everything one version's objects are made from (values of secrets included: render elides them)."""

    service: str
    section: KubernetesTarget
    image: str  # by digest
    fingerprint: str
    model_label: str
    environment: Mapping[str, str] = field(default_factory=dict)
    secret_environment: Mapping[str, str] = field(default_factory=dict)
    auth_keys: Mapping[str, str] = field(default_factory=dict)
    secrets_digest: str = ""
    registry_auth: RegistryAuth = ANONYMOUS
    startup_seconds: float = 60.0  # how long init() may take before the startup probe gives up
    progress_deadline_seconds: int = 600


def quantity_cpu(cores: float) -> str:
    return f"{max(1, round(cores * 1000))}m"


def quantity_memory(gb: float) -> str:
    return f"{max(1, round(gb * 1024))}Mi"


def label_value(text: str) -> str:
    """A label value (63 characters of [A-Za-z0-9_.-], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:63]
    return value.strip("_.-") or "none"


def common_labels(inputs: KubeInputs) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": inputs.service,
        "app.kubernetes.io/managed-by": MANAGER,
        LABEL_SERVICE: inputs.service,
        **inputs.section.labels,
    }


def _metadata(inputs: KubeInputs, name: str, **annotations: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": inputs.section.namespace, "labels": common_labels(inputs)}
    merged = {**inputs.section.annotations, **annotations}
    if merged:
        meta["annotations"] = merged
    return meta


def state_name(service: str) -> str:
    return f"{service}-mldeploy-state"


def state_config_map(service: str, section: KubernetesTarget, data: Mapping[str, str]) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": service, "app.kubernetes.io/managed-by": MANAGER, LABEL_SERVICE: service}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": state_name(service),
            "namespace": section.namespace,
            "labels": {**labels, **section.labels},
        },
        "data": dict(sorted(data.items())),
    }


def secret_name(inputs: KubeInputs) -> str:
    digest = hashlib.sha256(f"{inputs.secrets_digest}\0{sorted(inputs.secret_environment)}".encode()).hexdigest()
    return f"{inputs.service}-secrets-{digest[:10]}"


def pull_secret_name(inputs: KubeInputs) -> str:
    if inputs.section.image_pull_secret:
        return inputs.section.image_pull_secret
    digest = hashlib.sha256(json.dumps(_docker_config(inputs), sort_keys=True).encode()).hexdigest()
    return f"{inputs.service}-pull-{digest[:10]}"


def _docker_config(inputs: KubeInputs) -> dict[str, Any]:
    auth = inputs.registry_auth
    registry = ImageRef.parse(inputs.image).registry
    if isinstance(auth, BasicAuth):
        user, password = auth.username, auth.password
    elif isinstance(auth, TokenAuth):
        user, password = auth.username, auth.token
    else:
        return {}
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"auths": {registry: {"username": user, "password": password, "auth": token}}}


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def secret(inputs: KubeInputs) -> dict[str, Any] | None:
    values = {**inputs.secret_environment, **inputs.auth_keys}
    if not values:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(inputs, secret_name(inputs)),
        "type": "Opaque",
        "data": {name: _b64(value) for name, value in sorted(values.items())},
    }


def pull_secret(inputs: KubeInputs) -> dict[str, Any] | None:
    config = _docker_config(inputs)
    if inputs.section.image_pull_secret or not config:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(inputs, pull_secret_name(inputs)),
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": _b64(json.dumps(config, sort_keys=True))},
    }


def startup_failure_threshold(seconds: float) -> int:
    return max(1, math.ceil(seconds / PROBE_PERIOD_SECONDS))


def _container(inputs: KubeInputs) -> dict[str, Any]:
    section = inputs.section
    env: list[dict[str, Any]] = [{"name": k, "value": str(v)} for k, v in sorted(inputs.environment.items())]
    env += [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name(inputs), "key": name}}}
        for name in sorted(inputs.secret_environment)
    ]
    # service keys as files the runtime re-reads: a rotated key needs no restart (and no env var shows it)
    env += [{"name": name + AUTH_FILE_SUFFIX, "value": f"{KEYS_DIR}/{name}"} for name in sorted(inputs.auth_keys)]
    requests = {"cpu": quantity_cpu(section.cpu_cores), "memory": quantity_memory(section.memory_gb)}
    limits = {"memory": quantity_memory(section.memory_gb_limit or section.memory_gb)}
    if section.cpu_cores_limit is not None:
        limits["cpu"] = quantity_cpu(section.cpu_cores_limit)
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if inputs.auth_keys:
        mounts.append({"name": "keys", "mountPath": KEYS_DIR, "readOnly": True})

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 3,
            "failureThreshold": failures,
        }

    return {
        "name": "scoring",
        "image": inputs.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": {"requests": requests, "limits": limits},
        # the runtime answers / at once and /readyz when init() returned: the startup probe waits for
        # /readyz within the init() budget, then liveness (/) and readiness take over
        "startupProbe": probe(READINESS_PATH, PROBE_PERIOD_SECONDS, startup_failure_threshold(inputs.startup_seconds)),
        "livenessProbe": probe(LIVENESS_PATH, 10, 3),
        "readinessProbe": probe(READINESS_PATH, PROBE_PERIOD_SECONDS, 3),
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }


def deployment(inputs: KubeInputs) -> dict[str, Any]:
    section = inputs.section
    scaling = section.scaling
    selector = {LABEL_SERVICE: inputs.service}
    template_labels = {
        **common_labels(inputs),
        LABEL_MODEL: label_value(inputs.model_label),
        LABEL_FINGERPRINT: inputs.fingerprint[:40],
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    if inputs.auth_keys:
        items = [{"key": name, "path": name} for name in sorted(inputs.auth_keys)]
        volumes.append(
            {"name": "keys", "secret": {"secretName": secret_name(inputs), "items": items, "defaultMode": 0o440}}
        )
    pod: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SERVICE_UID,
            "runAsGroup": SERVICE_UID,
            "fsGroup": SERVICE_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30 + DRAIN_SECONDS,
        "containers": [_container(inputs)],
        "volumes": volumes,
    }
    if section.node_selector:
        pod["nodeSelector"] = dict(section.node_selector)
    if section.tolerations:
        pod["tolerations"] = [t.model_dump(exclude_none=True) for t in section.tolerations]
    pull = pull_secret_name(inputs) if (section.image_pull_secret or _docker_config(inputs)) else None
    if pull:
        pod["imagePullSecrets"] = [{"name": pull}]
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": inputs.progress_deadline_seconds,
        "selector": {"matchLabels": selector},
        # one new pod at a time beside the old ones: the old version serves until the new one is ready
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "template": {
            "metadata": {
                "labels": template_labels,
                "annotations": {
                    **section.annotations,
                    FINGERPRINT_ANNOTATION: inputs.fingerprint,
                    ANNOTATION_SECRETS_DIGEST: inputs.secrets_digest,
                    ANNOTATION_MODEL: inputs.model_label,
                },
            },
            "spec": pod,
        },
    }
    if isinstance(scaling, int):
        spec["replicas"] = scaling  # with an autoscaler the replica count is its to set, not ours
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(inputs, inputs.service, **{FINGERPRINT_ANNOTATION: inputs.fingerprint}),
        "spec": spec,
    }


def service(inputs: KubeInputs) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(inputs, inputs.service),
        "spec": {
            "type": inputs.section.service_type,
            "selector": {LABEL_SERVICE: inputs.service},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(inputs: KubeInputs) -> dict[str, Any] | None:
    scaling = inputs.section.scaling
    if not isinstance(scaling, Autoscale):
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(inputs, inputs.service),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": inputs.service},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": scaling.target_utilization},
                    },
                }
            ],
        },
    }


def disruption_budget(inputs: KubeInputs) -> dict[str, Any] | None:
    scaling = inputs.section.scaling
    fewest = scaling if isinstance(scaling, int) else scaling.min_replicas
    if fewest <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(inputs, inputs.service),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {LABEL_SERVICE: inputs.service}}},
    }


def ingress(inputs: KubeInputs) -> dict[str, Any] | None:
    section = inputs.section.ingress
    if section is None:
        return None
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": section.path,
                    "pathType": "Prefix",
                    "backend": {"service": {"name": inputs.service, "port": {"name": "http"}}},
                }
            ]
        }
    }
    if section.host:
        rule["host"] = section.host
    spec: dict[str, Any] = {"rules": [rule]}
    if section.class_name:
        spec["ingressClassName"] = section.class_name
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _metadata(inputs, inputs.service),
        "spec": spec,
    }


def render(inputs: KubeInputs) -> list[dict[str, Any]]:
    """Every object of this version, in apply order (what the pods need before the Deployment)."""
    made = [
        secret(inputs),
        pull_secret(inputs),
        deployment(inputs),
        service(inputs),
        autoscaler(inputs),
        disruption_budget(inputs),
        ingress(inputs),
    ]
    return [obj for obj in made if obj is not None]


def elide_secrets(obj: dict[str, Any]) -> dict[str, Any]:
    if obj.get("kind") != "Secret":
        return obj
    return {**obj, "data": dict.fromkeys(obj.get("data", {}), ELIDED)}


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """The objects as one YAML stream, secret values elided (what ``mldeploy render`` prints)."""
    return yaml.safe_dump_all([elide_secrets(obj) for obj in objects], sort_keys=False, default_flow_style=False)
