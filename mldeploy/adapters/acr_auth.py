"""Azure Container Registry sign-in with an Entra ID identity: ACR's documented token exchange.

An Entra access token for ``https://containerregistry.azure.net/.default`` (from a ``TokenCredential``:
DefaultAzureCredential in real use, injected in tests) is exchanged at ``POST https://<login
server>/oauth2/exchange`` for an ACR refresh token. That refresh token is what Docker takes as an
``identitytoken`` (user ``00000000-0000-0000-0000-000000000000``) for the push, and what the /v2 calls trade for
an access token per repository scope at ``/oauth2/token`` (``OciRegistry`` follows the Bearer challenge).

Errors are decided here: Entra refusing the identity, or the registry answering 401/403, is permanent and
never retried (``registry_auth_denied``); 429 waits at least ``Retry-After`` and 5xx and connection failures
are retried (``registry_unavailable``) — never read as "not there".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from mldeploy import diagnosis
from mldeploy.adapters.azure_identity import credential_for
from mldeploy.adapters.tls import ca_bundle
from mldeploy.errors import PermanentError, TransientError, retry_after_seconds
from mldeploy.registry_auth import EntraSignIn, TokenAuth

ACR_SCOPE = "https://containerregistry.azure.net/.default"
TIMEOUT = httpx.Timeout(20.0, connect=5.0)


def exchange(credential: Any, login_server: str, *, tenant: str = "", client: httpx.Client | None = None) -> TokenAuth:
    """The ACR refresh token for ``credential``'s identity on ``login_server`` (e.g. myregistry.azurecr.io)."""
    from azure.core.exceptions import ClientAuthenticationError

    try:
        entra = credential.get_token(ACR_SCOPE)
    except ClientAuthenticationError as exc:
        message = f"Entra ID refused the identity for {login_server}: {exc.message}"
        raise PermanentError(message, diagnosis=diagnosis.registry_auth_denied(login_server, message)) from exc
    form = {"grant_type": "access_token", "service": login_server, "access_token": entra.token}
    if tenant:
        form["tenant"] = tenant
    http = client or httpx.Client(timeout=TIMEOUT, verify=ca_bundle(), trust_env=False)
    try:
        response = http.post(f"https://{login_server}/oauth2/exchange", data=form)
    except httpx.HTTPError as exc:
        message = f"{login_server}/oauth2/exchange: {type(exc).__name__}: {exc}"
        raise TransientError(message, diagnosis=diagnosis.registry_unavailable(login_server, message)) from exc
    finally:
        if client is None:
            http.close()
    status = response.status_code
    message = f"{login_server}/oauth2/exchange answered HTTP {status}"
    if status in (401, 403):
        raise PermanentError(message, diagnosis=diagnosis.registry_auth_denied(login_server, message))
    if status == 429 or status >= 500:
        delay = retry_after_seconds(response.headers.get("retry-after"))
        raise TransientError(message, diagnosis=diagnosis.registry_unavailable(login_server, message), delay=delay)
    try:
        refresh = response.json().get("refresh_token") if status == 200 else None
    except ValueError:
        refresh = None
    if not refresh:
        raise PermanentError(message, diagnosis=diagnosis.registry_auth_denied(login_server, message))
    return TokenAuth(str(refresh))


def sign_in(entra: EntraSignIn, environ: Mapping[str, str]) -> TokenAuth:
    """The registry token for the deploying identity (a service principal from AZURE_*, else
    DefaultAzureCredential) on ``entra.login_server``."""
    return exchange(credential_for(entra.cloud, environ), entra.login_server)
