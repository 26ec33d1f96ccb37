"""Who a deploy is on Azure: the ``TokenCredential`` the Resource Manager and registry clients sign in with, and
nothing else.

``DefaultAzureCredential`` is built only here and only when no service principal is in the environment; tests
always set one (it would probe a metadata address off this machine)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mldeploy.azure_cloud import CLOUDS, Cloud

KNOWN_AUTHORITIES = frozenset(cloud.authority_host for cloud in CLOUDS.values())


def credential_for(cloud: Cloud, environ: Mapping[str, str]) -> Any:
    """The identity a deploy runs as: a service principal when AZURE_TENANT_ID, AZURE_CLIENT_ID and
    AZURE_CLIENT_SECRET are set (CI), else DefaultAzureCredential (managed identity, az login...). An authority
    that is none of Microsoft's clouds (Azure Stack, a private one) is not in Microsoft's instance discovery:
    discovery is skipped for it."""
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    private = cloud.authority_host.rstrip("/") not in KNOWN_AUTHORITIES
    tenant, client, secret = (environ.get(k, "") for k in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"))
    if tenant and client and secret:
        return ClientSecretCredential(
            tenant, client, secret, authority=cloud.authority_host, disable_instance_discovery=private
        )
    return DefaultAzureCredential(authority=cloud.authority_host)
