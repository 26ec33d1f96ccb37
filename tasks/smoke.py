"""Stage 6 — smoke: call the rolled-out version with the spec's requests; roll back if any fails."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prefect import task

from mldeploy import diagnosis
from mldeploy.adapters.http_probe import HttpProbe
from mldeploy.contract import AUTH_KEY_VARS, SCORE_PATH
from mldeploy.errors import PermanentError
from mldeploy.orchestration import STAGE_TASK_OPTIONS, artifact_key, attach_table, logger, reports_failure
from mldeploy.redaction import redact
from mldeploy.smoke import CaseResult, judge
from mldeploy.spec import KubernetesTarget, ServiceSpec, SmokeCase
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
    request_seconds: float | None = None  # median latency of the answers that passed

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def median_seconds(results: list[CaseResult]) -> float | None:
    latencies = sorted(r.latency_ms / 1000 for r in results if r.passed and r.status is not None)
    return latencies[len(latencies) // 2] if latencies else None


def fewest_replicas(spec: ServiceSpec) -> tuple[int, float, int]:
    """(fewest replicas, target utilization, concurrent requests per replica) of the spec's target."""
    section = spec.target
    if isinstance(section, KubernetesTarget):
        scaling = section.scaling
        if isinstance(scaling, int):
            return scaling, 0.7, section.max_concurrent_requests_per_replica
        return scaling.min_replicas, scaling.target_utilization / 100, section.max_concurrent_requests_per_replica
    return 1, 0.7, 1


def _burst(probe: HttpProbe, url: str, case: SmokeCase, headers: dict[str, str]) -> tuple[list[CaseResult], float]:
    """The case sent ``case.burst`` times at once; the results and the rate they were sent at."""
    count = case.burst or 1
    request = case.http_request()
    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        replies = list(pool.map(lambda _: probe.send(url, request, REQUEST_TIMEOUT_SECONDS, headers), range(count)))
    elapsed = max(time.perf_counter() - started, 1e-3)
    return [judge(case, r.status, r.body, r.seconds, r.error) for r in replies], count / elapsed


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
    bursts: list[tuple[list[CaseResult], float]] = []
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
            if case.burst:
                answers, rate = _burst(probe, endpoint + SCORE_PATH, case, headers)
                log.info(
                    "%s: a burst of %d at %.1f req/s, %d answered 503",
                    case.name,
                    len(answers),
                    rate,
                    sum(1 for a in answers if a.status == 503),
                )
                bursts.append((answers, rate))
    attach_table(artifact_key(spec.name, "smoke"), [r.row() for r in results], "Smoke requests and responses")
    request_seconds = median_seconds(results)
    failed = [r for r in results if not r.passed]
    for answers, rate in bursts:
        refused = [a for a in answers if a.status == 503]
        if refused and not failed:
            replicas, utilization, concurrency = fewest_replicas(spec)
            found = diagnosis.burst_503(
                round(rate, 1),
                request_seconds or median_seconds(answers) or 0.1,
                replicas,
                utilization=utilization,
                concurrency=concurrency,
                refused=len(refused),
                sent=len(answers),
            )
            restored = target.rollback(outcome)
            raise PermanentError(found.summary, diagnosis=found, rolled_back_to=restored)
        failed += [a for a in answers if not a.passed and a.status != 503][:1]
    if failed:
        found = _diagnose(failed, redact(target.instance_logs(outcome, tail=200), auth_keys.values()))
        log.error("smoke failed: rolling back to the previous version")
        restored = target.rollback(outcome)
        if restored:
            log.info("revision %s serves again", restored)
        raise PermanentError(
            f"{len(failed)} of {len(results)} smoke request(s) failed", diagnosis=found, rolled_back_to=restored
        )
    target.commit(outcome, request_seconds)
    if not spec.smoke:
        log.warning("the spec has no smoke requests: only readiness was checked")
    return SmokeReport(tuple(results), request_seconds)
