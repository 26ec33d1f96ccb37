"""How mldeploy authenticates to an image registry: one small type per scheme.

Pure data. The engine adapter turns it into Docker's ``auth_config``, the registry adapter into
HTTP credentials, and remote targets into their pull secrets. An ACR token exchange plugs in
as another kind of credential without touching the push stage.
"""

from __future__ import annotations

from dataclasses import dataclass


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


RegistryAuth = Anonymous | BasicAuth | TokenAuth
ANONYMOUS = Anonymous()


def registry_auth(username: str | None, password: str | None) -> RegistryAuth:
    """The credentials a spec's registry section resolves to."""
    if password:
        return BasicAuth(username or "", password)
    return ANONYMOUS
