"""The local target's crash recovery, driven through every state a killed run can leave behind.

What serves is what the front's pointer names: whatever a killed run left on the engine, the next
run's first step removes every backend the front does not point at (gracefully, if it was serving
a moment ago), so only a version that passed its smoke test ever answers on the port — with
nothing but the engine to go by.
"""

from __future__ import annotations

import pytest

from mldeploy.contract import LABEL_FINGERPRINT, LABEL_ROLE, LABEL_SERVICE
from mldeploy.targets.base import DeployRequest
from mldeploy.targets.local import NETWORK, POINTER, front_name
from tests.middle.fakes import FakeEngine, FakeNetwork

SERVICE = "fixture-svc"
IMAGE = "127.0.0.1:5000/fixture-svc@sha256:" + "a" * 64


def _backend(engine: FakeEngine, suffix: str, *, served: bool = True) -> str:
    name = f"{front_name(SERVICE)}-{suffix}"
    labels = {LABEL_SERVICE: SERVICE, LABEL_ROLE: "backend", LABEL_FINGERPRINT: "f" * 64}
    return engine.run(
        IMAGE,
        name=name,
        labels=labels,
        environment={},
        host_port=None,
        container_port=5001,
        network=NETWORK,
        aliases=(name,),
        restart=served,
    )


def _front(engine: FakeEngine, port: int, backend_suffix: str, *, name: str | None = None) -> str:
    pointer = f"{front_name(SERVICE)}-{backend_suffix}:5001".encode()
    return engine.run(
        IMAGE,
        name=name or front_name(SERVICE),
        labels={LABEL_SERVICE: SERVICE, LABEL_ROLE: "front"},
        environment={},
        host_port=port,
        container_port=5001,
        network=NETWORK,
        files={POINTER: pointer},
        command=["python3", "-m", "mldeploy_runtime.front", POINTER, "5001"],
        restart=True,
    )


def _legacy(engine: FakeEngine, port: int) -> str:
    return engine.run(
        IMAGE,
        name=front_name(SERVICE),
        labels={LABEL_SERVICE: SERVICE, LABEL_FINGERPRINT: "0" * 64},
        environment={},
        host_port=port,
        container_port=5001,
        restart=True,
    )


def _names(engine: FakeEngine) -> list[str]:
    return sorted(c.name for c in engine.containers.values())


# Each: how to build what a killed run left (engine, port) -> the backend that must serve after recovery.
def killed_while_the_candidate_proved_itself(engine, port):
    _backend(engine, "aaaa")
    _front(engine, port, "aaaa")
    _backend(engine, "bbbb", served=False)
    return "aaaa"


def killed_after_the_swap_before_the_old_version_was_stopped(engine, port):
    _backend(engine, "aaaa")
    _backend(engine, "bbbb")
    _front(engine, port, "bbbb")
    return "bbbb"


def killed_in_a_first_deploy_before_the_front_existed(engine, port):
    _backend(engine, "bbbb", served=False)
    return None


def killed_while_a_new_port_was_taken_over(engine, port):
    _backend(engine, "aaaa")
    _front(engine, port + 1, "aaaa", name=f"{front_name(SERVICE)}-retired")
    _backend(engine, "bbbb")
    _front(engine, port, "bbbb")
    return "bbbb"


def killed_with_two_candidates_left_by_two_killed_runs(engine, port):
    _backend(engine, "aaaa")
    _front(engine, port, "aaaa")
    _backend(engine, "bbbb", served=False)
    _backend(engine, "cccc", served=False)
    return "aaaa"


INTERRUPTED = [
    killed_while_the_candidate_proved_itself,
    killed_after_the_swap_before_the_old_version_was_stopped,
    killed_in_a_first_deploy_before_the_front_existed,
    killed_while_a_new_port_was_taken_over,
    killed_with_two_candidates_left_by_two_killed_runs,
]


@pytest.mark.parametrize("scenario", INTERRUPTED, ids=[s.__name__ for s in INTERRUPTED])
def test_the_next_run_recovers_the_version_that_passed_its_smoke_test(engine, target, scenario) -> None:
    port = target.section.port
    serving = scenario(engine, port)
    lines: list[str] = []
    target.recover(SERVICE, lines.append)
    expected = sorted([front_name(SERVICE), f"{front_name(SERVICE)}-{serving}"]) if serving else []
    assert _names(engine) == expected, lines
    answering = FakeNetwork(engine).served_by(port)
    assert (answering.name if answering else None) == (f"{front_name(SERVICE)}-{serving}" if serving else None)
    assert lines and all("interrupted" in line for line in lines), lines


@pytest.mark.parametrize("scenario", INTERRUPTED, ids=[s.__name__ for s in INTERRUPTED])
def test_a_deploy_after_any_interruption_succeeds(engine, target, scenario) -> None:
    port = target.section.port
    scenario(engine, port)
    request = DeployRequest(service=SERVICE, image=IMAGE, fingerprint="e" * 64, health_timeout=5)
    outcome = target.deploy(request, lambda line: None)
    target.commit(outcome)
    answering = FakeNetwork(engine).served_by(port)
    assert answering is not None and answering.id == outcome.instance
    assert len(engine.containers) == 2, _names(engine)


def test_recovery_of_a_steady_service_changes_nothing(engine, target) -> None:
    killed_while_the_candidate_proved_itself(engine, target.section.port)
    target.recover(SERVICE, lambda line: None)
    before = dict(engine.containers)
    lines: list[str] = []
    target.recover(SERVICE, lines.append)
    assert engine.containers == before and lines == []


def test_a_service_of_the_layout_before_fronts_is_taken_over(engine, target) -> None:
    port = target.section.port
    old = _legacy(engine, port)
    live = target.live(SERVICE)
    assert live is not None and live.instance == old and live.endpoint == f"http://127.0.0.1:{port}"
    request = DeployRequest(service=SERVICE, image=IMAGE, fingerprint="e" * 64, health_timeout=5)
    outcome = target.deploy(request, lambda line: None)
    assert outcome.previous == old
    target.commit(outcome)
    assert FakeNetwork(engine).served_by(port).id == outcome.instance
    assert old not in engine.containers and len(engine.containers) == 2
