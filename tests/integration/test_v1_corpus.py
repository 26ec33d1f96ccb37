"""Every folder of the v1 corpus deployed unchanged through the real pipeline (CLI, Prefect server, engine).

Each folder gets a home of its own (its own model registry, as each came from its own Azure ML workspace:
two of them register a ``my_first_model`` with different bytes), and four deploy at a time. A folder that
serves must pass its smoke cases, whose expectations are the classic server's answers; a folder that cannot
work must fail at the stage and with the diagnosis ``tests/corpus/v1/outcomes.yaml`` says, naming what it lists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mldeploy.settings import Settings
from tests.integration.conftest import MLDEPLOY

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "corpus" / "v1"
OUTCOMES: dict[str, Any] = yaml.safe_load((CORPUS / "outcomes.yaml").read_text())
FOLDERS = sorted(p.name for p in CORPUS.iterdir() if (p / "service.yaml").is_file())
PARALLEL = 4


@dataclass
class Run:
    folder: str
    code: int
    summary: dict[str, Any]
    stderr: str
    env: dict[str, str]


def _deploy(folder: str, homes: Path, base_image: str) -> Run:
    source = CORPUS / folder
    subprocess.run([sys.executable, "make_model.py"], cwd=source, check=True, capture_output=True, timeout=120)
    env = {**os.environ, "MLDEPLOY_HOME": str(homes / folder), "MLDEPLOY_BASE_IMAGE": base_image}
    proc = subprocess.run(
        [MLDEPLOY, "deploy", str(source / "service.yaml"), "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    lines = proc.stdout.strip().splitlines()
    return Run(folder, proc.returncode, json.loads(lines[-1]) if lines else {}, proc.stderr, env)


@pytest.fixture(scope="module")
def corpus(
    real_engine: None, prefect_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Run]]:
    homes = tmp_path_factory.mktemp("corpus-homes")
    base_image = Settings.load().base_image  # what `make setup` chose for this machine
    with ThreadPoolExecutor(PARALLEL) as pool:
        runs = {run.folder: run for run in pool.map(lambda f: _deploy(f, homes, base_image), FOLDERS)}
    yield runs
    for run in runs.values():
        subprocess.run([MLDEPLOY, "delete", f"v1-{run.folder}"], capture_output=True, timeout=120, env=run.env)


def test_the_outcomes_file_covers_every_folder() -> None:
    assert sorted(OUTCOMES) == FOLDERS
    assert len(FOLDERS) >= 12


@pytest.mark.parametrize("folder", FOLDERS)
def test_a_v1_folder_deploys_unchanged_or_fails_naming_the_cause(corpus: dict[str, Run], folder: str) -> None:
    run, expected = corpus[folder], OUTCOMES[folder]["deploy"]
    summary = run.summary
    assert summary, f"no JSON summary; stderr:\n{run.stderr[-3000:]}"
    if expected == "serves":
        assert (run.code, summary["status"]) == (0, "succeeded"), json.dumps(summary.get("diagnosis"), indent=1)
        smoke = next(stage for stage in summary["stages"] if stage["name"] == "smoke")
        assert smoke["state"] == "completed"
        return
    assert run.code == 1 and summary["status"] == "failed"
    found = summary["diagnosis"]
    assert (summary["failed_stage"], found["code"]) == (expected["stage"], expected["code"]), found
    said = "\n".join((found["summary"], found["detail"], found["hint"]))
    for needle in expected["mentions"]:
        assert needle in said, f"{needle!r} not in the diagnosis:\n{said}"


def test_a_header_a_rawhttp_script_sets_reaches_the_client(corpus: dict[str, Run]) -> None:
    # Microsoft's CORS sample: resp.headers['Access-Control-Allow-Origin'] = ... inside run()
    run = corpus["rawhttp-echo-cors"]
    assert run.summary["status"] == "succeeded"
    body = json.dumps({"data": [[0.1] * 10]}).encode()
    response = httpx.post(run.summary["endpoint"] + "/score", content=body, timeout=30)
    assert response.status_code == 200 and "predictions" in response.json()
    assert response.headers["access-control-allow-origin"] == "*"
    assert len(response.headers.get_list("x-request-id")) == 1  # one, not the server's and a copy


def test_the_failed_folders_left_nothing_serving(corpus: dict[str, Run]) -> None:
    import docker

    client = docker.from_env()
    for folder, run in corpus.items():
        if OUTCOMES[folder]["deploy"] == "serves":
            continue
        left = client.containers.list(all=True, filters={"label": f"mldeploy.service=v1-{folder}"})
        assert [c.name for c in left] == [], f"{folder} (failed at {run.summary['failed_stage']}) left containers"
