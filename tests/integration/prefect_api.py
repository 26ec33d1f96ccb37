"""Small read-only helpers over a Prefect server's REST API, for asserting what a run recorded.

``api`` is the API base URL as in ``PREFECT_API_URL`` (``http://127.0.0.1:PORT/api``; the
``prefect_server`` fixture yields it). Every helper returns the server's JSON as plain dicts, so
tests check exactly what the UI and other clients see. Filters follow the server's ``/filter``
bodies (``{"any_": [...]}``); results are paged through until the server has no more.
"""

from __future__ import annotations

from typing import Any

import httpx

TIMEOUT = 15.0
PAGE = 200  # the server's maximum page size


def _get(api: str, path: str) -> Any:
    response = httpx.get(f"{api.rstrip('/')}/{path.lstrip('/')}", timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


def _filter(api: str, path: str, body: dict[str, Any], sort: str | None = None) -> list[dict[str, Any]]:
    """POST ``<api>/<path>`` page by page and return every result."""
    found: list[dict[str, Any]] = []
    while True:
        page_body: dict[str, Any] = {**body, "limit": PAGE, "offset": len(found)}
        if sort:
            page_body["sort"] = sort
        response = httpx.post(f"{api.rstrip('/')}/{path.lstrip('/')}", json=page_body, timeout=TIMEOUT)
        response.raise_for_status()
        page = response.json()
        found.extend(page)
        if len(page) < PAGE:
            return found


def _any(**ids: str | None) -> dict[str, Any]:
    return {field: {"any_": [value]} for field, value in ids.items() if value is not None}


def ui_url(api: str) -> str:
    """The UI's base URL: the server serves it at ``/`` next to ``/api``."""
    return api.rstrip("/").removesuffix("/api")


def flow_run(api: str, id: str) -> dict[str, Any]:
    """One flow run (``state`` holds ``type``, ``name`` and ``message``)."""
    result: dict[str, Any] = _get(api, f"flow_runs/{id}")
    return result


def flow_runs(api: str, name_prefix: str) -> list[dict[str, Any]]:
    """Flow runs whose name starts with ``name_prefix``, oldest first."""
    body = {"flow_runs": {"name": {"like_": name_prefix}}}
    found = _filter(api, "flow_runs/filter", body, sort="START_TIME_ASC")
    return [run for run in found if str(run.get("name", "")).startswith(name_prefix)]


def task_run(api: str, id: str) -> dict[str, Any]:
    result: dict[str, Any] = _get(api, f"task_runs/{id}")
    return result


def task_runs(api: str, flow_run_id: str) -> list[dict[str, Any]]:
    """Every task run of a flow run, oldest first (``name``, ``state_type``, ``state_name``, ``run_count``…)."""
    body = {"task_runs": _any(flow_run_id=flow_run_id)}
    return _filter(api, "task_runs/filter", body, sort="EXPECTED_START_TIME_ASC")


def artifacts(api: str, flow_run_id: str | None = None, task_run_id: str | None = None) -> list[dict[str, Any]]:
    """Artifacts of a flow run and/or one of its task runs, oldest first (``key``, ``type``, ``data``…).

    With neither id given, every artifact on the server.
    """
    body = {"artifacts": _any(flow_run_id=flow_run_id, task_run_id=task_run_id)}
    return _filter(api, "artifacts/filter", body, sort="CREATED_DESC")[::-1]  # the server sorts newest first only


def logs(api: str, flow_run_id: str | None = None, task_run_id: str | None = None) -> list[dict[str, Any]]:
    """Log records of a flow run and/or a task run, oldest first (``level``, ``message``, ``timestamp``)."""
    body = {"logs": _any(flow_run_id=flow_run_id, task_run_id=task_run_id)}
    return _filter(api, "logs/filter", body, sort="TIMESTAMP_ASC")


def state_type(run: dict[str, Any]) -> str:
    """``COMPLETED``, ``FAILED``, … of a flow or task run."""
    return str(run.get("state_type") or (run.get("state") or {}).get("type"))


def state_name(run: dict[str, Any]) -> str:
    """``Completed``, ``Cached``, ``Failed``, … of a flow or task run."""
    return str(run.get("state_name") or (run.get("state") or {}).get("name"))
