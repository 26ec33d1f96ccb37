"""HTTP calls to the scoring service (health and smoke): the only module that uses httpx here."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from mldeploy.spec.smoke import SmokeRequest


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: no answer (connection refused, timeout)
    body: str
    seconds: float
    error: str = ""


class HttpProbe:
    def __init__(self, client: httpx.Client | None = None) -> None:
        self.client = client or httpx.Client(trust_env=False)

    def get_json(self, url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> object:
        """The JSON a GET answers with 200, or None (no answer, another status, not JSON)."""
        try:
            response = self.client.get(url, timeout=timeout, headers=headers)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def healthy(self, url: str, timeout: float = 2.0) -> bool:
        try:
            return self.client.get(url, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def send(
        self, url: str, request: SmokeRequest, timeout: float = 30.0, headers: dict[str, str] | None = None
    ) -> Reply:
        """One smoke request (JSON, raw bytes, multipart or GET); no answer is a Reply, not an exception."""
        start = time.perf_counter()
        try:
            response = self.client.request(
                request.method,
                url,
                params=request.params or None,
                headers={**request.headers, **(headers or {})},
                content=request.content,
                files=request.files or None,
                data=request.data or None,
                timeout=timeout,
            )
        except httpx.TimeoutException as exc:
            return Reply(None, "", time.perf_counter() - start, f"timeout: {exc}")
        except httpx.HTTPError as exc:
            return Reply(None, "", time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
        return Reply(response.status_code, response.text, time.perf_counter() - start)
