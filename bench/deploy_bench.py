"""Deploy benchmark: cold deploy, no-op redeploy, score.py-only redeploy, score.py reload and image size.

Runs against the real engine and registry (`make setup`) and a Prefect server of its own
(SQLite, started here), on a copy of the diabetes example with its own name and port. The
wheelhouse is warmed first (untimed), as the target says. Prints one table; `--markdown`
prints it as markdown for docs/benchmarks.md.

    .venv/bin/python bench/deploy_bench.py [--rounds 3] [--markdown]
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
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import yaml
from runtime_bench import free_port  # bench/ is not a package: its folder is on sys.path when run
from runtime_bench import table as render_table

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXAMPLE = REPO / "deployments" / "examples" / "diabetes"
TARGETS = {"cold": 60.0, "noop": 3.0, "score_only": 15.0, "reload": 3.0}


def wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise SystemExit(f"{url} did not answer within {seconds} s")


def deploy(spec: Path, *flags: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "mldeploy"), "deploy", str(spec), "--json", *flags], capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if proc.returncode != 0:
        raise SystemExit(f"deploy failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds, summary


def flow_seconds(summary: dict[str, Any]) -> float:
    """The flow run's own duration as the Prefect server recorded it."""
    api = os.environ["PREFECT_API_URL"]
    with urllib.request.urlopen(f"{api}/flow_runs/{summary['flow_run_id']}", timeout=5) as response:
        run = json.loads(response.read())
    return float(run["total_run_time"])


def image_size_mb(ref: str) -> float:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True, text=True)
    return int(out.stdout.strip() or 0) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds for the no-op and score.py-only cases")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mldeploy-bench-"))
    home = work / "prefect"
    home.mkdir()
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(PREFECT_HOME=str(home), PREFECT_API_URL=f"http://127.0.0.1:{port}/api")
    service = f"bench-{uuid.uuid4().hex[:8]}"
    try:
        wait_http(f"http://127.0.0.1:{port}/api/health", 60)
        root = work / "diabetes"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("__pycache__"))
        if not (root / "model").exists():
            subprocess.run([sys.executable, str(root / "train.py")], check=True, capture_output=True)
        spec = root / "service.yaml"
        data = yaml.safe_load(spec.read_text())
        data["name"] = service
        data["target"]["port"] = free_port()
        spec.write_text(yaml.safe_dump(data, sort_keys=False))

        # Warm the wheelhouse (untimed): the target is a cold *image* build with a warm wheelhouse.
        deploy(spec)
        cold_wall, cold = deploy(spec, "--no-cache")
        cold_stages = {s["name"]: s["seconds"] for s in cold["stages"]}

        noop_wall, noop_flow = [], []
        for _ in range(args.rounds):
            wall, summary = deploy(spec)
            assert summary["status"] == "noop", summary["status"]
            noop_wall.append(wall)
            noop_flow.append(flow_seconds(summary))

        score_wall, score_build = [], []
        for round_no in range(args.rounds):
            script = root / "score.py"
            script.write_text(script.read_text() + f"\n# benchmark edit {round_no} {uuid.uuid4().hex}\n")
            wall, summary = deploy(spec)
            assert summary["status"] == "succeeded"
            build = next(s for s in summary["stages"] if s["name"] == "build")
            assert build["rebuilt_steps"] and all("app/" in s for s in build["rebuilt_steps"]), build
            score_wall.append(wall)
            score_build.append(build["seconds"])
        size = image_size_mb(summary["image"]["ref"])

        reload_wall, reload_live = [], []  # the same edit, live without a new image (mldeploy reload)
        for round_no in range(args.rounds):
            script = root / "score.py"
            script.write_text(script.read_text() + f"\n# reload edit {round_no} {uuid.uuid4().hex}\n")
            started = time.monotonic()
            proc = subprocess.run(
                [str(BIN / "mldeploy"), "reload", service, "--spec", str(spec), "--json"],
                capture_output=True,
                text=True,
                check=False,
            )
            reload_wall.append(time.monotonic() - started)
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if result["status"] != "reloaded":
                raise SystemExit(f"reload failed: {result}")
            reload_live.append(float(result["seconds"]))
    finally:
        subprocess.run([str(BIN / "mldeploy"), "delete", service], capture_output=True)
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)

    med = statistics.median
    rows = [
        (
            "cold deploy, warm wheelhouse (CLI wall)",
            cold_wall,
            TARGETS["cold"],
            ", ".join(f"{stage} {cold_stages[stage]:.1f} s" for stage in ("build", "push", "deploy")),
        ),
        ("no-op redeploy (CLI wall, median)", med(noop_wall), None, "includes ~2.5 s of Python + Prefect import"),
        ("no-op redeploy (flow run, median)", med(noop_flow), TARGETS["noop"], "as recorded by the Prefect server"),
        (
            "score.py-only redeploy, live (CLI wall, median)",
            med(score_wall),
            TARGETS["score_only"],
            f"build {med(score_build):.1f} s; only the app layer rebuilt",
        ),
        (
            "score.py reload, live (median)",
            med(reload_live),
            TARGETS["reload"],
            "files in, scoring process restarted, ready, smoke passed; no image",
        ),
        (
            "score.py reload (CLI wall, median)",
            med(reload_wall),
            None,
            "the same plus starting Python and importing Prefect",
        ),
        ("image size (MB)", size, None, "diabetes example on the local base image"),
    ]
    header = ("case", "measured", "target", "ok", "notes")

    def verdict(value: float, target: float | None) -> str:
        if target is None:
            return "—"
        return "yes" if value <= target else "NO"

    table = [
        (name, f"{value:.2f}", f"≤ {target:g} s" if target else "—", verdict(value, target), note)
        for name, value, target, note in rows
    ]
    print(render_table([list(row) for row in table], header, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
