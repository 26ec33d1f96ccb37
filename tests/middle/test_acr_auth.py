"""ACR sign-in with an Entra identity: the real ClientSecretCredential gets a token from the Entra double, and
the exchange at the ACR double's /oauth2/exchange returns the refresh token Docker and the /v2 client use."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mldeploy.adapters.acr_auth import ACR_SCOPE, exchange
from mldeploy.adapters.oci_registry import OciRegistry
from mldeploy.diagnosis import Code
from mldeploy.errors import PermanentError, TransientError
from mldeploy.registry_auth import TokenAuth
from tests.middle.azure_doubles import Answer, Azure, HttpsDouble, acr_handler, azure_doubles


@pytest.fixture
def azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Azure]:
    with azure_doubles(tmp_path, monkeypatch) as doubles:
        yield doubles


@pytest.fixture
def acr(azure: Azure, tmp_path: Path) -> Iterator[tuple[HttpsDouble, list[str]]]:
    refresh: list[str] = []
    double = HttpsDouble((azure.ca, tmp_path / "cert.pem", tmp_path / "key.pem"), acr_handler(azure.tokens, refresh))
    yield double, refresh
    double.close()


def login_server(double: HttpsDouble) -> str:
    return double.url.removeprefix("https://")


def test_an_entra_identity_is_exchanged_for_a_refresh_token(azure: Azure, acr: tuple[HttpsDouble, list[str]]) -> None:
    double, refresh = acr
    auth = exchange(azure.credential(), login_server(double))
    assert isinstance(auth, TokenAuth) and auth.token == refresh[0]
    assert auth.username == "00000000-0000-0000-0000-000000000000"
    token_request = next(s for s in azure.entra.seen if s.path.endswith("/token"))
    assert f"scope={ACR_SCOPE}".replace(":", "%3A").replace("/", "%2F") in token_request.body.decode()
    (sent,) = [s for s in double.seen if s.path == "/oauth2/exchange"]
    assert f"service={login_server(double).replace(':', '%3A')}" in sent.body.decode()


def test_the_refresh_token_opens_a_repository_scope(azure: Azure, acr: tuple[HttpsDouble, list[str]]) -> None:
    double, _ = acr
    auth = exchange(azure.credential(), login_server(double))
    trust = ssl.create_default_context(cafile=str(azure.ca))
    registry = OciRegistry(login_server(double), auth, client=httpx.Client(verify=trust))
    challenge = f'Bearer realm="{double.url}/oauth2/token",service="{login_server(double)}"'
    token = registry._token(challenge, "repository:svc:pull")
    assert token.startswith("acr-access-")


def test_a_refused_identity_is_permanent_and_never_reaches_the_registry(
    azure: Azure, acr: tuple[HttpsDouble, list[str]]
) -> None:
    double, _ = acr
    with pytest.raises(PermanentError) as caught:
        exchange(azure.credential("not-the-secret"), login_server(double))
    assert caught.value.diagnosis is not None and caught.value.diagnosis.code is Code.REGISTRY_AUTH_DENIED
    assert not double.seen and "not-the-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "error", "code", "delay"),
    [
        (Answer(401, {"errors": [{"code": "UNAUTHORIZED"}]}), PermanentError, Code.REGISTRY_AUTH_DENIED, None),
        (Answer(403, {"errors": [{"code": "DENIED"}]}), PermanentError, Code.REGISTRY_AUTH_DENIED, None),
        (Answer(429, {}, {"Retry-After": "9"}), TransientError, Code.REGISTRY_UNAVAILABLE, 9.0),
        (Answer(503, {}), TransientError, Code.REGISTRY_UNAVAILABLE, None),
    ],
    ids=["401", "403", "429", "503"],
)
def test_each_answer_of_the_exchange_is_decided_once(
    azure: Azure,
    acr: tuple[HttpsDouble, list[str]],
    answer: Answer,
    error: type[Exception],
    code: Code,
    delay: float | None,
) -> None:
    double, _ = acr
    double.script("POST", r"^/oauth2/exchange$", answer)
    with pytest.raises(error) as caught:
        exchange(azure.credential(), login_server(double))
    raised = caught.value
    assert raised.diagnosis.code is code
    if delay is not None:
        assert raised.delay >= delay
    assert len([s for s in double.seen if s.path == "/oauth2/exchange"]) == 1


@pytest.mark.parametrize(("status", "error"), [(429, TransientError), (503, TransientError), (401, PermanentError)])
def test_a_busy_token_endpoint_is_retried_and_a_refusal_is_not(
    azure: Azure, acr: tuple[HttpsDouble, list[str]], status: int, error: type[Exception]
) -> None:
    double, _ = acr
    auth = exchange(azure.credential(), login_server(double))
    double.script("GET", r"^/oauth2/token$", Answer(status, {}, {"Retry-After": "4"}))
    registry = OciRegistry(
        login_server(double), auth, client=httpx.Client(verify=ssl.create_default_context(cafile=str(azure.ca)))
    )
    with pytest.raises(error):
        registry._token(f'Bearer realm="{double.url}/oauth2/token",service="x"', "repository:svc:pull")
