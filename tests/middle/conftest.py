"""The middle tier: each stage task through ``.fn()``, with the fakes of ``fakes.py``; no engine,
no registry, no Prefect server (one test starts Prefect's test harness)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
import yaml

from mldeploy.spec import LocalTarget, ServiceSpec, load_spec
from mldeploy.targets.local import LocalDockerTarget
from tests.middle.fakes import FakeEngine, FakeNetwork

VALID = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "valid"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(autouse=True)
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own mldeploy home: model registry, logs, fingerprint key."""
    home = tmp_path / "home"
    monkeypatch.setenv("MLDEPLOY_HOME", str(home))
    return home


@pytest.fixture
def engine() -> FakeEngine:
    engine = FakeEngine()
    engine.add_image("mldeploy/python:3.11-bookworm")
    engine.add_image("python:3.11-slim")
    return engine


@pytest.fixture
def network(engine: FakeEngine) -> FakeNetwork:
    return FakeNetwork(engine)


@pytest.fixture
def service_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "svc"
    shutil.copytree(VALID, folder)
    return folder


def write_spec(folder: Path, **changes: object) -> Path:
    data = yaml.safe_load((folder / "service.yaml").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    (folder / "service.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "service.yaml"


@pytest.fixture
def spec(service_dir: Path) -> ServiceSpec:
    return load_spec(write_spec(service_dir, **{"target.port": free_port()}))


@pytest.fixture
def target(engine: FakeEngine, network: FakeNetwork, spec: ServiceSpec) -> LocalDockerTarget:
    assert isinstance(spec.target, LocalTarget)
    return LocalDockerTarget(engine, network.probe(), spec.target, poll_interval=0.01, drain_seconds=0)  # type: ignore[arg-type]
