"""The test cluster itself: what the Kubernetes target will rely on, checked against the real API server.

A real node serves an image from the local registry over a port-forward; server-side apply, the Deployment
controller's status and ReplicaSet revisions, the scheduler's Unschedulable and HPA objects behave as a real
cluster's; the simulated node reaches every scripted failure state.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kubernetes.conftest import KWOK_NODE, REGISTRY, Cluster

pytestmark = pytest.mark.kubernetes

HTTP_IMAGE = f"{REGISTRY}/mldeploy-test/http:1"


def wait(what: str, check: Callable[[], Any], timeout: float = 90, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:g} s (last: {last!r})")


def kubectl(cluster: Cluster) -> list[str]:
    cache = Path(os.environ.get("MLDEPLOY_CACHE", Path.home() / ".cache" / "mldeploy"))
    built = sorted((cache / "kubernetes").glob("v*/bin/kubectl"))
    return [str(built[-1]) if built else "kubectl", "--kubeconfig", cluster.kubeconfig]


@pytest.fixture(scope="module")
def http_image(cluster: Cluster) -> str:
    """A tiny HTTP server image in the local registry, from the base image `make setup` built."""
    import docker

    from mldeploy.settings import Settings

    engine = docker.from_env()
    base = Settings.load().base_image
    dockerfile = f'FROM {base}\nCMD ["python3", "-m", "http.server", "8080"]\n'
    import io

    engine.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=HTTP_IMAGE, rm=True)
    for line in engine.images.push(HTTP_IMAGE, stream=True, decode=True):
        assert "error" not in line, line
    return HTTP_IMAGE


def deployment(name: str, image: str, **pod: Any) -> dict[str, Any]:
    labels = {"app": name, **pod.pop("labels", {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": pod.pop("replicas", 1),
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels, "annotations": pod.pop("annotations", {})},
                "spec": {"containers": [{"name": "main", "image": image, **pod.pop("container", {})}], **pod},
            },
        },
    }


def apply(api: Any, namespace: str, manifest: dict[str, Any]) -> Any:
    """Server-side apply, as the Kubernetes target does it (field manager mldeploy)."""
    from kubernetes import client

    return client.AppsV1Api(api).patch_namespaced_deployment(
        manifest["metadata"]["name"],
        namespace,
        manifest,
        field_manager="mldeploy",
        force=True,
        _content_type="application/apply-patch+yaml",
    )


def pods(api: Any, namespace: str, app: str) -> list[Any]:
    from kubernetes import client

    return list(client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={app}").items)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def port_forward(cluster: Cluster, namespace: str, target: str, port: int) -> Iterator[int]:
    local = free_port()
    proc = subprocess.Popen(
        [*kubectl(cluster), "-n", namespace, "port-forward", target, f"{local}:{port}", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        wait("port-forward is listening", lambda: "Forwarding from" in (proc.stdout.readline() or ""), 30, 0)
        yield local
    finally:
        proc.terminate()
        proc.wait(10)


# --- the nodes ------------------------------------------------------------------------------------------------


def test_a_real_node_and_a_simulated_one_are_ready(api: Any, cluster: Cluster, local_only: None) -> None:
    from kubernetes import client

    nodes = {n.metadata.name: n for n in client.CoreV1Api(api).list_node().items}
    ready = {
        name: any(c.type == "Ready" and c.status == "True" for c in n.status.conditions) for name, n in nodes.items()
    }
    real = [n for n in nodes.values() if n.metadata.labels.get("type") != "kwok"]
    assert real and all(ready[n.metadata.name] for n in real)
    assert real[0].status.node_info.container_runtime_version.startswith("containerd://")
    assert ready[KWOK_NODE]
    assert [(t.key, t.effect) for t in nodes[KWOK_NODE].spec.taints] == [("kwok.x-k8s.io/node", "NoSchedule")]


# --- the real node: an image from the local registry serves HTTP ------------------------------------------------


def test_a_deployment_of_a_local_image_becomes_available_and_answers_through_a_port_forward(
    api: Any, cluster: Cluster, namespace: str, http_image: str, local_only: None
) -> None:
    from kubernetes import client

    apply(api, namespace, deployment("web", http_image, container={"ports": [{"containerPort": 8080}]}))
    apps = client.AppsV1Api(api)

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("web", namespace).status
        return any(c.type == "Available" and c.status == "True" for c in status.conditions or [])

    wait("the deployment is Available", available)
    pod = pods(api, namespace, "web")[0]
    assert pod.spec.node_name != KWOK_NODE and pod.status.container_statuses[0].ready
    with port_forward(cluster, namespace, "deployment/web", 8080) as local:
        response = urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=10)
        assert response.status == 200 and b"Directory listing" in response.read()
        response.close()


# --- the control plane's own behaviour ---------------------------------------------------------------------------


def test_server_side_apply_keeps_a_revision_per_template_and_rolls_back(
    api: Any, namespace: str, local_only: None
) -> None:
    from kubernetes import client

    simulated = {"tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}], "nodeSelector": {"type": "kwok"}}
    first = apply(api, namespace, deployment("rev", "example/model:1", **simulated))
    assert first.metadata.managed_fields[0].manager == "mldeploy"
    assert first.metadata.managed_fields[0].operation == "Apply"
    apply(api, namespace, deployment("rev", "example/model:2", **simulated))
    apps = client.AppsV1Api(api)

    def revisions() -> dict[str, str]:
        sets = apps.list_namespaced_replica_set(namespace, label_selector="app=rev").items
        return {
            rs.metadata.annotations.get("deployment.kubernetes.io/revision"): rs.spec.template.spec.containers[0].image
            for rs in sets
        }

    assert wait("two ReplicaSet revisions", lambda: len(revisions()) == 2 and revisions()) == {
        "1": "example/model:1",
        "2": "example/model:2",
    }
    # rolling back is applying revision 1's template again: it becomes revision 3, no new ReplicaSet
    apply(api, namespace, deployment("rev", "example/model:1", **simulated))
    assert wait("revision 3 is the first template", lambda: "3" in revisions() and revisions()) == {
        "2": "example/model:2",
        "3": "example/model:1",
    }
    dep = wait(
        "the rollout is complete",
        lambda: (
            (d := apps.read_namespaced_deployment_status("rev", namespace)).status.updated_replicas == 1
            and d.status.available_replicas == 1
            and d
        ),
    )
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "3"


def test_the_scheduler_reports_a_pod_that_fits_nowhere_as_unschedulable(api: Any, namespace: str) -> None:
    greedy = deployment("greedy", "example/model:1", container={"resources": {"requests": {"cpu": "500"}}})
    apply(api, namespace, greedy)

    def unschedulable() -> Any:
        for pod in pods(api, namespace, "greedy"):
            for condition in pod.status.conditions or []:
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    return condition
        return None

    condition = wait("PodScheduled=False, Unschedulable", unschedulable)
    assert condition.status == "False" and "Insufficient cpu" in condition.message


def test_an_hpa_object_is_accepted_and_targets_its_deployment(api: Any, namespace: str) -> None:
    from kubernetes import client

    apply(
        api, namespace, deployment("scaled", "example/model:1", container={"resources": {"requests": {"cpu": "100m"}}})
    )
    hpa = client.AutoscalingV2Api(api).create_namespaced_horizontal_pod_autoscaler(
        namespace,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "scaled"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
                    }
                ],
            },
        },
    )
    assert hpa.spec.scale_target_ref.name == "scaled" and hpa.spec.min_replicas == 2


def test_admission_refuses_an_invalid_object_with_the_field_named(api: Any, namespace: str) -> None:
    from kubernetes.client.exceptions import ApiException

    bad = deployment("Bad_Name", "example/model:1")
    with pytest.raises(ApiException) as caught:
        apply(api, namespace, bad)
    assert caught.value.status == 422 and "metadata.name" in caught.value.body


# --- the simulated node: every scripted failure state -------------------------------------------------------------


def simulated(scenario: str | None, **annotations: str) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
        "nodeSelector": {"type": "kwok"},
        "annotations": {f"kwok.mldeploy.dev/{k.replace('_', '-')}": v for k, v in annotations.items()},
    }
    if scenario:
        pod["labels"] = {"kwok.mldeploy.dev/scenario": scenario}
    return pod


def first_status(api: Any, namespace: str, app: str) -> Any:
    found = pods(api, namespace, app)
    return found[0].status.container_statuses[0] if found and found[0].status.container_statuses else None


def test_simulated_crash_loop_with_its_exit_code(api: Any, namespace: str, local_only: None) -> None:
    apply(api, namespace, deployment("crash", "example/model:1", **simulated("crashloop", exit_code="3")))

    def backing_off() -> Any:
        status = first_status(api, namespace, "crash")
        waiting = status and status.state.waiting
        return waiting and waiting.reason == "CrashLoopBackOff" and status.restart_count >= 1 and status

    status = wait("CrashLoopBackOff after a restart", backing_off, timeout=60)
    assert status.last_state.terminated.exit_code == 3 and status.last_state.terminated.reason == "Error"


def test_simulated_oom_kill(api: Any, namespace: str, local_only: None) -> None:
    apply(api, namespace, deployment("oom", "example/model:1", **simulated("oomkilled")))

    def killed() -> Any:
        status = first_status(api, namespace, "oom")
        term = status and (status.state.terminated or (status.last_state and status.last_state.terminated))
        return term and term.reason == "OOMKilled" and term

    assert wait("OOMKilled", killed, timeout=60).exit_code == 137


def test_simulated_image_pull_failure_with_its_message(api: Any, namespace: str, local_only: None) -> None:
    message = "failed to resolve reference 127.0.0.1:5000/none:1: not found"
    apply(api, namespace, deployment("pull", "127.0.0.1:5000/none:1", **simulated("image-pull", message=message)))

    seen: set[str] = set()

    def both_reasons() -> bool:
        status = first_status(api, namespace, "pull")
        if status is not None and status.state.waiting is not None:
            seen.add(status.state.waiting.reason)
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    wait("ErrImagePull then ImagePullBackOff", both_reasons, timeout=60, interval=0.3)
    status = first_status(api, namespace, "pull")
    assert message in status.state.waiting.message
    assert pods(api, namespace, "pull")[0].status.phase == "Pending"


def test_simulated_pod_that_runs_but_never_gets_ready(api: Any, namespace: str, local_only: None) -> None:
    apply(api, namespace, deployment("slow", "example/model:1", **simulated("never-ready")))
    status = wait("running", lambda: (s := first_status(api, namespace, "slow")) and s.state.running and s, timeout=30)
    time.sleep(3)
    status = first_status(api, namespace, "slow")
    assert status.state.running and not status.ready
