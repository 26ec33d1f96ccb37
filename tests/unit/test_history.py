"""The pure half of status/history/rollback: who triggered a run, the numbered deploys, which deploy put the
live image there, which deploy a rollback brings back (and why it refuses)."""

from __future__ import annotations

from typing import Any

import pytest

from mldeploy.history import Deploy, deployed_by, deploys, rollback_choice, table, trigger_of
from mldeploy.targets.base import LiveService

IMG = "127.0.0.1:5000/diabetes@sha256:"


def run(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"run-{n}", "name": f"name-{n}", "start_time": f"2026-11-30T10:0{n}:00Z", **extra}


def summary(status: str, digest: str, **extra: Any) -> dict[str, Any]:
    image = {"ref": IMG + digest * 64, "digest": "sha256:" + digest * 64} if digest else {}
    return {"status": status, "image": image, "models": [{"name": "m", "version": 1}], **extra}


@pytest.mark.parametrize(
    ("flow_run", "trigger"),
    [
        ({"auto_scheduled": True, "deployment_id": "d"}, "schedule"),
        ({"tags": ["mldeploy-remote"], "idempotency_key": "ci:abc123", "deployment_id": "d"}, "ci ci:abc123"),
        ({"tags": ["mldeploy-remote"], "deployment_id": "d"}, "remote"),
        ({"deployment_id": "d"}, "deployment (UI/API)"),
        ({}, "cli"),
    ],
)
def test_who_triggered_a_run(flow_run: dict[str, Any], trigger: str) -> None:
    assert trigger_of(flow_run) == trigger


def history() -> list[Deploy]:
    pairs = [
        (run(3, parameters={"spec_path": "/s.yaml"}), summary("failed", "c", failed_stage="smoke")),
        (run(1), summary("succeeded", "a")),
        (run(2, parameters={"target": "kubernetes"}), summary("succeeded", "b")),
        (run(4), summary("noop", "b")),
    ]
    return deploys(pairs)


def test_deploys_are_numbered_oldest_first_with_what_each_ran() -> None:
    found = history()
    assert [(d.number, d.flow_run_id, d.status) for d in found] == [
        (1, "run-1", "succeeded"),
        (2, "run-2", "succeeded"),
        (3, "run-3", "failed"),
        (4, "run-4", "noop"),
    ]
    assert found[1].target == "kubernetes" and found[2].spec_path == "/s.yaml" and found[2].failed_stage == "smoke"
    assert found[0].models == "m:1" and found[0].digest == "sha256:" + "a" * 64


def live(digest: str) -> LiveService:
    return LiveService("diabetes", "fp", "http://127.0.0.1:1", IMG + digest * 64, True)


def test_the_live_image_was_put_there_by_the_newest_deploy_that_ran_it() -> None:
    assert deployed_by(history(), live("b")).number == 4  # type: ignore[union-attr]
    assert deployed_by(history(), live("a")).number == 1  # type: ignore[union-attr]
    assert deployed_by(history(), live("z")) is None  # deployed by something the server no longer keeps


def test_a_rollback_takes_the_newest_successful_deploy_of_another_image() -> None:
    assert rollback_choice(history(), live("b"), None).number == 1
    assert rollback_choice(history(), live("b"), 2).number == 2  # asked for: even the live image


@pytest.mark.parametrize(
    ("to", "reason"),
    [
        (9, "there is no deploy 9 (deploys on record: 1, 2, 3, 4)"),
        (3, "deploy 3 failed: only a deploy that went live can be brought back"),
    ],
)
def test_a_rollback_to_a_number_refuses_with_the_reason(to: int, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        rollback_choice(history(), live("b"), to)
    assert str(caught.value) == reason


def test_a_rollback_with_no_other_image_on_record_refuses() -> None:
    only_a = [d for d in history() if d.digest.endswith("a" * 64)]
    with pytest.raises(ValueError, match="no earlier successful deploy of another image"):
        rollback_choice(only_a, live("a"), None)


def test_a_local_image_cannot_be_brought_back() -> None:
    local = deploys([(run(1), {"status": "succeeded", "image": {"ref": "sha256:" + "d" * 64}})])
    with pytest.raises(ValueError, match="only images in a registry"):
        rollback_choice(local, None, None)


def test_the_table_lines_up_its_columns() -> None:
    text = table([{"a": "x", "bb": "long value"}, {"a": "longer", "bb": ""}], ("a", "bb"))
    assert text.splitlines() == ["A       BB", "x       long value", "longer"]
