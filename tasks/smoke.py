"""Stage 6 — smoke: call the rolled-out version with the spec's requests; roll back if any fails."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from prefect import task

from mldeploy import diagnosis
from mldeploy.adapters.http_probe import HttpProbe
from mldeploy.contract import AUTH_KEY_VARS, SCORE_PATH
from mldeploy.errors import PermanentError
from mldeploy.orchestration import STAGE_TASK_OPTIONS, artifact_key, attach_table, logger, reports_failure
from mldeploy.redaction import redact
from mldeploy.smoke import CaseResult, judge
from mldeploy.spec import ServiceSpec
from mldeploy.targets.base import DeployOutcome, Target

REQUEST_TIMEOUT_SECONDS = 30.0


def auth_headers(auth_keys: Mapping[str, str]) -> dict[str, str]:
    """With key auth on, smoke requests carry a key like any client (the primary one first)."""
    for name in AUTH_KEY_VARS:
        if auth_keys.get(name):
            return {"Authorization": f"Bearer {auth_keys[name]}"}
    return {}


@dataclass(frozen=True)
class SmokeReport:
    results: tuple[CaseResult, ...]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def _diagnose(failed: list[CaseResult], log: str) -> diagnosis.Diagnosis:
    """The most telling failure first: a crash in run(), a timeout, an endpoint that did not serve."""
    for result in failed:
        if result.status in (500, 502) and result.expected_status < 500:
            return diagnosis.run_failed(result.name, result.status, log)
    for result in failed:
        if result.status == 504 or (result.status is None and "timeout" in result.error.lower()):
            return diagnosis.scoring_timeout(result.name, REQUEST_TIMEOUT_SECONDS)
    for result in failed:
        if result.status == 503 or result.status is None:
            what = f"HTTP {result.status}" if result.status else result.error or "no answer"
            return diagnosis.endpoint_unavailable(result.name, what, log)
    return diagnosis.smoke_mismatch([f"{r.name}: {'; '.join(r.problems)}" for r in failed])


@task(name="smoke", task_run_name="smoke {spec.name}", **STAGE_TASK_OPTIONS)
@reports_failure("smoke", lambda spec, *a, **k: spec.name)
def smoke_test(
    spec: ServiceSpec,
    outcome: DeployOutcome,
    target: Target,
    auth_keys: Mapping[str, str],
    probe: HttpProbe | None = None,
) -> SmokeReport:
    probe = probe or HttpProbe()
    log = logger()
    results = []
    headers = auth_headers(auth_keys)
    with target.open_endpoint(outcome) as endpoint:
        for case in spec.smoke:
            reply = probe.send(endpoint + SCORE_PATH, case.http_request(), REQUEST_TIMEOUT_SECONDS, headers)
            result = judge(case, reply.status, reply.body, reply.seconds, reply.error)
            log.info(
                "%s: %s in %.1f ms%s",
                case.name,
                result.status,
                result.latency_ms,
                "" if result.passed else " — " + "; ".join(result.problems),
            )
            results.append(result)
    attach_table(artifact_key(spec.name, "smoke"), [r.row() for r in results], "Smoke requests and responses")
    failed = [r for r in results if not r.passed]
    if failed:
        found = _diagnose(failed, redact(target.instance_logs(outcome, tail=200), auth_keys.values()))
        log.error("smoke failed: rolling back to the previous version")
        target.rollback(outcome)
        raise PermanentError(f"{len(failed)} of {len(results)} smoke request(s) failed", diagnosis=found)
    target.commit(outcome)
    if not spec.smoke:
        log.warning("the spec has no smoke requests: only readiness was checked")
    return SmokeReport(tuple(results))
