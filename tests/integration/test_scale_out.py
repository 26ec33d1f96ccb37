"""Scale-out on one machine: a Prefect server on PostgreSQL, two process workers, deploys of two
services running in parallel and two deploys of one service serialized by its deploy slot."""

from __future__ import annotations

import glob
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.integration import prefect_api
from tests.integration.conftest import (
    deploy_prefect_yaml,
    free_port,
    require_parts,
    running_prefect_server,
    running_worker,
    using_api,
    wait_flow_run,
)

pytestmark = [pytest.mark.engine, pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[str]]]:
    """A throw-away PostgreSQL cluster (Debian's server binaries) on a free loopback port."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    require_parts([] if found else ["PostgreSQL server binaries are missing"], "make test-tools")
    bindir = Path(found[-1]).parent
    # not under pytest's tmp folder: that is private to root, and PostgreSQL refuses to run as root
    root = Path(tempfile.mkdtemp(prefix="mldeploy-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    shutil.chown(root, "postgres")
    shutil.chown(sockets, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            *as_postgres,
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while (
        subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode
        != 0
    ):
        assert server.poll() is None and time.monotonic() < deadline, "PostgreSQL did not start"
        time.sleep(0.2)
    subprocess.run(
        [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c", "CREATE DATABASE prefect"],
        check=True,
        capture_output=True,
    )
    psql = [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "prefect", "-tAc"]
    yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect", psql
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_server(postgres: tuple[str, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("prefect-pg")
    extra = {"PREFECT_API_DATABASE_CONNECTION_URL": postgres[0]}
    with running_prefect_server(home, extra) as api, using_api(api):
        deploy_prefect_yaml(api)
        with running_worker(api, home / "worker-1.log"), running_worker(api, home / "worker-2.log"):
            yield api


def _window(api: str, flow_run_id: str) -> tuple[datetime, datetime]:
    """From the start of the deploy stage to the end of the smoke stage of one run."""
    tasks = {t["name"].split(" ")[0]: t for t in prefect_api.task_runs(api, flow_run_id)}
    return (datetime.fromisoformat(tasks["deploy"]["start_time"]), datetime.fromisoformat(tasks["smoke"]["end_time"]))


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> float:
    return (min(a[1], b[1]) - max(a[0], b[0])).total_seconds()


def test_parallel_across_services_serial_within_one(pg_server, postgres, make_service):
    slow_init = "def init():\n    import time\n    time.sleep(4)\n"
    services = {}
    for key in ("a", "b", "c"):
        service = make_service("iris")
        score = (service.root / "score.py").read_text()
        service.write("score.py", score.replace("def init():\n", slow_init, 1))
        services[key] = service
    deployment = httpx.get(f"{pg_server}/deployments/name/deploy-model/ci", timeout=10).json()

    def trigger(service) -> str:
        response = httpx.post(
            f"{pg_server}/deployments/{deployment['id']}/create_flow_run",
            json={"parameters": {"spec_path": str(service.spec), "force": True}},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["id"])

    runs = {
        "a": trigger(services["a"]),
        "b": trigger(services["b"]),
        "c1": trigger(services["c"]),
        "c2": trigger(services["c"]),
    }
    finished = {name: wait_flow_run(pg_server, run_id, timeout=600) for name, run_id in runs.items()}
    assert {name: run["state"]["type"] for name, run in finished.items()} == dict.fromkeys(runs, "COMPLETED")

    windows = {name: _window(pg_server, run_id) for name, run_id in runs.items()}
    assert _overlap(windows["c1"], windows["c2"]) <= 0, "two deploys of one service overlapped"
    assert _overlap(windows["a"], windows["b"]) > 0, "deploys of different services did not run in parallel"
    workers = set()
    for run_id in runs.values():
        first = prefect_api.logs(pg_server, flow_run_id=run_id)[0]["message"]
        if first.startswith("Worker '"):
            workers.add(first.split("'")[1])
    assert len(workers) >= 1
    stored = subprocess.run([*postgres[1], "SELECT id FROM flow_run"], capture_output=True, text=True, check=True)
    assert set(runs.values()) <= set(stored.stdout.split()), "the runs must be stored in PostgreSQL"
    for service in services.values():
        assert service.score({"data": [[5.1, 3.5, 1.4, 0.2]]})[0] == 200
