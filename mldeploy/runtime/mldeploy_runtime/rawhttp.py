"""Raw-request mode: ``@rawhttp`` on ``run()``, ``AMLRequest`` in, ``AMLResponse`` (or any JSON value) out.

Re-exported by the compatibility modules ``azureml.contrib.services.aml_request`` / ``aml_response`` so that
classic scripts work unchanged. The classic objects were Flask/Werkzeug requests; this ``AMLRequest`` offers
the
subset scripts use in practice: ``method``, ``path``, ``full_path``, ``url``, ``args``, ``headers``, ``data``,
``get_data()``, ``get_json()``, ``json``, ``is_json``, ``content_type``, ``mimetype``, ``content_length``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

RAWHTTP_ATTR = "_mldeploy_rawhttp"


def rawhttp(func: Any) -> Any:
    """Mark ``run()`` so that it receives the request object instead of the body text."""
    with contextlib.suppress(AttributeError, TypeError):
        setattr(func, RAWHTTP_ATTR, True)
    # classic scripts/tools sometimes look at this module global
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


_rawHttpRequested = False


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only header mapping (repeated headers are joined with ", ")."""

    def __init__(self, raw: list[tuple[bytes, bytes]] | None = None) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        for name_b, value_b in raw or []:
            name, value = name_b.decode("latin-1"), value_b.decode("latin-1")
            key = name.lower()
            if key in self._items:
                value = f"{self._items[key][1]}, {value}"
                name = self._items[key][0]
            self._items[key] = (name, value)

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Args(dict):  # type: ignore[type-arg]
    """Query arguments: ``args[k]``/``args.get(k)`` give the first value, ``getlist(k)`` all values."""

    def __init__(self, query: str) -> None:
        self._lists: dict[str, list[str]] = {}
        for k, v in parse_qsl(query, keep_blank_values=True):
            self._lists.setdefault(k, []).append(v)
        super().__init__({k: v[0] for k, v in self._lists.items()})

    def getlist(self, key: str) -> list[str]:
        return list(self._lists.get(key, []))


class AMLRequest:
    """The HTTP request handed to a ``@rawhttp`` ``run()``."""

    def __init__(
        self,
        method: str = "GET",
        path: str = "/score",
        query: str = "",
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        scheme: str = "http",
        host: str = "localhost",
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query.encode()
        self.full_path = f"{path}?{query}"
        self.args = Args(query)
        self.headers = Headers(headers)
        self.data = body
        self.scheme = scheme
        self.host = self.headers.get("host", host)
        self.url = f"{scheme}://{self.host}{path}" + (f"?{query}" if query else "")

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def mimetype(self) -> str:
        return (self.content_type or "").split(";", 1)[0].strip().lower()

    @property
    def content_length(self) -> int:
        return len(self.data)

    @property
    def is_json(self) -> bool:
        mt = self.mimetype
        return mt == "application/json" or (mt.startswith("application/") and mt.endswith("+json"))

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False) -> Any:
        return self.data.decode("utf-8", "replace") if as_text else self.data

    def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if not (force or self.is_json):
            if silent:
                return None
            raise ValueError("Expected a JSON body (Content-Type: application/json)")
        try:
            return json.loads(self.data)
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self) -> Any:
        return self.get_json(silent=True)

    def __repr__(self) -> str:
        return f"<AMLRequest {self.method} {self.full_path} ({len(self.data)} bytes)>"


class AMLResponse:
    """A response returned as-is by ``run()``.

    ``AMLResponse(message, status_code, response_headers, json_str)``:

    ``message`` may be bytes, str or (with ``json_str=True``, or when it is a dict/list) any JSON value;
    ``None`` gives ``{}``. Header values containing commas become repeated headers, as in the classic server.
    """

    def __init__(
        self,
        message: Any,
        status_code: int,
        response_headers: Mapping[str, str] | None = None,
        json_str: bool = False,
        run_function_failed: bool = False,
    ) -> None:
        headers: list[tuple[str, str]] = []
        user_headers = dict(response_headers or {})
        has_ct = any(k.lower() == "content-type" for k in user_headers)
        if message is None:
            body, ctype = b"{}", "application/json"
        elif json_str or isinstance(message, (dict, list)):
            body, ctype = json.dumps(message).encode(), "application/json"
        elif isinstance(message, (bytes, bytearray, memoryview)):
            body, ctype = bytes(message), "application/octet-stream"
        else:
            body, ctype = str(message).encode(), "text/html; charset=utf-8"
        if not has_ct or json_str or message is None:
            headers.append(("content-type", ctype))
        for name, value in user_headers.items():
            if json_str and name.lower() == "content-type":
                continue
            for part in str(value).split(","):
                headers.append((name, part.strip()))
        headers.append(("x-ms-run-function-failed", str(bool(run_function_failed))))
        self.status_code = int(status_code)
        self.body = body
        self.headers = headers

    # Flask-ish accessors some scripts/tests use
    @property
    def status(self) -> int:
        return self.status_code

    def get_data(self, as_text: bool = False) -> Any:
        return self.body.decode("utf-8", "replace") if as_text else self.body
