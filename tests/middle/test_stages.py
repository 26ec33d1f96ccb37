"""Each stage task through ``.fn()`` with the fake engine, registry and endpoints."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from mldeploy.contract import AUTH_KEY_VARS, LABEL_FINGERPRINT, LABEL_IMAGE_FINGERPRINT, LABEL_SECRETS_DIGEST
from mldeploy.diagnosis import Code
from mldeploy.errors import PermanentError, TransientError
from mldeploy.models import ModelRegistry
from mldeploy.plan import deploy_request
from mldeploy.registry_auth import ANONYMOUS, BasicAuth
from mldeploy.results import BuiltImage
from mldeploy.settings import Settings
from mldeploy.spec import ResolvedSecrets, ServiceSpec, load_spec
from mldeploy.targets.local import LocalDockerTarget
from tasks.build import build_image
from tasks.deploy import deploy_service
from tasks.plan import plan_deployment
from tasks.push import push_image
from tasks.register import register_model
from tasks.smoke import smoke_test
from tasks.validate import validate_spec
from tests.middle.conftest import free_port, write_spec
from tests.middle.fakes import CRASH, NEVER_READY, OOM, fake_wheelhouse

NO_SECRETS = ResolvedSecrets()


def _registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(Settings.load().home)  # the test's own home (conftest.own_home)


def _planned(spec, engine, target, tmp_path, secrets=NO_SECRETS):
    models = register_model.fn(spec, _registry(tmp_path)).models
    return models, plan_deployment.fn(spec, models, secrets, engine, target)


def _built_and_pushed(spec, engine, target, tmp_path, secrets=NO_SECRETS):
    model, planned = _planned(spec, engine, target, tmp_path, secrets)
    built = build_image.fn(spec, model, planned.plan, engine, resolve=fake_wheelhouse)
    pushed = push_image.fn(spec, planned.plan, built, engine, registry=engine.registry.client("127.0.0.1:5000"))
    return model, planned, built, pushed


def _deploy(spec, engine, target, tmp_path, secrets=NO_SECRETS):
    model, planned, _built, pushed = _built_and_pushed(spec, engine, target, tmp_path, secrets)
    request = deploy_request(spec, planned.plan, pushed.ref, ",".join(m.label for m in model), secrets, ANONYMOUS)
    return request, deploy_service.fn(request, target)


# --- validate ----------------------------------------------------------------------------------


def test_validate_returns_the_typed_spec(spec: ServiceSpec) -> None:
    validated = validate_spec.fn(str(spec.path))
    assert validated.name == "fixture-svc" and validated.target.kind == "local"


def test_an_aci_section_validates(service_dir) -> None:
    section = {"kind": "aci", "resource_group": "rg-ml", "location": "westeurope", "memory_gb": 1.5}
    validated = validate_spec.fn(str(write_spec(service_dir, target=section)))
    assert validated.target.kind == "aci" and validated.target.memory_gb == 1.5


# --- register ----------------------------------------------------------------------------------


def test_register_twice_reuses_the_version_without_hashing_again(spec, tmp_path, monkeypatch) -> None:
    registry = _registry(tmp_path)
    (first,) = register_model.fn(spec, registry).items
    assert first.created_new and first.model.version == 1

    def no_hashing(*args, **kwargs):
        raise AssertionError("an unchanged model must not be hashed again")

    monkeypatch.setattr("mldeploy.models.hash_content", no_hashing)
    (again,) = register_model.fn(spec, registry).items
    assert not again.created_new and again.reused and again.model == first.model


def test_register_after_an_edit_makes_a_new_version(spec, tmp_path) -> None:
    registry = _registry(tmp_path)
    register_model.fn(spec, registry)
    spec.model.path.write_bytes(spec.model.path.read_bytes() + b"more")
    assert register_model.fn(spec, registry).models[0].version == 2


# --- plan --------------------------------------------------------------------------------------


def test_plan_says_deploy_when_nothing_is_live_and_noop_once_it_is(spec, engine, target, tmp_path) -> None:
    _, first = _planned(spec, engine, target, tmp_path)
    assert not first.noop and first.drift == ("the service is not deployed",)
    request, outcome = _deploy(spec, engine, target, tmp_path)
    smoke_test.fn(spec, outcome, target, request.auth_keys, target.probe)
    _, again = _planned(spec, engine, target, tmp_path)
    assert again.noop, again.drift


def test_a_rotated_secret_is_not_a_noop_and_says_why(spec, engine, target, tmp_path) -> None:
    before = ResolvedSecrets({"API_TOKEN": "first-value-123"})
    request, outcome = _deploy(spec, engine, target, tmp_path, before)
    smoke_test.fn(spec, outcome, target, request.auth_keys, target.probe)
    assert _planned(spec, engine, target, tmp_path, before)[1].noop
    rotated = _planned(spec, engine, target, tmp_path, ResolvedSecrets({"API_TOKEN": "second-value-456"}))[1]
    assert not rotated.noop
    assert any("rotated" in reason for reason in rotated.drift), rotated.drift
    # the digest is keyed and never the value
    live = _serving(target, spec)
    assert live is not None and "first-value-123" not in str(live.labels)
    assert live.labels[LABEL_SECRETS_DIGEST] == before.digest(Settings.load().fingerprint_key())


def test_the_secrets_digest_is_keyed() -> None:
    secrets = ResolvedSecrets({"API_TOKEN": "same"})
    assert secrets.digest(b"key-a") != secrets.digest(b"key-b")
    assert ResolvedSecrets().digest(b"key-a") == ""
    assert "same" not in repr(secrets)


# --- build -------------------------------------------------------------------------------------


def test_build_reuses_an_image_with_the_same_fingerprint_unless_forced(spec, engine, target, tmp_path) -> None:
    model, planned = _planned(spec, engine, target, tmp_path)
    built = build_image.fn(spec, model, planned.plan, engine, resolve=fake_wheelhouse)
    assert not built.reused and engine.images[planned.plan.local_ref].labels[LABEL_IMAGE_FINGERPRINT]
    again = build_image.fn(spec, model, planned.plan, engine, resolve=fake_wheelhouse)
    assert again.reused and again.image_id == built.image_id
    assert engine.calls.count(f"build {planned.plan.local_ref}") == 1
    build_image.fn(spec, model, planned.plan, engine, force=True, resolve=fake_wheelhouse)
    assert engine.calls.count(f"build {planned.plan.local_ref}") == 2


def test_a_failed_build_keeps_its_log_and_diagnosis(spec, engine, target, tmp_path) -> None:
    from mldeploy import diagnosis

    model, planned = _planned(spec, engine, target, tmp_path)
    engine.build_error = PermanentError(
        "build failed", diagnosis=diagnosis.build_failure("Step 2/2 : RUN false", "returned a non-zero code: 1")
    )
    with pytest.raises(PermanentError) as caught:
        build_image.fn(spec, model, planned.plan, engine, resolve=fake_wheelhouse)
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is Code.DOCKERFILE_STEP_FAILED
    log_file = Settings.load().home / "logs" / spec.name / f"build-{planned.plan.tag}.log"
    assert "wheelhouse" in log_file.read_text()


# --- push --------------------------------------------------------------------------------------


def test_push_records_and_verifies_the_digest_then_reuses_it(spec, engine, target, tmp_path) -> None:
    _model, planned, built, pushed = _built_and_pushed(spec, engine, target, tmp_path)
    assert pushed.pushed and not pushed.reused and pushed.layers_uploaded == 3
    assert pushed.ref == f"127.0.0.1:5000/fixture-svc@{pushed.digest}"
    again = push_image.fn(spec, planned.plan, built, engine, registry=engine.registry.client("127.0.0.1:5000"))
    assert again.reused and again.digest == pushed.digest
    assert sum(call.startswith("push ") for call in engine.calls) == 1


def test_push_refuses_a_digest_the_registry_does_not_serve(spec, engine, target, tmp_path) -> None:
    model, planned = _planned(spec, engine, target, tmp_path)
    built = build_image.fn(spec, model, planned.plan, engine, resolve=fake_wheelhouse)
    engine.registry.served_digest_override = "sha256:" + "0" * 64
    with pytest.raises(PermanentError) as caught:
        push_image.fn(spec, planned.plan, built, engine, registry=engine.registry.client("127.0.0.1:5000"))
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is Code.DIGEST_MISMATCH


def test_push_without_a_registry_is_skipped(service_dir, engine) -> None:
    spec = load_spec(write_spec(service_dir, registry=None))
    built = BuiltImage(image_id="sha256:" + "1" * 64, ref="mldeploy/fixture-svc:x")
    pushed = push_image.fn(spec, None, built, engine)
    assert not pushed.pushed and pushed.ref == built.image_id


def test_an_insecure_registry_the_engine_does_not_trust_is_refused(service_dir, engine, tmp_path) -> None:
    spec = load_spec(write_spec(service_dir, **{"registry.url": "registry.internal:5000", "registry.insecure": True}))
    from mldeploy.plan import BuildPlan

    plan = BuildPlan("fixture-svc", "", {}, "b", "3.11", "registry.internal:5000/fixture-svc", "t", "f", "d", ())
    built = BuiltImage(image_id="sha256:" + "1" * 64, ref=plan.local_ref)
    with pytest.raises(PermanentError, match="insecure-registries"):
        push_image.fn(spec, plan, built, engine)
    engine.insecure_registries.add("registry.internal:5000")
    engine.add_image(plan.local_ref)
    pushed = push_image.fn(spec, plan, built, engine, registry=engine.registry.client("registry.internal:5000"))
    assert pushed.pushed


def test_a_busy_registry_is_transient_and_says_how_long_to_wait(spec, engine, target, tmp_path) -> None:
    model, planned = _planned(spec, engine, target, tmp_path)
    built = build_image.fn(spec, model, planned.plan, engine, resolve=fake_wheelhouse)
    engine.registry.answer, engine.registry.retry_after = 429, "7"
    with pytest.raises(TransientError) as caught:
        push_image.fn(spec, planned.plan, built, engine, registry=engine.registry.client("127.0.0.1:5000"))
    assert caught.value.delay == 7.0
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is Code.REGISTRY_UNAVAILABLE


def test_registry_credentials_are_never_in_repr() -> None:
    assert "s3cret" not in repr(BasicAuth("ci", "s3cret"))


def _serving(target, spec):
    """The backend that answers on the service port (through the front), or None."""
    from tests.middle.fakes import FakeNetwork

    return FakeNetwork(target.engine).served_by(spec.target.port)


# --- deploy and smoke --------------------------------------------------------------------------


def test_deploy_then_smoke_commits_the_new_version(spec, engine, target, network, tmp_path) -> None:
    request, outcome = _deploy(spec, engine, target, tmp_path)
    assert _serving(target, spec) is None, "nothing serves the port before the smoke test passed"
    assert outcome.endpoint != f"http://127.0.0.1:{spec.target.port}", "smoke runs on the candidate's own port"
    report = smoke_test.fn(spec, outcome, target, request.auth_keys, target.probe)
    assert report.passed
    live = _serving(target, spec)
    assert live is not None and live.id == outcome.instance and live.labels[LABEL_FINGERPRINT] == request.fingerprint
    assert live.restart, "once it serves, it comes back with the engine"
    assert any(r.url.path == "/score" and r.url.port != spec.target.port for r in network.requests)


def test_secrets_and_keys_reach_the_container_apart_from_plain_variables(spec, engine, target, tmp_path) -> None:
    secrets = ResolvedSecrets({"API_TOKEN": "t0ken-value", AUTH_KEY_VARS[0]: "k" * 32})
    request, _outcome = _deploy(spec, engine, target, tmp_path, secrets)
    assert dict(request.secret_environment) == {"API_TOKEN": "t0ken-value"}
    assert dict(request.auth_keys) == {AUTH_KEY_VARS[0]: "k" * 32}
    assert "t0ken-value" not in repr(request)
    new = engine.containers[_outcome.instance]
    assert new.environment["API_TOKEN"] == "t0ken-value"
    # the service key is a file, not an environment variable (readable in /proc/1/environ)
    assert "k" * 32 not in str(new.environment)
    assert new.files == {f"/run/mldeploy/keys/{AUTH_KEY_VARS[0]}": b"k" * 32}
    assert new.environment[AUTH_KEY_VARS[0] + "_FILE"] == f"/run/mldeploy/keys/{AUTH_KEY_VARS[0]}"


def test_smoke_sends_the_service_key(spec, engine, target, network, tmp_path) -> None:
    secrets = ResolvedSecrets({AUTH_KEY_VARS[0]: "k" * 32})
    request, outcome = _deploy(spec, engine, target, tmp_path, secrets)
    smoke_test.fn(spec, outcome, target, request.auth_keys, target.probe)
    scored = [r for r in network.requests if r.url.path == "/score"]
    assert scored and all(r.headers["authorization"] == "Bearer " + "k" * 32 for r in scored)


@pytest.mark.parametrize(("behaviour", "code"), [(CRASH, Code.INIT_FAILED), (OOM, Code.OUT_OF_MEMORY)])
def test_a_candidate_that_exits_fails_deploy_and_the_previous_keeps_serving(
    spec, engine, target, tmp_path, behaviour, code
) -> None:
    request, outcome = _deploy(spec, engine, target, tmp_path)
    smoke_test.fn(spec, outcome, target, request.auth_keys, target.probe)
    engine.behaviours[request.image] = behaviour
    with pytest.raises(PermanentError) as caught:
        deploy_service.fn(request, target)
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is code
    assert _serving(target, spec).id == outcome.instance, "the version that served still serves"
    assert len(engine.containers) == 2, "the front and the live backend; the failed candidate is gone"


def test_a_version_that_never_gets_ready_times_out(service_dir, engine, network, tmp_path) -> None:
    from mldeploy.targets.local import LocalDockerTarget
    from tests.middle.conftest import free_port

    spec = load_spec(write_spec(service_dir, **{"target.port": free_port(), "deploy.health_timeout_seconds": 1}))
    target = LocalDockerTarget(engine, network.probe(), spec.target, poll_interval=0.05, drain_seconds=0)
    model, planned, _built, pushed = _built_and_pushed(spec, engine, target, tmp_path)
    engine.behaviours[pushed.ref] = NEVER_READY
    request = deploy_request(spec, planned.plan, pushed.ref, ",".join(m.label for m in model), NO_SECRETS, ANONYMOUS)
    with pytest.raises(PermanentError) as caught:
        deploy_service.fn(request, target)
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is Code.HEALTH_TIMEOUT
    assert engine.containers == {}


def test_a_smoke_mismatch_rolls_back_to_the_previous_version(spec, engine, target, network, tmp_path) -> None:
    import httpx

    request, outcome = _deploy(spec, engine, target, tmp_path)
    smoke_test.fn(spec, outcome, target, request.auth_keys, target.probe)
    request2, outcome2 = _deploy(spec, engine, target, tmp_path)
    network.score = lambda container, req: httpx.Response(200, json=[4] if container.id == outcome2.instance else [3])
    with pytest.raises(PermanentError) as caught:
        smoke_test.fn(spec, outcome2, target, request2.auth_keys, target.probe)
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is Code.SMOKE_MISMATCH
    assert _serving(target, spec).id == outcome.instance, "the rejected version never served"
    assert outcome2.instance not in engine.containers and len(engine.containers) == 2


def test_a_run_failure_in_smoke_carries_the_log(spec, engine, target, network, tmp_path) -> None:
    import httpx

    request, outcome = _deploy(spec, engine, target, tmp_path)
    engine.containers[outcome.instance].log = "Traceback (most recent call last):\nKeyError: 'data'\n"
    network.score = lambda container, req: httpx.Response(500, text="error")
    with pytest.raises(PermanentError) as caught:
        smoke_test.fn(spec, outcome, target, request.auth_keys, target.probe)
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is Code.RUN_FAILED
    assert "KeyError" in caught.value.diagnosis.detail
    assert engine.containers == {}  # a first deploy that failed leaves nothing behind


def test_deploy_applies_the_local_sections_limits(service_dir, engine, network, tmp_path) -> None:
    from mldeploy.targets.local import LocalDockerTarget
    from tests.middle.conftest import free_port

    spec = load_spec(
        write_spec(service_dir, **{"target.port": free_port(), "target.cpu_cores": 0.5, "target.memory_gb": 1})
    )
    target = LocalDockerTarget(engine, network.probe(), spec.target, poll_interval=0.01, drain_seconds=0)
    _request, outcome = _deploy(spec, engine, target, tmp_path)
    new = engine.containers[outcome.instance]
    assert new.cpu_cores == 0.5 and new.mem_limit == "1024m"


def test_a_build_cleans_up_after_a_killed_build(spec, engine, target, tmp_path, monkeypatch) -> None:
    import tempfile

    from tasks.build import BUILD_DIR_PREFIX

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / f"{BUILD_DIR_PREFIX}999999999-abc"  # no process has that pid
    alive = tmp_path / f"{BUILD_DIR_PREFIX}{os.getpid()}-def"  # a build of this very process
    dead.mkdir()
    alive.mkdir()
    removed: list[dict[str, str]] = []
    monkeypatch.setattr(engine, "remove_dangling", lambda labels: removed.append(labels) or ["sha256:x"])
    model, planned = _planned(spec, engine, target, tmp_path)
    build_image.fn(spec, model, planned.plan, engine, resolve=fake_wheelhouse)
    assert not dead.exists() and alive.exists()
    assert removed == [{"mldeploy.service": spec.name}], "the service's untagged layers were pruned"


def test_a_burst_that_gets_503s_is_diagnosed_with_the_replica_formula(service_dir, engine, network, tmp_path) -> None:
    case = {"name": "burst", "request": {"data": [[1, 2]]}, "expect_status": 200, "burst": 12}
    spec = load_spec(write_spec(service_dir, **{"target.port": free_port(), "smoke": [case]}))
    target = LocalDockerTarget(engine, network.probe(), spec.target, poll_interval=0.01, drain_seconds=0)  # type: ignore[arg-type]
    calls = {"n": 0}

    def saturated(container: Any, request: httpx.Request) -> httpx.Response:
        calls["n"] += 1  # the single request passes; under the burst every third one is refused
        return httpx.Response(503 if calls["n"] > 1 and calls["n"] % 3 == 0 else 200, json=[3])

    network.score = saturated
    request, outcome = _deploy(spec, engine, target, tmp_path)
    with pytest.raises(PermanentError) as caught:
        smoke_test.fn(spec, outcome, target, request.auth_keys, target.probe)
    found = caught.value.diagnosis
    assert found is not None and found.code is Code.BURST_503
    assert "of 12 refused" in found.summary and "req/s" in found.summary
    assert "at least" in found.hint and "ceil(" in found.hint
    assert _serving(target, spec) is None, "the candidate was rolled back, nothing half-committed"
    assert calls["n"] == 13
