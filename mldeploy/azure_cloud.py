"""Azure clouds and registries, as data: which Resource Manager and Entra ID hosts a spec's ``cloud`` means, and
whether a registry is an Azure Container Registry (and of which cloud).

Pure. The endpoints follow Azure's own settings: the public cloud by default, the sovereign clouds by name,
``cloud: custom`` with the spec's ``arm_endpoint``, and ``AZURE_AUTHORITY_HOST`` (the variable azure-identity
reads) or the spec's ``authority_host`` for Entra ID. The TLS trust of the SDKs comes from the standard variables
(``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``) — which is also how tests point the real clients at local doubles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    name: str
    arm_endpoint: str
    authority_host: str
    acr_suffixes: tuple[str, ...]
    aci_dns_suffix: str  # <label>.<location>.<suffix>

    @property
    def arm_scope(self) -> str:
        return self.arm_endpoint.rstrip("/") + "/.default"


CLOUDS: dict[str, Cloud] = {
    "azure_public": Cloud(
        "azure_public",
        "https://management.azure.com",
        "https://login.microsoftonline.com",
        (".azurecr.io",),
        "azurecontainer.io",
    ),
    "azure_china": Cloud(
        "azure_china",
        "https://management.chinacloudapi.cn",
        "https://login.chinacloudapi.cn",
        (".azurecr.cn",),
        "azurecontainer.console.azure.cn",
    ),
    "azure_us_government": Cloud(
        "azure_us_government",
        "https://management.usgovcloudapi.net",
        "https://login.microsoftonline.us",
        (".azurecr.us",),
        "azurecontainer.io",
    ),
}
ACR_SUFFIXES = tuple(suffix for cloud in CLOUDS.values() for suffix in cloud.acr_suffixes)
_LOGIN_SERVER = re.compile(r"^[a-z0-9]{5,50}\.azurecr\.(io|cn|us)$")


def cloud_of(
    name: str,
    *,
    arm_endpoint: str | None = None,
    authority_host: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Cloud:
    """The endpoints of a spec's cloud; a custom cloud takes the spec's ARM endpoint, and the authority host
    comes from the spec, else AZURE_AUTHORITY_HOST, else the cloud's own."""
    env = environ or {}
    if name == "custom":
        if not arm_endpoint:
            raise ValueError("cloud 'custom' needs an arm_endpoint")
        base = Cloud("custom", arm_endpoint, "https://login.microsoftonline.com", ACR_SUFFIXES, "azurecontainer.io")
    else:
        base = CLOUDS[name]
    host = authority_host or env.get("AZURE_AUTHORITY_HOST") or base.authority_host
    if not host.startswith("https://"):
        host = "https://" + host
    return Cloud(base.name, arm_endpoint or base.arm_endpoint, host.rstrip("/"), base.acr_suffixes, base.aci_dns_suffix)


def acr_login_server(registry: str) -> str | None:
    """The ACR login server a registry URL names (``myacr.azurecr.io[/team]`` → ``myacr.azurecr.io``), or None
    when it is not an Azure Container Registry."""
    host = registry.split("/", 1)[0].lower()
    return host if _LOGIN_SERVER.match(host) else None


def registry_cloud_name(login_server: str) -> str:
    """The cloud an ACR login server belongs to (by its suffix); the public cloud for any other name."""
    host = login_server.split("/", 1)[0].lower()
    return next((c.name for c in CLOUDS.values() if host.endswith(c.acr_suffixes)), "azure_public")


def aci_fqdn(label: str, location: str, cloud: Cloud) -> str:
    return f"{label}.{location.lower().replace(' ', '')}.{cloud.aci_dns_suffix}"
