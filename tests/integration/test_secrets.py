"""A canary sweep: planted secret values must appear in no log, artifact, state, result, summary
or file that mldeploy writes — on the failure paths too."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration import canary
from tests.integration.conftest import deploy

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def test_no_secret_leaks_anywhere(make_service, private_registry, prefect_server, monkeypatch):
    # a backslash and a quote: JSON, repr and URL forms differ from the value (once found escaped in the summary)
    token = f'canary\\token"{uuid.uuid4().hex[:16]}'
    password = f"canary-password-{uuid.uuid4().hex}"
    monkeypatch.setenv("MLDEPLOY_CANARY_TOKEN", token)
    monkeypatch.setenv("MLDEPLOY_CANARY_PASSWORD", password)
    runs = []

    # 1. init() prints the secret and raises with it in the message: deploy fails
    leaky_init = make_service("iris")
    leaky_init.edit_spec(secrets={"API_TOKEN": "MLDEPLOY_CANARY_TOKEN"})
    leaky_init.prepend_to(
        "init",
        "print('token is', os.environ['API_TOKEN'], flush=True)",
        "raise RuntimeError('rejected token ' + os.environ['API_TOKEN'])",
    )
    runs.append(deploy(leaky_init))
    assert runs[-1].summary["failed_stage"] == "deploy"

    # 2. run() raises with the secret: smoke fails and rolls back
    leaky_run = make_service("iris")
    leaky_run.edit_spec(secrets={"API_TOKEN": "MLDEPLOY_CANARY_TOKEN"})
    leaky_run.prepend_to(
        "run",
        "print('scoring with', os.environ['API_TOKEN'], flush=True)",
        "raise ValueError('token ' + os.environ['API_TOKEN'] + ' expired')",
    )
    runs.append(deploy(leaky_run))
    assert runs[-1].summary["failed_stage"] == "smoke"

    # 3. a registry password that the registry refuses: push fails
    refused = make_service("iris")
    refused.edit_spec(registry={"url": private_registry, "username": "ci", "password_env": "MLDEPLOY_CANARY_PASSWORD"})
    runs.append(deploy(refused))
    assert runs[-1].summary["failed_stage"] == "push"

    # 4. a successful deploy with a secret in its container environment
    fine = make_service("iris")
    fine.edit_spec(secrets={"API_TOKEN": "MLDEPLOY_CANARY_TOKEN"})
    runs.append(deploy(fine))
    assert runs[-1].code == 0, runs[-1].stderr

    haystacks = canary.haystacks(prefect_server, runs)

    # the planted values did reach what they had to reach (so the sweep is not vacuous)
    assert any("***" in text for where, text in haystacks if where == "summary"), "the leaked text was not redacted"
    leaks = canary.leaks(haystacks, (token, password))
    assert leaks == [], f"secret values (in some encoding) found in: {leaks[:10]}"


def _score_with_key(port: int, key: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/score",
        data=json.dumps({"data": [[5.1, 3.5, 1.4, 0.2]]}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_rotating_a_key_redeploys_and_the_new_key_is_live(make_service, monkeypatch):
    old_key, new_key = f"old-{uuid.uuid4().hex}", f"new-{uuid.uuid4().hex}"
    service = make_service("iris")
    service.edit_spec(secrets={"MLDEPLOY_AUTH_PRIMARY_KEY": "MLDEPLOY_TEST_SERVICE_KEY"})
    monkeypatch.setenv("MLDEPLOY_TEST_SERVICE_KEY", old_key)
    assert deploy(service).code == 0
    again = deploy(service)
    assert again.summary["status"] == "noop", "the same key: nothing to do"
    assert _score_with_key(service.port, old_key) == 200

    monkeypatch.setenv("MLDEPLOY_TEST_SERVICE_KEY", new_key)
    rotated = deploy(service)
    assert rotated.code == 0, rotated.stderr
    assert rotated.summary["status"] == "succeeded", "a rotated key is not a no-op"
    assert any("rotated" in reason for reason in rotated.summary["reasons"]), rotated.summary["reasons"]
    assert _score_with_key(service.port, new_key) == 200
    assert _score_with_key(service.port, old_key) == 401
    assert old_key not in rotated.stdout + rotated.stderr and new_key not in rotated.stdout + rotated.stderr
