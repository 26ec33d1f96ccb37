"""The ``target:`` section: one mapping per kind, chosen by ``target.kind``.

Each kind declares its own keys and defaults (the classic AzureML SDK's defaults where it had
them: ACI 0.1 core and 0.5 GB; AKS autoscale 1–10 replicas at 70 %, one concurrent request per
replica). A key of another kind is an error that names the kind it belongs to.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from mldeploy.spec.types import (
    DnsLabel,
    DnsSubdomain,
    EnvVarName,
    Fix,
    Hostname,
    HttpsUrl,
    LabelKey,
    LabelValue,
    Name,
    Port,
    Section,
    Text,
    spec_error,
)

CpuCores = Annotated[float, Field(ge=0.05, le=64), Fix("use a number of cores between 0.05 and 64, e.g. 0.5")]
MemoryGb = Annotated[float, Field(ge=0.01, le=256), Fix("use a number of GB between 0.01 and 256, e.g. 1.5")]
EnvVars = dict[EnvVarName, Annotated[str, Field(max_length=32768)] | int | float]


class LocalTarget(Section):
    """A container on this machine's Docker engine, published on 127.0.0.1."""

    kind: Literal["local"] = Field("local", description="Run on this machine's Docker engine.")
    port: Port = Field(8890, description="Port on 127.0.0.1 where the service answers (classic default 8890).")
    cpu_cores: CpuCores | None = Field(None, description="CPU limit in cores (Docker NanoCPUs); none: no limit.")
    memory_gb: MemoryGb | None = Field(None, description="Memory limit in GB; none: no limit.")
    variables: EnvVars = Field(
        default_factory=dict, description="Container environment variables for this target (not secret)."
    )


class Autoscale(Section):
    """Horizontal pod autoscaling (autoscaling/v2 on CPU utilization)."""

    min_replicas: Annotated[int, Field(ge=1, le=1000)] = Field(1, description="Fewest replicas.")
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = Field(10, description="Most replicas.")
    target_utilization: Annotated[int, Field(ge=1, le=100)] = Field(
        70, description="Average CPU utilization (%) the autoscaler aims for."
    )

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Autoscale:
        if self.min_replicas > self.max_replicas:
            raise spec_error(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})",
                "make min_replicas <= max_replicas",
            )
        return self


class Ingress(Section):
    """An Ingress in front of the Service."""

    host: Hostname | None = Field(None, description="Host name the Ingress answers for; none: any host.")
    class_name: DnsSubdomain | None = Field(None, description="IngressClass to use; none: the cluster's default.")
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._~/-]*$", max_length=256)] = Field(
        "/", description="URL path prefix routed to the service."
    )


class Toleration(Section):
    """A taint the service's pods tolerate (e.g. a GPU or spot node pool)."""

    key: LabelKey | None = Field(None, description="Taint key; none with operator Exists: every taint.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Equal: key and value match; Exists: key only.")
    value: LabelValue | None = Field(None, description="Taint value (with operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect; none: every effect."
    )

    @model_validator(mode="after")
    def _value_fits_operator(self) -> Toleration:
        if self.operator == "Exists" and self.value is not None:
            raise spec_error("has a value with operator Exists", "drop the value, or use operator Equal")
        if self.key is None and self.operator == "Equal":
            raise spec_error("has no key with operator Equal", "name the key, or use operator Exists")
        return self


class KubernetesTarget(Section):
    """A Deployment (and Service, autoscaler...) on any Kubernetes cluster, AKS included."""

    kind: Literal["kubernetes"] = Field(description="Deploy to the cluster named by KUBECONFIG (or context).")
    namespace: DnsLabel = Field("default", description="Namespace (created when missing).")
    context: Name | None = Field(None, description="kubeconfig context; none: the current context.")
    replicas: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        None, description="A fixed number of replicas (instead of autoscale)."
    )
    autoscale: Autoscale | None = Field(
        None, description="Autoscaling bounds; the default when replicas is not set (1–10 at 70 %)."
    )
    cpu_cores: CpuCores = Field(0.1, description="CPU request per replica in cores.")
    memory_gb: MemoryGb = Field(0.5, description="Memory request per replica in GB.")
    cpu_cores_limit: CpuCores | None = Field(None, description="CPU limit per replica; none: no limit.")
    memory_gb_limit: MemoryGb | None = Field(None, description="Memory limit per replica; none: the request.")
    max_concurrent_requests_per_replica: Annotated[int, Field(ge=1, le=1000)] = Field(
        1, description="Requests one replica scores at once (its scoring workers)."
    )
    expected_rps: Annotated[float, Field(gt=0, le=1_000_000), Fix("use requests per second, e.g. 50")] | None = Field(
        None,
        description="Requests per second the service must take at its fewest replicas; the plan warns when the "
        "replica count invites 503s at the latency the last smoke test measured.",
    )
    expose: Literal["port-forward", "service"] = Field(
        "port-forward",
        description="How mldeploy reaches the service: a port-forward through the API server, or the Service.",
    )
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        "ClusterIP", description="Type of the Service object."
    )
    image_pull_secret: DnsSubdomain | None = Field(
        None, description="An existing Secret to pull the image with; none: one made from the registry credentials."
    )
    ingress: Ingress | None = Field(None, description="An Ingress in front of the Service; none: no Ingress.")
    node_selector: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, description="Node labels the pods must run on (e.g. a node pool)."
    )
    tolerations: list[Toleration] = Field(default_factory=list, description="Taints the pods tolerate.")
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict, description="Extra labels on every object and on the pods."
    )
    annotations: dict[LabelKey, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, description="Extra annotations on every object and on the pods."
    )

    @model_validator(mode="after")
    def _consistent(self) -> KubernetesTarget:
        if self.replicas is not None and self.autoscale is not None:
            raise spec_error(
                "sets both replicas and autoscale", "keep replicas (a fixed count) or autoscale (bounds), not both"
            )
        if self.cpu_cores_limit is not None and self.cpu_cores_limit < self.cpu_cores:
            raise spec_error("cpu_cores_limit is below cpu_cores", "make the limit at least the request")
        if self.memory_gb_limit is not None and self.memory_gb_limit < self.memory_gb:
            raise spec_error("memory_gb_limit is below memory_gb", "make the limit at least the request")
        return self

    @property
    def scaling(self) -> Autoscale | int:
        """A fixed replica count, or the autoscale bounds (the classic default when neither is set)."""
        if self.replicas is not None:
            return self.replicas
        return self.autoscale or Autoscale()


AzureCloud = Literal["azure_public", "azure_china", "azure_us_government", "custom"]


class AciTarget(Section):
    """A container group on Azure Container Instances."""

    kind: Literal["aci"] = Field(description="Deploy to Azure Container Instances.")
    subscription_id: (
        Annotated[
            str,
            Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
            Fix("use the subscription's GUID, e.g. 00000000-0000-0000-0000-000000000000"),
        ]
        | None
    ) = Field(None, description="Azure subscription; none: AZURE_SUBSCRIPTION_ID.")
    resource_group: Annotated[
        str,
        Field(pattern=r"^[-\w._()]{0,89}[-\w_()]$", max_length=90),
        Fix("use a resource group name: letters, digits, '-', '_', '.', '(' and ')', not ending in '.'"),
    ] = Field(description="Resource group that holds the container group.")
    location: (
        Annotated[str, Field(pattern=r"^[a-z0-9]+$", max_length=64), Fix("use a region name such as westeurope")] | None
    ) = Field(None, description="Azure region; none: the resource group's.")
    cpu_cores: Annotated[float, Field(ge=0.1, le=4), Fix("ACI allows 0.1 to 4 cores per container")] = Field(
        0.1, description="CPU cores (classic default 0.1)."
    )
    memory_gb: Annotated[float, Field(ge=0.1, le=16), Fix("ACI allows 0.1 to 16 GB per container")] = Field(
        0.5, description="Memory in GB (classic default 0.5)."
    )
    dns_name_label: Annotated[DnsLabel, Field(min_length=3)] | None = Field(
        None, description="DNS name label: LABEL.LOCATION.azurecontainer.io; none: the service name."
    )
    port: Annotated[
        int,
        Field(ge=1024, le=65535),
        Fix("use a port from 1024 (the runtime does not run as root, so it cannot bind below 1024)"),
    ] = Field(5001, description="Public port of the scoring endpoint (http://FQDN:PORT/score).")
    auth_enabled: bool = Field(False, description="Require a key on /score (keys from secrets).")
    restart_policy: Literal["Always", "OnFailure", "Never"] = Field("Always", description="Container restart policy.")
    cloud: AzureCloud = Field(
        "azure_public", description="Azure cloud: public, a sovereign cloud, or custom (arm_endpoint)."
    )
    arm_endpoint: HttpsUrl | None = Field(None, description="Resource Manager endpoint, for cloud: custom.")
    authority_host: HttpsUrl | None = Field(
        None, description="Entra ID authority host; none: AZURE_AUTHORITY_HOST or the cloud's."
    )
    registry_identity: (
        Annotated[
            str,
            Field(
                pattern=r"^/subscriptions/[0-9a-fA-F-]{36}/resource[gG]roups/[-A-Za-z0-9._()]{1,90}/providers/"
                r"Microsoft\.ManagedIdentity/userAssignedIdentities/[-A-Za-z0-9_]{3,128}$"
            ),
            Fix(
                "use the identity's resource id: /subscriptions/SUB/resourceGroups/RG/providers/"
                "Microsoft.ManagedIdentity/userAssignedIdentities/NAME"
            ),
        ]
        | None
    ) = Field(
        None,
        description="A user-assigned managed identity (resource id) with AcrPull that ACI pulls the image with; "
        "needed for an ACR signed into with Entra ID.",
    )
    description: Text = Field("", description="Free text kept with the container group.")

    @model_validator(mode="after")
    def _custom_cloud_has_endpoint(self) -> AciTarget:
        if self.cloud == "custom" and self.arm_endpoint is None:
            raise spec_error("cloud: custom names no arm_endpoint", "set target.arm_endpoint to the ARM URL")
        if self.cloud != "custom" and self.arm_endpoint is not None:
            raise spec_error(f"arm_endpoint is set for cloud {self.cloud}", "set cloud: custom, or remove arm_endpoint")
        return self


def _kind_of(value: Any) -> Any:
    """The tag of a target section; a section without ``kind`` is local (the brief's default)."""
    if isinstance(value, dict):
        return value.get("kind", "local")
    return getattr(value, "kind", None)


TargetSection = Annotated[
    Annotated[LocalTarget, Tag("local")]
    | Annotated[KubernetesTarget, Tag("kubernetes")]
    | Annotated[AciTarget, Tag("aci")],
    Discriminator(_kind_of),
]
TARGET_SECTIONS: dict[str, type[Section]] = {"local": LocalTarget, "kubernetes": KubernetesTarget, "aci": AciTarget}
TARGET_KINDS: tuple[str, ...] = tuple(TARGET_SECTIONS)


def keys_of(kind: str) -> frozenset[str]:
    return frozenset(TARGET_SECTIONS[kind].model_fields)
