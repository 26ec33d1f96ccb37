"""The Kubernetes API through the official client: the only module that imports ``kubernetes``.

Objects go in and come out as the API's JSON (plain dicts, camelCase), so everything that judges them
(``mldeploy.rollout``, ``mldeploy.manifests``) stays pure. Errors are decided here, once, through
``ERRORS``: a cluster that does not answer, 409, 429 and 5xx are transient (``Retry-After`` honoured);
401/403 are permanent with a diagnosis naming the permissions needed; 400/422 are permanent with the API
server's own message (an invalid object). A port-forward is a local listener on 127.0.0.1 whose every
connection is relayed through the API server to the pod (``pods/portforward``), so a smoke test reaches
one exact pod of the new revision from any machine that can reach the API server.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from mldeploy import diagnosis
from mldeploy.errors import MldeployError, PermanentError, TransientError, retry_after_seconds
from mldeploy.manifests import MANAGER

APPLY = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
REQUEST_TIMEOUT = (5, 30)  # connect, read (seconds)


def _message(body: str | None) -> str:
    try:
        return str(json.loads(body or "").get("message") or body)
    except (ValueError, AttributeError):
        return body or ""


def _classify(status: int, what: str, server: str, body: str | None, headers: Any) -> MldeployError:
    """One ApiException, decided: the mapping table of the Kubernetes boundary."""
    detail = f"{what}: HTTP {status}: {_message(body)}"
    if status in (401, 403):
        return PermanentError(detail, diagnosis=diagnosis.cluster_access_denied(server, detail))
    if status in (409, 429) or status >= 500:
        delay = retry_after_seconds((headers or {}).get("Retry-After")) if headers else None
        return TransientError(detail, diagnosis=diagnosis.cluster_unavailable(server, detail), delay=delay)
    if status == 0:  # the websocket transports (logs --follow, port-forward) report a lost connection so
        return TransientError(detail, diagnosis=diagnosis.cluster_unavailable(server, detail))
    return PermanentError(detail)


class KubeApi:
    """One cluster, one configuration (never the process-wide default one)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.api_client = api_client
        self.server = str(api_client.configuration.host)
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self._apply_methods: dict[tuple[str, str], Callable[..., Any]] = {
            ("v1", "Secret"): self.core.patch_namespaced_secret,
            ("v1", "ConfigMap"): self.core.patch_namespaced_config_map,
            ("v1", "Service"): self.core.patch_namespaced_service,
            ("apps/v1", "Deployment"): self.apps.patch_namespaced_deployment,
            ("autoscaling/v2", "HorizontalPodAutoscaler"): client.AutoscalingV2Api(
                api_client
            ).patch_namespaced_horizontal_pod_autoscaler,
            ("policy/v1", "PodDisruptionBudget"): client.PolicyV1Api(api_client).patch_namespaced_pod_disruption_budget,
            ("networking.k8s.io/v1", "Ingress"): client.NetworkingV1Api(api_client).patch_namespaced_ingress,
        }
        self._deleters: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
            "Deployment": (self.apps.list_namespaced_deployment, self.apps.delete_namespaced_deployment),
            "Service": (self.core.list_namespaced_service, self.core.delete_namespaced_service),
            "HorizontalPodAutoscaler": (
                client.AutoscalingV2Api(api_client).list_namespaced_horizontal_pod_autoscaler,
                client.AutoscalingV2Api(api_client).delete_namespaced_horizontal_pod_autoscaler,
            ),
            "PodDisruptionBudget": (
                client.PolicyV1Api(api_client).list_namespaced_pod_disruption_budget,
                client.PolicyV1Api(api_client).delete_namespaced_pod_disruption_budget,
            ),
            "Ingress": (
                client.NetworkingV1Api(api_client).list_namespaced_ingress,
                client.NetworkingV1Api(api_client).delete_namespaced_ingress,
            ),
            "Secret": (self.core.list_namespaced_secret, self.core.delete_namespaced_secret),
            "ConfigMap": (self.core.list_namespaced_config_map, self.core.delete_namespaced_config_map),
        }

    @classmethod
    def from_kubeconfig(
        cls, kubeconfig: str | None = None, context: str | None = None, *, contents: dict[str, Any] | None = None
    ) -> KubeApi:
        """The cluster of ``kubeconfig`` (else KUBECONFIG, else ~/.kube/config) and ``context``; ``contents``: a
        kubeconfig already read (a Prefect block); inside a pod without a kubeconfig, the pod's service account."""
        import os

        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if contents is not None:
                config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                    contents, context=context, client_configuration=configuration
                )
            elif kubeconfig or os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")):
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig, context=context, client_configuration=configuration
                )
            else:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError, ValueError) as exc:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise PermanentError(
                f"cannot read the Kubernetes configuration {where}: {exc}",
                diagnosis=diagnosis.cluster_unavailable(where, f"{type(exc).__name__}: {exc}"),
            ) from exc
        configuration.retries = 1
        return cls(client.ApiClient(configuration))

    @contextlib.contextmanager
    def translated(self, what: str) -> Iterator[None]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError as Urllib3Error

        try:
            yield
        except ApiException as exc:
            raise _classify(exc.status or 0, what, self.server, exc.body, exc.headers) from exc
        except (Urllib3Error, OSError) as exc:
            detail = f"{what}: {type(exc).__name__}: {exc}"
            raise TransientError(detail, diagnosis=diagnosis.cluster_unavailable(self.server, detail)) from exc

    def _plain(self, obj: Any) -> dict[str, Any]:
        return dict(self.api_client.sanitize_for_serialization(obj))

    # --- objects -------------------------------------------------------------------------------------------

    def ensure_namespace(self, namespace: str) -> bool:
        """True when it had to be created."""
        from kubernetes.client.exceptions import ApiException

        with self.translated(f"read namespace {namespace}"):
            try:
                self.core.read_namespace(namespace, _request_timeout=REQUEST_TIMEOUT)
                return False
            except ApiException as exc:
                if exc.status != 404:
                    raise
        from kubernetes import client

        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
        with self.translated(f"create namespace {namespace}"):
            try:
                self.core.create_namespace(body, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status != 409:  # created meanwhile by someone else: fine
                    raise
        return True

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply with mldeploy's field manager (applying the same object again changes nothing)."""
        kind, name, namespace = obj["kind"], obj["metadata"]["name"], obj["metadata"]["namespace"]
        method = self._apply_methods[(obj["apiVersion"], kind)]
        with self.translated(f"apply {kind} {namespace}/{name}"):
            result = method(
                name,
                namespace,
                obj,
                field_manager=MANAGER,
                force=True,
                _content_type=APPLY,
                _request_timeout=REQUEST_TIMEOUT,
            )
        return self._plain(result)

    def replace_template(
        self, namespace: str, name: str, template: dict[str, Any], annotations: dict[str, str]
    ) -> None:
        """The Deployment's pod template replaced as a whole (``kubectl rollout undo``'s JSON patch)."""
        patch = [{"op": "replace", "path": "/spec/template", "value": template}]
        patch += [
            {"op": "add", "path": f"/metadata/annotations/{key.replace('~', '~0').replace('/', '~1')}", "value": value}
            for key, value in annotations.items()
        ]
        with self.translated(f"roll back deployment {namespace}/{name}"):
            self.apps.patch_namespaced_deployment(
                name, namespace, patch, _content_type=JSON_PATCH, _request_timeout=REQUEST_TIMEOUT
            )

    def config_map_data(self, namespace: str, name: str) -> dict[str, str]:
        """A ConfigMap's data ({} when there is none)."""
        from kubernetes.client.exceptions import ApiException

        with self.translated(f"read config map {namespace}/{name}"):
            try:
                found = self.core.read_namespaced_config_map(name, namespace, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status == 404:
                    return {}
                raise
        return dict(found.data or {})

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        with self.translated(f"read deployment {namespace}/{name}"):
            try:
                return self._plain(
                    self.apps.read_namespaced_deployment(name, namespace, _request_timeout=REQUEST_TIMEOUT)
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def deployments(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        with self.translated(f"list deployments {namespace} {selector}"):
            found = self.apps.list_namespaced_deployment(
                namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
            )
        return [self._plain(item) for item in found.items]

    def replica_sets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        with self.translated(f"list replica sets {namespace} {selector}"):
            found = self.apps.list_namespaced_replica_set(
                namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
            )
        return [self._plain(item) for item in found.items]

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        with self.translated(f"list pods {namespace} {selector}"):
            found = self.core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT)
        return [self._plain(item) for item in found.items]

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        with self.translated(f"list events of {namespace}/{name}"):
            found = self.core.list_namespaced_event(
                namespace, field_selector=f"involvedObject.name={name}", _request_timeout=REQUEST_TIMEOUT
            )
        return [self._plain(item) for item in found.items]

    def pod_log(self, namespace: str, pod: str, container: str, *, previous: bool = False, tail: int = 200) -> str:
        """The container's log ('' when there is none yet, or the previous instance does not exist)."""
        from kubernetes.client.exceptions import ApiException

        with self.translated(f"read the log of {namespace}/{pod}"):
            try:
                return str(
                    self.core.read_namespaced_pod_log(
                        pod,
                        namespace,
                        container=container,
                        previous=previous,
                        tail_lines=tail,
                        _request_timeout=REQUEST_TIMEOUT,
                    )
                )
            except ApiException as exc:
                if exc.status in (400, 404):  # "previous terminated container not found", pod gone
                    return ""
                raise

    def follow_log(self, namespace: str, pod: str, container: str, tail: int = 200) -> Iterator[str]:
        with self.translated(f"follow the log of {namespace}/{pod}"):
            response: Any = self.core.read_namespaced_pod_log(
                pod, namespace, container=container, follow=True, tail_lines=tail, _preload_content=False
            )
        try:
            for chunk in response.stream(4096):
                yield chunk.decode("utf-8", "replace")
        finally:
            response.release_conn()

    def delete_labeled(self, namespace: str, selector: str) -> list[str]:
        """Every object of the kinds mldeploy makes that carries ``selector``; what was deleted."""
        from kubernetes.client.exceptions import ApiException

        deleted = []
        for kind, (lister, deleter) in self._deleters.items():
            with self.translated(f"list {kind} {namespace} {selector}"):
                items = lister(namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT).items
            for item in items:
                name = item.metadata.name
                with self.translated(f"delete {kind} {namespace}/{name}"):
                    try:
                        deleter(name, namespace, propagation_policy="Background", _request_timeout=REQUEST_TIMEOUT)
                    except ApiException as exc:
                        if exc.status != 404:
                            raise
                deleted.append(f"{kind}/{name}")
        return deleted

    def delete_secret(self, namespace: str, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        with self.translated(f"delete secret {namespace}/{name}"):
            try:
                self.core.delete_namespaced_secret(name, namespace, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def secrets(self, namespace: str, selector: str) -> list[str]:
        with self.translated(f"list secrets {namespace} {selector}"):
            found = self.core.list_namespaced_secret(
                namespace, label_selector=selector, _request_timeout=REQUEST_TIMEOUT
            )
        return [str(item.metadata.name) for item in found.items if item.metadata is not None]

    # --- port-forward ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def port_forward(self, namespace: str, pod: str, port: int) -> Iterator[int]:
        """A port on 127.0.0.1 whose connections reach ``pod``:``port`` through the API server."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        closing = threading.Event()

        def accept() -> None:
            while not closing.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=self._relay, args=(conn, namespace, pod, port), daemon=True).start()

        threading.Thread(target=accept, name=f"port-forward {pod}:{port}", daemon=True).start()
        try:
            yield int(listener.getsockname()[1])
        finally:
            closing.set()
            listener.close()

    def _relay(self, conn: socket.socket, namespace: str, pod: str, port: int) -> None:
        from kubernetes.stream import portforward

        try:
            forward = portforward(self.core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
            remote = forward.socket(port)
            remote.setblocking(True)
        except Exception:  # the pod went away, or the API server refused: this connection is simply closed
            conn.close()
            return

        def pump(source: Any, sink: Any) -> None:
            try:
                while data := source.recv(65536):
                    sink.sendall(data)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)

        back = threading.Thread(target=pump, args=(remote, conn), daemon=True)
        back.start()
        pump(conn, remote)
        back.join(timeout=60)
        with contextlib.suppress(OSError):
            conn.close()
        forward.close()
