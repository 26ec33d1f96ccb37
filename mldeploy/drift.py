"""Drift between a plan and what is live: pure.

The no-op decision and the scheduled drift check use the same comparison: a service has not
drifted when it is deployed, healthy and runs exactly the planned fingerprint (image digest,
model, environment, script and target configuration all feed that fingerprint).
"""

from __future__ import annotations

from mldeploy.plan import BuildPlan
from mldeploy.targets.base import LiveService


def drift_reasons(plan: BuildPlan, live: LiveService | None) -> list[str]:
    """Why the live service differs from the plan; empty when it does not."""
    if live is None:
        return ["the service is not deployed"]
    reasons = []
    if not live.healthy:
        reasons.append(f"the live service at {live.endpoint or '(no endpoint)'} is not healthy")
    if live.diverged:
        reasons.append(f"the running service was changed by mldeploy reload ({live.diverged}): it is not its image")
    if live.fingerprint != plan.deploy_fingerprint:
        if live.secrets_digest != plan.secrets_digest:
            reasons.append("a secret value or service key changed (rotated): the service must run with the new one")
        reasons.append(
            f"the live service runs fingerprint {live.fingerprint[:12] or '(none)'}, "
            f"the spec gives {plan.deploy_fingerprint[:12]} (image, model, environment, script, target or secrets "
            "changed)"
        )
    return reasons
