"""The ``status`` flow: ``mldeploy status`` as a table artifact in the Prefect UI (run it from the ``status``
deployment, on demand or on its schedule). Every service mldeploy deployed on the targets the worker reaches,
with its model, image, health, endpoint and the flow run that put it there."""

from __future__ import annotations

from typing import Any

from prefect import flow

from mldeploy.orchestration import attach_markdown, attach_table, logger
from mldeploy.status import COLUMNS, reachable_targets, short_image, status_rows


@flow(name="status")
def service_status(
    name: str | None = None,
    namespace: str = "default",
    context: str | None = None,
    resource_group: str | None = None,
    subscription: str | None = None,
) -> list[dict[str, Any]]:
    """What serves where (``name``: one service). Kubernetes is looked at when the worker has KUBECONFIG (or
    ``context`` is set), ACI when ``resource_group`` is set."""
    notes: list[str] = []
    targets = reachable_targets(
        context=context, namespace=namespace, resource_group=resource_group, subscription=subscription
    )
    rows = status_rows(name, targets, notes)
    shown = [{column: str(row.get(column) or "") for column in COLUMNS} for row in rows]
    for row in shown:
        row["image"] = short_image(row["image"])
    attach_table("status", shown, f"What serves where ({len(rows)} service(s))")
    if notes:
        attach_markdown("status-notes", "\n".join(f"- {note}" for note in notes), "What status could not read")
    for note in notes:
        logger().warning(note)
    logger().info("%d service(s) live", len(rows))
    return rows
