"""A run killed at any point of an ACI deploy is recovered by the next one from Azure alone: the tags say
which group is a candidate (never proven), proven (passed, not moved in) or live. Through the real SDK against
the ARM double; no containers needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mldeploy import aci
from mldeploy.aci import GroupInputs
from mldeploy.adapters.aci_api import AciApi
from mldeploy.azure_cloud import cloud_of
from mldeploy.spec import AciTarget
from mldeploy.targets.aci import AciDeployTarget, group_name
from tests.middle.azure_doubles import SUBSCRIPTION, Azure, azure_doubles

RG = "ml"


@pytest.fixture
def azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Azure]:
    with azure_doubles(tmp_path, monkeypatch) as doubles:
        yield doubles


@pytest.fixture
def target(azure: Azure) -> AciDeployTarget:
    cloud = cloud_of("custom", arm_endpoint=azure.arm.url, authority_host=azure.entra.url)
    section = AciTarget.model_validate({"kind": "aci", "resource_group": RG, "location": "westeurope"})
    return AciDeployTarget(AciApi(azure.credential(), SUBSCRIPTION, cloud, poll_seconds=0.01), section)


def put(target: AciDeployTarget, name: str, role: str, label: str | None = None) -> None:
    body = aci.container_group(
        GroupInputs(
            service="svc",
            group=name,
            dns_label=label or name,
            location="westeurope",
            section=target.section,
            image="127.0.0.1:5000/svc@sha256:" + "c" * 64,
            fingerprint="d" * 64,
            role=role,
        )
    )
    target.api.create_or_update(RG, name, body)


def roles(azure: Azure) -> dict[str, str]:
    return {name: group.body["tags"]["mldeploy-role"] for (_, name), group in azure.arm.groups.items()}


def test_a_candidate_never_proven_is_deleted_and_the_live_group_stays(target: AciDeployTarget, azure: Azure) -> None:
    put(target, "svc-aaaaaa", "live", label="svc")
    put(target, "svc-bbbbbb", "candidate")
    lines: list[str] = []
    target.recover("svc", lines.append)
    assert roles(azure) == {"svc-aaaaaa": "live"}
    assert "never passed its smoke test" in lines[0]


def test_a_proven_group_is_dropped_while_the_old_one_still_serves(target: AciDeployTarget, azure: Azure) -> None:
    put(target, "svc-aaaaaa", "live", label="svc")
    put(target, "svc-bbbbbb", "proven")
    target.recover("svc", lambda line: None)
    assert roles(azure) == {"svc-aaaaaa": "live"}


def test_a_proven_group_serves_when_the_run_died_after_deleting_the_old_one(
    target: AciDeployTarget, azure: Azure
) -> None:
    put(target, "svc-bbbbbb", "proven")
    lines: list[str] = []
    target.recover("svc", lines.append)
    assert roles(azure) == {"svc-bbbbbb": "live"}
    live: Any = target.live("svc")
    assert live is not None and live.instance == "svc-bbbbbb" and live.fingerprint == "d" * 64
    assert "on its own DNS label" in lines[0]


def test_groups_of_other_services_are_never_touched(target: AciDeployTarget, azure: Azure) -> None:
    put(target, "svc-bbbbbb", "candidate")
    other = aci.container_group(
        GroupInputs(
            service="other",
            group="other-cccccc",
            dns_label="other",
            location="westeurope",
            section=target.section,
            image="x@sha256:" + "e" * 64,
            fingerprint="f" * 64,
        )
    )
    target.api.create_or_update(RG, "other-cccccc", other)
    target.recover("svc", lambda line: None)
    assert roles(azure) == {"other-cccccc": "candidate"}


def test_group_names_fit_acis_limit() -> None:
    assert group_name("svc", "abc123") == "svc-abc123"
    long = group_name("a" * 80, "abc123")
    assert len(long) == 63 and long.endswith("-abc123")
    assert group_name("a" * 55 + "-b", "abc123") == "a" * 55 + "-abc123"  # never a double dash at the cut


class AlwaysReady:
    def healthy(self, url: str, timeout: float = 2.0) -> bool:
        return True


def test_a_commit_cut_by_a_409_is_retried_to_the_end(target: AciDeployTarget, azure: Azure) -> None:
    from mldeploy.errors import TransientError
    from mldeploy.targets.base import DeployRequest
    from tests.middle.azure_doubles import Answer

    target.probe = AlwaysReady()  # type: ignore[assignment]
    target.poll_interval = 0.01
    put(target, "svc-aaaaaa", "live", label="svc")
    request = DeployRequest(
        service="svc",
        image="127.0.0.1:5000/svc@sha256:" + "c" * 64,
        fingerprint="9" * 64,
        health_timeout=30,
        secret_environment={"API_TOKEN": "canary-commit-retry"},
    )
    outcome = target.deploy(request, lambda line: None)
    assert outcome.previous == "svc-aaaaaa" and roles(azure)[outcome.instance] == "candidate"
    azure.arm.http.script("PUT", rf"/containerGroups/{outcome.instance}$", Answer.arm_error(409, "Conflict", "busy"))
    with pytest.raises(TransientError):
        target.commit(outcome, 0.01)
    target.commit(outcome, 0.01)  # the stage's retry
    assert roles(azure) == {outcome.instance: "live"}
    moved = azure.arm.groups[(RG, outcome.instance)].body
    assert moved["properties"]["ipAddress"]["dnsNameLabel"] == "svc"
    assert azure.arm.sent_bodies[outcome.instance]["properties"]["containers"][0]["properties"]["environmentVariables"][
        -1
    ] == {"name": "API_TOKEN", "secureValue": "canary-commit-retry"}  # the move kept the secret


def test_logs_say_plainly_what_aci_does_not_keep(target: AciDeployTarget, azure: Azure) -> None:
    from mldeploy.errors import PermanentError

    put(target, "svc-aaaaaa", "live", label="svc")
    azure.arm.groups[(RG, "svc-aaaaaa")].log = "mldeploy-runtime: init() done in 0.5s\n"
    assert "init() done" in "".join(target.logs("svc"))
    for flags in ({"previous": True}, {"follow": True}):
        with pytest.raises(PermanentError, match="not available for target aci"):
            list(target.logs("svc", **flags))
