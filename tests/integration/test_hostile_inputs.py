"""Hostile specs and hostile clients against the real engine, registry and CLI (the pure half of
this module: tests/unit/test_adversarial.py). Every break found once is reproduced here and must
stay fixed; add a test for every new finding.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import time
from pathlib import Path

import docker
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mldeploy.dockerfile import ALLOWED_STEP_INSTRUCTIONS, check_extra_steps, parse_steps
from tests.integration.conftest import containers_of, deploy, run_cli

pytestmark = [pytest.mark.engine, pytest.mark.slow]


# --- 1. a spec cannot read the deploying machine ---------------------------------------------------


@pytest.mark.parametrize("value", ["/etc/shadow", "../../../../../etc/passwd", "/proc/self/environ", "/dev/zero"])
def test_a_spec_naming_a_host_file_is_refused_before_anything_reads_it(make_service, value) -> None:
    service = make_service("iris")
    service.edit_spec(**{"model.path": value})
    result = deploy(service)
    assert result.code == 2, result.stderr
    assert result.summary["failed_stage"] == "validate"
    (problem,) = [p for p in result.summary["problems"] if p["field"] == "model.path"]
    assert "outside the spec's folder" in problem["message"]
    models = Path(os.environ["MLDEPLOY_HOME"]) / "models" / "iris-classifier"
    assert not any("shadow" in str(p) or "environ" in str(p) for p in models.rglob("*")) if models.exists() else True


def test_a_symlink_in_the_model_folder_to_the_host_is_refused(make_service) -> None:
    service = make_service("iris")
    os.symlink("/etc", service.root / "model" / "host-etc")
    result = deploy(service)
    assert result.code == 2 and "leads outside" in json.dumps(result.summary["problems"])


def test_a_direct_url_requirement_is_refused_unless_the_user_allows_it(make_service) -> None:
    service = make_service("iris")
    requirements = service.root / "requirements.txt"
    requirements.write_text(requirements.read_text() + "evil @ https://example.invalid/evil-1.0-py3-none-any.whl\n")
    refused = run_cli("validate", str(service.spec), "--json")
    assert refused.code == 2 and "direct reference" in refused.stdout
    allowed = run_cli("validate", str(service.spec), "--json", "--allow-direct-urls")
    assert allowed.code == 0, allowed.stdout


# --- 9. builds have no network --------------------------------------------------------------------


def test_build_steps_run_without_a_network(make_service) -> None:
    service = make_service("iris")
    service.write(
        "steps.Dockerfile",
        "RUN python3 -c \"import os; found = sorted(os.listdir('/sys/class/net')); "
        "print('interfaces', found); assert found == ['lo'], found\"\n",
    )
    service.edit_spec(**{"environment.extra_dockerfile_steps": "steps.Dockerfile"})
    result = deploy(service)
    assert result.code == 0, result.stderr[-3000:]
    log = next((Path(os.environ["MLDEPLOY_HOME"]) / "logs" / service.name).glob("build-*.log")).read_text()
    assert "interfaces" in log and "['lo']" in log  # the step asserted it; the engine splits its output


# --- 2. the allow-list reads extra steps exactly as the engine's parser does -----------------------

ENGINE_STEPS = re.compile(r"^Step (\d+)/(\d+) : (\S+)", re.MULTILINE)
TRAILERS = ["", " ", "\t", " \t ", "\f", "\v", "\x1c", "\x1f", "\x85", "\u2028", "\xa0", "\r"]
LINES = ["RUN true", "ENV A=1", "LABEL a=b", "ARG X", "COPY --from=x / /", "USER root", "ADD x /x", "#note", ""]


def _engine_instructions(client: docker.DockerClient, base: str, steps: str) -> list[str] | str:
    """The instruction words the engine's own parser reads from ``steps`` (or its parse error)."""
    dockerfile = f"FROM {base}\n{steps}\nLABEL mldeploy.probe=end\n"
    total, seen, error = 0, [], ""
    try:
        for event in client.api.build(
            fileobj=io.BytesIO(dockerfile.encode()), rm=True, forcerm=True, decode=True, network_mode="none", pull=False
        ):
            text = str(event.get("stream", ""))
            for match in ENGINE_STEPS.finditer(text):
                total = int(match.group(2))
                seen.append(match.group(3).upper())
            if "error" in event:
                error = str(event["error"])
                break
    except docker.errors.APIError as exc:  # the engine refused the whole file while parsing it
        return str(exc.explanation)
    if error and not seen:
        return error
    return [f"#{total}", *seen]


@st.composite
def step_texts(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(1, 5))):
        line = draw(st.sampled_from(["", " ", "\t"])) + draw(st.sampled_from(LINES))
        if draw(st.booleans()):
            line += " \\" + draw(st.sampled_from(TRAILERS))
        lines.append(line)
    return "\n".join(lines)


@pytest.fixture(scope="module")
def engine_parser(real_engine: None) -> tuple[docker.DockerClient, str]:
    from mldeploy.settings import Settings

    return docker.from_env(), Settings.load().base_image


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=step_texts())
def test_the_check_and_the_engine_read_the_same_instructions(engine_parser, steps: str) -> None:
    if check_extra_steps(steps):
        return  # refused: nothing reaches the engine, whatever it would have read
    client, base = engine_parser
    instructions, dangling = parse_steps(steps)
    assert not dangling
    engine = _engine_instructions(client, base, steps)
    ours = [text.split(None, 1)[0].upper() for _, text in instructions]
    if isinstance(engine, str):
        # The engine refused the file: fine when it is about an allowed instruction's arguments (the build would
        # fail, visibly); a line it took for an instruction the check did not see would be a bypass.
        assert "unknown instruction" not in engine.lower(), f"{steps!r}: {engine}"
        return
    assert engine[0] == f"#{len(ours) + 2}", f"the engine reads {engine} from {steps!r}; the check read {ours}"
    assert engine[2 : 2 + len(ours)] == ours
    assert set(ours) <= set(ALLOWED_STEP_INSTRUCTIONS)


def test_the_bypasses_found_once_are_instructions_to_the_engine_and_refused_by_the_check(engine_parser) -> None:
    """The oracle is not vacuous: the engine really reads the hidden line as an instruction."""
    client, base = engine_parser
    for trailer in ("\f", "\v", "\x1c", "\x85", "\u2028"):
        steps = f"RUN true \\{trailer}\nUSER root"
        assert check_extra_steps(steps), repr(steps)
        engine = _engine_instructions(client, base, steps)
        assert isinstance(engine, list) and engine[0] == "#4", (trailer, engine)  # FROM, RUN, USER, LABEL


# --- 4. one client cannot stall the service --------------------------------------------------------


def _send_raw(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def _memory_mib(container_id: str) -> float:
    stats = docker.from_env().api.stats(container_id, stream=False)
    return float(stats["memory_stats"].get("usage", 0)) / 2**20


def test_a_huge_header_through_the_service_port_is_refused_and_health_stays_green(make_service) -> None:
    service = make_service("iris")
    assert deploy(service).code == 0
    backend = next(c for c in containers_of(service.name) if c["Config"]["Labels"].get("mldeploy.role") == "backend")
    before = _memory_mib(backend["Id"])
    health: list[int] = []
    stop = time.monotonic() + 8

    def probe() -> None:
        import urllib.request

        while time.monotonic() < stop:
            with urllib.request.urlopen(f"http://127.0.0.1:{service.port}/readyz", timeout=5) as response:
                health.append(response.status)
            time.sleep(0.2)

    import threading

    prober = threading.Thread(target=probe)
    prober.start()
    answer = _send_raw(service.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (200 * 2**20) + b"\r\n\r\n")
    prober.join()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert health and set(health) == {200}, health
    assert _memory_mib(backend["Id"]) - before < 64, "the header was never buffered"
