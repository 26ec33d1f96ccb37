"""The ``smoke:`` list: requests the new version must answer before it serves.

A request is a JSON document or a string (``request``), a file sent as the raw body
(``body_file`` with ``content_type``), or a multipart upload (``files`` and ``form``, as the
classic image-upload samples take it); a GET sends only ``query``. What to send is described
here; :class:`mldeploy.adapters.http_probe.HttpProbe` sends it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from mldeploy.spec.files import FIX_PATH, spec_path_validator
from mldeploy.spec.types import Fix, Section, spec_error

MAX_SMOKE_BODY_BYTES = 256 * 1024  # a request written in the spec
MAX_SMOKE_FILE_BYTES = 1024 * 1024  # a file sent as a body or an upload (the runtime's default body limit)
FieldName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_.\[\]-]{1,100}$"),
    Fix("use letters, digits, '_', '.', '-', '[' and ']'"),
]
HeaderName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9-]{1,100}$"),
    Fix("use a header name of letters, digits and '-'"),
]
HeaderValue = Annotated[str, Field(pattern=r"^[\x20-\x7e\t]{0,4096}$"), Fix("use printable ASCII only")]
MediaType = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+( *;[\x20-\x7e]*)?$", max_length=200),
    Fix("use a media type such as image/jpeg or application/octet-stream"),
]
SmokeFile = Annotated[Path, spec_path_validator("file"), FIX_PATH]
RESERVED_HEADERS = {"authorization", "host", "content-length", "transfer-encoding", "connection"}


@dataclass(frozen=True)
class SmokeRequest:
    """What to send, ready for an HTTP client (json / content / files+data are exclusive)."""

    method: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)  # field -> (file name, bytes, type)
    data: dict[str, str] = field(default_factory=dict)


class SmokeCase(Section):
    """One request the smoke stage sends to the new version before it serves."""

    name: Annotated[str, Field(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] = Field(
        "", description="Shown in the smoke table; default 'request N'."
    )
    method: Literal["POST", "GET"] = Field("POST", description="POST /score (default) or GET /score.")
    query: dict[FieldName, str | int | float | bool] = Field(
        default_factory=dict, description="Query parameters (GET /score?name=value, as the classic server took them)."
    )
    request: Any = Field(None, description="The body: a JSON document (sent as JSON) or a string (sent as is).")
    body_file: SmokeFile | None = Field(None, description="A file in the spec's folder sent as the raw body.")
    content_type: MediaType | None = Field(
        None,
        description="Content-Type of the body (default: JSON for request, application/octet-stream for body_file).",
    )
    files: dict[FieldName, SmokeFile] = Field(
        default_factory=dict, description="A multipart/form-data upload: field name -> file in the spec's folder."
    )
    form: dict[FieldName, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, description="Text fields sent with the files (multipart/form-data)."
    )
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict, description="Extra request headers.")
    expect_status: Annotated[int, Field(ge=100, le=599), Fix("use an HTTP status such as 200")] = Field(
        200, description="Expected HTTP status."
    )
    expect: Any = Field(None, description="Expected JSON response; numbers compare with a relative tolerance of 1e-6.")
    expect_text: Annotated[str, Field(max_length=MAX_SMOKE_BODY_BYTES)] | None = Field(
        None, description="Expected response text, when the answer is not JSON."
    )
    max_latency_ms: Annotated[float, Field(gt=0, le=3_600_000), Fix("use milliseconds, e.g. 500")] | None = Field(
        None, description="Slowest acceptable answer."
    )
    burst: Annotated[int, Field(ge=2, le=200), Fix("use a number of concurrent requests from 2 to 200")] | None = Field(
        None,
        description="Send this request N times at once (a short burst); an HTTP 503 among the answers is "
        "diagnosed with the replica formula and the measured request time.",
    )

    @field_validator("request", mode="after")
    @classmethod
    def _bounded_body(cls, request: Any) -> Any:
        size = len(request.encode() if isinstance(request, str) else json.dumps(request).encode())
        if size > MAX_SMOKE_BODY_BYTES:
            raise spec_error(
                f"the request body is {size} bytes, more than {MAX_SMOKE_BODY_BYTES}",
                "smoke requests are samples: keep each under 256 KiB",
            )
        return request

    @field_validator("body_file", mode="after")
    @classmethod
    def _bounded_file(cls, path: Path | None) -> Path | None:
        if path is not None and path.stat().st_size > MAX_SMOKE_FILE_BYTES:
            raise spec_error(f"{path.name} is larger than 1 MiB", "use a smaller sample file")
        return path

    @field_validator("files", mode="after")
    @classmethod
    def _bounded_files(cls, files: dict[str, Path]) -> dict[str, Path]:
        total = sum(path.stat().st_size for path in files.values())
        if total > MAX_SMOKE_FILE_BYTES:
            raise spec_error(f"the files add up to {total} bytes, more than 1 MiB", "use smaller sample files")
        return files

    @field_validator("headers", mode="after")
    @classmethod
    def _no_reserved_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        reserved = sorted(name for name in headers if name.lower() in RESERVED_HEADERS)
        if reserved:
            raise spec_error(
                f"{', '.join(reserved)} cannot be set here",
                "the smoke stage sets these itself (the service key goes in secrets: MLDEPLOY_AUTH_PRIMARY_KEY)",
            )
        return headers

    @model_validator(mode="after")
    def _one_body(self) -> SmokeCase:
        sources = [
            name
            for name, given in (
                ("request", "request" in self.model_fields_set),
                ("body_file", self.body_file is not None),
                ("files/form", bool(self.files or self.form)),
            )
            if given
        ]
        if len(sources) > 1:
            raise spec_error(f"sets {' and '.join(sources)}", "send one body: request, body_file, or files/form")
        if self.method == "GET" and sources:
            raise spec_error("a GET sends no body", "put the input in query, or use method: POST")
        if self.method == "POST" and not sources:
            raise spec_error("a POST needs a body", "add request (JSON or text), body_file, or files")
        if self.expect_text is not None and self.has_expect:
            raise spec_error("sets both expect and expect_text", "keep expect (JSON) or expect_text (text)")
        return self

    @property
    def has_expect(self) -> bool:
        return "expect" in self.model_fields_set

    def body(self) -> bytes:
        """The raw body of a ``request`` (JSON unless it is a string)."""
        if isinstance(self.request, str):
            return self.request.encode()
        return json.dumps(self.request).encode()

    def http_request(self) -> SmokeRequest:
        """What the smoke stage sends (the service key is added by the stage)."""
        params = {k: json.dumps(v) if isinstance(v, bool) else str(v) for k, v in self.query.items()}
        headers = dict(self.headers)
        if self.method == "GET":
            return SmokeRequest("GET", params, headers)
        if self.body_file is not None:
            headers.setdefault("Content-Type", self.content_type or "application/octet-stream")
            return SmokeRequest("POST", params, headers, content=self.body_file.read_bytes())
        if self.files or self.form:
            files = {name: (path.name, path.read_bytes(), _guess_type(path)) for name, path in self.files.items()}
            return SmokeRequest("POST", params, headers, files=files, data=dict(self.form))
        headers.setdefault("Content-Type", self.content_type or "application/json")
        return SmokeRequest("POST", params, headers, content=self.body())

    def description(self) -> str:
        """How the smoke table shows what was sent."""
        if self.method == "GET":
            return "GET " + "&".join(f"{k}={v}" for k, v in self.query.items())
        if self.body_file is not None:
            return f"POST {self.body_file.name} ({self.content_type or 'application/octet-stream'})"
        if self.files or self.form:
            return "POST multipart: " + ", ".join([*self.files, *self.form])
        return "POST " + (self.request if isinstance(self.request, str) else "JSON")[:60]


def _guess_type(path: Path) -> str:
    import mimetypes

    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
