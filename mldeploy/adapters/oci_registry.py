"""OCI distribution (/v2) calls: read back a pushed manifest's digest to verify a push.

Works with any OCI registry (distribution, ACR, Harbor…): plain HTTP on loopback, HTTPS
elsewhere, Basic auth or the Bearer token challenge. Errors are classified here: connection
failures, 429 and 5xx are transient; 401/403 are permanent (with a diagnosis).
"""

from __future__ import annotations

import re

import httpx

from mldeploy import diagnosis
from mldeploy.adapters.tls import ca_bundle
from mldeploy.errors import PermanentError, TransientError, retry_after_seconds
from mldeploy.images import LOOPBACK_HOSTS
from mldeploy.registry_auth import ANONYMOUS, BasicAuth, EntraSignIn, RegistryAuth, TokenAuth

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


def base_url(registry: str, *, insecure: bool = False, https: bool = False) -> str:
    """HTTPS, except on loopback or for a registry the user marked insecure (as Docker does); ``https`` for a
    registry known to serve only HTTPS (ACR), wherever it is."""
    host = registry.split("/", 1)[0]
    loopback = host.rsplit(":", 1)[0] in LOOPBACK_HOSTS
    plain = (loopback or insecure) and not https
    return f"{'http' if plain else 'https'}://{host}"


def _basic(auth: RegistryAuth) -> tuple[str, str] | None:
    if isinstance(auth, BasicAuth) and auth.password:
        return (auth.username, auth.password)
    if isinstance(auth, TokenAuth):
        return (auth.username, auth.token)
    if isinstance(auth, EntraSignIn):
        raise TypeError("an Entra sign-in is exchanged for a TokenAuth (adapters.acr_auth) before /v2 is called")
    return None


class OciRegistry:
    def __init__(
        self,
        registry: str,
        auth: RegistryAuth = ANONYMOUS,
        *,
        insecure: bool = False,
        https: bool = False,
        client: httpx.Client | None = None,
    ) -> None:
        self.registry = registry
        self.url = base_url(registry, insecure=insecure, https=https)
        self.auth = _basic(auth)
        self.client = client or httpx.Client(timeout=TIMEOUT, trust_env=False, verify=ca_bundle())

    def _request(self, method: str, path: str, scope: str) -> httpx.Response:
        headers = {"Accept": MANIFEST_TYPES}
        try:
            response = self.client.request(method, self.url + path, headers=headers, auth=self.auth)
            if response.status_code == 401 and "bearer" in response.headers.get("www-authenticate", "").lower():
                token = self._token(response.headers["www-authenticate"], scope)
                headers["Authorization"] = f"Bearer {token}"
                response = self.client.request(method, self.url + path, headers=headers)
        except httpx.HTTPError as exc:
            raise TransientError(
                f"registry {self.registry}: {type(exc).__name__}: {exc}",
                diagnosis=diagnosis.registry_unavailable(self.registry, str(exc)),
            ) from exc
        if response.status_code in (401, 403):
            message = f"{method} {path}: HTTP {response.status_code}"
            raise PermanentError(
                f"registry {self.registry} denied access: {message}",
                diagnosis=diagnosis.registry_auth_denied(self.registry, message),
            )
        if response.status_code == 429 or response.status_code >= 500:
            message = f"{method} {path}: HTTP {response.status_code}"
            raise TransientError(
                f"registry {self.registry}: {message}",
                diagnosis=diagnosis.registry_unavailable(self.registry, message),
                delay=retry_after_seconds(response.headers.get("retry-after")),
            )
        return response

    def _token(self, challenge: str, scope: str) -> str:
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", "")
        params["scope"] = params.get("scope", scope)
        try:
            response = self.client.get(realm, params=params, auth=self.auth)
        except httpx.HTTPError as exc:
            raise TransientError(f"registry {self.registry} token endpoint: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:  # busy, not a refusal
            message = f"token endpoint answered {response.status_code}"
            raise TransientError(
                f"registry {self.registry}: {message}",
                diagnosis=diagnosis.registry_unavailable(self.registry, message),
                delay=retry_after_seconds(response.headers.get("retry-after")),
            )
        if response.status_code != 200:
            raise PermanentError(
                f"registry {self.registry} refused a token (HTTP {response.status_code})",
                diagnosis=diagnosis.registry_auth_denied(
                    self.registry, f"token endpoint answered {response.status_code}"
                ),
            )
        body = response.json()
        return str(body.get("token") or body.get("access_token") or "")

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """The digest the registry serves for repository:reference, or None when it has none."""
        response = self._request("HEAD", f"/v2/{repository}/manifests/{reference}", f"repository:{repository}:pull")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PermanentError(f"registry {self.registry}: HEAD manifest answered {response.status_code}")
        digest = response.headers.get("docker-content-digest")
        return str(digest) if digest else None
