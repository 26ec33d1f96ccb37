"""`mldeploy deploy SPEC --debug-pipeline PORT`: the flow's process waits for a debugger before the first
stage; a real Debug Adapter Protocol client (initialize → attach → configurationDone over the socket, what VS
Code sends) releases it, and without a client the run goes on after the bounded wait."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

import pytest

from tests.integration.conftest import MLDEPLOY, Service, free_port, run_cli
from tests.integration.dap import DapClient

pytestmark = pytest.mark.usefixtures("real_engine")


def test_the_pipeline_waits_for_a_debugger_and_goes_on_without_one(make_service: Any, tmp_path: Any) -> None:
    service: Service = make_service("diabetes")
    port = free_port()
    args = [MLDEPLOY, "deploy", str(service.spec), "--json", "--debug-pipeline", str(port), "--debug-wait", "120"]
    started = time.monotonic()
    # the run's output goes to files, not pipes: nobody reads a pipe while the debugger holds the run, and a
    # full pipe would block the run's next write
    stdout_file, stderr_file = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout_file.open("w") as out, stderr_file.open("w") as err:
        run = subprocess.Popen(args, stdout=out, stderr=err, cwd=tmp_path)
    try:
        client = DapClient(port, time.monotonic() + 90)
        assert client.initialized["success"]
        time.sleep(2)
        assert run.poll() is None  # still waiting: no stage before the debugger is there
        client.send("attach", {"justMyCode": False})
        client.until("event", "initialized")
        assert client.request("configurationDone", {})["success"]
        # keep reading, as VS Code does: the debuggee's output comes as events, and an unread socket blocks it
        threading.Thread(target=client.drain, daemon=True).start()
        run.wait(timeout=300)
    finally:
        run.kill()
        run.wait(timeout=30)
    stdout, stderr = stdout_file.read_text(), stderr_file.read_text()
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["status"] == "succeeded", stderr[-3000:]
    waited, attached = stderr.index("waiting up to 120 s for a debugger"), stderr.index("debugger attached")
    assert waited < attached < stderr.index("validate")  # the first stage ran after the attach
    launch = json.loads((tmp_path / ".vscode" / "launch.json").read_text())
    (configuration,) = launch["configurations"]
    assert configuration["connect"] == {"host": "127.0.0.1", "port": port}
    print(f"\n[debug-pipeline] attached and deployed in {time.monotonic() - started:.1f} s")

    nobody = ("--debug-pipeline", str(free_port()), "--debug-wait", "2")  # nobody attaches
    alone = run_cli("deploy", str(service.spec), "--json", *nobody, cwd=tmp_path)
    assert alone.summary["status"] == "noop", alone.stdout + alone.stderr
    assert "no debugger attached within 2 s: the pipeline goes on without one" in alone.stderr
