"""HTTPS doubles of Microsoft Entra ID and Azure Resource Manager on 127.0.0.1, for the real SDK clients.

A CA made for the session signs a certificate for 127.0.0.1; the clients trust it through the standard
variables (``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``), exactly as they would a corporate proxy's CA, so the
SDK code paths under test are the real ones: ``ClientSecretCredential`` fetches the OpenID configuration and
a token, ``ContainerInstanceManagementClient`` sends its PUT/GET/DELETE and polls the long-running operation.

The ARM double keeps container groups the way ARM does (``secureValue``s and passwords never come back;
``provisioningState`` goes Creating → Succeeded through an ``Azure-AsyncOperation``), answers in the shape of
Microsoft's examples (tests/fixtures/aci), and plays scripted answers first — a 409 while another operation
runs, a 429 with ``Retry-After``, a 500 once, an ARM error code — so each failure is what the SDK really
receives. Every request is recorded (the canary sweeps search the bodies).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import secrets
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TENANT = "00000000-0000-0000-0000-0000000000aa"
CLIENT_ID = "00000000-0000-0000-0000-0000000000bb"
CLIENT_SECRET = "canary-client-secret-4c1d"
SUBSCRIPTION = "00000000-0000-0000-0000-0000000000cc"
GROUP_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.ContainerInstance/"
    r"containerGroups(?:/(?P<name>[^/]+))?(?P<rest>/.*)?$",
    re.IGNORECASE,
)


def make_tls(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1/localhost signed by it: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mldeploy test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@dataclass
class Answer:
    """One scripted HTTP answer."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def arm_error(cls, status: int, code: str, message: str, **headers: str) -> Answer:
        return cls(status, {"error": {"code": code, "message": message}}, headers)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)


Handler = Callable[[Seen], Answer]


def serve_https(tls: tuple[Path, Path, Path], handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A threaded HTTPS server on a free 127.0.0.1 port with the test CA's certificate, serving in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls[1], tls[2])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class HttpsDouble:
    """A threaded HTTPS server on 127.0.0.1 that routes to ``handle`` and records every request."""

    def __init__(self, tls: tuple[Path, Path, Path], handle: Handler) -> None:
        self.handle = handle
        self.seen: list[Seen] = []
        self.scripts: list[tuple[str, re.Pattern[str], deque[Answer]]] = []
        double = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command, parts.path, parse_qs(parts.query), dict(self.headers), self.rfile.read(length)
                )
                double.seen.append(seen)
                answer = double._scripted(seen) or double.handle(seen)
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if payload:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-ms-request-id", str(uuid.uuid4()))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve

        self.server = serve_https(tls, RequestHandler)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"

    def script(self, method: str, path: str, *answers: Answer) -> None:
        """Answer the next requests whose method matches and whose path matches the regex ``path`` with
        ``answers``, in order, before the double's own behaviour."""
        self.scripts.append((method, re.compile(path), deque(answers)))

    def _scripted(self, seen: Seen) -> Answer | None:
        for method, pattern, answers in self.scripts:
            if answers and method == seen.method and pattern.search(seen.path):
                return answers.popleft()
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def entra_handler(url: Callable[[], str], tokens: list[str]) -> Handler:
    """Entra ID's v2.0 endpoints for one tenant: the OpenID configuration and the client-credentials token."""

    def handle(seen: Seen) -> Answer:
        base = f"{url()}/{TENANT}"
        if seen.method == "GET" and seen.path == f"/{TENANT}/v2.0/.well-known/openid-configuration":
            return Answer(
                200,
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "issuer": f"{base}/v2.0",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "response_types_supported": ["code", "id_token", "token"],
                    "subject_types_supported": ["pairwise"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                },
            )
        if seen.method == "POST" and seen.path == f"/{TENANT}/oauth2/v2.0/token":
            form = parse_qs(seen.body.decode())
            if form.get("client_id") != [CLIENT_ID] or form.get("client_secret") != [CLIENT_SECRET]:
                return Answer(
                    401,
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided.",
                        "error_codes": [7000215],
                    },
                )
            token = f"token-{uuid.uuid4().hex}"
            tokens.append(token)
            return Answer(
                200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
            )
        return Answer(404, {"error": "not_found"})

    return handle


class DockerBackend:
    """Runs each container group the ARM double holds as a real container of the local engine, on an address
    of its own (127.X.Y.N, the group's "public IP") and the group's port: the smoke test reaches the real
    runtime, and the instance view and the log are the container's own. A PUT to an existing group recreates
    the container, as ACI restarts the containers of an updated group."""

    def __init__(self) -> None:
        import docker

        self.client = docker.from_env(timeout=120)
        self.prefix = f"aci-double-{uuid.uuid4().hex[:6]}"
        self.ips: dict[str, str] = {}
        self.net = f"127.{secrets.randbelow(250) + 2}.{secrets.randbelow(250) + 2}"  # apart from other sessions

    def _name(self, group: str) -> str:
        return f"{self.prefix}-{group}"

    def start(self, group: str, body: dict[str, Any]) -> tuple[str, str]:
        """Run the group's container: (its IP, '') or ('', the pull error ACI would report as an event)."""
        import docker

        self.stop(group)
        ip = self.ips.setdefault(group, f"{self.net}.{10 + len(self.ips)}")
        properties = body["properties"]
        container = properties["containers"][0]["properties"]
        env = {v["name"]: v.get("value", v.get("secureValue", "")) for v in container.get("environmentVariables", [])}
        port = properties["ipAddress"]["ports"][0]["port"]
        memory = int(float(container["resources"]["requests"]["memoryInGB"]) * 1024**3)
        try:
            self.client.containers.run(
                container["image"],
                detach=True,
                name=self._name(group),
                environment=env,
                ports={f"{port}/tcp": (ip, port)},
                mem_limit=memory,
                labels={"mldeploy.test": "aci-double"},
            )
        except docker.errors.ImageNotFound as exc:
            return "", f'Failed to pull image "{container["image"]}": {exc.explanation or exc}'
        except docker.errors.APIError as exc:
            if not any(word in str(exc).lower() for word in ("pull", "manifest", "not found", "unauthorized")):
                raise  # the double's own trouble (a port taken...), not something ACI would report
            return "", f'Failed to pull image "{container["image"]}": {exc.explanation or exc}'
        return ip, ""

    def view(self, group: str) -> dict[str, Any] | None:
        import docker

        try:
            attrs = self.client.containers.get(self._name(group)).attrs
        except docker.errors.NotFound:
            return None
        state = attrs["State"]
        if state["Running"]:
            current = {"state": "Running", "startTime": state["StartedAt"], "detailStatus": ""}
        else:
            detail = "OOMKilled" if state["OOMKilled"] else ("Completed" if state["ExitCode"] == 0 else "Error")
            current = {"state": "Terminated", "exitCode": state["ExitCode"], "detailStatus": detail}
        return {"restartCount": attrs.get("RestartCount", 0), "currentState": current, "events": []}

    def logs(self, group: str, tail: int) -> str:
        import docker

        try:
            return str(self.client.containers.get(self._name(group)).logs(tail=tail).decode(errors="replace"))
        except docker.errors.NotFound:
            return ""

    def stop(self, group: str) -> None:
        import docker

        with contextlib.suppress(docker.errors.NotFound):
            self.client.containers.get(self._name(group)).remove(force=True)

    def close(self) -> None:
        for container in self.client.containers.list(all=True, filters={"name": self.prefix}):
            container.remove(force=True)
        self.client.close()


def acr_handler(tokens: list[str], refresh_tokens: list[str], access_tokens: list[str] | None = None) -> Handler:
    """ACR's token endpoints: ``/oauth2/exchange`` takes an Entra access token the Entra double issued and
    answers a refresh token; ``/oauth2/token`` trades one for an access token (Basic auth with the null user,
    as Docker and the /v2 client send it, or the refresh_token grant)."""

    def handle(seen: Seen) -> Answer:
        form = parse_qs(seen.body.decode()) if seen.body else {}
        if seen.method == "POST" and seen.path == "/oauth2/exchange":
            if form.get("grant_type") != ["access_token"] or form.get("access_token", [""])[0] not in tokens:
                return Answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid Entra token"}]})
            refresh = f"acr-refresh-{uuid.uuid4().hex}"
            refresh_tokens.append(refresh)
            return Answer(200, {"refresh_token": refresh})
        if seen.path == "/oauth2/token":
            import base64

            basic = seen.headers.get("Authorization", "").removeprefix("Basic ")
            password = base64.b64decode(basic).decode().split(":", 1)[-1] if basic else ""
            offered = form.get("refresh_token", [password])[0]
            if offered not in refresh_tokens:
                return Answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid refresh token"}]})
            access = f"acr-access-{uuid.uuid4().hex}"
            if access_tokens is not None:
                access_tokens.append(access)
            return Answer(200, {"access_token": access})
        return Answer(404, {"errors": [{"code": "NOT_FOUND"}]})

    return handle


@dataclass
class Group:
    body: dict[str, Any]
    polls_left: int
    log: str = ""
    on_succeeded: Callable[[dict[str, Any]], None] | None = None


class ArmDouble:
    """Azure Resource Manager for ``Microsoft.ContainerInstance/containerGroups`` (api-version 2023-05-01)."""

    def __init__(
        self,
        tls: tuple[Path, Path, Path],
        tokens: list[str],
        *,
        location: str = "westeurope",
        backend: DockerBackend | None = None,
    ) -> None:
        self.tokens = tokens
        self.backend = backend
        self.location = location
        self.groups: dict[tuple[str, str], Group] = {}
        self.operations: dict[str, tuple[str, str, str]] = {}  # id -> (kind, rg, name)
        self.polls_per_operation = 1
        self.state_after_create: Callable[[str, dict[str, Any]], None] | None = None
        self.logs: dict[str, str] = {}
        self.sent_bodies: dict[str, dict[str, Any]] = {}  # with secure values: what the container runs with
        self.http = HttpsDouble(tls, self.handle)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.http.url

    def handle(self, seen: Seen) -> Answer:
        if seen.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            return Answer.arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        with self.lock:
            return self._route(seen)

    def _group_id(self, rg: str, name: str) -> str:
        return (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/"
            f"containerGroups/{name}"
        )

    def _route(self, seen: Seen) -> Answer:
        if seen.path.startswith("/providers/Microsoft.ContainerInstance/operations/"):
            return self._operation(seen.path.rsplit("/", 1)[1])
        if re.fullmatch(rf"/subscriptions/{SUBSCRIPTION}/resourcegroups/[^/]+", seen.path, re.IGNORECASE):
            return Answer(200, {"id": seen.path, "name": seen.path.rsplit("/", 1)[1], "location": self.location})
        match = GROUP_PATH.match(seen.path)
        if not match or match["sub"] != SUBSCRIPTION:
            return Answer.arm_error(404, "SubscriptionNotFound", f"The subscription '{seen.path}' could not be found.")
        rg, name, rest = match["rg"], match["name"], match["rest"] or ""
        if name is None:
            listed = [self._visible(g.body) for (r, _), g in self.groups.items() if r == rg]
            return Answer(200, {"value": listed})
        group = self.groups.get((rg, name))
        if rest.startswith("/containers/") and rest.endswith("/logs"):
            if group is None:
                return self._not_found(name)
            tail = int((seen.query.get("tail") or ["200"])[0])
            content = self.backend.logs(name, tail) if self.backend is not None else group.log
            return Answer(200, {"content": content})
        if seen.method == "PUT":
            return self._put(rg, name, json.loads(seen.body))
        if group is None:
            return self._not_found(name)
        if seen.method == "GET":
            self._refresh(name, group)
            return Answer(200, self._visible(group.body))
        if seen.method == "PATCH":  # tags only
            group.body["tags"] = json.loads(seen.body).get("tags") or {}
            return Answer(200, self._visible(group.body))
        if seen.method == "DELETE":
            del self.groups[(rg, name)]
            if self.backend is not None:
                self.backend.stop(name)
            return Answer(200, self._visible(group.body))
        return Answer.arm_error(405, "MethodNotAllowed", seen.method)

    def _not_found(self, name: str) -> Answer:
        return Answer.arm_error(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.ContainerInstance/containerGroups/{name}' under resource group was not found.",
        )

    def _put(self, rg: str, name: str, body: dict[str, Any]) -> Answer:
        self.sent_bodies[name] = body
        stored = json.loads(json.dumps(body))
        stored.update(id=self._group_id(rg, name), name=name, type="Microsoft.ContainerInstance/containerGroups")
        properties = stored["properties"]
        existed = (rg, name) in self.groups
        properties["provisioningState"] = "Updating" if existed else "Creating"
        previous_ip = self.groups[(rg, name)].body["properties"]["ipAddress"].get("ip") if existed else None
        properties.setdefault("ipAddress", {})["ip"] = previous_ip or "20.50.0.10"
        label = properties["ipAddress"].get("dnsNameLabel")
        if label:
            properties["ipAddress"]["fqdn"] = f"{label}.{stored['location']}.azurecontainer.io"
        self.groups[(rg, name)] = Group(stored, self.polls_per_operation, log=self.logs.get(name, ""))
        operation = uuid.uuid4().hex
        self.operations[operation] = ("create", rg, name)
        headers = {
            "Azure-AsyncOperation": f"{self.url}/providers/Microsoft.ContainerInstance/operations/{operation}"
            "?api-version=2023-05-01",
            "Retry-After": "0",
        }
        return Answer(200 if existed else 201, self._visible(stored), headers)

    def _operation(self, operation: str) -> Answer:
        _, rg, name = self.operations[operation]
        group = self.groups.get((rg, name))
        if group is not None and group.polls_left > 0:
            group.polls_left -= 1
            return Answer(200, {"id": operation, "status": "InProgress"}, {"Retry-After": "0"})
        if group is not None and group.body["properties"]["provisioningState"] in ("Creating", "Updating"):
            group.body["properties"]["provisioningState"] = "Succeeded"
            if self.backend is not None:
                self._run(name, group)
                return Answer(200, {"id": operation, "status": "Succeeded"})
            group.body["properties"]["containers"][0]["properties"]["instanceView"] = {
                "restartCount": 0,
                "currentState": {"state": "Running", "startTime": "2026-11-30T10:00:00Z", "detailStatus": ""},
                "events": [
                    {"name": "Pulled", "type": "Normal", "count": 1, "message": "Successfully pulled image"},
                    {"name": "Started", "type": "Normal", "count": 1, "message": "Started container"},
                ],
            }
            if self.state_after_create is not None:
                self.state_after_create(name, group.body)
        failed = group is not None and group.body["properties"]["provisioningState"] == "Failed"
        return Answer(200, {"id": operation, "status": "Failed" if failed else "Succeeded"})

    def _run(self, name: str, group: Group) -> None:
        assert self.backend is not None
        ip, pull_error = self.backend.start(name, self.sent_bodies[name])
        view: dict[str, Any]
        if pull_error:
            view = {
                "restartCount": 0,
                "currentState": {"state": "Waiting", "detailStatus": ""},
                "events": [{"name": "Failed", "type": "Warning", "count": 1, "message": pull_error}],
            }
        else:
            group.body["properties"]["ipAddress"]["ip"] = ip
            view = self.backend.view(name) or {}
        group.body["properties"]["containers"][0]["properties"]["instanceView"] = view
        if self.state_after_create is not None:
            self.state_after_create(name, group.body)

    def _refresh(self, name: str, group: Group) -> None:
        """The instance view as the container really is now (Running, or Terminated with its exit code)."""
        if self.backend is None or group.body["properties"]["provisioningState"] != "Succeeded":
            return
        container = group.body["properties"]["containers"][0]["properties"]
        if (container.get("instanceView") or {}).get("currentState", {}).get("state") == "Waiting":
            return
        view = self.backend.view(name)
        if view is not None:
            container["instanceView"] = view

    @staticmethod
    def _visible(body: dict[str, Any]) -> dict[str, Any]:
        """What ARM returns: secure values and registry passwords never come back."""
        copy = json.loads(json.dumps(body))
        for container in copy["properties"].get("containers", []):
            for variable in container["properties"].get("environmentVariables", []):
                variable.pop("secureValue", None)
        for credential in copy["properties"].get("imageRegistryCredentials", []):
            credential.pop("password", None)
        return dict(copy)

    def close(self) -> None:
        self.http.close()
        if self.backend is not None:
            self.backend.close()


@dataclass
class Azure:
    entra: HttpsDouble
    arm: ArmDouble
    ca: Path
    tokens: list[str]
    tls: tuple[Path, Path, Path]  # CA, certificate, key: for more doubles (the ACR registry double)

    def credential(self, secret: str = CLIENT_SECRET) -> Any:
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            TENANT, CLIENT_ID, secret, authority=self.entra.url, disable_instance_discovery=True
        )

    def every_request(self) -> Iterator[Seen]:
        yield from self.entra.seen
        yield from self.arm.http.seen


@contextmanager
def azure_doubles(folder: Path, monkeypatch: Any, *, run_containers: bool = False) -> Iterator[Azure]:
    tls = make_tls(folder)
    tokens: list[str] = []
    holder: dict[str, str] = {}
    entra = HttpsDouble(tls, entra_handler(lambda: holder["url"], tokens))
    holder["url"] = entra.url
    arm = ArmDouble(tls, tokens, backend=DockerBackend() if run_containers else None)
    # the machine's CAs and the test CA: what else the process reaches (a package index) keeps working
    import certifi

    system = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
    bundle = folder / "bundle.pem"
    bundle.write_text((system if system.is_file() else Path(certifi.where())).read_text() + tls[0].read_text())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    try:
        yield Azure(entra, arm, tls[0], tokens, tls)
    finally:
        entra.close()
        arm.close()
