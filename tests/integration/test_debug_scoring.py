"""`mldeploy debug SPEC` and `pull --debug`: the service's image plus debugpy on 127.0.0.1, held by a real Debug
Adapter Protocol client the way VS Code holds it (initialize → attach → setBreakpoints in run() →
configurationDone), a scoring request stopped at the breakpoint and answered after `continue`; the source
mounted; launch.json merged; and, with nobody attaching, the scoring process starting after the bounded wait."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.integration.conftest import MLDEPLOY, Service, deploy, free_port, run_cli
from tests.integration.dap import DapClient

pytestmark = pytest.mark.usefixtures("real_engine")

APP = "/var/azureml-app"
PATIENT = {"data": [[0.038, 0.051, 0.062, 0.022, -0.044, -0.035, -0.043, -0.003, 0.020, -0.018]]}


def _first_line_of_run(script: Path) -> int:
    lines = script.read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("def run("))
    return next(n for n in range(start + 1, len(lines)) if lines[n].strip()) + 1  # 1-based, as DAP counts


def _remove_debug_containers() -> None:
    client = docker.from_env()
    try:
        for container in client.containers.list(all=True, filters={"label": "mldeploy.debug"}):
            container.remove(force=True)
    finally:
        client.close()


def test_a_breakpoint_in_run_stops_a_scoring_request_until_continue(make_service: Any, tmp_path: Path) -> None:
    service: Service = make_service("diabetes")
    workspace = tmp_path / "workspace"
    (workspace / ".vscode").mkdir(parents=True)
    mine = {"name": "my own", "type": "debugpy", "request": "launch", "program": "train.py"}
    (workspace / ".vscode" / "launch.json").write_text(json.dumps({"version": "0.2.0", "configurations": [mine]}))
    debug_port = free_port()
    args = [MLDEPLOY, "debug", str(service.spec), "--debug-port", str(debug_port), "--debug-wait", "180"]
    out_file, err_file = tmp_path / "debug.out", tmp_path / "debug.err"
    with out_file.open("w") as out, err_file.open("w") as err:
        run = subprocess.Popen(args, stdout=out, stderr=err, cwd=workspace)
    try:
        client = DapClient(debug_port, time.monotonic() + 240)  # the image is built first
        assert client.initialized["success"]
        launch = json.loads((workspace / ".vscode" / "launch.json").read_text())
        mine_kept, attach = launch["configurations"]
        assert mine_kept == mine and attach["connect"] == {"host": "127.0.0.1", "port": debug_port}
        assert attach["pathMappings"] == [{"localRoot": str(service.root.resolve()), "remoteRoot": APP}]
        client.send("attach", {"justMyCode": False, "pathMappings": attach["pathMappings"]})
        client.until("event", "initialized")
        line = _first_line_of_run(service.root / "score.py")
        local_script = str(service.root.resolve() / "score.py")  # VS Code names local files; debugpy maps them
        placed = client.request("setBreakpoints", {"source": {"path": local_script}, "breakpoints": [{"line": line}]})
        assert placed["success"] and placed["body"]["breakpoints"][0]["verified"], placed
        assert client.request("configurationDone", {})["success"]
        assert run.wait(timeout=180) == 0, err_file.read_text() + out_file.read_text()
        output = out_file.read_text()
        endpoint = re.search(r"serves at (http://127\.0\.0\.1:\d+)/score", output)
        assert endpoint, output

        answer: dict[str, Any] = {}

        def score() -> None:
            reply = httpx.post(f"{endpoint.group(1)}/score", json=PATIENT, timeout=120)
            answer.update(status=reply.status_code, body=reply.json())

        request = threading.Thread(target=score)
        request.start()
        stopped = client.until("event", "stopped")
        assert stopped["body"]["reason"] == "breakpoint"
        frames = client.request("stackTrace", {"threadId": stopped["body"]["threadId"]})["body"]["stackFrames"]
        assert (frames[0]["name"], frames[0]["source"]["path"], frames[0]["line"]) == ("run", local_script, line)
        time.sleep(1)
        assert request.is_alive() and not answer  # held at the breakpoint

        assert client.request("continue", {"threadId": stopped["body"]["threadId"]})["success"]
        request.join(timeout=60)
        assert answer == {"status": 200, "body": [199.8485830226578]}

        # the local source is what the container runs: an edit shows up inside at once
        script = service.root / "score.py"
        script.write_text(script.read_text() + "\n# edited while debugging\n")
        name = f"mldeploy-debug-{service.name}"
        inside = subprocess.run(["docker", "exec", name, "cat", f"{APP}/score.py"], capture_output=True, text=True)
        assert inside.stdout.endswith("# edited while debugging\n"), inside.stderr
        published = subprocess.run(["docker", "port", name], capture_output=True, text=True).stdout
        assert all(line.split(" -> ")[1].startswith("127.0.0.1:") for line in published.strip().splitlines())
    finally:
        run.kill()
        run.wait(timeout=30)
        _remove_debug_containers()


def test_pull_debug_serves_after_the_bounded_wait_when_nobody_attaches(make_service: Any, tmp_path: Path) -> None:
    service: Service = make_service("diabetes")
    first = deploy(service)
    assert first.summary["status"] == "succeeded", first.stdout + first.stderr
    debug_port = free_port()
    try:
        pulled = run_cli(
            "pull", service.name, "--debug", "--debug-wait", "3", "--debug-port", str(debug_port), cwd=tmp_path
        )
        assert pulled.code == 0, pulled.stdout + pulled.stderr
        assert f"pulling {first.summary['image']['ref']}" in pulled.stdout
        endpoint = re.search(r"serves at (http://127\.0\.0\.1:\d+)/score", pulled.stdout)
        assert endpoint, pulled.stdout
        reply = httpx.post(f"{endpoint.group(1)}/score", json=PATIENT, timeout=30)
        assert (reply.status_code, reply.json()) == (200, [199.8485830226578])
        logs = subprocess.run(
            ["docker", "logs", f"mldeploy-debug-{service.name}"], capture_output=True, text=True
        ).stdout
        assert "no debugger within 3 s: starting the scoring runtime" in logs
        (attach,) = json.loads((tmp_path / ".vscode" / "launch.json").read_text())["configurations"]
        assert attach["connect"]["port"] == debug_port and "pathMappings" not in attach  # no local source
    finally:
        _remove_debug_containers()
