"""``mldeploy status`` and the ``status`` flow: what serves where, joined with the run that put it there.

Each target says what it runs (``services()``, ``describe()``); the Prefect server's deploy history says which
flow run deployed that image (``history.deployed_by``). A target that cannot be reached, or a history that
cannot be read, becomes a note: status shows what it can.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from mldeploy.errors import MldeployError
from mldeploy.history import Deploy, deployed_by

TargetFactory = Callable[[], Any]
COLUMNS = ("service", "target", "model", "image", "deployed_at", "health", "endpoint", "flow_run")


def reachable_targets(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str = "default",
    resource_group: str | None = None,
    subscription: str | None = None,
) -> list[tuple[str, TargetFactory]]:
    """(kind, how to make it): local always; Kubernetes when a kubeconfig or context is named (or KUBECONFIG is
    set); ACI in a named resource group."""
    from mldeploy.spec import AciTarget, KubernetesTarget, LocalTarget
    from mldeploy.targets import make_target

    found: list[tuple[str, TargetFactory]] = [("local", lambda: make_target(LocalTarget()))]
    if kubeconfig or context or os.environ.get("KUBECONFIG"):
        section = KubernetesTarget(kind="kubernetes", namespace=namespace, context=context)
        found.append(("kubernetes", lambda: make_target(section, kubeconfig=kubeconfig)))
    if resource_group:
        aci = {"kind": "aci", "resource_group": resource_group, "subscription_id": subscription}
        found.append(("aci", lambda: make_target(AciTarget.model_validate(aci))))
    return found


def _history_or_note(service: str, notes: list[str]) -> list[Deploy]:
    from mldeploy.remote import read_history

    try:
        return read_history(service)
    except Exception as exc:  # status still shows what the targets say
        notes.append(f"history of {service} unavailable from the Prefect API: {type(exc).__name__}: {exc}")
        return []


def status_rows(name: str | None, targets: list[tuple[str, TargetFactory]], notes: list[str]) -> list[dict[str, Any]]:
    """One row per service and target: what runs, since when, where, whether it answers, and which run put it
    there (the newest successful deploy of that image on the Prefect server)."""
    rows: list[dict[str, Any]] = []
    for kind, make in targets:
        try:
            target = make()
            names = [name] if name else target.services()
            descriptions = [target.describe(service) for service in names]
        except MldeployError as exc:
            notes.append(f"{kind}: not reachable: {exc}")
            continue
        for found in descriptions:
            live = found.live
            if live is None:
                if name:
                    notes.append(f"{kind}: nothing serves as {found.service!r}")
                continue
            deploy = deployed_by(_history_or_note(found.service, notes), live)
            rows.append(
                {
                    "service": found.service,
                    "target": kind,
                    "model": live.model,
                    "image": live.image,
                    "deployed_at": live.started_at,
                    "endpoint": live.endpoint,
                    "health": "healthy" if live.healthy else "unhealthy",
                    "flow_run": deploy.flow_run_name if deploy else "",
                    "flow_run_id": deploy.flow_run_id if deploy else "",
                    "deploy": deploy.number if deploy else None,
                    "details": dict(found.details),
                }
            )
    return rows


def short_image(image: str) -> str:
    """``name@sha256:0123456789ab`` (or a local image id's first characters), for tables."""
    name, _, digest = image.partition("@")
    return f"{name.rsplit('/', 1)[-1]}@{digest[:19]}" if digest else image[:19]
