"""The service spec: declared once (:mod:`.document`, :mod:`.targets`, :mod:`.types`), read with limits
(:mod:`.loading`), problems mapped to file/field/fix (:mod:`.problems`), secret values apart
(:mod:`.secrets`), and the JSON Schema and key reference derived from the declaration (:mod:`.reference`).

Pure: reads the spec and the files it names, never an engine, registry or cloud.
"""

from mldeploy.spec.document import (
    DeploySection,
    EnvironmentSection,
    ModelSection,
    RegistrySection,
    ServiceSpec,
)
from mldeploy.spec.files import UserLimits
from mldeploy.spec.loading import load_spec, read_yaml, service_name_of
from mldeploy.spec.secrets import ResolvedSecrets, resolve_secrets
from mldeploy.spec.smoke import SmokeCase, SmokeRequest
from mldeploy.spec.targets import (
    TARGET_KINDS,
    AciTarget,
    Autoscale,
    Ingress,
    KubernetesTarget,
    LocalTarget,
    TargetSection,
)

__all__ = [
    "TARGET_KINDS",
    "AciTarget",
    "Autoscale",
    "DeploySection",
    "EnvironmentSection",
    "Ingress",
    "KubernetesTarget",
    "LocalTarget",
    "ModelSection",
    "RegistrySection",
    "ResolvedSecrets",
    "ServiceSpec",
    "SmokeCase",
    "SmokeRequest",
    "TargetSection",
    "UserLimits",
    "load_spec",
    "read_yaml",
    "resolve_secrets",
    "service_name_of",
]
