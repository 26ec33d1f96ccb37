"""Attach VS Code, to the scoring process or to the deploy pipeline.

- ``mldeploy debug`` / ``pull --debug``: the service's image plus debugpy (``render_debug_dockerfile``; the
  launcher is ``debug_launch.py``), the scoring process started under it on port 5678, the local source folder
  mounted over the app (``source_mount``), and an attach configuration with ``pathMappings``.
- ``deploy --debug-pipeline``: the flow's process listens for a Debug Adapter Protocol client (debugpy) on
  127.0.0.1 and waits a bounded time before the first stage, then goes on with or without one.
- The attach configurations go into ``.vscode/launch.json`` without touching the user's other entries.

All pure but ``write_launch`` (a file) and ``wait_for_debugger`` (debugpy's listener in this process).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from mldeploy.contract import APP_ROOT, SERVICE_UID, VENV

PIPELINE_PORT = 5679  # the scoring process's debugger takes debugpy's usual 5678
SCORING_PORT = 5678
PIPELINE_CONFIGURATION = "mldeploy: attach to the pipeline"
LAUNCH_VERSION = "0.2.0"
DEBUGPY_REQUIREMENT = f"debugpy=={version('debugpy')}"  # the debug image gets the version the pipeline has
LAUNCHER = Path(__file__).with_name("debug_launch.py")
LAUNCHER_IN_IMAGE = "/opt/mldeploy/debug/launch.py"
ENV_DEBUG_PORT = "MLDEPLOY_DEBUG_PORT"
ENV_DEBUG_WAIT = "MLDEPLOY_DEBUG_WAIT_SECONDS"


def scoring_configuration_name(service: str) -> str:
    return f"mldeploy: attach to {service}"


def render_debug_dockerfile(image: str) -> str:
    """The debug image: ``image`` unchanged plus debugpy from the build context's ``wheels/`` (installed offline,
    as every build) and the launcher; one worker, so every request reaches the process the debugger holds."""
    if not image or any(c.isspace() for c in image):
        raise ValueError(f"not an image reference: {image!r}")
    return "\n".join(
        [
            "# syntax=docker/dockerfile:1",
            "# Rendered by mldeploy debug: the service's image, plus debugpy and a launcher that starts the",
            "# scoring runtime under it. Never pushed.",
            f"FROM {image}",
            "USER root",
            "COPY wheels/ /tmp/wheels/",
            f"RUN {VENV}/bin/pip install --no-index --find-links=/tmp/wheels debugpy && rm -rf /tmp/wheels",
            f"COPY launch.py {LAUNCHER_IN_IMAGE}",
            f"ENV {ENV_DEBUG_PORT}={SCORING_PORT} WORKER_COUNT=1",  # the wait (ENV_DEBUG_WAIT) comes with the run
            f"EXPOSE {SCORING_PORT}",
            f"USER {SERVICE_UID}",
            f'CMD ["python3", "-Xfrozen_modules=off", "{LAUNCHER_IN_IMAGE}"]',
            "",
        ]
    )


def source_mount(app_source: Path) -> tuple[Path, str]:
    """(local path, where it is mounted in the container) for ``mldeploy debug``: a source directory over its
    own folder in the app, or the entry script alone over its copy (the models live under the app folder too,
    so the script's whole folder cannot go over it). Edits show up when the scoring process restarts."""
    local = app_source.resolve()
    return local, f"{APP_ROOT}/{app_source.name}"


def path_mapping(mount: tuple[Path, str]) -> dict[str, str]:
    """VS Code's ``pathMappings`` entry for a mount: folders map to folders (a script's folder to the app)."""
    local, remote = mount
    if local.is_dir():
        return {"localRoot": str(local), "remoteRoot": remote}
    return {"localRoot": str(local.parent), "remoteRoot": remote.rsplit("/", 1)[0]}


def attach_configuration(name: str, port: int, path_mappings: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A VS Code (Python Debugger) attach configuration for a debugpy listener on 127.0.0.1:port."""
    configuration: dict[str, Any] = {
        "name": name,
        "type": "debugpy",
        "request": "attach",
        "connect": {"host": "127.0.0.1", "port": port},
        "justMyCode": False,
    }
    if path_mappings:
        configuration["pathMappings"] = path_mappings
    return configuration


def merge_launch(existing: str | None, configuration: dict[str, Any]) -> str:
    """``launch.json`` with ``configuration`` added, or replacing the one of the same name; every other entry
    and key kept. ValueError when the file is not plain JSON (VS Code allows comments: those files are left
    for the user to edit, with the configuration to add)."""
    data: dict[str, Any] = {"version": LAUNCH_VERSION, "configurations": []}
    if existing is not None and existing.strip():
        try:
            loaded = json.loads(existing)
        except json.JSONDecodeError as exc:
            message = f"it is not plain JSON ({exc.msg} at line {exc.lineno}); add the configuration by hand"
            raise ValueError(message) from None
        if not isinstance(loaded, dict) or not isinstance(loaded.get("configurations", []), list):
            raise ValueError("it has no 'configurations' list; add the configuration by hand")
        data = {**loaded, "configurations": list(loaded.get("configurations", []))}
        data.setdefault("version", LAUNCH_VERSION)
    others = [c for c in data["configurations"] if not (isinstance(c, dict) and c.get("name") == configuration["name"])]
    data["configurations"] = [*others, configuration]
    return json.dumps(data, indent=2) + "\n"


def write_launch(folder: Path, configuration: dict[str, Any]) -> tuple[Path, str]:
    """Write or merge ``folder/.vscode/launch.json``; (its path, what happened)."""
    path = folder / ".vscode" / "launch.json"
    existing = path.read_text() if path.is_file() else None
    try:
        merged = merge_launch(existing, configuration)
    except ValueError as exc:
        return path, f"left {path} as it is: {exc}:\n{json.dumps(configuration, indent=2)}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(merged)
    return path, f"{'merged into' if existing else 'wrote'} {path}: '{configuration['name']}'"


def wait_for_debugger(port: int, seconds: float, say: Callable[[str], None]) -> bool:
    """Listen on 127.0.0.1:port and wait up to ``seconds`` for a client to finish attaching (its breakpoints
    set: ``wait_for_client`` returns after configurationDone), as ``debug_launch.py`` does; whether one did."""
    import debugpy

    # the stages' own child processes (pip resolving the wheelhouse) would each wait for the client to attach
    # to them too, and VS Code's attach configuration does not: debug this process only
    debugpy.configure(subProcess=False)
    debugpy.listen(("127.0.0.1", port))
    say(
        f"waiting up to {seconds:g} s for a debugger on 127.0.0.1:{port} before the first stage "
        f"(VS Code: run '{PIPELINE_CONFIGURATION}'; from another machine: ssh -L {port}:127.0.0.1:{port})"
    )
    waiter = threading.Thread(target=debugpy.wait_for_client, name="mldeploy-debug-wait", daemon=True)
    waiter.start()
    waiter.join(seconds)
    if not waiter.is_alive():
        say("debugger attached: the pipeline goes on (breakpoints in flows/ and tasks/ stop it)")
        return True
    say(f"no debugger attached within {seconds:g} s: the pipeline goes on without one")
    return False
