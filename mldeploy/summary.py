"""The run summary of the brief's JSON contract, built while the flow runs: pure.

The one place the summary's shape is declared: the flow fills it in, and the CLI uses the same
type for a spec it refused before any run, or for a run that left no summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STAGES = ("validate", "register", "build", "push", "deploy", "smoke")


def _stages() -> dict[str, dict[str, Any]]:
    return {name: {"name": name, "state": "pending", "seconds": 0.0} for name in STAGES}


@dataclass
class RunSummary:
    service: str | None = None
    status: str = "running"  # succeeded | noop | failed
    failed_stage: str | None = None
    diagnosis: dict[str, str] | None = None
    endpoint: str | None = None
    models: list[dict[str, Any]] = field(default_factory=list)  # every model of the service, in the spec's order
    image: dict[str, Any] | None = None
    flow_run_id: str | None = None
    ui_url: str | None = None
    notices: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why this run deployed (what changed)
    problems: list[dict[str, str]] | None = None  # a refused spec's problems, each with file, field and fix
    rolled_back_to: str | None = None  # what a failed run restored (a Kubernetes revision)
    stages: dict[str, dict[str, Any]] = field(default_factory=_stages)

    def stage(self, name: str, state: str, seconds: float = 0.0, **extra: Any) -> None:
        self.stages[name].update(state=state, seconds=round(seconds, 3), **extra)

    def skip_rest(self, reason: str) -> None:
        for entry in self.stages.values():
            if entry["state"] == "pending":
                entry.update(state="skipped", reason=reason)

    def fail(self, stage: str | None, diagnosis: dict[str, str]) -> None:
        self.status = "failed"
        self.failed_stage = stage
        self.diagnosis = diagnosis
        self.skip_rest(f"{stage} failed" if stage else "the run failed")

    @classmethod
    def refused_spec(cls, diagnosis: dict[str, str], problems: list[dict[str, str]]) -> RunSummary:
        """A spec the CLI refused before starting a run: validate failed, nothing else ran."""
        summary = cls(problems=problems)
        summary.stage("validate", "failed")
        summary.fail("validate", diagnosis)
        return summary

    @classmethod
    def crashed(cls, message: str, flow_run_id: str | None, ui_url: str | None = None) -> RunSummary:
        """The run ended without a summary of its own (it crashed, or was cancelled)."""
        summary = cls(flow_run_id=flow_run_id, ui_url=ui_url)
        summary.fail(
            None,
            {
                "code": "unknown",
                "summary": message,
                "detail": message,
                "hint": "see the flow run's logs in the Prefect UI",
                "stage": "",
            },
        )
        return summary

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "service": self.service,
            "status": self.status,
            "failed_stage": self.failed_stage,
            "diagnosis": self.diagnosis,
            "endpoint": self.endpoint,
            "model": self.models[0] if self.models else None,
            "models": self.models,
            "image": self.image,
            "flow_run_id": self.flow_run_id,
            "ui_url": self.ui_url,
            "notices": self.notices,
            "reasons": self.reasons,
            "stages": list(self.stages.values()),
        }
        if self.problems is not None:
            data["problems"] = self.problems
        if self.rolled_back_to is not None:
            data["rolled_back_to"] = self.rolled_back_to
        return data
