"""Images run on this machine outside a deployment: ``mldeploy pull --run`` (a deployed image) and
``mldeploy debug`` / ``pull --debug`` (that image plus debugpy). Ports are published on 127.0.0.1 only; a
container is replaced by the next run of the same command, and is not a service (status, reload and delete do
not see it)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.adapters.http_probe import HttpProbe
from mldeploy.adapters.wheelhouse import resolve_wheelhouse
from mldeploy.contract import CONTAINER_PORT, READINESS_PATH
from mldeploy.debugging import DEBUGPY_REQUIREMENT, LAUNCHER, render_debug_dockerfile

PULLED_LABEL = "mldeploy.pulled"  # a deployed image run by `mldeploy pull --run`
DEBUG_LABEL = "mldeploy.debug"  # an image run under debugpy by `mldeploy debug` or `pull --debug`
DEBUG_IMAGE_REPOSITORY = "mldeploy-debug"


@dataclass(frozen=True)
class LocalRun:
    name: str
    container: str
    endpoint: str  # http://127.0.0.1:<port>
    ports: Mapping[int, int]  # container port -> published port
    ready: bool
    log: str  # the container's log when it did not become ready


def debug_image(engine: DockerEngine, image: str, home: Path, say: Callable[[str], None]) -> str:
    """``image`` plus debugpy (a wheel resolved into the wheelhouse for the image's Python, installed offline);
    built once per image."""
    inputs = render_debug_dockerfile(image).encode() + LAUNCHER.read_bytes()
    tag = f"{DEBUG_IMAGE_REPOSITORY}:{hashlib.sha256(inputs).hexdigest()[:16]}"
    if engine.image_id(tag) is not None:
        return tag
    python = engine.python_version(image)
    wheels = resolve_wheelhouse(home, {"debug.txt": DEBUGPY_REQUIREMENT + "\n"}, python)
    say(f"building the debug image {tag} ({DEBUGPY_REQUIREMENT} for Python {python}, from {wheels.path})")
    with tempfile.TemporaryDirectory(prefix="mldeploy-debug-") as folder:
        context = Path(folder)
        shutil.copytree(wheels.path, context / "wheels", ignore=shutil.ignore_patterns(".*"))
        shutil.copy(LAUNCHER, context / "launch.py")
        (context / "Dockerfile").write_text(render_debug_dockerfile(image))
        engine.build(context, tag, {DEBUG_LABEL: image})
    return tag


def run_locally(
    engine: DockerEngine,
    image: str,
    *,
    name: str,
    label: str,
    environment: Mapping[str, str],
    port: int | None,
    ready_within: float,
    extra_ports: Mapping[int, int | None] | None = None,
    read_only_mounts: Mapping[str, str] | None = None,
) -> LocalRun:
    """Replace the container ``name`` (and any other of this ``label`` and name) with one of ``image``, and wait
    up to ``ready_within`` seconds for its readiness endpoint."""
    for earlier in engine.find({label: name}):
        engine.remove(earlier.id)
    engine.remove(name)
    container = engine.run(
        image,
        name=name,
        labels={label: name},
        environment=dict(environment),
        host_port=port,
        container_port=CONTAINER_PORT,
        extra_ports=extra_ports,
        read_only_mounts=read_only_mounts,
    )
    started = engine.state(container)
    ports = dict(started.host_ports) if started else {}
    endpoint = f"http://127.0.0.1:{ports.get(CONTAINER_PORT, port)}"
    deadline = time.monotonic() + ready_within
    probe = HttpProbe()
    while not probe.healthy(endpoint + READINESS_PATH, timeout=1.0):
        current = engine.state(container)
        if time.monotonic() > deadline or current is None or current.status != "running":
            return LocalRun(name, container, endpoint, ports, False, engine.logs(container, tail=50))
        time.sleep(0.25)
    return LocalRun(name, container, endpoint, ports, True, "")
