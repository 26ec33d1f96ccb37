"""The local target's crash recovery, driven through every state a killed run can leave behind.

Container names carry the state (``-candidate``, ``-new``, ``-previous``): whatever a killed
run left on the engine, the next run's first step puts the last good version back on the port
and removes what never passed its smoke test — with nothing but the engine to go by.
"""

from __future__ import annotations

import pytest

from mldeploy.contract import LABEL_SERVICE
from mldeploy.targets.base import DeployRequest
from tests.middle.fakes import FakeEngine

SERVICE = "fixture-svc"
IMAGE = "127.0.0.1:5000/fixture-svc@sha256:" + "a" * 64


def _container(engine: FakeEngine, role: str, *, running: bool = True, port: int | None = None) -> str:
    name = f"mldeploy-{SERVICE}" + (f"-{role}" if role else "")
    container_id = engine.run(
        IMAGE, name=name, labels={LABEL_SERVICE: SERVICE}, environment={}, host_port=port, container_port=5001
    )
    if not running:
        engine.stop(container_id)
    return container_id


def _names(engine: FakeEngine) -> dict[str, str]:
    return {c.name: c.status for c in engine.containers.values()}


@pytest.fixture
def port(target) -> int:
    return target.section.port


# (what a killed run left, what the next run must find before it deploys)
INTERRUPTED = {
    "killed while the candidate proved itself": (
        [("", True), ("candidate", True)],
        {f"mldeploy-{SERVICE}": "running"},
    ),
    "killed after stopping the live version, before the new one started": (
        [("previous", False)],
        {f"mldeploy-{SERVICE}": "running"},
    ),
    "killed while the new version warmed up or was smoke-tested": (
        [("previous", False), ("new", True)],
        {f"mldeploy-{SERVICE}": "running"},
    ),
    "killed inside commit, after the rename and before the previous was removed": (
        [("", True), ("previous", False)],
        {f"mldeploy-{SERVICE}": "running"},
    ),
    "killed during the smoke test of a first deploy": (
        [("new", True)],
        {},
    ),
    "killed during the candidate of a first deploy": (
        [("candidate", True)],
        {},
    ),
}


@pytest.mark.parametrize("left", INTERRUPTED, ids=list(INTERRUPTED))
def test_the_next_run_recovers_the_last_good_version(engine, target, port, left) -> None:
    leftovers, expected = INTERRUPTED[left]
    survivor = None
    for role, running in leftovers:
        container_id = _container(engine, role, running=running, port=port if role in ("", "new") and running else None)
        if role in ("", "previous") and survivor is None:
            survivor = container_id
    lines: list[str] = []
    target._recover(SERVICE, lines.append)
    assert _names(engine) == expected, lines
    if expected:
        live = engine.named(f"mldeploy-{SERVICE}")
        assert live is not None and live.id == survivor, "the version that passed its smoke test serves again"
    assert all("interrupted" in line or "committed" in line for line in lines), lines


@pytest.mark.parametrize("left", INTERRUPTED, ids=list(INTERRUPTED))
def test_a_deploy_after_any_interruption_succeeds(engine, target, port, left) -> None:
    for role, running in INTERRUPTED[left][0]:
        _container(engine, role, running=running, port=port if role in ("", "new") and running else None)
    request = DeployRequest(service=SERVICE, image=IMAGE, fingerprint="f" * 64, health_timeout=5)
    outcome = target.deploy(request, lambda line: None)
    target.commit(outcome)
    assert _names(engine) == {f"mldeploy-{SERVICE}": "running"}
    assert engine.named(f"mldeploy-{SERVICE}").host_port == port
