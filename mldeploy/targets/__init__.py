"""Deploy targets behind one protocol (see base.py), built from the spec's target section.

Adding a target means adding its section (``mldeploy/spec/targets.py``), its class here and its
name in :data:`AVAILABLE`; until then a valid section of its kind is refused at validate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mldeploy.spec import AciTarget, KubernetesTarget, LocalTarget, TargetSection
from mldeploy.targets.base import Target

if TYPE_CHECKING:
    from mldeploy.adapters.docker_engine import DockerEngine

AVAILABLE: tuple[str, ...] = ("local", "kubernetes", "aci")


class TargetNotAvailable(ValueError):
    """A target kind whose section validates but which this version cannot deploy to yet."""


def make_target(section: TargetSection, *, engine: DockerEngine | None = None, kubeconfig: str | None = None) -> Target:
    """The one target of a run, configured from its section (clients, credentials, namespace).

    ``kubeconfig`` comes from the deploying user (``--kubeconfig``; else KUBECONFIG), never from the spec:
    a spec names the context and the namespace, not which credentials to use."""
    if isinstance(section, LocalTarget):
        from mldeploy.targets.local import LocalDockerTarget

        return LocalDockerTarget.from_section(section, engine=engine)
    if isinstance(section, KubernetesTarget):
        import os

        from mldeploy.targets.kubernetes import KubernetesTarget as KubernetesDeployTarget

        block = os.environ.get("MLDEPLOY_KUBECONFIG_BLOCK")
        if block and not kubeconfig:  # a worker's cluster credentials, kept in a Prefect Secret block
            from mldeploy.orchestration import kubeconfig_from_block

            return KubernetesDeployTarget.from_section(section, contents=kubeconfig_from_block(block))
        return KubernetesDeployTarget.from_section(section, kubeconfig=kubeconfig)
    if isinstance(section, AciTarget):
        import os

        from mldeploy import diagnosis
        from mldeploy.adapters.aci_api import AciApi
        from mldeploy.adapters.azure_identity import credential_for
        from mldeploy.azure_cloud import cloud_of
        from mldeploy.errors import PermanentError
        from mldeploy.targets.aci import AciDeployTarget

        subscription = section.subscription_id or os.environ.get("AZURE_SUBSCRIPTION_ID", "")
        if not subscription:
            message = "no Azure subscription: set target.subscription_id or AZURE_SUBSCRIPTION_ID"
            raise PermanentError(message, diagnosis=diagnosis.azure_access_denied("the spec", message))
        cloud = cloud_of(
            section.cloud, arm_endpoint=section.arm_endpoint, authority_host=section.authority_host, environ=os.environ
        )
        return AciDeployTarget(AciApi(credential_for(cloud, os.environ), subscription, cloud), section)
    raise TargetNotAvailable(
        f"target {section.kind!r} is not available in this version (available: {', '.join(AVAILABLE)})"
    )
