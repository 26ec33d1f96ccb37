"""The run summary of the brief's JSON contract, built while the flow runs: pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STAGES = ("validate", "register", "build", "push", "deploy", "smoke")


@dataclass
class RunSummary:
    service: str = ""
    status: str = "running"  # succeeded | noop | failed
    failed_stage: str | None = None
    diagnosis: dict[str, str] | None = None
    endpoint: str | None = None
    model: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    flow_run_id: str | None = None
    ui_url: str | None = None
    notices: list[str] = field(default_factory=list)
    stages: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {name: {"name": name, "state": "pending", "seconds": 0.0} for name in STAGES}
    )

    def stage(self, name: str, state: str, seconds: float = 0.0, **extra: Any) -> None:
        self.stages[name].update(state=state, seconds=round(seconds, 3), **extra)

    def skip_rest(self, reason: str) -> None:
        for entry in self.stages.values():
            if entry["state"] == "pending":
                entry.update(state="skipped", reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": self.status,
            "failed_stage": self.failed_stage,
            "diagnosis": self.diagnosis,
            "endpoint": self.endpoint,
            "model": self.model,
            "image": self.image,
            "flow_run_id": self.flow_run_id,
            "ui_url": self.ui_url,
            "notices": self.notices,
            "stages": list(self.stages.values()),
        }
