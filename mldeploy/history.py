"""What ran before: a service's deploys, read from the run summaries the deploy flow publishes (one markdown
artifact ``<service>-summary`` per flow run) joined with their flow runs, and what is live now on each target.

Pure: the Prefect reads are in ``mldeploy.remote``, the target reads in the targets. ``mldeploy history``,
``status`` and ``rollback`` (and the ``status`` flow's table) are built on these few functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mldeploy.targets.base import LiveService

REMOTE_TAG = "mldeploy-remote"  # runs `mldeploy deploy --remote` created


@dataclass(frozen=True)
class Deploy:
    """One deploy of a service: a flow run of deploy-model and the summary it published."""

    number: int  # 1 = the oldest deploy still on the Prefect server
    flow_run_id: str
    flow_run_name: str
    when: str  # ISO 8601, UTC (the flow run's start)
    status: str  # succeeded | failed | noop | crashed
    models: str  # name:version[, ...]
    image: str  # name@sha256:... (pushed) or the local image id
    digest: str
    trigger: str  # schedule | ci <key> | remote | deployment (UI/API) | cli
    spec_path: str
    target: str
    failed_stage: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def trigger_of(flow_run: Mapping[str, Any]) -> str:
    """Who started a flow run: its schedule, CI (``--remote`` with an idempotency key, the commit by default),
    another remote trigger, a run of a deployment from the UI or API, or the CLI in-process."""
    if flow_run.get("auto_scheduled"):
        return "schedule"
    tags = flow_run.get("tags") or []
    if REMOTE_TAG in tags:
        key = str(flow_run.get("idempotency_key") or "")
        return f"ci {key}" if key else "remote"
    if flow_run.get("deployment_id"):
        return "deployment (UI/API)"
    return "cli"


def _models(summary: Mapping[str, Any]) -> str:
    return ", ".join(f"{m.get('name')}:{m.get('version')}" for m in summary.get("models") or [])


def deploys(runs: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[Deploy]:
    """(flow run, its summary) pairs as a service's deploys, oldest first and numbered from 1."""
    ordered = sorted(runs, key=lambda pair: str(pair[0].get("start_time") or pair[0].get("created") or ""))
    found = []
    for number, (run, summary) in enumerate(ordered, start=1):
        image = summary.get("image") or {}
        parameters = run.get("parameters") or {}
        found.append(
            Deploy(
                number=number,
                flow_run_id=str(run.get("id", "")),
                flow_run_name=str(run.get("name", "")),
                when=str(run.get("start_time") or run.get("created") or ""),
                status=str(summary.get("status", "")),
                models=_models(summary),
                image=str(image.get("ref") or ""),
                digest=str(image.get("digest") or ""),
                trigger=trigger_of(run),
                spec_path=str(parameters.get("spec_path") or ""),
                target=str(parameters.get("target") or ""),
                failed_stage=str(summary.get("failed_stage") or ""),
            )
        )
    return found


def deployed_by(history: Sequence[Deploy], live: LiveService) -> Deploy | None:
    """The deploy that put ``live`` there: the newest successful one whose image it runs."""
    for deploy in reversed(history):
        if deploy.status in ("succeeded", "noop") and deploy.image and deploy.image == live.image:
            return deploy
    return None


def rollback_choice(history: Sequence[Deploy], live: LiveService | None, to: int | None) -> Deploy:
    """The deploy ``mldeploy rollback`` brings back: number ``to``, else the newest successful deploy of another
    image than the live one. ValueError (with the reason) when there is none or it cannot be deployed again."""
    if to is not None:
        chosen = next((d for d in history if d.number == to), None)
        if chosen is None:
            numbers = ", ".join(str(d.number) for d in history) or "none"
            raise ValueError(f"there is no deploy {to} (deploys on record: {numbers})")
        if chosen.status not in ("succeeded", "noop"):
            raise ValueError(f"deploy {to} {chosen.status}: only a deploy that went live can be brought back")
    else:
        current = live.image if live is not None else ""
        candidates = [d for d in history if d.status == "succeeded" and d.image and d.image != current]
        if not candidates:
            raise ValueError("no earlier successful deploy of another image is on record")
        chosen = candidates[-1]
    if "@sha256:" not in chosen.image:
        raise ValueError(
            f"deploy {chosen.number} ran a local image ({chosen.image[:19]}), not one pushed by digest: "
            "only images in a registry can be brought back"
        )
    return chosen


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table (what the CLI prints)."""
    cells = [[str(row.get(c, "") or "") for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)
