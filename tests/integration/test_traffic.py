"""Traffic during deploys: a bounded request loop (20 req/s) against the live version through every
failing scenario — init() fails, out of memory, a smoke mismatch, the CLI killed in each stage —
and a successful swap. No request may fail, and no answer may come from a version that did not
pass its smoke test. The figures are printed for docs/security.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.integration import prefect_api
from tests.integration.conftest import MLDEPLOY, Service, deploy

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROWS = {"data": [[5.1, 3.5, 1.4, 0.2]]}
GOOD = '{"predictions": ["setosa"]}'


@dataclass(eq=False)  # a thread: identity, not field, equality
class RequestLoop(threading.Thread):
    """POST /score every 50 ms on a new connection; count answers and failures."""

    port: int
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def run(self) -> None:
        body = json.dumps(ROWS).encode()
        while not self.stop_event.is_set():
            started = time.monotonic()
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/score", data=body, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    self.answers[response.read().decode()] += 1
            except (urllib.error.URLError, OSError) as exc:
                self.failures.append(f"{time.strftime('%X')} {type(exc).__name__}: {exc}")
            self.stop_event.wait(max(0.0, 0.05 - (time.monotonic() - started)))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)

    @property
    def total(self) -> int:
        return sum(self.answers.values()) + len(self.failures)


def _rejected_version(service: Service, marker: str) -> None:
    """A version whose answers tell it apart: it must never answer a client."""
    service.patch_script('    rows = json.loads(raw_data)["data"]', f"    return {{'rejected': '{marker}'}}")


def _restore(service: Service, script: str, spec: str) -> None:
    service.write("score.py", script)
    service.write("service.yaml", spec)


def _kill_during(service: Service, stage_before: str) -> tuple[str, float]:
    """Start a deploy and SIGKILL it right after ``stage_before`` finished; return its flow run id."""
    proc = subprocess.Popen(
        [MLDEPLOY, "deploy", str(service.spec), "--force"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ.copy(),
        start_new_session=True,
    )
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if f" {stage_before} " in line and ("completed" in line or "cached" in line):
            break
    killed_at = time.monotonic()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return seen, killed_at


SCENARIOS = [
    "init_fails",
    "out_of_memory",
    "smoke_mismatch",
    "killed_in_build",
    "killed_in_push",
    "killed_in_deploy",
    "killed_in_smoke",
]


def test_no_request_fails_and_no_rejected_version_answers(make_service, prefect_server) -> None:
    service = make_service("iris")
    first = deploy(service)
    assert first.code == 0, first.stderr
    script, spec = (service.root / "score.py").read_text(), service.spec.read_text()
    figures: dict[str, dict[str, object]] = {}
    loop = RequestLoop(service.port)
    loop.start()
    try:
        for scenario in SCENARIOS:
            before = (loop.total, len(loop.failures))
            started = time.monotonic()
            if scenario == "init_fails":
                service.prepend_to("init", "raise RuntimeError('this version must not serve')")
                result = deploy(service)
                assert result.summary["diagnosis"]["code"] == "init_failed", result.summary
            elif scenario == "out_of_memory":
                service.prepend_to("init", "global hog", "hog = bytearray(400 * 1024 * 1024)")
                service.edit_spec(**{"target.memory_gb": 0.15})
                result = deploy(service)
                assert result.summary["diagnosis"]["code"] == "out_of_memory", result.summary
            elif scenario == "smoke_mismatch":
                _rejected_version(service, scenario)
                result = deploy(service)
                assert result.summary["failed_stage"] == "smoke", result.summary
            else:
                stage = {"build": "register", "push": "build", "deploy": "push", "smoke": "deploy"}[
                    scenario.removeprefix("killed_in_")
                ]
                _rejected_version(service, scenario)
                _output, killed_at = _kill_during(service, stage)
                _restore(service, script, spec)
                rerun = deploy(service)  # recovers what the killed run left, frees its slot at once
                assert rerun.code == 0, rerun.stderr
                assert time.monotonic() - killed_at < 50, "the rerun did not wait out the killed run's lease"
                killed_runs = [
                    r
                    for r in prefect_api.flow_runs(prefect_server, name_prefix=f"deploy-{service.name}")
                    if r["state"]["type"] not in ("COMPLETED", "FAILED")
                ]
                assert all(r["state"]["type"] == "CRASHED" for r in killed_runs), killed_runs
            _restore(service, script, spec)
            figures[scenario] = {
                "requests": loop.total - before[0],
                "failed": len(loop.failures) - before[1],
                "seconds": round(time.monotonic() - started, 1),
            }
        before = (loop.total, len(loop.failures))
        started = time.monotonic()
        swapped = deploy(service, "--force")  # a successful swap, under the same traffic
        assert swapped.code == 0, swapped.stderr
        time.sleep(2)
        figures["successful_swap"] = {
            "requests": loop.total - before[0],
            "failed": len(loop.failures) - before[1],
            "seconds": round(time.monotonic() - started, 1),
        }
    finally:
        loop.stop()
    print("\ntraffic figures:", json.dumps(figures))
    assert loop.failures == [], loop.failures[:10]
    assert set(loop.answers) == {GOOD}, loop.answers
    assert loop.total > 200
    names = {c["Name"] for c in _containers(service.name)}
    assert len(names) == 2, f"only the front and the live version remain: {names}"


def _containers(service: str) -> list[dict[str, object]]:
    from tests.integration.conftest import containers_of

    return containers_of(service)
