"""The Kubernetes target (AKS or any cluster): apply, wait with kubectl's rules, fail on pod evidence, roll back.

1. ``deploy`` applies the version's objects (``mldeploy.manifests``) by server-side apply, then polls the
   Deployment (``rollout.rollout_status``) and the new revision's pods (``rollout.pod_evidence``): the first
   proof that waiting is pointless — a container that exited, an OOM kill, an image that cannot be pulled, a
   pod no node can take, a missing Secret — fails the stage at once with the pod's own words and its log, and
   the Deployment goes back to the revision that served before (a first deploy is removed).
2. The smoke stage reaches one ready pod of the new revision through a port-forward (``open_endpoint``).
3. ``commit`` records the revision as the one that passed (an annotation on the Deployment, with the
   ``init()`` time the runtime reported, for the next startup probe); ``rollback`` restores the recorded
   revision as ``kubectl rollout undo`` does (the old ReplicaSet's pod template).

What passed lives on the Deployment itself, so a run killed at any point is recovered by the next one from
the cluster alone (``recover``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mldeploy import diagnosis
from mldeploy.adapters.http_probe import HttpProbe
from mldeploy.adapters.kube_api import KubeApi
from mldeploy.contract import CONTAINER_PORT, INFO_PATH
from mldeploy.errors import MldeployError, PermanentError
from mldeploy.manifests import (
    ANNOTATION_MODEL,
    LABEL_FINGERPRINT,
    LABEL_MODEL,
    LABEL_SERVICE,
    MANAGER,
    STATE_COMMITTED,
    STATE_COMMITTED_AT,
    STATE_IMAGE,
    STATE_INIT_SECONDS,
    STATE_REQUEST_SECONDS,
    KubeInputs,
    quantity_cpu,
    quantity_memory,
    render,
    state_config_map,
    state_name,
)
from mldeploy.redaction import redact
from mldeploy.rollout import (
    FINGERPRINT_ANNOTATION,
    Evidence,
    EvidenceKind,
    pod_evidence,
    replica_set_of_revision,
    revision_of,
    rollout_status,
    template_for_rollback,
)
from mldeploy.spec import KubernetesTarget as KubernetesSection
from mldeploy.targets.base import DeployOutcome, DeployRequest, LineSink, LiveService, ServiceDescription
from mldeploy.waiting import Phase

LOG_TAIL = 200
POD_URL = "k8s-pod://"  # DeployOutcome.endpoint: k8s-pod://<namespace>/<pod> (reached through a port-forward)
ROLLBACK_TIMEOUT_SECONDS = 300.0


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@dataclass
class KubernetesTarget:
    api: KubeApi
    section: KubernetesSection
    probe: HttpProbe = field(default_factory=HttpProbe)
    kind: str = "kubernetes"
    poll_interval: float = 0.5
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_section(
        cls,
        section: KubernetesSection,
        *,
        kubeconfig: str | None = None,
        contents: dict[str, Any] | None = None,
        api: KubeApi | None = None,
    ) -> KubernetesTarget:
        return cls(api or KubeApi.from_kubeconfig(kubeconfig, section.context, contents=contents), section)

    @property
    def namespace(self) -> str:
        return self.section.namespace

    def _selector(self, service: str) -> str:
        return f"{LABEL_SERVICE}={service}"

    # --- what is on the cluster ---------------------------------------------------------------------------

    def services(self) -> list[str]:
        found = self.api.deployments(self.namespace, f"app.kubernetes.io/managed-by={MANAGER},{LABEL_SERVICE}")
        return sorted({str(d["metadata"]["labels"][LABEL_SERVICE]) for d in found})

    def _state(self, service: str) -> dict[str, str]:
        return self.api.config_map_data(self.namespace, state_name(service))

    def _record(self, service: str, updates: dict[str, str]) -> None:
        """Merge ``updates`` into the service's state (the one writer: a run holding the service's slot)."""
        data = {**self._state(service), **updates}
        self.api.apply(state_config_map(service, self.section, data))

    def _committed(self, service: str) -> int | None:
        value = self._state(service).get(STATE_COMMITTED, "")
        return int(value) if value.isdigit() else None

    def recover(self, service: str, on_line: LineSink) -> None:
        """Only a revision that passed its smoke test serves: a rollout left by a killed run is undone."""
        deployment = self.api.deployment(self.namespace, service)
        if deployment is None:
            return
        committed, current = self._committed(service), revision_of(deployment)
        if committed is None:
            on_line(f"{service}: a first deploy never passed its smoke test (a killed run); removing it")
            self.api.delete_labeled(self.namespace, self._selector(service))
        elif committed != current:
            on_line(f"{service}: revision {current} never passed its smoke test; back to revision {committed}")
            self._restore(service, committed, on_line)

    def live(self, service: str) -> LiveService | None:
        deployment = self.api.deployment(self.namespace, service)
        state = self._state(service) if deployment is not None else {}
        if deployment is None or not state.get(STATE_COMMITTED):
            return None
        template = deployment["spec"]["template"]
        container = template["spec"]["containers"][0]
        annotations = template["metadata"].get("annotations") or {}
        status = rollout_status(deployment)
        created = str((deployment.get("metadata") or {}).get("creationTimestamp") or "")
        return LiveService(
            service=service,
            fingerprint=annotations.get(FINGERPRINT_ANNOTATION, ""),
            endpoint=self.service_endpoint(service),
            image=container["image"],
            healthy=status.phase is Phase.READY,
            model=annotations.get(ANNOTATION_MODEL) or (template["metadata"].get("labels") or {}).get(LABEL_MODEL, ""),
            secrets_digest=annotations.get("mldeploy.dev/secrets-digest", ""),
            instance=f"revision {revision_of(deployment)}",
            started_at=state.get(STATE_COMMITTED_AT) or created,  # a revision committed by an earlier mldeploy
            request_seconds=_float(state.get(STATE_REQUEST_SECONDS)),
        )

    def service_endpoint(self, service: str) -> str:
        """Where clients reach the service: the Ingress host, else the Service's in-cluster name."""
        ingress = self.section.ingress
        if ingress is not None and ingress.host:
            return f"http://{ingress.host}{ingress.path.rstrip('/')}"
        return f"http://{service}.{self.namespace}.svc.cluster.local"

    # --- roll out -------------------------------------------------------------------------------------------

    def _startup_seconds(self, request: DeployRequest, state: dict[str, str]) -> float:
        """How long init() may take: three times what the runtime reported for this image before, or the
        spec's health timeout when this image never ran here (whichever is longer)."""
        measured = _float(state.get(STATE_INIT_SECONDS))
        if measured is not None and state.get(STATE_IMAGE) == request.image:
            return max(request.health_timeout, 3 * measured + 10)
        return request.health_timeout

    def inputs(self, request: DeployRequest, startup_seconds: float | None = None) -> KubeInputs:
        return KubeInputs(
            service=request.service,
            section=self.section,
            image=request.image,
            fingerprint=request.fingerprint,
            model_label=request.labels.get("mldeploy.model", ""),
            environment=request.environment,
            secret_environment=request.secret_environment,
            auth_keys=request.auth_keys,
            secrets_digest=request.secrets_digest,
            registry_auth=request.registry_auth,
            startup_seconds=startup_seconds if startup_seconds is not None else request.health_timeout,
            progress_deadline_seconds=int(max(60, request.health_timeout * 2)),
        )

    def deploy(self, request: DeployRequest, on_line: LineSink) -> DeployOutcome:
        service = request.service
        self.recover(service, on_line)
        if self.api.ensure_namespace(self.namespace):
            on_line(f"created namespace {self.namespace}")
        before = self.api.deployment(self.namespace, service)
        state = self._state(service) if before is not None else {}
        previous = int(state[STATE_COMMITTED]) if state.get(STATE_COMMITTED, "").isdigit() else None
        on_line(
            f"revision {previous} serves {service} now" if previous else f"first deploy of {service} to this cluster"
        )
        for obj in render(self.inputs(request, self._startup_seconds(request, state))):
            applied = self.api.apply(obj)
            kind, name = obj["kind"], obj["metadata"]["name"]
            if kind == "Deployment":
                unchanged = before is not None and applied["metadata"].get("generation") == before["metadata"].get(
                    "generation"
                )
                on_line(f"applied Deployment/{name}" + (" (unchanged: nothing new to roll out)" if unchanged else ""))
            else:
                on_line(f"applied {kind}/{name}")
        try:
            pod = self._wait(request, on_line)
        except PermanentError as failure:
            restored = self._undo(service, previous, on_line)
            raise PermanentError(
                failure.message, diagnosis=failure.diagnosis, log=failure.log, rolled_back_to=restored
            ) from None
        deployment = self.api.deployment(self.namespace, service) or {}
        revision = revision_of(deployment)
        log = redact(self.api.pod_log(self.namespace, pod, "scoring", tail=50), request.secret_values())
        on_line(f"revision {revision} is available; the smoke test goes to pod {pod} through a port-forward")
        return DeployOutcome(
            service=service,
            endpoint=f"{POD_URL}{self.namespace}/{pod}",
            instance=str(revision),
            previous=str(previous) if previous else None,
            startup_log=log,
            service_endpoint=self.service_endpoint(service),
        )

    def _wait(self, request: DeployRequest, on_line: LineSink) -> str:
        """Poll until the rollout is complete (a ready pod of it returned) or evidence says it never will."""
        service = request.service
        pods_selector = f"{self._selector(service)},{LABEL_FINGERPRINT}={request.fingerprint[:40]}"
        timeout = self._budget(request)
        deadline = self.clock() + timeout
        said = ""
        while True:
            deployment = self.api.deployment(self.namespace, service)
            if deployment is None:
                raise PermanentError(f"deployment {self.namespace}/{service} disappeared during the rollout")
            pods = self.api.pods(self.namespace, pods_selector)
            evidence = pod_evidence(pods)
            if evidence is not None:
                raise self._failure(evidence, request)
            status = rollout_status(deployment, request.fingerprint)
            if status.phase is Phase.FAILED:
                raise self._timed_out(request, status.reason, pods, timeout)
            if status.phase is Phase.READY:
                ready = [p for p in pods if _ready(p)]
                if ready:
                    return str(ready[0]["metadata"]["name"])
            if status.reason != said:
                on_line(f"waiting: {status.reason}")
                said = status.reason
            if self.clock() >= deadline:
                raise self._timed_out(request, status.reason, pods, timeout)
            self.sleep(self.poll_interval)

    def _budget(self, request: DeployRequest) -> float:
        return max(60.0, request.health_timeout * 2)

    def _log(self, pod: str, container: str, *, previous: bool = False) -> str:
        """A pod's log, or '' when it cannot be read (the evidence stands without it)."""
        try:
            return self.api.pod_log(self.namespace, pod, container, previous=previous, tail=LOG_TAIL)
        except MldeployError:
            return ""

    def _failure(self, evidence: Evidence, request: DeployRequest) -> PermanentError:
        log = ""
        if evidence.container:
            log = self._log(evidence.pod, evidence.container, previous=evidence.previous_log)
            if not log and evidence.previous_log:  # the restart has not happened yet: the current one is it
                log = self._log(evidence.pod, evidence.container)
        log = redact(log, request.secret_values())
        memory = quantity_memory(self.section.memory_gb_limit or self.section.memory_gb)
        kind = evidence.kind
        if kind is EvidenceKind.OUT_OF_MEMORY:
            found = diagnosis.container_exit(137, True, log, memory_limit=memory)
        elif kind is EvidenceKind.CRASHED:
            found = diagnosis.container_exit(evidence.exit_code, False, log)
        elif kind is EvidenceKind.IMAGE_PULL:
            found = diagnosis.image_pull_failed(request.image, evidence.message, evidence.pod)
        elif kind is EvidenceKind.UNSCHEDULABLE:
            found = diagnosis.unschedulable(
                evidence.message,
                evidence.pod,
                quantity_cpu(self.section.cpu_cores),
                quantity_memory(self.section.memory_gb),
            )
        else:
            found = diagnosis.container_config_error(evidence.message, evidence.pod)
        return PermanentError(f"pod {evidence.pod}: {evidence.message}", diagnosis=found, log=log or None)

    def _timed_out(
        self, request: DeployRequest, waiting_for: str, pods: list[dict[str, Any]], seconds: float
    ) -> PermanentError:
        log = ""
        if pods:
            log = redact(self._log(pods[0]["metadata"]["name"], "scoring"), request.secret_values())
        found = diagnosis.rollout_timeout(request.service, seconds, waiting_for, log)
        return PermanentError(found.summary, diagnosis=found, log=log or None)

    # --- smoke, commit, roll back ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def open_endpoint(self, outcome: DeployOutcome) -> Iterator[str]:
        if self.section.expose == "service":
            yield outcome.service_endpoint
            return
        namespace, pod = outcome.endpoint.removeprefix(POD_URL).split("/", 1)
        with self.api.port_forward(namespace, pod, CONTAINER_PORT) as port:
            yield f"http://127.0.0.1:{port}"

    def commit(self, outcome: DeployOutcome, request_seconds: float | None = None) -> None:
        """The revision passed: record it (with the init() time its runtime reported and the request time the
        smoke test measured) and drop the Secrets no revision in the history refers to any more."""
        deployment = self.api.deployment(self.namespace, outcome.service) or {}
        containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
        updates = {
            STATE_COMMITTED: outcome.instance,
            STATE_IMAGE: str(containers[0].get("image", "")),
            STATE_COMMITTED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if request_seconds is not None:
            updates[STATE_REQUEST_SECONDS] = f"{request_seconds:.4f}"
        init_seconds = self._init_seconds(outcome)
        if init_seconds is not None:
            updates[STATE_INIT_SECONDS] = f"{init_seconds:.2f}"
        self._record(outcome.service, updates)
        self._collect_secrets(outcome.service)

    def _init_seconds(self, outcome: DeployOutcome) -> float | None:
        try:
            with self.open_endpoint(outcome) as endpoint:
                reply = self.probe.get_json(endpoint + INFO_PATH, timeout=5.0)
        except (MldeployError, OSError):
            return None
        value = reply.get("init_seconds") if isinstance(reply, dict) else None
        return float(value) if isinstance(value, int | float) else None

    def _collect_secrets(self, service: str) -> None:
        templates = json.dumps(
            [
                rs.get("spec", {}).get("template", {})
                for rs in self.api.replica_sets(self.namespace, self._selector(service))
            ]
        )
        for name in self.api.secrets(self.namespace, self._selector(service)):
            if name not in templates:  # no revision that could be rolled back to refers to it
                self.api.delete_secret(self.namespace, name)

    def rollback(self, outcome: DeployOutcome) -> str | None:
        return self._undo(outcome.service, int(outcome.previous) if outcome.previous else None, lambda line: None)

    def _undo(self, service: str, previous: int | None, on_line: LineSink) -> str | None:
        """Back to ``previous`` (what served before), or nothing left at all after a failed first deploy."""
        if previous is None:
            on_line(f"removing {service}: its first deploy failed")
            self.api.delete_labeled(self.namespace, self._selector(service))
            return None
        self._restore(service, previous, on_line)
        return str(previous)

    def _restore(self, service: str, revision: int, on_line: LineSink) -> None:
        replica_set = replica_set_of_revision(self.api.replica_sets(self.namespace, self._selector(service)), revision)
        if replica_set is None:
            raise PermanentError(
                f"revision {revision} of {service} is no longer in the Deployment's history; "
                "redeploy a known-good version"
            )
        template = template_for_rollback(replica_set)
        fingerprint = (template.get("metadata", {}).get("annotations") or {}).get(FINGERPRINT_ANNOTATION, "")
        self.api.replace_template(self.namespace, service, template, {FINGERPRINT_ANNOTATION: fingerprint})
        on_line(f"rolling {service} back to the template of revision {revision}")
        deadline = self.clock() + ROLLBACK_TIMEOUT_SECONDS
        while self.clock() < deadline:
            deployment = self.api.deployment(self.namespace, service)
            if deployment is not None and rollout_status(deployment).phase is Phase.READY:
                new_revision = revision_of(deployment)
                self._record(service, {STATE_COMMITTED: str(new_revision)})
                on_line(f"{service} serves the template of revision {revision} again (now revision {new_revision})")
                return
            self.sleep(self.poll_interval)
        raise PermanentError(f"the rollback of {service} to revision {revision} did not finish in time")

    # --- operations -----------------------------------------------------------------------------------------

    def _pods(self, service: str) -> list[dict[str, Any]]:
        pods = self.api.pods(self.namespace, self._selector(service))
        return sorted(pods, key=lambda p: (not _ready(p), str(p["metadata"].get("creationTimestamp") or "")))

    def logs(self, service: str, *, tail: int = 200, previous: bool = False, follow: bool = False) -> Iterator[str]:
        pods = self._pods(service)
        if not pods:
            raise PermanentError(
                f"no pods of {service!r} in namespace {self.namespace} (kubectl get pods -n {self.namespace})"
            )
        pod = pods[0]["metadata"]["name"]
        if previous and not _restarts(pods[0], "scoring"):
            raise PermanentError(
                f"the scoring container of pod {pod} has not restarted: there is no previous run; its log: "
                f"mldeploy logs {service} (without --previous)"
            )
        if follow:
            yield from self.api.follow_log(self.namespace, pod, "scoring", tail=tail)
        else:
            yield self.api.pod_log(self.namespace, pod, "scoring", previous=previous, tail=tail)

    def instance_logs(self, outcome: DeployOutcome, tail: int = 200) -> str:
        if not outcome.endpoint.startswith(POD_URL):
            return ""
        namespace, pod = outcome.endpoint.removeprefix(POD_URL).split("/", 1)
        return self.api.pod_log(namespace, pod, "scoring", tail=tail)

    def describe(self, service: str) -> ServiceDescription:
        deployment = self.api.deployment(self.namespace, service)
        details = {"namespace": self.namespace, "cluster": self.api.server}
        if deployment is not None:
            details["revision"] = str(revision_of(deployment))
            details["committed revision"] = str(self._committed(service) or "none")
            details["rollout"] = rollout_status(deployment).reason
        return ServiceDescription(kind=self.kind, service=service, live=self.live(service), details=details)

    def delete(self, service: str) -> list[str]:
        return self.api.delete_labeled(self.namespace, self._selector(service))


def _restarts(pod: dict[str, Any], container: str) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return sum(int(s.get("restartCount") or 0) for s in statuses if s.get("name") == container)
