"""Attach VS Code to the deploy pipeline: the flow's process listens for a Debug Adapter Protocol client
(debugpy) on 127.0.0.1 and waits a bounded time before the first stage, then goes on with or without one; and
the attach configuration, written into ``.vscode/launch.json`` without touching the user's other entries.

``merge_launch`` is pure; ``wait_for_debugger`` starts debugpy's listener in this process (once per process).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PIPELINE_PORT = 5679  # the scoring process's debugger takes debugpy's usual 5678
PIPELINE_CONFIGURATION = "mldeploy: attach to the pipeline"
LAUNCH_VERSION = "0.2.0"


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


def wait_for_debugger(port: int, seconds: float, say: Callable[[str], None], poll: float = 0.1) -> bool:
    """Listen on 127.0.0.1:port and wait up to ``seconds`` for a client; whether one attached."""
    import debugpy

    # the stages' own child processes (pip resolving the wheelhouse) would each wait for the client to attach
    # to them too, and VS Code's attach configuration does not: debug this process only
    debugpy.configure(subProcess=False)
    debugpy.listen(("127.0.0.1", port))
    say(
        f"waiting up to {seconds:g} s for a debugger on 127.0.0.1:{port} before the first stage "
        f"(VS Code: run '{PIPELINE_CONFIGURATION}'; from another machine: ssh -L {port}:127.0.0.1:{port})"
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if debugpy.is_client_connected():
            say("debugger attached: the pipeline goes on (breakpoints in flows/ and tasks/ stop it)")
            return True
        time.sleep(poll)
    say(f"no debugger attached within {seconds:g} s: the pipeline goes on without one")
    return False
