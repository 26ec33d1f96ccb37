"""How mldeploy authenticates to an image registry: one small type per scheme.

Pure data. The engine adapter turns it into Docker's ``auth_config``, the registry adapter into
HTTP credentials, and remote targets into their pull secrets. An ACR sign-in with Entra ID is one more
kind, resolved to a ``TokenAuth`` by the push stage.
"""

from __future__ import annotations

from dataclasses import dataclass

from mldeploy.azure_cloud import Cloud


@dataclass(frozen=True)
class Anonymous:
    """No credentials (a local registry, a public one)."""

    def secret_values(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class BasicAuth:
    """User name and password (or an admin/scoped token used as a password)."""

    username: str
    password: str

    def secret_values(self) -> tuple[str, ...]:
        return (self.password,)

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password='***')"


@dataclass(frozen=True)
class TokenAuth:
    """A registry refresh/identity token (Docker's ``identitytoken``; ACR's exchanged token)."""

    token: str
    username: str = "00000000-0000-0000-0000-000000000000"  # what ACR expects beside a refresh token

    def secret_values(self) -> tuple[str, ...]:
        return (self.token,)

    def __repr__(self) -> str:
        return "TokenAuth(token='***')"


@dataclass(frozen=True)
class EntraSignIn:
    """Azure Container Registry without a password: the push stage exchanges the deploying identity's Entra
    token for a registry token (``adapters.acr_auth``). Remote targets pull with their own identity (ACI's
    ``registry_identity``, AKS's kubelet identity attached to the registry), never with this short-lived token."""

    login_server: str
    cloud: Cloud  # whose Entra ID signs the identity in

    def secret_values(self) -> tuple[str, ...]:
        return ()


RegistryAuth = Anonymous | BasicAuth | TokenAuth | EntraSignIn
ANONYMOUS = Anonymous()


def registry_auth(username: str | None, password: str | None, *, entra: EntraSignIn | None = None) -> RegistryAuth:
    """The credentials a spec's registry section resolves to: a password (or token) when one is given, else an
    Entra sign-in for an ACR, else none."""
    if password:
        return BasicAuth(username or "", password)
    return entra or ANONYMOUS
