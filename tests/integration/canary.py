"""The canary sweep: every text mldeploy and Prefect keep about some runs — CLI output, summaries, flow and task
runs, artifacts, logs, and every file under both homes — searched for planted secret values in every encoding."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mldeploy.redaction import encodings
from tests.integration import prefect_api


def _all_text_under(folder: Path) -> list[tuple[Path, bytes]]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            found.append((path, path.read_bytes()))
    return found


def haystacks(api: str, runs: Iterable[Any]) -> list[tuple[str, str]]:
    """(where, text) for everything kept about ``runs`` (CliResults of ``mldeploy deploy --json``)."""
    found: list[tuple[str, str]] = []
    for run in runs:
        found += [("cli stdout", run.stdout), ("cli stderr", run.stderr), ("summary", json.dumps(run.summary))]
        flow_run_id = run.summary["flow_run_id"]
        found.append(("flow run", json.dumps(prefect_api.flow_run(api, flow_run_id))))
        for task in prefect_api.task_runs(api, flow_run_id):
            found.append((f"task run {task['name']}", json.dumps(task)))
        for artifact in prefect_api.artifacts(api, flow_run_id=flow_run_id):
            found.append((f"artifact {artifact['key']}", json.dumps(artifact)))
        for record in prefect_api.logs(api, flow_run_id=flow_run_id):
            found.append(("log", record["message"]))
    for root in (Path(os.environ["MLDEPLOY_HOME"]), Path(os.environ["PREFECT_HOME"])):
        found += [(str(path), data.decode("utf-8", "replace")) for path, data in _all_text_under(root)]
    return found


def leaks(found: list[tuple[str, str]], secrets: Iterable[str]) -> list[tuple[str, str]]:
    """(where, form) of every planted value found, in any of its encodings."""
    forms = {form for secret in secrets for form in encodings(secret)}
    return [(where, form) for where, text in found for form in forms if form in text]
