"""The Kubernetes target against the test cluster's real API server and node: apply → wait → smoke → rollback.

Full runs go through the CLI and a real Prefect server, like a user's; the failure kinds the flow cannot
produce on purpose (an image digest the registry lacks, a pod no node can take, an OOM kill, a crash on the
simulated node) go through the target itself with a request shaped like the flow's. Every failure must come
within seconds of its evidence, with its diagnosis, and leave the revision that served before serving — while
a request loop against the Service's NodePort on 127.0.0.1 loses nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mldeploy.adapters.kube_api import KubeApi
from mldeploy.manifests import LABEL_SERVICE, STATE_COMMITTED, state_name
from mldeploy.rollout import FINGERPRINT_ANNOTATION, revision_of
from mldeploy.spec import KubernetesTarget as Section
from mldeploy.targets.base import DeployRequest
from mldeploy.targets.kubernetes import KubernetesTarget
from tests.integration.conftest import CliResult, run_cli
from tests.kubernetes.conftest import Cluster

pytestmark = pytest.mark.kubernetes

EXAMPLE = Path(__file__).resolve().parents[2] / "deployments" / "examples" / "diabetes"
ONE_ROW = {"data": [[0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.020, -0.018]]}
EVIDENCE_BUDGET_SECONDS = 30  # from apply to a failed stage, rollback included


@dataclass
class K8sService:
    root: Path
    name: str
    namespace: str
    api: KubeApi

    @property
    def spec(self) -> Path:
        return self.root / "service.yaml"

    def edit(self, **target: Any) -> None:
        data = yaml.safe_load(self.spec.read_text())
        data["target"].update(target)
        self.spec.write_text(yaml.safe_dump(data, sort_keys=False))

    def deploy(self, *extra: str) -> CliResult:
        return run_cli("deploy", str(self.spec), "--json", *extra, timeout=900)

    def deployment(self) -> dict[str, Any]:
        found = self.api.deployment(self.namespace, self.name)
        assert found is not None
        return found

    def serving_fingerprint(self) -> str:
        return str(self.deployment()["spec"]["template"]["metadata"]["annotations"][FINGERPRINT_ANNOTATION])

    def replica_sets(self) -> list[dict[str, Any]]:
        return self.api.replica_sets(self.namespace, f"{LABEL_SERVICE}={self.name}")

    def node_port(self) -> int:
        from kubernetes import client

        found = client.CoreV1Api(self.api.api_client).read_namespaced_service(self.name, self.namespace)
        return int(found.spec.ports[0].node_port)


def registry_for(cluster: Cluster) -> str:
    """The registry the cluster pulls from: the local one for the test cluster; for another cluster (the opt-in
    run, e.g. AKS) MLDEPLOY_TEST_REGISTRY, which its nodes must reach (credentials: its pull access)."""
    if cluster.ours:
        return "127.0.0.1:5000"
    registry = os.environ.get("MLDEPLOY_TEST_REGISTRY")
    if not registry:
        pytest.skip(
            "another cluster (MLDEPLOY_TEST_KUBECONFIG) needs MLDEPLOY_TEST_REGISTRY: a registry its nodes pull from"
        )
    return registry


@pytest.fixture
def k8s_service(
    tmp_path: Path,
    cluster: Cluster,
    prefect_server: str,
    real_engine: None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[K8sService]:
    registry = registry_for(cluster)
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    if not (EXAMPLE / "model").exists():
        subprocess.run([sys.executable, str(EXAMPLE / "train.py")], check=True, capture_output=True)
    root = tmp_path / "diabetes"
    shutil.copytree(EXAMPLE, root)
    name = f"k8s-{uuid.uuid4().hex[:6]}"
    data = yaml.safe_load((root / "service.yaml").read_text())
    data["name"] = name
    data["registry"] = {"url": registry}
    data["target"] = {
        "kind": "kubernetes",
        "namespace": name,
        "replicas": 1,
        "cpu_cores": 0.1,
        "memory_gb": 0.5,
        # the request loop goes through kube-proxy on 127.0.0.1, as a client would (the test cluster only)
        "service_type": "NodePort" if cluster.ours else "ClusterIP",
    }
    (root / "service.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    api = KubeApi.from_kubeconfig(cluster.kubeconfig)
    service = K8sService(root, name, name, api)
    yield service
    from kubernetes import client

    client.CoreV1Api(api.api_client).delete_namespace(name)


@dataclass
class RequestLoop:
    """Scores one row over and over against the Service (NodePort on 127.0.0.1) while a test changes it."""

    port: int
    answers: list[int | str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        body = json.dumps(ONE_ROW).encode()
        while not self.stop.is_set():
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/score", data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    self.answers.append(response.status)
            except urllib.error.HTTPError as exc:
                self.answers.append(exc.code)
            except OSError as exc:
                self.answers.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.05)


@pytest.fixture
def request_loop(k8s_service: K8sService, cluster: Cluster) -> Iterator[Any]:
    """Starts a request loop on the test cluster; elsewhere (no NodePort on this machine) none runs."""
    loops: list[tuple[RequestLoop, threading.Thread]] = []

    def start() -> RequestLoop | None:
        if not cluster.ours:
            return None
        loop = RequestLoop(k8s_service.node_port())
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        loops.append((loop, thread))
        time.sleep(1)
        return loop

    yield start
    for loop, thread in loops:
        loop.stop.set()
        thread.join(15)


def no_request_lost(loop: RequestLoop | None) -> None:
    if loop is None:
        return
    loop.stop.set()
    time.sleep(0.5)
    assert loop.answers and set(loop.answers) == {200}, f"requests lost while it changed: {set(loop.answers)}"


def failed_in(result: CliResult, stage: str, code: str) -> dict[str, Any]:
    summary = result.summary
    assert (result.code, summary["status"], summary["failed_stage"]) == (1, "failed", stage), summary.get("diagnosis")
    assert summary["diagnosis"]["code"] == code, summary["diagnosis"]
    return summary


def stage_seconds(summary: dict[str, Any], stage: str) -> float:
    return float(next(s for s in summary["stages"] if s["name"] == stage)["seconds"])


# --- through the CLI -------------------------------------------------------------------------------------------


def test_a_deploy_serves_and_applying_it_again_changes_nothing(k8s_service: K8sService) -> None:
    first = k8s_service.deploy()
    assert (first.code, first.summary["status"]) == (0, "succeeded"), first.summary.get("diagnosis")
    assert first.summary["endpoint"] == f"http://{k8s_service.name}.{k8s_service.namespace}.svc.cluster.local"
    deployment = k8s_service.deployment()
    assert k8s_service.api.config_map_data(k8s_service.namespace, state_name(k8s_service.name))[STATE_COMMITTED] == "1"
    generation, sets = deployment["metadata"]["generation"], len(k8s_service.replica_sets())
    again = k8s_service.deploy()
    assert again.summary["status"] == "noop"
    forced = k8s_service.deploy("--force")  # the same manifests applied again: no new rollout
    assert forced.summary["status"] == "succeeded", forced.summary.get("diagnosis")
    assert k8s_service.deployment()["metadata"]["generation"] == generation
    assert len(k8s_service.replica_sets()) == sets


def test_init_that_raises_fails_in_seconds_and_the_previous_revision_keeps_serving(
    k8s_service: K8sService, request_loop: Any
) -> None:
    assert k8s_service.deploy().summary["status"] == "succeeded"
    good = k8s_service.serving_fingerprint()
    loop = request_loop()
    script = k8s_service.root / "score.py"
    original = script.read_text()
    script.write_text(
        original.replace("def init():\n", "def init():\n    raise RuntimeError('feature store unreachable')\n", 1)
    )
    summary = failed_in(k8s_service.deploy(), "deploy", "init_failed")
    assert "feature store unreachable" in summary["diagnosis"]["detail"]  # the pod's own traceback
    assert stage_seconds(summary, "deploy") < EVIDENCE_BUDGET_SECONDS
    assert summary["rolled_back_to"] == "1"
    no_request_lost(loop)
    assert k8s_service.serving_fingerprint() == good
    script.write_text(original)  # the inputs that serve: nothing new to apply
    assert k8s_service.deploy().summary["status"] == "noop"


def test_a_smoke_test_that_fails_after_a_healthy_rollout_rolls_back(k8s_service: K8sService, request_loop: Any) -> None:
    assert k8s_service.deploy().summary["status"] == "succeeded"
    good = k8s_service.serving_fingerprint()
    loop = request_loop()
    script = k8s_service.root / "score.py"
    script.write_text(script.read_text().replace("return result.tolist()", "return [0.0]", 1))
    summary = failed_in(k8s_service.deploy(), "smoke", "smoke_mismatch")
    assert summary["rolled_back_to"] == "1"
    assert next(s for s in summary["stages"] if s["name"] == "deploy")["state"] == "completed"
    no_request_lost(loop)
    assert k8s_service.serving_fingerprint() == good


def test_a_failed_first_deploy_leaves_nothing_behind(k8s_service: K8sService) -> None:
    script = k8s_service.root / "score.py"
    script.write_text(script.read_text().replace("def init():\n", "def init():\n    raise SystemExit(4)\n", 1))
    summary = failed_in(k8s_service.deploy(), "deploy", "init_failed")
    assert "rolled_back_to" not in summary
    assert k8s_service.api.deployment(k8s_service.namespace, k8s_service.name) is None
    assert k8s_service.api.pods(k8s_service.namespace, f"{LABEL_SERVICE}={k8s_service.name}") == [] or all(
        p["metadata"].get("deletionTimestamp")
        for p in k8s_service.api.pods(k8s_service.namespace, f"{LABEL_SERVICE}={k8s_service.name}")
    )


def test_logs_and_delete_through_the_cli(k8s_service: K8sService, cluster: Cluster) -> None:
    assert k8s_service.deploy().summary["status"] == "succeeded"
    where = ["--target", "kubernetes", "--namespace", k8s_service.namespace, "--kubeconfig", cluster.kubeconfig]
    logs = run_cli("logs", k8s_service.name, *where)
    assert logs.code == 0 and "init() done" in logs.stdout
    deleted = run_cli("delete", k8s_service.name, *where)
    assert deleted.code == 0
    for kind in ("Deployment", "Service"):
        assert f"{kind}/{k8s_service.name}" in deleted.stdout
    assert k8s_service.api.deployment(k8s_service.namespace, k8s_service.name) is None


# --- through the target: the failure kinds the flow does not produce on purpose --------------------------------


def request_like(k8s_service: K8sService, **changes: Any) -> DeployRequest:
    """What the flow asked for when it deployed the serving revision, with ``changes``."""
    deployment = k8s_service.deployment()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    base = {
        "service": k8s_service.name,
        "image": container["image"],
        "fingerprint": uuid.uuid4().hex * 2,
        "health_timeout": 60.0,
        "labels": {"mldeploy.model": "sklearn_regression_model:1"},
    }
    return DeployRequest(**{**base, **changes})


def target_for(k8s_service: K8sService, **section: Any) -> KubernetesTarget:
    keys = {
        "kind": "kubernetes",
        "namespace": k8s_service.namespace,
        "replicas": 1,
        "cpu_cores": 0.1,
        "memory_gb": 0.5,
        "service_type": "NodePort" if k8s_service.spec.read_text().count("NodePort") else "ClusterIP",
        **section,
    }
    return KubernetesTarget(k8s_service.api, Section.model_validate(keys))


FAILURES = [
    ("an image digest the registry does not have", {}, {"image_digest": "0" * 64}, "image_not_found"),
    ("a cpu request no node has", {"cpu_cores": 64}, {}, "unschedulable"),
    ("a memory limit init() does not fit in", {"memory_gb": 0.03}, {}, "out_of_memory"),
]


@pytest.mark.parametrize(("case", "section", "request_changes", "code"), FAILURES, ids=[f[0] for f in FAILURES])
def test_each_failure_kind_is_diagnosed_in_seconds_and_rolled_back(
    k8s_service: K8sService,
    request_loop: Any,
    case: str,
    section: dict[str, Any],
    request_changes: dict[str, Any],
    code: str,
) -> None:
    from mldeploy.errors import PermanentError

    assert k8s_service.deploy().summary["status"] == "succeeded"
    good, revision = k8s_service.serving_fingerprint(), revision_of(k8s_service.deployment())
    loop = request_loop()
    request = request_like(k8s_service)
    if "image_digest" in request_changes:
        repository = request.image.split("@", 1)[0]
        request = request_like(k8s_service, image=f"{repository}@sha256:{request_changes['image_digest']}")
    target = target_for(k8s_service, **section)
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(PermanentError) as caught:
        target.deploy(request, lines.append)
    seconds = time.monotonic() - started
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code == code, caught.value.diagnosis
    assert seconds < EVIDENCE_BUDGET_SECONDS, f"{case}: {seconds:.1f} s; {lines}"
    assert caught.value.rolled_back_to == str(revision)
    no_request_lost(loop)
    assert k8s_service.serving_fingerprint() == good
    print(f"\n[k8s] {case}: failed and rolled back in {seconds:.1f} s")


def test_a_crash_loop_on_the_simulated_node_is_diagnosed_from_its_status(
    k8s_service: K8sService, local_only: None
) -> None:
    from mldeploy.errors import PermanentError

    target = target_for(
        k8s_service,
        node_selector={"type": "kwok"},
        tolerations=[{"key": "kwok.x-k8s.io/node", "operator": "Exists"}],
        labels={"kwok.mldeploy.dev/scenario": "crashloop"},
        annotations={"kwok.mldeploy.dev/exit-code": "3"},
    )
    request = DeployRequest(
        service=k8s_service.name,
        image="example.invalid/model@sha256:" + "1" * 64,
        fingerprint="f" * 64,
        health_timeout=60,
    )
    started = time.monotonic()
    with pytest.raises(PermanentError) as caught:
        target.deploy(request, lambda line: None)
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code == "init_failed"
    assert "code 3" in caught.value.diagnosis.summary
    assert time.monotonic() - started < 20  # kwok's first exit comes 5 s after the pod starts
    assert k8s_service.api.deployment(k8s_service.namespace, k8s_service.name) is None  # a first deploy: removed


def test_cluster_credentials_from_a_prefect_secret_block(
    k8s_service: K8sService, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a work pool's worker has no kubeconfig on its disk: the block holds it
    from prefect.blocks.system import Secret

    block = f"kubeconfig-{uuid.uuid4().hex[:6]}"
    Secret(value=Path(cluster.kubeconfig).read_text()).save(block, overwrite=True)
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(k8s_service.root))  # and no ~/.kube/config either
    monkeypatch.setenv("MLDEPLOY_KUBECONFIG_BLOCK", block)
    result = k8s_service.deploy()
    assert result.summary["status"] == "succeeded", result.summary.get("diagnosis")
    monkeypatch.setenv("MLDEPLOY_KUBECONFIG_BLOCK", "no-such-block")
    missing = k8s_service.deploy("--force")
    assert missing.code == 1 and "no-such-block" in missing.stdout + missing.stderr
