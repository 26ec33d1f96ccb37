"""An HTTPS double of Azure Container Registry on 127.0.0.1, in front of the local registry (127.0.0.1:5000).

What ACR serves for a sign-in with Entra ID: ``POST /oauth2/exchange`` takes an Entra access token the Entra
double issued and answers a refresh token; ``/oauth2/token`` trades the refresh token for an access token
(Docker's refresh_token grant, or Basic auth with the null user as the /v2 client sends it); every ``/v2`` call
needs that Bearer token (else 401 with the challenge ACR sends), and is passed on to the real registry, chunked
uploads included — so the Docker engine really pushes through it, and the digest read back is the real one.

Scripted answers come first (a 429 with Retry-After on the exchange...). Token-endpoint requests are recorded
with their bodies (the canary sweeps search them); /v2 requests by method and path only (blobs are large).
"""

from __future__ import annotations

import http.client
import json
from collections import deque
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.middle.azure_doubles import Answer, Seen, acr_handler, serve_https

UPSTREAM = "127.0.0.1:5000"
_HOP_BY_HOP = {"authorization", "transfer-encoding", "host", "content-length", "connection"}


class AcrRegistryDouble:
    def __init__(self, tls: tuple[Path, Path, Path], entra_tokens: list[str], upstream: str = UPSTREAM) -> None:
        self.refresh_tokens: list[str] = []
        self.access_tokens: list[str] = []
        self.seen: list[Seen] = []
        self.scripts: list[tuple[str, str, deque[Answer]]] = []
        self.token_endpoints = acr_handler(entra_tokens, self.refresh_tokens, self.access_tokens)
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                out = bytearray()
                while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                    out += self.rfile.read(size)
                    self.rfile.readline()
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(out)

            def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                body = self._body()
                token_call = parts.path.startswith("/oauth2/")
                seen = Seen(
                    self.command, parts.path, parse_qs(parts.query), dict(self.headers), body if token_call else b""
                )
                double.seen.append(seen)
                answer = double._scripted(seen)
                if answer is None and token_call:
                    answer = double.token_endpoints(seen)
                if answer is not None:
                    payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                    return self._answer(answer.status, payload, {"Content-Type": "application/json", **answer.headers})
                if not parts.path.startswith("/v2"):
                    return self._answer(404)
                if self.headers.get("Authorization", "").removeprefix("Bearer ") not in double.access_tokens:
                    host = self.headers.get("Host", "")
                    challenge = f'Bearer realm="https://{host}/oauth2/token",service="{host}"'
                    return self._answer(
                        401,
                        b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                        {"WWW-Authenticate": challenge, "Docker-Distribution-Api-Version": "registry/2.0"},
                    )
                self._proxy(body)

            def _proxy(self, body: bytes) -> None:
                upstream = http.client.HTTPConnection(double.upstream, timeout=300)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", length or "0")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve

        self.upstream = upstream
        self.server = serve_https(tls, Handler)
        self.login_server = f"127.0.0.1:{self.server.server_address[1]}"

    def script(self, method: str, path: str, *answers: Answer) -> None:
        """Answer the next ``method`` requests to exactly ``path`` with ``answers``, in order."""
        self.scripts.append((method, path, deque(answers)))

    def _scripted(self, seen: Seen) -> Answer | None:
        for method, path, answers in self.scripts:
            if answers and method == seen.method and path == seen.path:
                return answers.popleft()
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
