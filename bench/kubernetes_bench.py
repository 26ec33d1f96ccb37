"""The Kubernetes target on the test cluster: apply → available, apply → failure (evidence seen), rollback.

Deploys the diabetes example once through the CLI (build, push, first rollout), then drives the target with
requests shaped like the flow's, each round on the same image:

* a new revision of the serving image (a new fingerprint): apply → every new replica available;
* an OOM kill (a 30 MiB limit), an image digest the registry lacks, a pod no node can take: apply → the stage
  fails on the pod's evidence, and the rollback to the serving revision (until it is available again).

    .venv/bin/python bench/kubernetes_bench.py [--rounds 3] [--markdown]

Needs the test cluster (make cluster-up) and the local registry; KUBECONFIG is set to the cluster's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from runtime_bench import table  # noqa: E402  (bench/ is not a package)

from mldeploy.adapters.kube_api import KubeApi  # noqa: E402
from mldeploy.errors import PermanentError  # noqa: E402
from mldeploy.spec import KubernetesTarget as Section  # noqa: E402
from mldeploy.targets.base import DeployRequest  # noqa: E402
from mldeploy.targets.kubernetes import KubernetesTarget  # noqa: E402

KUBECONFIG = os.environ.get("KUBECONFIG") or str(Path.home() / ".mldeploy" / "cluster" / "kubeconfig")
MLDEPLOY = str(Path(sys.executable).parent / "mldeploy")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def first_deploy(work: Path, name: str) -> dict[str, Any]:
    example = REPO / "deployments" / "examples" / "diabetes"
    if not (example / "model").exists():
        subprocess.run([sys.executable, str(example / "train.py")], check=True)
    root = work / "diabetes"
    shutil.copytree(example, root)
    spec = yaml.safe_load((root / "service.yaml").read_text())
    spec["name"] = name
    spec["target"] = {"kind": "kubernetes", "namespace": name, "replicas": 1, "cpu_cores": 0.1, "memory_gb": 0.5}
    (root / "service.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**os.environ, "KUBECONFIG": KUBECONFIG, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.run(
        [MLDEPLOY, "deploy", str(root / "service.yaml"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if summary["status"] != "succeeded":
        raise SystemExit(f"the first deploy failed: {summary.get('diagnosis')}")
    return dict(summary)


def timed(target: KubernetesTarget, request: DeployRequest) -> tuple[float, float | None, str, Any]:
    """(apply → end of the deploy call, rollback seconds or None, outcome, the DeployOutcome if available)."""
    stamps: dict[str, float] = {}

    def on_line(line: str) -> None:
        if "back to the template of revision" in line:
            stamps["rollback"] = time.monotonic()
        if "serves the template of revision" in line:
            stamps["restored"] = time.monotonic()

    started = time.monotonic()
    deployed = None
    try:
        deployed = target.deploy(request, on_line)
        outcome = "available"
    except PermanentError as exc:
        outcome = exc.diagnosis.code if exc.diagnosis else "failed"
    ended = time.monotonic()
    if "rollback" in stamps and "restored" in stamps:
        return stamps["rollback"] - started, stamps["restored"] - stamps["rollback"], outcome, deployed
    return ended - started, None, outcome, deployed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    name = f"bench-{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix="mldeploy-k8s-bench-"))
    api = KubeApi.from_kubeconfig(KUBECONFIG)
    try:
        log(f"first deploy of {name} through the CLI (build, push, rollout)")
        summary = first_deploy(work, name)
        image = summary["image"]["ref"]
        repository = image.split("@", 1)[0]
        base = {"kind": "kubernetes", "namespace": name, "replicas": 1, "cpu_cores": 0.1, "memory_gb": 0.5}
        cases = {
            "new revision → available": ({}, image),
            "OOM kill → failed (out_of_memory)": ({"memory_gb": 0.03}, image),
            "missing digest → failed (image_not_found)": ({}, f"{repository}@sha256:{'0' * 64}"),
            "no node fits → failed (unschedulable)": ({"cpu_cores": 64}, image),
        }
        results: dict[str, list[tuple[float, float | None, str, Any]]] = {case: [] for case in cases}
        for round_ in range(args.rounds):
            for case, (section, ref) in cases.items():
                target = KubernetesTarget(api, Section.model_validate({**base, **section}))
                request = DeployRequest(
                    service=name,
                    image=ref,
                    fingerprint=uuid.uuid4().hex * 2,
                    health_timeout=60,
                    labels={"mldeploy.model": "sklearn_regression_model:1"},
                )
                result = timed(target, request)
                if result[2] == "available":  # it passed, as the smoke stage would say: it serves from now on
                    target.commit(result[3])
                results[case].append(result)
                log(f"round {round_ + 1}: {case}: {result[0]:.1f} s, rollback {result[1] or 0:.1f} s, {result[2]}")
        rows = []
        for case, found in results.items():
            first = [r[0] for r in found]
            back = [r[1] for r in found if r[1] is not None]
            rows.append(
                [
                    case,
                    f"{statistics.median(first):.1f} ({min(first):.1f}–{max(first):.1f})",
                    f"{statistics.median(back):.1f} ({min(back):.1f}–{max(back):.1f})" if back else "–",
                    ", ".join(sorted({r[2] for r in found})),
                ]
            )
        header = ["case", "apply → outcome, s (median, min–max)", "rollback → available, s", "outcome"]
        print(table(rows, header, args.markdown))
        return 0
    finally:
        from kubernetes import client

        client.CoreV1Api(api.api_client).delete_namespace(name)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
